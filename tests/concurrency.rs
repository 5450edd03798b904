//! One `Session` shared by many threads: every run must give the bits a lone caller
//! gets. (Flat memory over many runs is `tests/memory.rs`, in its own process so no
//! other test's allocations show in its RSS.)

mod common;

use std::sync::Arc;

use common::{fixture, read_npy};
use kiln::{Session, SessionOptions, Tensor};

const CALLERS: usize = 8;
const RUNS_PER_CALLER: usize = 1000;

fn session() -> Session {
    let options = SessionOptions {
        threads: Some(2),
        ..SessionOptions::default()
    };
    Session::from_file(fixture("resnet_basic/torchscript.onnx"), options).expect("load fixture")
}

fn bits(outputs: &[Tensor]) -> Vec<u32> {
    outputs
        .iter()
        .flat_map(|t| {
            t.as_slice::<f32>()
                .expect("f32 output")
                .iter()
                .map(|v| v.to_bits())
        })
        .collect()
}

#[test]
fn eight_callers_get_bit_identical_outputs() {
    let session = Arc::new(session());
    let inputs = Arc::new([
        read_npy(&fixture("resnet_basic/input_b1.npy")),
        read_npy(&fixture("resnet_basic/input_b8.npy")),
    ]);
    let reference: Vec<Vec<u32>> = inputs
        .iter()
        .map(|x| bits(&session.run(std::slice::from_ref(x)).expect("reference run")))
        .collect();
    let reference = Arc::new(reference);
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (session, inputs, reference) = (session.clone(), inputs.clone(), reference.clone());
            std::thread::spawn(move || {
                for run in 0..RUNS_PER_CALLER {
                    // Callers interleave batch 1 and batch 8, so two plans and their
                    // arena pools are in use at once.
                    let which = (caller + run) % 2;
                    let out = session.run(std::slice::from_ref(&inputs[which])).expect("run");
                    assert!(
                        bits(&out) == reference[which],
                        "caller {caller}, run {run}: output differs from the single-caller run"
                    );
                }
            })
        })
        .collect();
    for c in callers {
        c.join().expect("a caller thread panicked");
    }
    println!("{CALLERS} callers x {RUNS_PER_CALLER} runs: all bit-identical");
}
