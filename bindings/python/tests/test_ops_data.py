"""Split, Pad, Tile, Range and GlobalMaxPool through lathe vs onnxruntime, over opsets (attribute→input
migrations) and modes. Floats within 1e-4 * max(1, max|ref|); integers exact."""
import numpy as np
import pytest
from onnx import helper

from op_compare import compare

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("split", [None, [2, 4], [1, 2, 3], [0, 6]])
@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("axis", [1, -2])
def test_split(split, opset, axis):
    x = RNG.standard_normal((2, 6, 3)).astype(np.float32)
    outputs = [f"y{i}" for i in range(len(split) if split else 3)]
    if split is None:
        attributes = {"num_outputs": 3} if opset >= 18 else {}
        compare(helper.make_node("Split", ["x"], outputs, axis=axis, **attributes), {"x": x}, opset)
    elif opset >= 13:
        compare(helper.make_node("Split", ["x", "s"], outputs, axis=axis), {"x": x}, opset, {"s": np.array(split, np.int64)})
    else:
        compare(helper.make_node("Split", ["x"], outputs, axis=axis, split=split), {"x": x}, opset)


@pytest.mark.parametrize("length,parts", [(7, 3), (5, 2), (4, 4)])
def test_split_num_outputs_uneven(length, parts):
    x = RNG.standard_normal((length, 2)).astype(np.float32)
    compare(helper.make_node("Split", ["x"], [f"y{i}" for i in range(parts)], num_outputs=parts), {"x": x}, 18)


PADS = [[0, 1, 2, 0, 2, 1], [1, 0, 0, 1, 0, 0], [0, 2, 3, 0, 3, 2], [0, -1, 1, 0, 1, -2]]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", PADS)
@pytest.mark.parametrize("opset", [2, 11, 18, 19])
def test_pad(mode, pads, opset):
    if mode == "wrap" and opset < 19:
        pytest.skip("wrap mode exists from opset 19")
    x = RNG.standard_normal((2, 4, 5)).astype(np.float32)
    if opset < 11:
        compare(helper.make_node("Pad", ["x"], ["y"], mode=mode, pads=pads, value=1.5), {"x": x}, opset)
    else:
        node = helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode=mode)
        compare(node, {"x": x}, opset, {"pads": np.array(pads, np.int64), "value": np.array(1.5, np.float32)})


@pytest.mark.parametrize("axes,pads", [([1], [1, 2]), ([-1, 0], [2, 0, 1, 1])])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_pad_axes_input(axes, pads, dtype):
    x = (RNG.standard_normal((3, 4)) * 10).astype(dtype)
    node = helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="constant")
    compare(node, {"x": x}, 18, {"pads": np.array(pads, np.int64), "axes": np.array(axes, np.int64)})


@pytest.mark.parametrize("repeats", [[1, 1, 1], [2, 1, 3], [1, 3, 1], [2, 0, 1]])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_tile(repeats, dtype):
    x = (RNG.standard_normal((2, 3, 4)) * 5).astype(dtype)
    compare(helper.make_node("Tile", ["x", "r"], ["y"]), {"x": x}, 13, {"r": np.array(repeats, np.int64)})


@pytest.mark.parametrize("start,limit,delta", [(0, 10, 3), (10, 2, -2), (1, 1, 1), (5, 0, 1), (-3, 4, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_range(start, limit, delta, dtype):
    consts = {"s": np.array(start, dtype), "l": np.array(limit, dtype), "d": np.array(delta, dtype)}
    if dtype == np.float32:
        consts["d"] = np.array(delta * 0.7, dtype)
    node = helper.make_node("Range", ["s", "l", "d"], ["y"])
    compare(node, {}, 11, consts)


@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 2, 3, 4), (2, 1, 2, 3, 2)])
def test_global_max_pool(shape):
    compare(helper.make_node("GlobalMaxPool", ["x"], ["y"]), {"x": RNG.standard_normal(shape).astype(np.float32)}, 13)
