//! Placeholder until the zoo lands.
use crate::error::{Error, Result};
pub struct ZooModel {
    pub name: &'static str,
    pub onnx: Vec<u8>,
    pub input_shape: [usize; 4],
    pub gmacs: f64,
}
pub fn names() -> &'static [&'static str] {
    &[]
}
pub fn build(name: &str) -> Result<ZooModel> {
    Err(Error::Usage(format!("unknown zoo model {name}")))
}
