#!/usr/bin/env bash
# Runs kiln's libFuzzer targets (needs a nightly toolchain and `cargo install cargo-fuzz`).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 300)
#
# Seeds: the committed fixtures and corpus, plus the ONNX node-test models when
# scripts/test.sh has generated them (.cache/onnx-node-tests). Crashes land in
# fuzz/artifacts/<target>/; rerun one with `cargo +nightly fuzz run <target> <file>`.
# The stable, bounded version that CI runs is tests/fuzz_smoke.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-300}"

for target in load_model load_and_run; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    find tests/fixtures -name '*.onnx' -size -2M -exec cp {} "$corpus/" \;
    cp tests/fixtures/bad/corpus/*.onnx "$corpus/" 2>/dev/null || true
    if [ -d .cache/onnx-node-tests ]; then
        for d in .cache/onnx-node-tests/*/; do
            [ -f "$d/model.onnx" ] && cp "$d/model.onnx" "$corpus/$(basename "$d").onnx"
        done
    fi
    echo "==> $target: $(ls "$corpus" | wc -l) seeds, ${SECONDS_PER_TARGET}s"
    (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=4096 -max_len=1048576 \
        -print_final_stats=1)
done
