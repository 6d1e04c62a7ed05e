"""Writes a linear ONNX model y = x.W + b for lumen's engine tests.

Usage: make_onnx.py SPEC.json OUT.onnx, where SPEC.json holds
{"in": I, "out": O, "w": [I*O floats, row-major [I, O]], "b": [O floats]}.
The graph has input INPUT0 FP32 [batch, I] and output OUTPUT0 FP32 [batch, O].
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_onnx.py SPEC.json OUT.onnx")
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    n_in, n_out = int(spec["in"]), int(spec["out"])
    w = np.asarray(spec["w"], dtype=np.float32).reshape(n_in, n_out)
    b = np.asarray(spec["b"], dtype=np.float32).reshape(n_out)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["INPUT0", "W"], ["XW"], name="matmul"),
            helper.make_node("Add", ["XW", "B"], ["OUTPUT0"], name="add"),
        ],
        "lumen_linear",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", n_out])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(
        graph, producer_name="lumen-tests", opset_imports=[helper.make_opsetid("", 13)]
    )
    onnx.checker.check_model(model)
    onnx.save(model, sys.argv[2])


if __name__ == "__main__":
    main()
