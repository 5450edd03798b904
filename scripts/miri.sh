#!/usr/bin/env bash
# Runs the unit tests that exercise kiln's `unsafe` code under Miri (nightly +
# `rustup component add miri`). The AVX2 and AVX-512 micro-kernels only run when
# their target features are on, so they are enabled here and Miri checks those
# pointer walks too.
# Tree Borrows: rayon's crossbeam-epoch trips an experimental Stacked Borrows rule
# that is not a bug in either crate. Leaks: rayon's global pool threads outlive main.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="-C target-feature=+avx2,+fma,+avx512f" MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks" \
    cargo +nightly miri test --lib -- \
    gemm::tests::simd_and_generic_match \
    conv::tests::fused_activation_and_residual_apply_on_every_path \
    conv::tests::stem_simd_matches_portable \
    tensor::tests \
    onnx::wire::tests
