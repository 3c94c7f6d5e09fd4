"""Shared harness of the per-family op tests: one-node models run through lathe and onnxruntime."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import lathe


def run_both(node, inputs, opset=17, initializers=None):
    """Runs a one-node model through lathe and onnxruntime; `inputs` (name -> array) are fed at run time,
    `initializers` (name -> array) are stored in the model. Output types are left to onnxruntime, then
    declared from its results for lathe. Returns ([lathe outputs], [onnxruntime outputs])."""
    outputs = [o for o in node.output if o]

    def build(output_infos):
        graph = helper.make_graph(
            [node], "t",
            [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs.items()],
            output_infos,
            [numpy_helper.from_array(np.asarray(a), n) for n, a in (initializers or {}).items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        return model.SerializeToString()

    untyped = build([onnx.ValueInfoProto(name=o) for o in outputs])
    expected = ort.InferenceSession(untyped, providers=["CPUExecutionProvider"]).run(None, inputs)
    typed = build([helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(r.dtype), None)
                   for o, r in zip(outputs, expected)])
    got = lathe.Model(typed).predict(dict(inputs))
    if not isinstance(got, dict):
        got = {outputs[0]: got}
    return [got[o] for o in outputs], expected


def run_lathe(node, inputs, opset=17):
    """Runs a one-node model through lathe only (for references onnxruntime lacks); its first output,
    declared with the first input's dtype."""
    graph = helper.make_graph(
        [node], "t",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(node.output[0], helper.np_dtype_to_tensor_dtype(next(iter(inputs.values())).dtype), None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    got = lathe.Model(model.SerializeToString()).predict(dict(inputs))
    return got[node.output[0]] if isinstance(got, dict) else got


def assert_matches(got, ref):
    """Same dtype and shape; exact for integers and bools, max abs error <= 1e-4 * max(1, max|ref|) for floats."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"shape {got.shape}, expected {ref.shape}"
    got, ref = np.atleast_1d(got), np.atleast_1d(ref)
    assert got.dtype == ref.dtype, f"dtype {got.dtype}, expected {ref.dtype}"
    if ref.dtype.kind == "f":
        assert np.array_equal(np.isnan(got), np.isnan(ref)), "NaN positions differ"
        finite = ~np.isnan(ref)
        scale = max(1.0, float(np.max(np.abs(ref[finite & np.isfinite(ref)]), initial=0)))
        diff = np.abs(np.where(finite, got, 0).astype(np.float64) - np.where(finite, ref, 0))
        diff[np.isinf(ref) & (got == ref)] = 0
        assert np.max(diff, initial=0) <= 1e-4 * scale, f"max abs error {np.max(diff)}"
    else:
        np.testing.assert_array_equal(got, ref)


def compare(node, inputs, opset=17, initializers=None):
    """run_both + assert_matches on every output."""
    got, ref = run_both(node, inputs, opset, initializers)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert_matches(g, r)
