#!/usr/bin/env bash
# The full test suite: formatting, clippy, and every test in release mode (with the wgpu and
# CUDA backends built in), with onnxruntime (for the zoo parity tests), the ONNX backend node
# tests (for the conformance tests), Mesa's software Vulkan (for the wgpu tests) and NVRTC
# (for the CUDA kernels' compile checks) set up.
#
#   bash scripts/test.sh
#
# Needs python3 (3.11+, with the venv module) and cargo. The first run creates .venv with the
# pinned packages of scripts/requirements-test.txt (network access to PyPI) and generates the
# ONNX node tests into .cache/onnx-node-tests; later runs reuse both.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=... to use another interpreter)"

VENV="$ROOT/.venv"
REQS="$ROOT/scripts/requirements-test.txt"
STAMP="$VENV/.kiln-requirements"

# --- Python environment -------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        die "'$PYTHON -m venv' failed; on Debian/Ubuntu install it with: apt-get install python3-venv"
    fi
fi
if ! cmp -s "$REQS" "$STAMP"; then
    say "installing pinned Python packages into .venv ($(grep -v '^#' "$REQS" | tr '\n' ' '))"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQS"
    cp "$REQS" "$STAMP"
else
    say "using .venv (packages up to date)"
fi

# --- onnxruntime shared library for the `ort` crate (load-dynamic) -------------------------
ORT_CAPI="$("$VENV/bin/python" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
ORT_DYLIB_PATH=""
for f in "$ORT_CAPI"/libonnxruntime.so.* "$ORT_CAPI"/libonnxruntime.so "$ORT_CAPI"/libonnxruntime.*.dylib; do
    if [ -f "$f" ]; then ORT_DYLIB_PATH="$f"; break; fi
done
[ -n "$ORT_DYLIB_PATH" ] || die "no libonnxruntime shared library in $ORT_CAPI"
export ORT_DYLIB_PATH
say "ORT_DYLIB_PATH=$ORT_DYLIB_PATH"

# --- ONNX backend node tests ---------------------------------------------------------------
# Use the data shipped inside the onnx package when present; the PyPI wheels do not ship it,
# so it is generated from onnx's own test-case generators (scripts/gen_node_tests.py).
ONNX_NODE_DATA="$("$VENV/bin/python" -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node"))')"
if [ -d "$ONNX_NODE_DATA" ] && [ -n "$(ls -A "$ONNX_NODE_DATA" 2>/dev/null)" ]; then
    KILN_ONNX_NODE_TESTS="$ONNX_NODE_DATA"
else
    KILN_ONNX_NODE_TESTS="$ROOT/.cache/onnx-node-tests"
    ONNX_VERSION="$("$VENV/bin/python" -c 'import onnx; print(onnx.__version__)')"
    if [ "$(cat "$KILN_ONNX_NODE_TESTS/STAMP" 2>/dev/null)" != "onnx $ONNX_VERSION" ]; then
        say "generating ONNX node tests (onnx $ONNX_VERSION) into .cache/onnx-node-tests"
        mkdir -p "$ROOT/.cache"
        "$VENV/bin/python" "$ROOT/scripts/gen_node_tests.py" "$KILN_ONNX_NODE_TESTS"
    fi
fi
export KILN_ONNX_NODE_TESTS
say "KILN_ONNX_NODE_TESTS=$KILN_ONNX_NODE_TESTS ($(find "$KILN_ONNX_NODE_TESTS" -mindepth 1 -maxdepth 1 -type d | wc -l) cases)"

# --- Vulkan for the wgpu backend's tests ----------------------------------------------------
# Mesa's lavapipe runs the WGSL kernels on the CPU. Installed when we can (root with apt);
# otherwise the wgpu tests print why they skip. A machine with a real GPU can point
# VK_ICD_FILENAMES (or KILN_WGPU_ADAPTER) at it instead.
LVP_ICD="$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null | head -n 1 || true)"
if [ -z "$LVP_ICD" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Mesa's software Vulkan (apt-get install mesa-vulkan-drivers libvulkan1)"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null; then
        LVP_ICD="$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null | head -n 1 || true)"
    else
        echo "warning: could not install mesa-vulkan-drivers; the wgpu tests will skip"
    fi
fi
if [ -n "$LVP_ICD" ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then
    export VK_ICD_FILENAMES="$LVP_ICD"
fi
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    export XDG_RUNTIME_DIR="$ROOT/.cache/xdg-runtime"
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
say "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-<unset: no lavapipe, wgpu tests skip unless another Vulkan driver exists>}"

# --- Rust ------------------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

# Default features, then everything: the wgpu backend and the ONNX Runtime reference
# (kiln::reference, kiln bench --vs ort, the benches) build only with their features.
say "cargo clippy --all-targets -- -D warnings (default features, then --all-features)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --all-features -- -D warnings

# --- NVRTC for the CUDA backend's GPU-free checks --------------------------------------------
# The pip wheel's libnvrtc compiles kernels/*.cu (no GPU needed), so CI checks that the CUDA C
# kernels compile and that their parameter blocks match the Rust side. The GPU tests skip.
NVRTC_LIB="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)"
if [ -n "$NVRTC_LIB" ] && [ -d "$NVRTC_LIB" ]; then
    export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
say "NVRTC: ${NVRTC_LIB:-<not installed: the CUDA compile checks skip>}"

say "cargo test --release --all-features (cpu, wgpu, cuda, ort)"
cargo test --release --all-features -- --nocapture

say "all checks passed"
