#!/usr/bin/env python3
"""Exports full-size torchvision models (random weights) with both PyTorch exporters.

    /path/to/venv/bin/python scripts/export_torchvision.py OUT_DIR resnet50 mobilenet_v2 ...

Writes OUT_DIR/<model>_dynamo.onnx (opset 18) and OUT_DIR/<model>_torchscript.onnx
(opset 17), both with a dynamic batch axis. For inspecting what the optimizer does
with real exporter output (`kiln inspect FILE --optimized`); nothing in the test suite
needs these files, and they are too large to commit.
"""

import sys
import warnings
from pathlib import Path

import torch
import torchvision


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    for name in sys.argv[2:]:
        model = getattr(torchvision.models, name)(weights=None).eval()
        x = torch.randn(1, 3, 224, 224)
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(
            model, (x,), str(out / f"{name}_dynamo.onnx"), dynamo=True, opset_version=18,
            input_names=["input"], output_names=["logits"], dynamic_shapes=({0: batch},),
        )
        torch.onnx.export(
            model, (x,), str(out / f"{name}_torchscript.onnx"), dynamo=False, opset_version=17,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
        print(f"exported {name}")


if __name__ == "__main__":
    main()
