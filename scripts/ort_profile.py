"""Per-op time table of ONNX Runtime on one model, to set beside `kiln profile`.

    .venv/bin/python scripts/ort_profile.py MODEL.onnx [--threads 1] [--batch 1] [--runs 20]

Runs ORT (ORT_ENABLE_ALL, sequential execution, `--threads` intra-op threads) with its
profiler on, averages each node's kernel time over the runs after a warm-up, and prints
the totals per op type and the slowest nodes. ORT's node names after its graph
optimisation are its own (fused nodes, NCHWc reorders), so compare by op and shape.
"""
import argparse
import collections
import json
import os
import tempfile

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [args.batch if not isinstance(d, int) else d for d in inp.shape]
    shape[0] = args.batch
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    warmup = 3
    for _ in range(warmup + args.runs):
        sess.run(None, {inp.name: x})
    path = sess.end_profiling()
    events = json.load(open(path))

    runs = [e for e in events if e.get("name") == "model_run"]
    node_events = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    # Keep the events of the last `runs` model runs (skip the warm-up).
    first_ts = runs[warmup]["ts"] if len(runs) > warmup else 0
    node_events = [e for e in node_events if e["ts"] >= first_ts]
    per_node = collections.defaultdict(float)
    op_of, shape_of = {}, {}
    for e in node_events:
        name = e["name"][: -len("_kernel_time")]
        per_node[name] += e["dur"] / 1000.0 / args.runs
        op_of[name] = e["args"].get("op_name", "?")
        outs = e["args"].get("output_type_shape", [])
        shape_of[name] = "x".join(str(d) for d in next(iter(outs[0].values()))) if outs else ""
    total = sum(per_node.values())
    run_ms = sorted(r["dur"] / 1000.0 for r in runs[warmup:])
    print(f"{os.path.basename(args.model)} batch {args.batch} on {args.threads} thread(s): "
          f"{total:.3f} ms in kernels, run median {run_ms[len(run_ms) // 2]:.3f} ms")
    per_op = collections.defaultdict(lambda: [0, 0.0])
    for name, ms in per_node.items():
        per_op[op_of[name]][0] += 1
        per_op[op_of[name]][1] += ms
    print(f"\n{'op':<24}{'count':>6}{'ms':>10}{'%':>7}")
    for op, (n, ms) in sorted(per_op.items(), key=lambda kv: -kv[1][1]):
        print(f"{op:<24}{n:>6}{ms:>10.3f}{100 * ms / total:>6.1f}%")
    print(f"\n{'node':<44}{'op':<20}{'output':<18}{'ms':>8}{'%':>7}")
    for name, ms in sorted(per_node.items(), key=lambda kv: -kv[1])[: args.top or None]:
        print(f"{name[:43]:<44}{op_of[name]:<20}{shape_of[name]:<18}{ms:>8.3f}{100 * ms / total:>6.1f}%")
    os.remove(path)


if __name__ == "__main__":
    main()
