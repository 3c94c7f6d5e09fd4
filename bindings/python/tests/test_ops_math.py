"""Elementwise math ops (Sqrt ... Mish, Gelu, Pow, PRelu) through lathe vs onnxruntime, over opsets and
attributes. Tolerance: max abs error <= 1e-4 * max(1, max|ref|); integers exact."""
import math

import numpy as np
import pytest
from onnx import helper

from op_compare import assert_matches, compare, run_lathe

RNG = np.random.default_rng(0)

#: (op, opset, attributes, input range)
UNARY = [
    ("Sqrt", 7, {}, (0, 4)), ("Sqrt", 13, {}, (0, 4)), ("Exp", 13, {}, (-3, 3)), ("Log", 13, {}, (0.1, 5)),
    ("Abs", 7, {}, (-2, 2)), ("Neg", 13, {}, (-2, 2)), ("Reciprocal", 13, {}, (0.5, 3)), ("Floor", 13, {}, (-3, 3)),
    ("Ceil", 13, {}, (-3, 3)), ("Round", 11, {}, (-3, 3)), ("Erf", 13, {}, (-2, 2)), ("Sin", 7, {}, (-4, 4)),
    ("Cos", 7, {}, (-4, 4)), ("Sign", 13, {}, (-2, 2)), ("Softplus", 7, {}, (-10, 10)), ("Softsign", 7, {}, (-5, 5)),
    ("HardSigmoid", 7, {}, (-4, 4)), ("HardSigmoid", 17, {"alpha": 0.3, "beta": 0.4}, (-4, 4)), ("HardSwish", 14, {}, (-5, 5)),
    ("Elu", 7, {}, (-3, 3)), ("Elu", 17, {"alpha": 0.5}, (-3, 3)), ("Selu", 7, {}, (-3, 3)),
    ("Selu", 17, {"alpha": 1.5, "gamma": 2.0}, (-3, 3)), ("Celu", 12, {}, (-3, 3)), ("Celu", 17, {"alpha": 2.0}, (-3, 3)),
    ("ThresholdedRelu", 10, {}, (-2, 2)), ("ThresholdedRelu", 17, {"alpha": 0.3}, (-2, 2)), ("Mish", 18, {}, (-5, 5)),
    ("Gelu", 20, {}, (-4, 4)), ("Gelu", 20, {"approximate": "tanh"}, (-4, 4)),
]


@pytest.mark.parametrize("op,opset,attributes,bounds", UNARY, ids=[f"{u[0]}-{u[1]}-{i}" for i, u in enumerate(UNARY)])
def test_unary_float(op, opset, attributes, bounds):
    x = RNG.uniform(*bounds, (3, 4, 5)).astype(np.float32)
    if op == "Round":
        x[0, 0, :4] = [0.5, 1.5, -2.5, 2.5]
    compare(helper.make_node(op, ["x"], ["y"], **attributes), {"x": x}, opset)


FLOAT64_UNARY = ["Sqrt", "Exp", "Log", "Reciprocal", "Floor", "Ceil", "Round", "Erf", "Sin", "Cos", "Abs", "Neg", "Sign"]


@pytest.mark.parametrize("op", FLOAT64_UNARY)
def test_unary_float64(op):
    bounds = next(u[3] for u in UNARY if u[0] == op)
    x = RNG.uniform(*bounds, (3, 4, 5))
    if op == "Round":
        x[0, 0, :4] = [0.5, 1.5, -2.5, 2.5]
    if op == "Erf":   # onnxruntime has no float64 Erf: math.erf is the reference
        assert_matches(run_lathe(helper.make_node(op, ["x"], ["y"]), {"x": x}, 13), np.vectorize(math.erf)(x))
        return
    compare(helper.make_node(op, ["x"], ["y"]), {"x": x}, 13)


@pytest.mark.parametrize("op", ["Abs", "Neg", "Sign"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_unary_integer(op, dtype):
    x = RNG.integers(-100, 100, (4, 5)).astype(dtype)
    compare(helper.make_node(op, ["x"], ["y"]), {"x": x}, 13)


@pytest.mark.parametrize("shapes", [((2, 3, 4), (4,)), ((2, 3, 4), (2, 3, 4)), ((3, 1), (1, 5)), ((), (3,))])
@pytest.mark.parametrize("types,opset", [((np.float32, np.float32), 7), ((np.float32, np.float32), 15),
                                         ((np.float32, np.int64), 15), ((np.int64, np.int64), 15),
                                         ((np.int64, np.float32), 15), ((np.int32, np.int32), 15)])
def test_pow(shapes, types, opset):
    def sample(shape, dtype, low, high):
        return (RNG.uniform(low, high, shape) if dtype == np.float32 else RNG.integers(low, high, shape)).astype(dtype)
    x = sample(shapes[0], types[0], 1, 4)
    y = sample(shapes[1], types[1], -2, 4) if types[0] == np.float32 else sample(shapes[1], types[1], 0, 4)
    compare(helper.make_node("Pow", ["x", "y"], ["z"]), {"x": x, "y": y}, opset)


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (5,), (2, 3, 4, 5)])
@pytest.mark.parametrize("opset", [7, 9, 16])
def test_prelu(slope_shape, opset):
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    slope = RNG.uniform(0, 1, slope_shape).astype(np.float32)
    compare(helper.make_node("PRelu", ["x", "slope"], ["y"]), {"x": x}, opset, {"slope": slope})
