//! Embedding kiln in five lines: load a model, run it, read the outputs.
//!
//!     cargo run --release --example classify -- [MODEL.onnx]
//!
//! Without an argument it builds ResNet-18 from the built-in zoo.

use kiln::{Session, SessionOptions, Tensor};

fn main() -> kiln::Result<()> {
    let session = match std::env::args().nth(1) {
        Some(path) => Session::from_file(path, SessionOptions::default())?,
        None => Session::from_bytes(kiln::zoo::build("resnet18")?.onnx, SessionOptions::default())?,
    };
    let image = Tensor::random_normal(vec![1, 3, 224, 224], 42)?;
    let outputs = session.run(&[image])?;

    let logits = outputs[0].typed::<f32>()?;
    let mut ranked: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (class, score) in ranked.iter().take(5) {
        println!("class {class:4}  logit {score:8.4}");
    }
    Ok(())
}
