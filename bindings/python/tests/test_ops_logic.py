"""Comparisons, boolean logic, Where, and the variadic Sum/Mean/Max/Min through lathe vs onnxruntime
with broadcasting. Exact for bools/integers; floats within 1e-4 * max(1, max|ref|)."""
import numpy as np
import pytest
from onnx import helper

from op_compare import assert_matches, compare, run_both, run_lathe

RNG = np.random.default_rng(1)
SHAPES = [((2, 3), (2, 3)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (5,)), ((4, 1), (1, 3))]


def sample(shape, dtype):
    """Small values, so comparisons meet equal elements (uint8 ones non-negative)."""
    if dtype == np.bool_:
        return RNG.integers(0, 2, shape).astype(np.bool_)
    return RNG.integers(0 if dtype == np.uint8 else -2, 3, shape).astype(dtype)


@pytest.mark.parametrize("op,opset", [("Equal", 11), ("Equal", 19), ("Greater", 9), ("Greater", 13), ("Less", 13),
                                      ("GreaterOrEqual", 12), ("GreaterOrEqual", 16), ("LessOrEqual", 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.int8, np.uint8])
@pytest.mark.parametrize("shapes", SHAPES)
def test_compare(op, opset, dtype, shapes):
    compare(helper.make_node(op, ["a", "b"], ["c"]), {"a": sample(shapes[0], dtype), "b": sample(shapes[1], dtype)}, opset)


@pytest.mark.parametrize("op", ["And", "Or", "Xor", "Equal"])
@pytest.mark.parametrize("shapes", SHAPES)
def test_boolean(op, shapes):
    compare(helper.make_node(op, ["a", "b"], ["c"]), {"a": sample(shapes[0], np.bool_), "b": sample(shapes[1], np.bool_)}, 13)


def test_not():
    compare(helper.make_node("Not", ["a"], ["b"]), {"a": sample((3, 4), np.bool_)}, 13)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (2, 3)), ((2, 3, 1), (4,), (1, 3, 1)), ((), (2, 2), (2, 1))])
@pytest.mark.parametrize("opset", [9, 16])
def test_where(dtype, shapes, opset):
    x = RNG.standard_normal(shapes[1]).astype(dtype) if dtype == np.float32 else sample(shapes[1], dtype)
    y = RNG.standard_normal(shapes[2]).astype(dtype) if dtype == np.float32 else sample(shapes[2], dtype)
    compare(helper.make_node("Where", ["c", "x", "y"], ["z"]), {"c": sample(shapes[0], np.bool_), "x": x, "y": y}, opset)


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("shapes", [[(3, 4)], [(2, 3, 4), (3, 1), (4,)], [(1, 3), (2, 1)], [(5,), (5,), (5,), (5,)]])
@pytest.mark.parametrize("opset", [8, 13])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_variadic(op, shapes, opset, dtype):
    inputs = {f"x{i}": RNG.standard_normal(s).astype(dtype) for i, s in enumerate(shapes)}
    if op == "Mean" and dtype == np.float64:   # onnxruntime has no float64 Mean: numpy is the reference
        got, _ = run_both(helper.make_node("Sum", list(inputs), ["y"]), inputs, opset)
        mean = run_lathe(helper.make_node(op, list(inputs), ["y"]), inputs, opset)
        assert_matches(mean, sum(np.broadcast_arrays(*inputs.values())) / len(inputs))
        assert_matches(mean, got[0] / len(inputs))
        return
    compare(helper.make_node(op, list(inputs), ["y"]), inputs, opset)


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint8])
def test_variadic_integer(op, dtype):
    low = 0 if dtype == np.uint8 else -50
    inputs = {"a": RNG.integers(low, 50, (2, 3)).astype(dtype), "b": RNG.integers(low, 50, (3,)).astype(dtype)}
    compare(helper.make_node(op, ["a", "b"], ["y"]), inputs, 13)
