//! CPU kernels, one file per op family.
pub mod broadcast;
pub mod elementwise;
pub mod normalization;
pub mod numeric;
pub mod reduce;
