#!/usr/bin/env python3
"""Writes the small hostile/invalid models used by tests/bad_input.rs and tests/corpus.rs
to tests/fixtures/bad/ (and the malformed-model corpus to tests/fixtures/bad/corpus/, with
its manifest cases.json: for each file, the error variant kiln must return).

Needs only `onnx` (and numpy): `python scripts/make_bad_models.py`.
The models are built with onnx.helper and deliberately not checked with onnx.checker
(several are invalid on purpose).
"""

from __future__ import annotations

import json
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


# ----------------------------------------------------------------------------- corpus

CORPUS = OUT / "corpus"
CASES = []


def case(name, expect, contains, data, note):
    """Records one corpus file: `expect` is the kiln::Error variant, `contains` a
    substring of its message (lower-case match)."""
    if isinstance(data, onnx.ModelProto):
        data = data.SerializeToString()
    (CORPUS / name).write_bytes(data)
    CASES.append({"file": name, "expect": expect, "contains": contains, "note": note})


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def i64_init(name, values, shape=None):
    arr = np.array(values, dtype=np.int64)
    if shape is not None:
        arr = arr.reshape(shape)
    return numpy_helper.from_array(arr, name)


def f32_init(name, shape, seed=0):
    arr = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(arr, name)


def relu_model(**kw):
    return model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [f32("x", [1, 4])], [f32("y", [1, 4])], **kw)


