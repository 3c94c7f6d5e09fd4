"""Custom ops' backward: gradients through Model.gradients (lathe_model_gradients) checked against
central finite differences, for a Python op and a C op (Tests/c/plugin_backward.c); failing and
missing backwards (Python, C, foreign); and gradient descent through a custom op lowering a loss.

Registrations are process-wide, so each test uses its own op names.
"""

import subprocess

import numpy as np
import pytest
from onnx import helper

import lathe
from test_plugins import CC, EXAMPLES, LIBRARY_DIR, TESTS_C, compile_c, model_bytes, needs_cc

DOMAIN = "com.test.pygrad"


def gemm_then(op_type, domain=DOMAIN, both_inputs=False, **attributes):
    """x[4,3], W[3,5], B[5] (all graph inputs) -> Gemm -> h -> op_type(h[, h]) -> y[4,5]."""
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"], name="gemm"),
             helper.make_node(op_type, ["h", "h"] if both_inputs else ["h"], ["y"], name="op", domain=domain,
                              **attributes)]
    return model_bytes(nodes, [("x", [4, 3]), ("W", [3, 5]), ("B", [5])], [("y", [4, 5])], {domain: 1})


def central_differences(model, feeds, seed, name, eps=1e-2):
    """d sum(seed * model(feeds)) / d feeds[name], in float64 from float32 runs."""
    value = feeds[name]
    gradient = np.zeros(value.shape)
    for index in np.ndindex(value.shape):
        keep = value[index]
        losses = []
        for step in (eps, -eps):
            value[index] = keep + step
            losses.append(float(np.sum(seed.astype(np.float64) * model.predict(feeds))))
        value[index] = keep
        gradient[index] = (losses[0] - losses[1]) / (2 * eps)
    return gradient


def random_feeds(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.uniform(-1, 1, (4, 3)).astype(np.float32),
            "W": rng.uniform(-1, 1, (3, 5)).astype(np.float32),
            "B": rng.uniform(-0.5, 0.5, 5).astype(np.float32)}


class Swish:
    """y = x sigmoid(beta x), with its backward: dx = dy (s + beta x s (1 - s))."""

    backward_calls = 0

    def __init__(self, attributes):
        self.beta = attributes.float("beta", 1.0)

    def infer_shapes(self, shapes, dtypes):
        return [(shapes[0], dtypes[0])]

    def forward(self, inputs, outputs):
        np.divide(inputs[0], 1 + np.exp(-self.beta * inputs[0]), out=outputs[0])

    def backward(self, inputs, outputs, output_grads):
        x, (dy,) = inputs[0], output_grads
        assert not x.flags.writeable and not x.flags.owndata        # zero-copy read-only views
        assert not outputs[0].flags.writeable and not dy.flags.writeable
        Swish.backward_calls += 1
        s = 1 / (1 + np.exp(-self.beta * x))
        return dy * (s + self.beta * x * s * (1 - s))


class Product:
    """y = a * b elementwise; returns one gradient per input (a list)."""

    def __init__(self, attributes):
        pass

    def infer_shapes(self, shapes, dtypes):
        return [(shapes[0], dtypes[0])]

    def forward(self, inputs, outputs):
        np.multiply(inputs[0], inputs[1], out=outputs[0])

    def backward(self, inputs, outputs, output_grads):
        return [output_grads[0] * inputs[1], output_grads[0] * inputs[0]]


def test_python_backward_matches_central_differences():
    lathe.register_op(DOMAIN, "Swish", Swish)
    model = lathe.Model(gemm_then("Swish", beta=1.5))
    feeds = random_feeds(1)
    seed = np.random.default_rng(2).uniform(-1, 1, (4, 5)).astype(np.float32)
    before = Swish.backward_calls
    analytic = model.gradients(feeds, seed, ["x", "W", "B"])
    assert Swish.backward_calls == before + 1
    for name, gradient in zip(["x", "W", "B"], analytic):
        assert gradient.shape == feeds[name].shape and gradient.dtype == np.float32
        numeric = central_differences(model, feeds, seed, name)
        # float32 forward, eps 1e-2: agreement to 2e-3 relative to max(1, |numeric|).
        np.testing.assert_allclose(gradient, numeric, rtol=2e-3, atol=2e-3)
    assert model.gradients(feeds, seed, "W").shape == (3, 5)


