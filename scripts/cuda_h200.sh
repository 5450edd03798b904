#!/usr/bin/env bash
# The CUDA backend's checks and benchmarks on an NVIDIA machine with no Rust toolchain (the
# project's `device` machine: H200, CUDA 13, cuDNN 9, PyTorch, onnxruntime). Build here first:
#
#   bash scripts/cuda_h200.sh --build        # on the build machine: fills target/device/
#   bash scripts/cuda_h200.sh [OUT_DIR]      # on the GPU machine, from the repo root
#
# On the GPU machine it runs, with the CUDA libraries of the machine's pip packages:
#   1. tests/cuda.rs (kernel families vs the CPU backend, f32/tf32/f16) and tests/cuda_parity.rs
#      (fixtures and zoo models vs onnxruntime) from the carried test binaries;
#   2. `kiln bench --backend cuda` for resnet50, resnet18, mobilenet_v2, regnet_x_400mf at
#      batch 1 and 64 in f32, tf32 and f16, and benches/torch_cuda.py (PyTorch eager and
#      torch.compile, same models and batches);
# and writes OUT_DIR/{tests.log,kiln.jsonl,torch.jsonl,table.md}.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--build" ]; then
    cargo build --release --features cuda,ort
    mkdir -p target/device
    cp target/release/kiln target/device/kiln
    # The test binaries, found by name in cargo's JSON messages.
    cargo test --release --features cuda,ort --test cuda --test cuda_parity --no-run --message-format=json \
        | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("cuda", "cuda_parity"):
        shutil.copy(m["executable"], "target/device/" + m["target"]["name"] + "-tests")
'
    strip target/device/* 2>/dev/null || true
    ls -la target/device
    exit 0
fi

OUT="${1:-${OUT:-/tmp/kiln-cuda}}"
mkdir -p "$OUT"
BIN=target/device
[ -x "$BIN/kiln" ] || { echo "no $BIN/kiln: run 'bash scripts/cuda_h200.sh --build' on the build machine" >&2; exit 1; }

PY="${PYTHON:-python3}"
SITE="$("$PY" -c 'import site; print(site.getsitepackages()[0])')"
for d in "$SITE"/nvidia/*/lib; do LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; done
export LD_LIBRARY_PATH
ORT_DYLIB_PATH="$(ls "$SITE"/onnxruntime/capi/libonnxruntime.so* | head -n 1)"
export ORT_DYLIB_PATH
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"

echo "==> tests" | tee "$OUT/tests.log"
for t in cuda cuda_parity; do
    "$BIN/$t-tests" --nocapture --test-threads=1 2>&1 | tee -a "$OUT/tests.log" || echo "FAILED: $t" | tee -a "$OUT/tests.log"
done

echo "==> kiln bench"
: > "$OUT/kiln.jsonl"
for model in resnet50 resnet18 mobilenet_v2 regnet_x_400mf; do
    for precision in f32 tf32 f16; do
        for batch in 1 64; do
            "$BIN/kiln" bench "$model" --backend cuda --precision "$precision" --batch "$batch" \
                --warmup 20 --runs 100 --json >> "$OUT/kiln.jsonl" || echo "kiln $model $precision b$batch failed" >&2
        done
    done
done

echo "==> PyTorch"
"$PY" benches/torch_cuda.py --batches 1 64 > "$OUT/torch.jsonl"

"$PY" - "$OUT" <<'PYEOF' | tee "$OUT/table.md"
import json, sys
out = sys.argv[1]
kiln = [json.loads(l) for l in open(f"{out}/kiln.jsonl") if l.strip()]
torch = [json.loads(l) for l in open(f"{out}/torch.jsonl") if l.strip()]
prec = {"f32": "fp32", "tf32": "tf32", "f16": "fp16"}
def torch_ms(engine, model, batch, p):
    for t in torch:
        if (t["engine"], t["model"], t["batch"], t["precision"]) == (engine, model, batch, p):
            return t["median_ms"]
print("| model | batch | precision | kiln ms | eager ms | compile ms | kiln/eager | kiln/compile |")
print("|---|---|---|---|---|---|---|---|")
for k in kiln:
    p = prec.get(k.get("precision", "f32").lower(), k.get("precision"))
    e, c = torch_ms("torch-eager", k["model"], k["batch"], p), torch_ms("torch-compile", k["model"], k["batch"], p)
    ms = k["median_ms"]
    r = lambda t: f"{ms / t:.2f}" if t else "-"
    print(f"| {k['model']} | {k['batch']} | {p} | {ms:.3f} | {e or '-'} | {c or '-'} | {r(e)} | {r(c)} |")
PYEOF
