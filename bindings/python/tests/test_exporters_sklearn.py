"""scikit-learn models converted by skl2onnx (StandardScaler + LogisticRegression, LinearRegression,
MLPClassifier, MLPRegressor, Normalizer pipelines) run through lathe and compared with onnxruntime.
Tolerance: max abs error <= 1e-4 * max(1, max|reference|); predicted labels equal."""
import numpy as np
import onnxruntime as ort
import pytest

import lathe
from test_ops_basic import assert_close

skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx is not installed (pip install skl2onnx scikit-learn)")
from skl2onnx import to_onnx  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import Normalizer, StandardScaler  # noqa: E402


def data(classes=None, seed=0):
    """A small tabular problem: features and (class or real) targets."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((60, 5)) * [1, 3, 0.5, 2, 1] + [0, 1, -2, 0.5, 3]).astype(np.float32)
    if classes is None:
        return x, x @ rng.standard_normal(5) + 0.1 * rng.standard_normal(60)
    return x, (np.argmax(x @ rng.standard_normal((5, classes)), axis=1)) * 2 + 1


def compare(estimator, x, options=None):
    """Converts with skl2onnx and checks every output of lathe against onnxruntime."""
    model = to_onnx(estimator, x[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    claimed = {(op.domain, op.op_type) for op in lathe.registered_ops()}
    missing = sorted({n.op_type for n in model.graph.node if (n.domain or "", n.op_type) not in claimed
                      and (n.domain != "ai.onnx" or ("", n.op_type) not in claimed)})
    if missing:
        pytest.skip(f"the converted model uses {', '.join(missing)}, not registered in this build")
    bytes_ = model.SerializeToString()
    session = ort.InferenceSession(bytes_, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))
    got = lathe.Model(bytes_).predict(x)
    if not isinstance(got, dict):
        got = {names[0]: got}
    for name in names:
        if expected[name].dtype.kind in "iu":
            np.testing.assert_array_equal(got[name], expected[name])
        else:
            assert_close(got[name], expected[name])


@pytest.mark.parametrize("classes", [2, 3])
def test_scaler_logistic_regression(classes):
    x, y = data(classes)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    compare(pipeline, x, options={LogisticRegression: {"zipmap": False}})


def test_linear_regression():
    x, y = data()
    compare(LinearRegression().fit(x, y), x)


def test_normalizer_linear_regression():
    x, y = data(seed=3)
    compare(make_pipeline(Normalizer(norm="l2"), LinearRegression()).fit(x, y), x)


@pytest.mark.parametrize("classes", [2, 4])
def test_mlp_classifier(classes):
    x, y = data(classes, seed=1)
    model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8, 6), max_iter=300, random_state=0)).fit(x, y)
    compare(model, x, options={MLPClassifier: {"zipmap": False}})


def test_mlp_regressor():
    x, y = data(seed=2)
    model = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(10,), max_iter=300, random_state=0)).fit(x, y)
    compare(model, x)
