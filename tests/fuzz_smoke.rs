//! A bounded, deterministic fuzz run on stable Rust, for CI: seed models (the
//! conformance-style node graphs kiln's own writer makes, the fixtures, the corpus)
//! mutated by bit flips, byte overwrites, truncations, splices and varint-sized
//! insertions, each loaded and run through the same harness as the libFuzzer targets
//! in `fuzz/`. Any panic fails the test and prints a reproducer seed.
//!
//! `KILN_FUZZ_ITERATIONS` overrides the default iteration count.

mod common;
#[path = "common/fuzz_harness.rs"]
mod fuzz_harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common::{fixture, Rng};

const DEFAULT_ITERATIONS: usize = 3000;
/// A single input taking longer than this is a hang for our purposes.
const SLOW: Duration = Duration::from_secs(5);

/// Small valid models to mutate: every op family the loader knows, at tiny sizes.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for rel in [
        "bad/relu_static.onnx",
        "resnet_basic/torchscript.onnx",
        "shufflenet_v2/torchscript.onnx",
        "regnet_y/dynamo.onnx",
        "bad/corpus/external_ok.onnx.valid",
        "bad/corpus/cycle.onnx",
        "bad/corpus/conv_channel_mismatch.onnx",
        "bad/corpus/gather_index_out_of_range.onnx",
        "bad/corpus/reshape_impossible.onnx",
    ] {
        seeds.push(std::fs::read(fixture(rel)).expect("seed fixture"));
    }
    seeds
}

/// One mutation of `input`, chosen by `rng`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    if v.is_empty() {
        return rng.bytes(16);
    }
    let pos = |rng: &mut Rng, len: usize| (rng.next_u64() % len.max(1) as u64) as usize;
    for _ in 0..1 + rng.next_u64() % 4 {
        let len = v.len();
        match rng.next_u64() % 6 {
            0 => {
                let i = pos(rng, len);
                v[i] ^= 1 << (rng.next_u64() % 8);
            }
            1 => {
                let i = pos(rng, len);
                v[i] = [0x00, 0x01, 0x7f, 0x80, 0xff][(rng.next_u64() % 5) as usize];
            }
            2 => v.truncate(pos(rng, len)),
            3 => {
                // Splice a chunk of another seed in.
                let (a, b) = (pos(rng, other.len()), pos(rng, other.len()));
                let (a, b) = (a.min(b), a.max(b).min(a + 64));
                let i = pos(rng, len);
                v.splice(i..i, other[a..b].iter().copied());
            }
            4 => {
                // A large varint where a length or dimension might be.
                let i = pos(rng, len);
                v.splice(i..i, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            _ => {
                let (i, j) = (pos(rng, len), pos(rng, len));
                v.swap(i, j);
            }
        }
        if v.is_empty() {
            break;
        }
    }
    v
}

#[test]
fn mutated_models_never_panic_or_hang() {
    let iterations = std::env::var("KILN_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    let seeds = seeds();
    let mut rng = Rng::new(0x5eed);
    let (mut loaded_and_ran, mut slowest) = (0usize, Duration::ZERO);
    let start = Instant::now();
    for i in 0..iterations {
        let seed = &seeds[i % seeds.len()];
        let other = &seeds[(i / seeds.len() + 1) % seeds.len()];
        let input = mutate(&mut rng, seed, other);
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| fuzz_harness::load_and_run(&input)));
        let took = t.elapsed();
        slowest = slowest.max(took);
        match outcome {
            Ok(ran) => loaded_and_ran += ran as usize,
            Err(_) => {
                let path = std::env::temp_dir().join(format!("kiln-fuzz-crash-{i}.onnx"));
                let _ = std::fs::write(&path, &input);
                panic!("iteration {i} panicked; input saved to {}", path.display());
            }
        }
        assert!(took < SLOW, "iteration {i} took {took:?}");
    }
    println!(
        "{iterations} mutated models in {:.1} s: {loaded_and_ran} loaded and ran, slowest {:.1} ms",
        start.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1e3
    );
}
