#!/usr/bin/env python3
"""Writes ONNX's backend node test cases to disk, in the layout of onnx/backend/test/data/node.

The onnx wheel on PyPI does not ship the node test data (only the source tree has it), but it
ships the generators. This script runs them:

    python scripts/gen_node_tests.py OUT_DIR

and writes, for each case, OUT_DIR/<case>/model.onnx and
OUT_DIR/<case>/test_data_set_<k>/{input,output}_<j>.pb (exactly as onnx's own
`backend-test-tools generate-data` does), plus OUT_DIR/<case>/tolerance.txt holding the case's
"rtol atol" (the values onnx's backend test runner compares with). When done it writes
OUT_DIR/STAMP with the onnx version, so scripts/test.sh can skip regeneration.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx.backend.test.case import node as node_cases


def serialize(value, value_info) -> bytes:
    t = value_info.type
    if t.HasField("map_type"):
        return numpy_helper.from_dict(value, value_info.name).SerializeToString()
    if t.HasField("sequence_type"):
        return numpy_helper.from_list(value, value_info.name).SerializeToString()
    if t.HasField("optional_type"):
        return numpy_helper.from_optional(value, value_info.name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(value, value_info.name).SerializeToString()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    np.random.seed(0)  # the generators draw their inputs from numpy's global RNG
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases(None)

    written = 0
    for case in cases:
        if case.kind != "node" or case.model is None:
            continue
        d = tmp / case.name
        d.mkdir()
        (d / "model.onnx").write_bytes(case.model.SerializeToString())
        (d / "tolerance.txt").write_text(f"{case.rtol!r} {case.atol!r}\n")
        graph = case.model.graph
        for k, (inputs, outputs) in enumerate(case.data_sets or []):
            ds = d / f"test_data_set_{k}"
            ds.mkdir()
            for j, value in enumerate(inputs):
                (ds / f"input_{j}.pb").write_bytes(serialize(value, graph.input[j]))
            for j, value in enumerate(outputs):
                (ds / f"output_{j}.pb").write_bytes(serialize(value, graph.output[j]))
        written += 1

    (tmp / "STAMP").write_text(f"onnx {onnx.__version__}\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    print(f"wrote {written} ONNX node test cases (onnx {onnx.__version__}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