def test_python_backward_accumulates_when_a_value_feeds_both_inputs():
    # y = h * h: both input gradients land in h's buffer; each must be added, giving 2 h dy.
    lathe.register_op(DOMAIN, "Product", Product)
    model = lathe.Model(gemm_then("Product", both_inputs=True))
    feeds = random_feeds(3)
    seed = np.random.default_rng(4).uniform(-1, 1, (4, 5)).astype(np.float32)
    analytic = model.gradients(feeds, seed, ["W", "x"])
    for name, gradient in zip(["W", "x"], analytic):
        np.testing.assert_allclose(gradient, central_differences(model, feeds, seed, name), rtol=2e-3, atol=2e-3)
    # Closed form: h = xW + B, dL/dW = x^T (2 h seed).
    h = feeds["x"] @ feeds["W"] + feeds["B"]
    np.testing.assert_allclose(analytic[0], feeds["x"].T @ (2 * h * seed), rtol=1e-5, atol=1e-5)


def test_python_backward_exception_becomes_a_plugin_error():
    class Broken(Swish):
        def backward(self, inputs, outputs, output_grads):
            raise ArithmeticError("no adjoint for you")

    lathe.register_op(DOMAIN, "Broken", Broken)
    model = lathe.Model(gemm_then("Broken"))
    feeds = random_feeds()
    with pytest.raises(lathe.LatheError) as error:
        model.gradients(feeds, np.ones((4, 5), np.float32), "W")
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN
    assert "ArithmeticError: no adjoint for you" in str(error.value) and "'op'" in str(error.value)
    assert model.predict(feeds).shape == (4, 5)      # the model stays usable


def test_python_backward_returning_a_wrong_shape_is_refused():
    class Misshapen(Swish):
        def backward(self, inputs, outputs, output_grads):
            return np.zeros((2, 2), np.float32)

    lathe.register_op(DOMAIN, "Misshapen", Misshapen)
    with pytest.raises(lathe.LatheError, match=r"shape \(2, 2\) for the gradient of input 0") as error:
        lathe.Model(gemm_then("Misshapen")).gradients(random_feeds(), np.ones((4, 5), np.float32), "W")
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN


def test_op_without_backward_names_the_op():
    class Forward(Swish):
        backward = None

    lathe.register_op(DOMAIN, "ForwardOnly", Forward)
    model = lathe.Model(gemm_then("ForwardOnly"))
    with pytest.raises(lathe.LatheError, match="ForwardOnly") as error:
        model.gradients(random_feeds(), np.ones((4, 5), np.float32), "W")
    assert error.value.status == lathe.LATHE_ERROR_UNSUPPORTED_OP
    # Nothing trainable upstream of it: differentiating a value after it is fine.
    assert model.gradients(random_feeds(), np.ones((4, 5), np.float32), []) == []


@needs_cc
def test_foreign_op_in_a_differentiated_path_names_the_op(tmp_path):
    library = tmp_path / "libdsp.so"
    result = subprocess.run([CC, "-std=c99", "-O1", "-fPIC", "-shared", str(EXAMPLES / "dsp.c"), "-o", str(library)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lathe.register_foreign_op("com.test.ffigrad", "HighPass", str(library), "dsp_highpass",
                              "void(in0, out0, count0, float alpha)")
    model = lathe.Model(gemm_then("HighPass", domain="com.test.ffigrad", alpha=0.9))
    with pytest.raises(lathe.LatheError, match="HighPass") as error:
        model.gradients(random_feeds(), np.ones((4, 5), np.float32), "W")
    assert error.value.status == lathe.LATHE_ERROR_UNSUPPORTED_OP
    assert "no gradient" in str(error.value)


def test_gradient_descent_through_a_python_op_lowers_the_loss():
    # Weights are graph inputs; Model.gradients gives dMSE/dW, dMSE/dB; plain SGD updates them.
    lathe.register_op(DOMAIN, "SwishTrain", Swish)
    model = lathe.Model(gemm_then("SwishTrain", beta=1.0))
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
    teacher = {"x": x, "W": rng.uniform(-2, 2, (3, 5)).astype(np.float32),
               "B": rng.uniform(-1, 1, 5).astype(np.float32)}
    target = np.array(model.predict(teacher))
    params = {"x": x, "W": 0.1 * rng.uniform(-1, 1, (3, 5)).astype(np.float32), "B": np.zeros(5, np.float32)}
    losses = []
    for _ in range(300):
        error = model.predict(params) - target
        losses.append(float(np.mean(error ** 2)))
        dw, db = model.gradients(params, 2 * error / error.size, ["W", "B"])
        params["W"] = params["W"] - 0.5 * dw
        params["B"] = params["B"] - 0.5 * db
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])


