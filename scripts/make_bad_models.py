#!/usr/bin/env python3
"""Writes the small hostile/invalid models used by tests/bad_input.rs to tests/fixtures/bad/.

Needs only `onnx` (and numpy): `python scripts/make_bad_models.py`.
The models are built with onnx.helper and deliberately not checked with onnx.checker
(several are invalid on purpose).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "bad"
OPSET = [helper.make_opsetid("", 17)]


def model(nodes, inputs, outputs, initializers=(), name="bad"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    m = helper.make_model(graph, opset_imports=OPSET, producer_name="kiln make_bad_models.py")
    m.ir_version = 8
    return m


def save(m, name):
    (OUT / name).write_bytes(m.SerializeToString())
    print(f"wrote tests/fixtures/bad/{name}")


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def external_initializer(name, location, shape=(4,)):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(shape)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(4 * int(np.prod(shape))))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def main():
    OUT.mkdir(parents=True, exist_ok=True)

    # A valid, static-shape model: y = Relu(x), x: float32[1, 3, 4, 4]. Used for the
    # run-time input checks (count, shape, dtype).
    save(
        model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [f32("x", [1, 3, 4, 4])], [f32("y", [1, 3, 4, 4])]),
        "relu_static.onnx",
    )

    # One unknown op in the default domain, between two supported ones.
    save(
        model(
            [
                helper.make_node("Relu", ["x"], ["a"], name="relu_in"),
                helper.make_node("FrobnicateX", ["a"], ["b"], name="mystery_node"),
                helper.make_node("Relu", ["b"], ["y"], name="relu_out"),
            ],
            [f32("x", [1, 4])],
            [f32("y", [1, 4])],
        ),
        "unknown_op.onnx",
    )

    # Two different unknown ops: the error must list both.
    save(
        model(
            [
                helper.make_node("FrobnicateX", ["x"], ["a"], name="first_bad"),
                helper.make_node("Relu", ["a"], ["b"], name="relu_mid"),
                helper.make_node("QuuxifyY", ["b"], ["y"], name="second_bad"),
            ],
            [f32("x", [1, 4])],
            [f32("y", [1, 4])],
        ),
        "two_unknown_ops.onnx",
    )

    # External data that escapes the model directory.
    for fname, loc in (("external_parent.onnx", "../secret.bin"), ("external_absolute.onnx", "/etc/passwd")):
        save(
            model(
                [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
                [f32("x", [4])],
                [f32("y", [4])],
                [external_initializer("w", loc)],
            ),
            fname,
        )

    # External data whose file does not exist (inside the model directory).
    save(
        model(
            [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
            [f32("x", [4])],
            [f32("y", [4])],
            [external_initializer("w", "missing_weights.bin")],
        ),
        "external_missing.onnx",
    )

    # ConstantOfShape asked for 2^20 x 2^20 = 2^40 float32 elements (4 TiB).
    shape = numpy_helper.from_array(np.array([1 << 20, 1 << 20], dtype=np.int64), "huge_shape")
    save(
        model(
            [
                helper.make_node(
                    "ConstantOfShape",
                    ["huge_shape"],
                    ["big"],
                    name="huge_cos",
                    value=numpy_helper.from_array(np.array([1.0], dtype=np.float32)),
                ),
                helper.make_node("Add", ["big", "x"], ["y"], name="add"),
            ],
            [f32("x", [1])],
            [f32("y", [1 << 20, 1 << 20])],
            [shape],
        ),
        "huge_constant_of_shape.onnx",
    )

    # An initializer that declares 2^40 elements but carries 16 bytes of data.
    t = TensorProto()
    t.name = "w"
    t.data_type = TensorProto.FLOAT
    t.dims.extend([1 << 20, 1 << 20])
    t.raw_data = np.zeros(4, np.float32).tobytes()
    save(
        model(
            [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
            [f32("x", [1])],
            [f32("y", [1 << 20, 1 << 20])],
            [t],
        ),
        "huge_initializer.onnx",
    )

    # A graph input that declares a dimension of 2^62.
    save(
        model(
            [helper.make_node("Relu", ["x"], ["y"], name="relu")],
            [f32("x", [1 << 62, 1 << 62])],
            [f32("y", [1 << 62, 1 << 62])],
        ),
        "huge_input_dims.onnx",
    )


if __name__ == "__main__":
    main()
