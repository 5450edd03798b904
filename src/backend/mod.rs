//! Execution backends. Each consumes the same optimized IR and plan.

pub mod cpu;
