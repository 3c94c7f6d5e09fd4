"""Comparisons, boolean logic, Where, and the variadic Sum/Mean/Max/Min through lathe vs onnxruntime
with broadcasting. Exact for bools/integers; floats within 1e-4 * max(1, max|ref|)."""
import numpy as np
import pytest
from onnx import helper

from op_compare import compare

RNG = np.random.default_rng(1)
SHAPES = [((2, 3), (2, 3)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (5,)), ((4, 1), (1, 3))]


def sample(shape, dtype):
    """Small values, so comparisons meet equal elements (uint8 ones non-negative)."""
    if dtype == np.bool_:
        return RNG.integers(0, 2, shape).astype(np.bool_)
    return RNG.integers(0 if dtype == np.uint8 else -2, 3, shape).astype(dtype)


@pytest.mark.parametrize("op,opset", [("Equal", 11), ("Equal", 19), ("Greater", 9), ("Greater", 13), ("Less", 13),
                                      ("GreaterOrEqual", 12), ("GreaterOrEqual", 16), ("LessOrEqual", 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
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
def test_variadic(op, shapes, opset):
    inputs = {f"x{i}": RNG.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    compare(helper.make_node(op, list(inputs), ["y"]), inputs, opset)


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_variadic_integer(op, dtype):
    inputs = {"a": RNG.integers(-50, 50, (2, 3)).astype(dtype), "b": RNG.integers(-50, 50, (3,)).astype(dtype)}
    compare(helper.make_node(op, ["a", "b"], ["y"]), inputs, 13)
