"""Reductions, ArgMax/ArgMin, TopK and CumSum through lathe vs onnxruntime over opsets (axes as attribute
and as input), keepdims and noop_with_empty_axes. Floats within 1e-4 * max(1, max|ref|); integers exact."""
import numpy as np
import pytest
from onnx import helper

from op_compare import compare, run_both

RNG = np.random.default_rng(2)
REDUCTIONS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]
AXES = [None, [0], [1], [-1], [0, 2], [-3, -1], [0, 1, 2]]


def axes_input_since(op):
    """The first opset where the op's axes are an input."""
    return 13 if op == "ReduceSum" else 18


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [11, 13, 18])
def test_reduce(op, axes, keepdims, opset):
    x = RNG.uniform(0.1, 1.5 if op == "ReduceProd" else 2, (3, 4, 5)).astype(np.float32)
    if op not in ("ReduceLogSum", "ReduceProd"):
        x -= 1
    if opset >= axes_input_since(op):
        inputs = ["x", "axes"] if axes is not None else ["x"]
        node = helper.make_node(op, inputs, ["y"], keepdims=keepdims)
        consts = {"axes": np.array(axes, np.int64)} if axes is not None else {}
        compare(node, {"x": x}, opset, consts)
    else:
        attributes = {"keepdims": keepdims, **({"axes": axes} if axes is not None else {})}
        compare(helper.make_node(op, ["x"], ["y"], **attributes), {"x": x}, opset)


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("noop", [0, 1])
def test_reduce_empty_axes_input(op, noop):
    x = RNG.uniform(0.5, 1.5, (2, 3)).astype(np.float32)
    node = helper.make_node(op, ["x", "axes"], ["y"], noop_with_empty_axes=noop)
    compare(node, {"x": x}, 18, {"axes": np.array([], np.int64)})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_reduce_integer(op, dtype):
    x = RNG.integers(-5, 6, (3, 4)).astype(dtype)
    compare(helper.make_node(op, ["x"], ["y"], axes=[1], keepdims=0), {"x": x}, 11)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("select_last_index", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_arg_extremum(op, axis, keepdims, select_last_index, dtype):
    x = RNG.integers(0, 4, (3, 4, 5)).astype(dtype)  # many ties
    node = helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims, select_last_index=select_last_index)
    compare(node, {"x": x}, 13)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_topk(axis, largest, k, dtype):
    x = RNG.integers(0, 5, (4, 5, 6)).astype(dtype)  # ties must keep the lower index first
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=axis, largest=largest, sorted=1)
    compare(node, {"x": x}, 11, {"k": np.array([k], np.int64)})


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("k", [1, 3, 20, 50])
def test_topk_unsorted_selects_what_onnxruntime_selects(largest, k):
    """sorted=0 leaves the order undefined: onnxruntime returns nth_element's order, lathe sorts.
    The selected (index, value) pairs must be the same; lathe's values are in order."""
    x = RNG.standard_normal((3, 50)).astype(np.float32)
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=-1, largest=largest, sorted=0)
    (values, indices), (ref_values, ref_indices) = run_both(node, {"x": x}, 11, {"k": np.array([k], np.int64)})
    for row in range(3):
        mine, theirs = np.argsort(indices[row]), np.argsort(ref_indices[row])
        np.testing.assert_array_equal(indices[row][mine], ref_indices[row][theirs])
        np.testing.assert_array_equal(values[row][mine], ref_values[row][theirs])
    steps = np.diff(values, axis=-1)
    assert np.all(steps <= 0) if largest else np.all(steps >= 0)


@pytest.mark.parametrize("op", REDUCTIONS)
def test_reduce_float64(op):
    x = RNG.uniform(0.1, 2, (3, 4, 5))
    compare(helper.make_node(op, ["x"], ["y"], axes=[1, 2], keepdims=0), {"x": x}, 13 if op != "ReduceSum" else 11)


def test_topk_opset1_attribute():
    x = RNG.standard_normal((3, 7)).astype(np.float32)
    compare(helper.make_node("TopK", ["x"], ["values", "indices"], k=3), {"x": x}, 1)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_cumsum(axis, exclusive, reverse, dtype):
    x = (RNG.standard_normal((3, 4, 2)) * 10).astype(dtype)
    node = helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)
    compare(node, {"x": x}, 14, {"axis": np.array(axis, np.int64)})
