"""PyTorch eager and torch.compile latencies on CUDA, for comparison with kiln's CUDA backend
(scripts/cuda_h200.sh runs both and writes the table into benches/RESULTS.md).

Same architectures as kiln's zoo (torchvision, random weights, eval mode), same batch, input
already on the GPU; timed with CUDA events over `--runs` calls after `--warmup` calls (so
torch.compile's compilation and autotuning are excluded). Modes:
  fp32: TF32 off everywhere (torch.backends.{cuda.matmul,cudnn}.allow_tf32 = False)
  tf32: TF32 on for matmuls and convolutions
  fp16: model and input in half precision
One JSON object per line on stdout: engine, model, batch, precision, median_ms, min_ms.

    python3 benches/torch_cuda.py --models resnet18 resnet50 --batches 1 64
"""

import argparse
import json
import statistics
import sys

import torch
import torchvision

MODELS = {
    "resnet18": torchvision.models.resnet18,
    "resnet50": torchvision.models.resnet50,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
    "regnet_x_400mf": torchvision.models.regnet_x_400mf,
}


def set_precision(precision):
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def time_fn(fn, x, warmup, runs):
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(runs):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return statistics.median(times), min(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "fp16"])
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--no-compile", action="store_true", help="eager only")
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    torch.manual_seed(0)
    for name in a.models:
        for precision in a.precisions:
            set_precision(precision)
            dtype = torch.float16 if precision == "fp16" else torch.float32
            model = MODELS[name](weights=None).eval().cuda().to(dtype)
            engines = [("torch-eager", model)]
            if not a.no_compile:
                engines.append(("torch-compile", torch.compile(model)))
            for batch in a.batches:
                x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=dtype)
                for engine, fn in engines:
                    median, best = time_fn(fn, x, a.warmup, a.runs)
                    print(json.dumps({
                        "engine": engine, "model": name, "batch": batch, "precision": precision,
                        "median_ms": round(median, 4), "min_ms": round(best, 4),
                        "device": torch.cuda.get_device_name(),
                    }), flush=True)
            torch._dynamo.reset()


if __name__ == "__main__":
    main()
