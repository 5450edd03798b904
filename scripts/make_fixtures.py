#!/usr/bin/env python3
"""Builds the parity fixtures under tests/fixtures/.

Run with a Python that has torch, torchvision, onnx, onnxscript, onnxruntime and numpy:

    /path/to/venv/bin/python scripts/make_fixtures.py

For every model it writes tests/fixtures/<model>/:

    dynamo.onnx          torch.onnx.export(dynamo=True), opset 18, dynamic batch if possible
    dynamo_b8.onnx       only when the dynamo exporter could not make the batch dynamic
    torchscript.onnx     torch.onnx.export(dynamo=False), opset 17, dynamic batch axis
    input_b1.npy         float32 N(0, 1) input, batch 1
    input_b8.npy         float32 N(0, 1) input, batch 8
    ort_<export>_b<N>.npy  onnxruntime (CPU, one thread, graph optimizations off) outputs
    meta.json            versions, opsets, op counts, dynamic-batch flags, ORT-vs-torch error

plus tests/fixtures/external_data/{model.onnx, model.onnx.data, input.npy, ort_output.npy, meta.json}.

The models are reduced-width versions of torchvision's own classes, seeded, with random
BatchNorm affine parameters and running statistics calibrated on random data, so that
BatchNorm is far from the identity.  torch is needed only for this script; the Rust tests
read the files it writes.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from torch import nn
from torchvision.models.regnet import BlockParams, RegNet
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures"
BATCHES = (1, 8)


# ----------------------------------------------------------------------------- models


class NarrowResNet(ResNet):
    """torchvision's ResNet with every width divided by 64 / `width`.

    torchvision hard-codes the stage widths 64, 128, 256, 512; `_make_layer` is the one
    place they pass through, so it is overridden to scale them, and the stem and the
    classifier (which are built with fixed widths) are rebuilt at the narrow width.
    """

    width = 16

    def __init__(self, block, layers, width=16, num_classes=100, **kwargs):
        type(self).width = width
        super().__init__(block, layers, num_classes=num_classes, **kwargs)
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(width)
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # first stage: the stem is `width` wide
            self.inplanes = self.width
        return super()._make_layer(block, planes * self.width // 64, blocks, stride, dilate)


def build_mobilenet_v2():
    return torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=100)


def build_resnet_basic():
    return NarrowResNet(BasicBlock, [1, 1, 1, 1], width=16)


def build_resnet_bottleneck():
    # ResNeXt-style: grouped 3x3 convolutions inside the bottleneck.
    return NarrowResNet(Bottleneck, [1, 1, 1, 1], width=16, groups=2, width_per_group=16)


def build_regnet_x():
    params = BlockParams.from_init_params(depth=9, w_0=16, w_a=10.0, w_m=1.8, group_width=8)
    return RegNet(params, num_classes=100, stem_width=16)


def build_regnet_y():
    params = BlockParams.from_init_params(depth=8, w_0=16, w_a=12.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return RegNet(params, num_classes=100, stem_width=16)


def build_shufflenet_v2():
    # Channel shuffle is `x.view(batch, groups, c // groups, h, w)` with the sizes read
    # from `x.size()`: the TorchScript exporter writes it as Shape -> Gather ->
    # Unsqueeze -> Concat -> Reshape chains, the pattern the optimizer must fold.
    from torchvision.models.shufflenetv2 import ShuffleNetV2

    return ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=100)


# name -> (builder, seed, (C, H, W))
MODELS = {
    "mobilenet_v2": (build_mobilenet_v2, 1, (3, 64, 64)),
    "resnet_basic": (build_resnet_basic, 2, (3, 72, 80)),  # non-square input
    "resnet_bottleneck": (build_resnet_bottleneck, 3, (3, 64, 64)),
    "regnet_x": (build_regnet_x, 4, (3, 64, 64)),
    "regnet_y": (build_regnet_y, 5, (3, 64, 64)),
    "shufflenet_v2": (build_shufflenet_v2, 7, (3, 64, 64)),
}


def randomize_and_calibrate(model: nn.Module, seed: int, chw) -> nn.Module:
    """Random BN affine params and Linear layers, then BN running stats from random data."""
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
            elif isinstance(m, nn.Linear):
                # torchvision initialises classifiers with tiny weights; spread the logits
                # so that top-1 is never decided by a rounding-level difference.
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features**0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        model.train()
        for _ in range(4):
            model(torch.randn((8, *chw), generator=g))
    model.eval()
    return model


# ----------------------------------------------------------------------------- export


def single_file(path: Path) -> None:
    """If an exporter wrote external data next to `path`, fold it back into one file."""
    m = onnx.load(str(path), load_external_data=True)
    ext = [
        t.name
        for t in m.graph.initializer
        if t.HasField("data_location") and t.data_location == onnx.TensorProto.EXTERNAL
    ]
    siblings = [p for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path]
    if ext or siblings:
        onnx.save(m, str(path), save_as_external_data=False)
        for p in siblings:
            p.unlink()


def export_dynamo(model, x, path: Path, dynamic: bool) -> None:
    kwargs = {}
    if dynamic:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1024)},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=True,
            opset_version=18,
            input_names=["input"],
            output_names=["logits"],
            external_data=False,
            **kwargs,
        )
    single_file(path)


def export_torchscript(model, x, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    single_file(path)


def batch_dim(path: Path):
    """The first dimension of the first graph input: an int, or a symbolic name."""
    m = onnx.load(str(path), load_external_data=False)
    d = m.graph.input[0].type.tensor_type.shape.dim[0]
    return d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")


def op_counts(path: Path) -> dict:
    m = onnx.load(str(path), load_external_data=False)
    counts = collections.Counter()

    def walk(graph):
        for n in graph.node:
            counts[(n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(m.graph)
    for f in m.functions:  # model-local functions, if an exporter left any
        for n in f.node:
            counts[f"fn:{f.name}/{n.op_type}"] += 1
    return dict(sorted(counts.items()))


def opsets(path: Path) -> dict:
    m = onnx.load(str(path), load_external_data=False)
    return {(o.domain or "ai.onnx"): o.version for o in m.opset_import}


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    (out,) = s.run(None, {s.get_inputs()[0].name: x})
    return out


def rel_l2(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def top2_gap(logits: np.ndarray) -> float:
    """Smallest (top-1 minus top-2) logit gap over the rows."""
    s = np.sort(logits.reshape(logits.shape[0], -1), axis=1)
    return float((s[:, -1] - s[:, -2]).min())


def make_inputs(seed: int, chw) -> dict:
    rng = np.random.default_rng(seed)
    return {b: rng.standard_normal((b, *chw)).astype(np.float32) for b in BATCHES}


def check_output(name, tag, got, ref_torch, meta_entry):
    err = rel_l2(got, ref_torch)
    gap = top2_gap(got)
    meta_entry["rel_l2_vs_torch"] = err
    meta_entry["min_top2_gap"] = gap
    same_top1 = bool((got.argmax(1) == ref_torch.argmax(1)).all())
    print(f"  {tag:<16} rel_l2(ort, torch) = {err:.2e}  top1 equal: {same_top1}  min top-2 gap = {gap:.3f}")
    if err > 1e-4 or not same_top1:
        sys.exit(f"{name}/{tag}: onnxruntime disagrees with torch")
    if gap < 1e-3:
        sys.exit(f"{name}/{tag}: top-2 logits too close ({gap}); pick another seed")


def build_model_fixture(name: str) -> None:
    builder, seed, chw = MODELS[name]
    print(f"== {name} (seed {seed}, input {chw})")
    torch.manual_seed(seed)
    model = randomize_and_calibrate(builder(), seed, chw)
    n_params = sum(p.numel() for p in model.parameters())

    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)

    inputs = make_inputs(seed, chw)
    for b, x in inputs.items():
        np.save(d / f"input_b{b}.npy", x)
    with torch.no_grad():
        ref = {b: model(torch.from_numpy(x)).numpy() for b, x in inputs.items()}

    meta = {
        "model": name,
        "builder": builder.__name__,
        "seed": seed,
        "input_shape_chw": list(chw),
        "params": n_params,
        "batches": list(BATCHES),
        "exports": {},
        "outputs": {},
    }

    x1 = torch.from_numpy(inputs[1])

    # dynamo exporter: try a dynamic batch first.
    dyn_path = d / "dynamo.onnx"
    dynamo_note = None
    try:
        export_dynamo(model, x1, dyn_path, dynamic=True)
        dynamic = not isinstance(batch_dim(dyn_path), int)
        if not dynamic:
            dynamo_note = "dynamo exporter specialised the batch dimension"
    except Exception as e:  # noqa: BLE001 - report and fall back
        dynamic = False
        dynamo_note = f"dynamic export failed: {type(e).__name__}: {str(e)[:300]}"
    if not dynamic:
        print(f"  dynamo: no dynamic batch ({dynamo_note}); exporting batch 1 and batch 8 separately")
        export_dynamo(model, x1, dyn_path, dynamic=False)
        export_dynamo(model, torch.from_numpy(inputs[8]), d / "dynamo_b8.onnx", dynamic=False)

    export_torchscript(model, x1, d / "torchscript.onnx")

    exports = {"dynamo": dyn_path, "torchscript": d / "torchscript.onnx"}
    for exp, path in exports.items():
        meta["exports"][exp] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "opsets": opsets(path),
            "batch_dim": batch_dim(path),
            "dynamic_batch": not isinstance(batch_dim(path), int),
            "op_counts": op_counts(path),
            "nodes": sum(op_counts(path).values()),
        }
    if not dynamic:
        p8 = d / "dynamo_b8.onnx"
        meta["exports"]["dynamo"]["note"] = dynamo_note
        meta["exports"]["dynamo"]["batch8_file"] = p8.name
        meta["exports"]["dynamo"]["batch8_bytes"] = p8.stat().st_size

    for exp, path in exports.items():
        for b, x in inputs.items():
            model_path = d / "dynamo_b8.onnx" if (exp == "dynamo" and b == 8 and not dynamic) else path
            out = ort_run(model_path, x)
            tag = f"ort_{exp}_b{b}"
            np.save(d / f"{tag}.npy", out)
            meta["outputs"][tag] = {"shape": list(out.shape), "model_file": model_path.name}
            check_output(name, tag, out, ref[b], meta["outputs"][tag])

    meta.update(versions())
    (d / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    for exp, e in meta["exports"].items():
        print(f"  {exp:<12} {e['bytes'] / 1e6:.2f} MB, {e['nodes']} nodes, batch dim {e['batch_dim']!r}, "
              f"opsets {e['opsets']}")


# ----------------------------------------------------------------------------- external data


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        # BN after the ReLU cannot be folded into the convolution by the exporter, so
        # this fixture keeps a real BatchNormalization node (the big models' BNs are all
        # folded into their convolutions by both exporters).
        x = self.bn(torch.relu(self.conv(x)))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def build_external_data_fixture() -> None:
    print("== external_data")
    seed = 6
    torch.manual_seed(seed)
    chw = (3, 16, 16)
    model = randomize_and_calibrate(TinyNet(), seed, chw)
    d = OUT / "external_data"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    x = np.random.default_rng(seed).standard_normal((2, *chw)).astype(np.float32)
    np.save(d / "input.npy", x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "inline.onnx"
        export_torchscript(model, torch.from_numpy(x), tmp_path)
        m = onnx.load(str(tmp_path))
    # Everything but the smallest tensors goes to model.onnx.data (a relative location).
    onnx.save(
        m,
        str(d / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=64,
    )
    out = ort_run(d / "model.onnx", x)
    np.save(d / "ort_output.npy", out)
    m = onnx.load(str(d / "model.onnx"), load_external_data=False)
    external = [
        t.name for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    meta = {
        "model": "external_data",
        "seed": seed,
        "input_shape": list(x.shape),
        "external_tensors": external,
        "inline_tensors": [t.name for t in m.graph.initializer if t.name not in external],
        "opsets": opsets(d / "model.onnx"),
        "op_counts": op_counts(d / "model.onnx"),
        "outputs": {"ort_output": {"shape": list(out.shape)}},
    }
    check_output("external_data", "ort_output", out, ref, meta["outputs"]["ort_output"])
    meta.update(versions())
    (d / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(f"  {len(external)} external tensors in model.onnx.data")


def versions() -> dict:
    import onnxscript

    return {
        "versions": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "ort_settings": "CPUExecutionProvider, 1 intra-op thread, ORT_DISABLE_ALL",
    }


def main() -> None:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    names = sys.argv[1:] or [*MODELS, "external_data"]
    for name in names:
        if name == "external_data":
            build_external_data_fixture()
        else:
            build_model_fixture(name)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file() and p.parent.name != "bad")
    print(f"fixtures total: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