def test_gradients_argument_errors():
    lathe.register_op(DOMAIN, "SwishArgs", Swish)
    model = lathe.Model(gemm_then("SwishArgs"))
    with pytest.raises(lathe.LatheError, match="nonexistent") as error:
        model.gradients(random_feeds(), np.ones((4, 5), np.float32), "nonexistent")
    assert error.value.status == lathe.LATHE_ERROR_INVALID_ARGUMENT
    with pytest.raises(lathe.LatheError) as error:
        model.gradients(random_feeds(), np.ones((5, 4), np.float32), "W")
    assert error.value.status == lathe.LATHE_ERROR_SHAPE_MISMATCH
    with pytest.raises(lathe.LatheError, match="missing input 'B'"):
        model.gradients({"x": random_feeds()["x"], "W": random_feeds()["W"]}, np.ones((4, 5), np.float32), "W")


@needs_cc
def test_c_op_backward_gradient_check_and_training(tmp_path):
    """Tests/c/plugin_backward.c: central differences, failures and an SGD loop through the C ABI."""
    for name, op_type in [("gemm_tanhmul", "TanhMul"), ("gemm_failing", "FailingBackward"),
                          ("gemm_nobackward", "NoBackward")]:
        (tmp_path / f"{name}.onnx").write_bytes(gemm_then(op_type, domain="com.test.grad", both_inputs=True,
                                                          scale=0.5))
    program = compile_c([TESTS_C / "plugin_backward.c"], tmp_path / "plugin_backward")
    result = subprocess.run([program, tmp_path], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout and int(result.stdout.split(" passed")[0].split()[-1]) >= 15
    assert LIBRARY_DIR is not None


class AffineOptional:
    """y = (x + bias) * scale, where bias (slot 1) and scale (slot 2) may be omitted (0 and 1)."""

    seen = []

    def __init__(self, attributes):
        pass

    def infer_shapes(self, shapes, dtypes):
        AffineOptional.seen.append((shapes, dtypes))
        return [(shapes[0], dtypes[0])]

    def forward(self, inputs, outputs):
        x, bias, scale = inputs
        outputs[0][...] = (x + (0 if bias is None else bias)) * (1 if scale is None else scale)

    def backward(self, inputs, outputs, output_grads):
        x, bias, scale = inputs
        dy = output_grads[0]
        s = 1 if scale is None else scale
        dscale = None if scale is None else dy * (x + (0 if bias is None else bias))
        return [dy * s, None if bias is None else dy * s, dscale]


def test_omitted_optional_inputs_reach_a_python_op_as_none():
    lathe.register_op(DOMAIN, "AffineOptional", AffineOptional)
    node = helper.make_node("AffineOptional", ["x", "", "s"], ["y"], name="op", domain=DOMAIN)
    model = lathe.Model(model_bytes([node], [("x", [2, 3]), ("s", [2, 3])], [("y", [2, 3])], {DOMAIN: 1}))
    rng = np.random.default_rng(6)
    feeds = {"x": rng.uniform(-1, 1, (2, 3)).astype(np.float32), "s": rng.uniform(-1, 1, (2, 3)).astype(np.float32)}
    np.testing.assert_allclose(model.predict(feeds), feeds["x"] * feeds["s"], rtol=1e-6)
    shapes, dtypes = AffineOptional.seen[-1]
    assert shapes == [(2, 3), None, (2, 3)] and dtypes[1] is None
    seed = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    dx, ds = model.gradients(feeds, seed, ["x", "s"])
    np.testing.assert_allclose(dx, seed * feeds["s"], rtol=1e-6)
    np.testing.assert_allclose(ds, seed * feeds["x"], rtol=1e-6)
    np.testing.assert_allclose(ds, central_differences(model, feeds, seed, "s"), rtol=2e-3, atol=2e-3)

    trailing = helper.make_node("AffineOptional", ["x", "b", ""], ["y"], name="op", domain=DOMAIN)
    model = lathe.Model(model_bytes([trailing], [("x", [4]), ("b", [4])], [("y", [4])], {DOMAIN: 1}))
    np.testing.assert_allclose(model.predict({"x": np.ones(4, np.float32), "b": np.arange(4, dtype=np.float32)}),
                               1 + np.arange(4, dtype=np.float32))
