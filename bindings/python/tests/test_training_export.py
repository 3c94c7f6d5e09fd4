"""Models trained by LatheTrain and exported to ONNX run in onnxruntime with Lathe's predictions.

The Swift test suites train small models, export them, and write into `.build/train-export/`:
`<name>.onnx`, `<name>.x.f32` and `<name>.y.f32` (raw float32: inputs and Lathe's predictions)
and `<name>.json` (their shapes). `ExportTests` writes a CNN with Conv/AveragePool/MaxPool/Dropout/
Dense-softmax (`cnn`), a global-pooling CNN (`gap`) and an MLP with Dropout and sigmoid (`mlp`);
`RecurrentLearningTests` writes the LSTM stack (LSTM/Dropout/Dense, `lstm_stack`) and a
Conv1D/MaxPooling1D/BatchNormalization/GRU/Reshape model (`sequence_layers`). This test runs
onnxruntime on the same inputs and requires max |onnxruntime - Lathe| <= 1e-5, a valid model, and
no Dropout left in the exported inference graph.
"""

import json
from pathlib import Path

import numpy as np
import pytest

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

EXPORT_DIR = Path(__file__).resolve().parents[3] / ".build" / "train-export"
#: Exported model name -> the Swift suite that writes it.
PRODUCERS = {"cnn": "ExportTests", "gap": "ExportTests", "mlp": "ExportTests",
             "lstm_stack": "RecurrentLearningTests", "sequence_layers": "RecurrentLearningTests"}


@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_onnxruntime_matches_lathe(name):
    if not (EXPORT_DIR / f"{name}.onnx").exists():
        pytest.skip(f"{EXPORT_DIR}/{name}.onnx is absent: run `swift test --filter {PRODUCERS[name]}` first")
    meta = json.loads((EXPORT_DIR / f"{name}.json").read_text())
    x = np.fromfile(EXPORT_DIR / f"{name}.x.f32", dtype="<f4").reshape(meta["x_shape"])
    expected = np.fromfile(EXPORT_DIR / f"{name}.y.f32", dtype="<f4").reshape(meta["y_shape"])
    model_bytes = (EXPORT_DIR / f"{name}.onnx").read_bytes()
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x})
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-5
    model = onnx.load_from_string(model_bytes)
    assert "Dropout" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model)
