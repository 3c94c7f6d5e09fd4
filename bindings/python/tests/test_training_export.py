"""Models trained by LatheTrain and exported to ONNX run in onnxruntime with Lathe's predictions.

The Swift test suite (`swift test --filter ExportTests`) trains small models (a CNN with
Conv/AveragePool/MaxPool/Dropout/Dense-softmax, a global-pooling CNN, an MLP with Dropout and
sigmoid), exports them, and writes into `.build/train-export/`:
`<name>.onnx`, `<name>.x.f32` and `<name>.y.f32` (raw float32: inputs and Lathe's predictions)
and `<name>.json` (their shapes). This test runs onnxruntime on the same inputs and requires
max |onnxruntime - Lathe| <= 1e-5.
"""

import json
from pathlib import Path

import numpy as np
import pytest

onnxruntime = pytest.importorskip("onnxruntime")

EXPORT_DIR = Path(__file__).resolve().parents[3] / ".build" / "train-export"
NAMES = ["cnn", "gap", "mlp"]


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_matches_lathe(name):
    if not (EXPORT_DIR / f"{name}.onnx").exists():
        pytest.skip(f"{EXPORT_DIR}/{name}.onnx is absent: run `swift test --filter ExportTests` first")
    meta = json.loads((EXPORT_DIR / f"{name}.json").read_text())
    x = np.fromfile(EXPORT_DIR / f"{name}.x.f32", dtype="<f4").reshape(meta["x_shape"])
    expected = np.fromfile(EXPORT_DIR / f"{name}.y.f32", dtype="<f4").reshape(meta["y_shape"])
    session = onnxruntime.InferenceSession(
        (EXPORT_DIR / f"{name}.onnx").read_bytes(), providers=["CPUExecutionProvider"]
    )
    (got,) = session.run(None, {"input": x})
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-5
    # The exported graph is the inference graph: no Dropout left.
    import onnx

    model = onnx.load_from_string((EXPORT_DIR / f"{name}.onnx").read_bytes())
    assert "Dropout" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model)
