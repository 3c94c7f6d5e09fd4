"""ai.onnx.ml ops (Scaler, Normalizer, LinearRegressor, LinearClassifier) built with onnx.helper, run
through lathe and onnxruntime. Tolerance: max abs error <= 1e-4 * max(1, max|reference|); labels equal."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import lathe
from test_ops_basic import assert_close


def run_ml(node, x, outputs):
    """A one-node ai.onnx.ml model on input `x`: (lathe outputs, onnxruntime outputs) by name."""
    graph = helper.make_graph(
        [node], "ml", [helper.make_tensor_value_info("x", helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)],
        [helper.make_tensor_value_info(name, dtype, None) for name, dtype in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    data = model.SerializeToString()
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = lathe.Model(data).predict(x)
    if not isinstance(got, dict):
        got = {outputs[0][0]: got}
    return [got[name] for name, _ in outputs], expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("per_feature", [False, True])
def test_scaler(dtype, per_feature):
    x = (np.random.default_rng(1).standard_normal((5, 4)) * 10).astype(dtype)
    offset, scale = ([0.5, -1, 2, 0.1], [2, 0.5, -1, 3]) if per_feature else ([1.5], [0.25])
    node = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", offset=offset, scale=scale)
    (got,), (ref,) = run_ml(node, x, [("y", TensorProto.FLOAT)])
    assert_close(got, ref)


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer(norm):
    x = np.random.default_rng(2).uniform(-2, 3, (6, 5)).astype(np.float32)
    node = helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm=norm)
    (got,), (ref,) = run_ml(node, x, [("y", TensorProto.FLOAT)])
    assert_close(got, ref)


@pytest.mark.parametrize("targets", [1, 3])
def test_linear_regressor(targets):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 4)).astype(np.float32)
    node = helper.make_node("LinearRegressor", ["x"], ["y"], domain="ai.onnx.ml", targets=targets,
                            coefficients=rng.standard_normal(4 * targets).tolist(),
                            intercepts=rng.standard_normal(targets).tolist())
    (got,), (ref,) = run_ml(node, x, [("y", TensorProto.FLOAT)])
    assert_close(got, ref)


@pytest.mark.parametrize("post", ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"])
@pytest.mark.parametrize("classes,rows", [(3, 3), (2, 1), (2, 2)])
def test_linear_classifier(post, classes, rows):
    rng = np.random.default_rng(classes * 10 + rows)
    x = rng.standard_normal((9, 4)).astype(np.float32)
    node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
                            coefficients=rng.standard_normal(4 * rows).tolist(),
                            intercepts=rng.standard_normal(rows).tolist(),
                            classlabels_ints=[7 + 3 * i for i in range(classes)], post_transform=post)
    (label, scores), (ref_label, ref_scores) = run_ml(node, x, [("label", TensorProto.INT64), ("scores", TensorProto.FLOAT)])
    np.testing.assert_array_equal(label, ref_label)
    assert_close(scores, ref_scores)


def test_linear_classifier_string_labels_refused():
    node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
                            coefficients=[1.0, 2.0], intercepts=[0.0, 1.0], classlabels_strings=["a", "b"])
    graph = helper.make_graph([node], "ml", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("label", TensorProto.STRING, None),
                               helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    with pytest.raises(lathe.LatheError) as error:
        lathe.Model(model.SerializeToString())
    assert "string" in str(error.value)
