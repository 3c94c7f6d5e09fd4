"""Slice, Expand and Cast through lathe vs onnxruntime (exact for integer results;
max abs error <= 1e-6 * max(1, max|ref|) for floats)."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lathe


def run_both(node, x, consts, out_type=TensorProto.FLOAT, opset=17):
    graph = helper.make_graph(
        [node], "t", [helper.make_tensor_value_info("x", helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)],
        [helper.make_tensor_value_info("y", out_type, None)],
        [numpy_helper.from_array(v, n) for n, v in consts.items()])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()
    ref = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    return lathe.Model(data).predict(x), ref


SLICES = [([1], [3], [0], [1]), ([0, 1], [-1, 100], [1, 2], [1, 2]), ([-1], [-100], [2], [-1]),
          ([5], [-6], [1], [-2]), ([0, 0, 0], [4, 5, 6], [0, 1, 2], [2, 2, 3]), ([2], [2], [0], [1]),
          ([-2], [np.iinfo(np.int64).max], [-1], [1])]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICES)
@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
def test_slice(starts, ends, axes, steps, index_dtype):
    x = np.random.default_rng(0).standard_normal((4, 5, 6)).astype(np.float32)
    info = np.iinfo(index_dtype)
    consts = {n: np.clip(np.array(v, np.int64), info.min, info.max).astype(index_dtype)
              for n, v in zip(["s", "e", "a", "st"], [starts, ends, axes, steps])}
    got, ref = run_both(helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"]), x, consts)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("in_shape,shape", [((3, 1), (2, 1, 4)), ((1,), (5,)), ((2, 3), (2, 3)), ((1, 3, 1), (4, 1, 2))])
def test_expand(in_shape, shape):
    x = np.random.default_rng(1).standard_normal(in_shape).astype(np.float32)
    got, ref = run_both(helper.make_node("Expand", ["x", "s"], ["y"]), x, {"s": np.array(shape, np.int64)})
    np.testing.assert_array_equal(got, ref)


CASTS = [(np.float32, TensorProto.INT64), (np.float32, TensorProto.INT32), (np.float32, TensorProto.BOOL),
         (np.float32, TensorProto.DOUBLE), (np.int64, TensorProto.FLOAT), (np.int64, TensorProto.INT32),
         (np.int32, TensorProto.INT64), (np.float32, TensorProto.UINT8), (np.int64, TensorProto.BOOL)]


@pytest.mark.parametrize("src,to", CASTS)
def test_cast(src, to):
    rng = np.random.default_rng(2)
    x = (rng.uniform(-100, 100, (3, 7)) if src == np.float32 else rng.integers(-1000, 1000, (3, 7))).astype(src)
    if to == TensorProto.UINT8:
        x = np.abs(x)
    got, ref = run_both(helper.make_node("Cast", ["x"], ["y"], to=to), x, {}, out_type=to)
    assert got.dtype == ref.dtype
    if np.issubdtype(ref.dtype, np.floating):
        assert np.max(np.abs(got - ref)) <= 1e-6 * max(1, np.max(np.abs(ref)))
    else:
        np.testing.assert_array_equal(got, ref)


CAST_TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE, np.int64: TensorProto.INT64,
              np.int32: TensorProto.INT32, np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8,
              np.bool_: TensorProto.BOOL}


@pytest.mark.parametrize("src", list(CAST_TYPES))
@pytest.mark.parametrize("dst", list(CAST_TYPES))
def test_cast_every_pair(src, dst):
    """Every pair of Lathe's dtypes on values inside both ranges (where C conversions agree)."""
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 100, (4, 5)) * rng.choice([-1, 1], (4, 5))
    if src in (np.uint8, np.bool_) or dst in (np.uint8, np.bool_):
        values = np.abs(values)
    x = (values > 50 if src == np.bool_ else values).astype(src)
    got, ref = run_both(helper.make_node("Cast", ["x"], ["y"], to=CAST_TYPES[dst]), x, {}, out_type=CAST_TYPES[dst])
    assert got.dtype == ref.dtype == np.dtype(dst)
    np.testing.assert_array_equal(got, ref)


HALF_EDGES = [0.0, -0.0, 1.0, 1 + 2**-11, 1 + 3 * 2**-11, 2**-24, 2**-25, 3 * 2**-26, 2**-14 - 2**-25, 65504.0,
              65519.99, 65520.0, -65520.0, 1e10, 0.1, -3.14159, np.inf, -np.inf, np.nan, 5.96e-8, 6.1e-5]


@pytest.mark.parametrize("src", [np.float32, np.float64])
def test_cast_to_float16_rounds_like_numpy(src):
    """Cast to float16 (carried as float32) rounds to nearest even, straight from the source type."""
    rng = np.random.default_rng(4)
    x = np.concatenate([np.array(HALF_EDGES), rng.standard_normal(200) * 10.0 ** rng.integers(-9, 6, 200)]).astype(src)
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", CAST_TYPES[src], [x.size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x.size])])
    got = lathe.Model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()).predict(x)
    with np.errstate(over="ignore"):
        expected = x.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_cast_to_unsupported_type_names_it():
    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.UINT16)], "t",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(lathe.LatheError) as error:
        lathe.Model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert error.value.status == lathe.LATHE_ERROR_DTYPE_MISMATCH
    assert "attribute 'to'" in str(error.value) and "uint16" in str(error.value)


def test_slice_with_bounds_fed_at_run_time():
    """Slice bounds fed as inputs specialise the plan to their values; new values re-plan."""
    graph = helper.make_graph(
        [helper.make_node("Slice", ["x", "s", "e"], ["y"])], "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]), helper.make_tensor_value_info("s", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("e", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = lathe.Model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    x = np.arange(4, dtype=np.float32)
    for start, end in ((0, 2), (1, 4), (-3, -1), (3, 1)):
        got = model.predict({"x": x, "s": np.array([start]), "e": np.array([end])})
        np.testing.assert_array_equal(got, x[start:end])
