//! ONNX protobuf: reading models into the IR, and writing them (the model zoo).

pub mod write;
