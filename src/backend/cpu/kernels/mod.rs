//! CPU kernels, one file per op family.

pub mod gather;
pub mod generate;
pub mod layout;
