"""Small ONNX models and an onnxruntime reference shared by test_binding.py and test_c_abi.py."""

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT


def serialize(nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=(), check=True):
    """An ONNX model as bytes, checked by onnx.checker unless `check` is False."""
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="lathe-tests")
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model)
    return model.SerializeToString()


def weights(name, shape, seed):
    """A seeded random float32 initializer."""
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(values, name)


def relu_model(input_shape=("N", 3), output_shape=("N", 3)):
    """y = Relu(x)."""
    return serialize(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", FLOAT, output_shape)],
        check=output_shape is not None,  # the checker insists on declared output shapes
    )


def gemm_relu_model(features=4, units=3):
    """y = Relu(x @ W + B), x: [N, features]."""
    return serialize(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"], name="dense"),
         helper.make_node("Relu", ["h"], ["y"], name="act")],
        [helper.make_tensor_value_info("x", FLOAT, ["N", features])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", units])],
        [weights("W", (features, units), 1), weights("B", (units,), 2)],
    )


def two_layer_model():
    """hidden = Relu(Gemm(x, W1, B1)), scores = Gemm(hidden, W2, B2): two outputs, x: [N, 4]."""
    return serialize(
        [helper.make_node("Gemm", ["x", "W1", "B1"], ["h"], name="dense1"),
         helper.make_node("Relu", ["h"], ["hidden"], name="act1"),
         helper.make_node("Gemm", ["hidden", "W2", "B2"], ["scores"], name="dense2", transB=1)],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("hidden", FLOAT, ["N", 6]),
         helper.make_tensor_value_info("scores", FLOAT, ["N", 3])],
        [weights("W1", (4, 6), 3), weights("B1", (6,), 4), weights("W2", (3, 6), 5), weights("B2", (3,), 6)],
    )


def add_relu_model():
    """sum = a + b, act = Relu(a): two inputs, two outputs."""
    return serialize(
        [helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
         helper.make_node("Relu", ["a"], ["act"], name="relu")],
        [helper.make_tensor_value_info("a", FLOAT, ["N", 3]),
         helper.make_tensor_value_info("b", FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("sum", FLOAT, ["N", 3]),
         helper.make_tensor_value_info("act", FLOAT, ["N", 3])],
    )


def onnxruntime_outputs(model_bytes, feeds):
    """Every output of the model under onnxruntime's CPU provider, by name."""
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def assert_close(actual, expected):
    """max |actual - expected| <= 1e-4 * max(1, max |expected|), with equal shapes and dtypes."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if expected.size:
        scale = max(1.0, float(np.max(np.abs(expected))))
        error = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
        assert error <= 1e-4 * scale, f"max abs error {error} > {1e-4 * scale}"
