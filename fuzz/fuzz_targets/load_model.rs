//! Parsing and import only: any byte string must give a graph or a typed error.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_harness.rs"]
#[allow(dead_code)]
mod fuzz_harness;

fuzz_target!(|data: &[u8]| {
    let bytes: kiln::tensor::SharedBytes = Arc::new(data.to_vec());
    let _ = kiln::onnx::load_graph(&bytes, None, &fuzz_harness::fuzz_limits());
    let _ = kiln::onnx::parse_tensor_proto(data);
});