def build_corpus():
    CORPUS.mkdir(parents=True, exist_ok=True)
    for f in CORPUS.iterdir():
        f.unlink()
    good = relu_model().SerializeToString()

    # --- Protobuf-level damage: Malformed.
    case("empty.onnx", "InvalidGraph", "no graph", b"", "zero bytes: a valid, empty ModelProto")
    case("text.onnx", "Malformed", "", b"this is not a model\n" * 8, "a text file")
    case("random_bytes.onnx", "Malformed", "", np.random.default_rng(1).bytes(4096), "4 KiB of random bytes")
    case("truncated.onnx", "Malformed", "", good[: len(good) // 2], "a valid model cut in half")
    case("length_past_end.onnx", "Malformed", "", field(7, 2, b"")[:-1] + varint(1 << 30) + b"xx",
         "graph field claims 1 GiB but 2 bytes follow")
    case("bad_varint.onnx", "Malformed", "", b"\x08" + b"\xff" * 11, "ir_version varint longer than 10 bytes")
    case("wrong_wire_type.onnx", "Malformed", "", field(7, 0, varint(5)) + good, "graph (a message) sent as a varint")
    nested = b""
    for _ in range(200):
        nested = field(1, 2, nested)
    case("deep_nesting.onnx", "Malformed", "", field(7, 2, field(1, 2, field(5, 2, nested))),
         "200 levels of nested messages")
    t = f32_init("w", [2, 4])
    t.raw_data = t.raw_data[:5]
    case("raw_data_too_short.onnx", "InvalidGraph", "'w'",
         model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [f32("x", [2, 4])], [f32("y", [2, 4])], [t]),
         "initializer declares 8 floats, carries 5 bytes")
    t = TensorProto()
    t.name = "w"
    t.data_type = TensorProto.FLOAT
    t.dims.extend([4])
    t.float_data.extend([1.0, 2.0])
    case("float_data_count.onnx", "InvalidGraph", "'w'",
         model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [f32("x", [4])], [f32("y", [4])], [t]),
         "initializer declares 4 floats, float_data holds 2")

    # --- What kiln does not run: Unsupported (every construct listed).
    case("unknown_op.onnx", "Unsupported", "frobnicate",
         model([helper.make_node("Frobnicate", ["x"], ["y"], name="mystery")], [f32("x", [1, 4])], [f32("y", [1, 4])]),
         "an op ONNX does not have")
    m = relu_model()
    m.opset_import[0].version = 1
    case("opset_1.onnx", "Unsupported", "opset", m, "default-domain opset 1")
    m = relu_model()
    m.opset_import[0].version = 999
    case("opset_999.onnx", "Unsupported", "opset", m, "default-domain opset from the future")
    m = model([helper.make_node("FusedMatMul", ["x", "x"], ["y"], name="ms", domain="com.microsoft")],
              [f32("x", [4, 4])], [f32("y", [4, 4])])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    case("foreign_domain.onnx", "Unsupported", "com.microsoft", m, "a contrib op of another runtime")
    case("string_input.onnx", "Unsupported", "string",
         model([helper.make_node("Identity", ["x"], ["y"], name="id")],
               [helper.make_tensor_value_info("x", TensorProto.STRING, [2])],
               [helper.make_tensor_value_info("y", TensorProto.STRING, [2])]),
         "string tensors")
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [f32("t", [1, 4])])
    case("if_subgraph.onnx", "Unsupported", "if",
         model([helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=then_g)],
               [helper.make_tensor_value_info("c", TensorProto.BOOL, []), f32("x", [1, 4])], [f32("y", [1, 4])]),
         "control flow")

    # --- Structurally wrong graphs: InvalidGraph.
    case("cycle.onnx", "InvalidGraph", "cycle",
         model([helper.make_node("Add", ["x", "b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2"),
                helper.make_node("Relu", ["a"], ["y"], name="n3")], [f32("x", [4])], [f32("y", [4])]),
         "a -> b -> a")
    case("dangling_input.onnx", "InvalidGraph", "nowhere",
         model([helper.make_node("Add", ["x", "nowhere"], ["y"], name="add")], [f32("x", [4])], [f32("y", [4])]),
         "a node reads a value nothing produces (a missing initializer)")
    case("duplicate_producer.onnx", "InvalidGraph", "dup",
         model([helper.make_node("Relu", ["x"], ["dup"], name="r1"), helper.make_node("Neg", ["x"], ["dup"], name="r2"),
                helper.make_node("Relu", ["dup"], ["y"], name="r3")], [f32("x", [4])], [f32("y", [4])]),
         "two nodes write the same value")
    case("missing_output.onnx", "InvalidGraph", "ghost",
         model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [f32("x", [4])], [f32("y", [4]), f32("ghost", [4])]),
         "a graph output nothing computes")
    case("conv_one_input.onnx", "InvalidGraph", "weight",
         model([helper.make_node("Conv", ["x"], ["y"], name="conv")], [f32("x", [1, 1, 4, 4])], [f32("y", [1, 1, 4, 4])]),
         "Conv without its weight input")
    bad_attr = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    bad_attr.attribute.append(helper.make_attribute("strides", 1.5))
    case("wrong_attribute_type.onnx", "InvalidGraph", "strides",
         model([bad_attr], [f32("x", [1, 1, 4, 4])], [f32("y", [1, 1, 4, 4])], [f32_init("w", [1, 1, 3, 3])]),
         "strides given as a float")
    case("conv_group_zero.onnx", "InvalidGraph", "group",
         model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=0)], [f32("x", [1, 2, 4, 4])],
               [f32("y", [1, 2, 2, 2])], [f32_init("w", [2, 2, 3, 3])]),
         "group = 0 would divide by zero")
    case("transpose_bad_perm.onnx", "Shape", "perm",
         model([helper.make_node("Transpose", ["x"], ["y"], name="t", perm=[0, 0])], [f32("x", [2, 3])], [f32("y", [3, 2])]),
         "perm repeats an axis")

    # --- Shapes that cannot work: Shape.
    case("conv_channel_mismatch.onnx", "Shape", "conv",
         model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [f32("x", [1, 3, 8, 8])],
               [f32("y", [1, 4, 6, 6])], [f32_init("w", [4, 5, 3, 3])]),
         "input has 3 channels, weights expect 5")
    case("reshape_impossible.onnx", "Shape", "reshape",
         model([helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")], [f32("x", [2, 3])], [f32("y", [7])],
               [i64_init("s", [7])]),
         "6 elements into 7")
    case("reshape_two_minus_one.onnx", "Shape", "reshape",
         model([helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")], [f32("x", [2, 3])], [f32("y", [2, 3])],
               [i64_init("s", [-1, -1])]),
         "two inferred dims")
    case("pool_window_too_big.onnx", "Shape", "window",
         model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[9, 9])], [f32("x", [1, 1, 4, 4])],
               [f32("y", [1, 1, 1, 1])]),
         "9x9 window over a 4x4 input")
    case("concat_rank_mismatch.onnx", "Shape", "concat",
         model([helper.make_node("Concat", ["x", "z"], ["y"], name="concat", axis=0)], [f32("x", [2, 3]), f32("z", [3])],
               [f32("y", [5, 3])]),
         "ranks 2 and 1")
    case("gather_index_out_of_range.onnx", "Shape", "gather",
         model([helper.make_node("Gather", ["x", "i"], ["y"], name="gather", axis=0)], [f32("x", [3, 2])], [f32("y", [1, 2])],
               [i64_init("i", [7])]),
         "index 7 into 3 rows")
    case("matmul_inner_mismatch.onnx", "Shape", "matmul",
         model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [f32("x", [2, 3])], [f32("y", [2, 4])],
               [f32_init("w", [5, 4])]),
         "[2,3] x [5,4]")
    case("negative_dim.onnx", "InvalidGraph", "dim",
         model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [f32("x", [2, -3])], [f32("y", [2, 3])]),
         "an input declares a negative dimension")

    # --- Resource caps: Limit.
    case("huge_input_dims.onnx", "Limit", "",
         model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [f32("x", [1 << 40, 1 << 30])],
               [f32("y", [1 << 40, 1 << 30])]),
         "an input of 2^70 elements")
    case("huge_expand.onnx", "Limit", "",
         model([helper.make_node("Expand", ["x", "s"], ["y"], name="expand")], [f32("x", [1])], [f32("y", [1 << 20, 1 << 20])],
               [i64_init("s", [1 << 20, 1 << 20])]),
         "Expand to 2^40 elements")
    t = TensorProto()
    t.name = "w"
    t.data_type = TensorProto.FLOAT
    t.dims.extend([1 << 31, 1 << 31])
    case("huge_initializer_dims.onnx", "Limit", "",
         model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [f32("x", [1])], [f32("y", [1])], [t]),
         "an initializer declaring 2^62 elements and no data")

    # --- External data: ExternalData.
    def ext_model(location, offset=0, length=16):
        t = TensorProto()
        t.name = "w"
        t.data_type = TensorProto.FLOAT
        t.dims.extend([4])
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        return model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [f32("x", [4])], [f32("y", [4])], [t])

    (CORPUS / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    # Valid (not a corpus case): tests/corpus.rs copies it next to a symlink that
    # points outside the folder.
    (CORPUS / "external_ok.onnx.valid").write_bytes(ext_model("weights.bin").SerializeToString())
    case("external_traversal.onnx", "ExternalData", "", ext_model("../../../../etc/passwd"), "a ../ escape")
    case("external_absolute.onnx", "ExternalData", "", ext_model("/etc/passwd"), "an absolute path")
    case("external_past_end.onnx", "ExternalData", "", ext_model("weights.bin", offset=8, length=16),
         "offset + length beyond the 16-byte file")
    case("external_length_mismatch.onnx", "ExternalData", "", ext_model("weights.bin", offset=0, length=12),
         "length 12 for 4 floats")
    case("external_missing_file.onnx", "ExternalData", "", ext_model("no_such_file.bin"), "the file does not exist")

    (CORPUS / "cases.json").write_text(json.dumps(CASES, indent=1) + "\n")
    print(f"wrote {len(CASES)} corpus cases to tests/fixtures/bad/corpus/")


if __name__ == "__main__":
    main()
    build_corpus()
