"""Elementwise, activation and linear ops (Add/Sub/Mul/Div, Relu/LeakyRelu/Sigmoid/Tanh/Clip,
Gemm/MatMul) through lathe, compared with onnxruntime on randomized inputs and attributes.
Tolerance: max abs error <= 1e-4 * max(1, max|reference|)."""
import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lathe
import op_compare


def run_both(node, inputs, opset=17, initializers=()):
    """Builds a one-node model with `inputs` (name -> array) fed at run time, runs lathe and onnxruntime."""
    graph = helper.make_graph(
        [node], "t",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in node.output],
        [numpy_helper.from_array(a, n) for n, a in initializers],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    data = model.SerializeToString()
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, inputs)
    got = lathe.Model(data).predict(dict(inputs))
    if not isinstance(got, dict):
        got = {node.output[0]: got}
    return [got[o] for o in node.output], expected


def assert_close(got, ref):
    assert got.shape == ref.shape
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    assert np.max(np.abs(got - ref), initial=0) <= 1e-4 * scale


SHAPES = [((2, 3), (2, 3)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 1)), ((2, 1, 4), (1, 3, 1)), ((5, 1), (1, 6)), ((), (3, 2))]


@pytest.mark.parametrize("op,shapes", list(itertools.product(["Add", "Sub", "Mul", "Div"], SHAPES)))
def test_binary_broadcast(op, shapes):
    rng = np.random.default_rng(hash((op, shapes)) % 2**32)
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.uniform(0.5, 2, shapes[1]).astype(np.float32)
    (got,), (ref,) = run_both(helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b})
    assert_close(got, ref)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int8, np.uint8])
@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((2, 3, 4), (4,)), ((), (3, 2))])
def test_binary_other_dtypes(op, dtype, shapes):
    """float64 and the narrow integers (wrapping, division truncating toward zero) vs onnxruntime, exactly
    for integers; divisors are nonzero."""
    rng = np.random.default_rng(7)
    if dtype == np.float64:
        a, b = rng.standard_normal(shapes[0]), rng.uniform(0.5, 2, shapes[1])
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shapes[0], endpoint=True).astype(dtype)
        b = rng.integers(1, min(info.max, 40), shapes[1], endpoint=True).astype(dtype)
        if info.min < 0:
            b = (b * rng.choice([-1, 1], shapes[1])).astype(dtype)
    got, ref = op_compare.run_both(helper.make_node(op, ["a", "b"], ["y"]), {"a": a, "b": b})
    op_compare.assert_matches(got[0], ref[0])


@pytest.mark.parametrize("op,attrs", [("Relu", {}), ("LeakyRelu", {}), ("LeakyRelu", {"alpha": 0.3}),
                                      ("Sigmoid", {}), ("Tanh", {})])
def test_unary(op, attrs):
    x = np.random.default_rng(1).uniform(-20, 20, (3, 17)).astype(np.float32)
    (got,), (ref,) = run_both(helper.make_node(op, ["x"], ["y"], **attrs), {"x": x})
    assert_close(got, ref)


@pytest.mark.parametrize("bounds", [(-1.0, 2.0), (None, 0.5), (-0.5, None)])
def test_clip_inputs(bounds):
    x = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    names = ["x", "" if bounds[0] is None else "lo", "" if bounds[1] is None else "hi"]
    inits = [(n, np.array(v, np.float32)) for n, v in zip(names[1:], bounds) if v is not None]
    while names and names[-1] == "":
        names.pop()
    (got,), (ref,) = run_both(helper.make_node("Clip", names, ["y"]), {"x": x}, initializers=inits)
    assert_close(got, ref)


def test_clip_opset6_attributes():
    x = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    (got,), (ref,) = run_both(helper.make_node("Clip", ["x"], ["y"], min=-0.3, max=0.4), {"x": x}, opset=6)
    assert_close(got, ref)


@pytest.mark.parametrize("trans_a,trans_b,c_shape,alpha,beta",
                         [(ta, tb, c, al, be) for ta in (0, 1) for tb in (0, 1)
                          for c in (None, (), (7,), (5, 1), (5, 7)) for al, be in ((1.0, 1.0), (0.5, 2.0))])
def test_gemm(trans_a, trans_b, c_shape, alpha, beta):
    rng = np.random.default_rng(trans_a * 2 + trans_b)
    m, n, k = 5, 7, 9
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    inputs = {"a": a, "b": b}
    names = ["a", "b"]
    if c_shape is not None:
        inputs["c"] = rng.standard_normal(c_shape).astype(np.float32)
        names.append("c")
    node = helper.make_node("Gemm", names, ["y"], transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    (got,), (ref,) = run_both(node, inputs)
    assert_close(got, ref)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((2, 3, 4), (4, 5)),
                                   ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5))])
def test_matmul(sa, sb):
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    (got,), (ref,) = run_both(helper.make_node("MatMul", ["a", "b"], ["y"]),
                              {"a": rng.standard_normal(sa).astype(np.float32), "b": rng.standard_normal(sb).astype(np.float32)})
    assert_close(got, ref)


def test_shape_error_is_a_lathe_error():
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    graph = helper.make_graph([node], "t",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(lathe.LatheError) as info:
        lathe.Model(model.SerializeToString()).predict({"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 3), np.float32)})
    assert info.value.status == lathe.LATHE_ERROR_SHAPE_MISMATCH
    assert "MatMul" in str(info.value) and "inner dimensions" in str(info.value)
