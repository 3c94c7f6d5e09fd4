"""Recurrent and sequence models trained by LatheTrain, exported to ONNX, run in onnxruntime.

`swift test --filter RecurrentLearningTests` trains the LSTM stack (LSTM/Dropout/Dense) and a
Conv1D/MaxPooling1D/BatchNormalization/GRU/Reshape model and writes `<name>.onnx`, `<name>.x.f32`,
`<name>.y.f32` and `<name>.json` into `.build/train-export/`. onnxruntime must match Lathe's
predictions to max |diff| <= 1e-5.
"""

import json
from pathlib import Path

import numpy as np
import pytest

onnxruntime = pytest.importorskip("onnxruntime")

EXPORT_DIR = Path(__file__).resolve().parents[3] / ".build" / "train-export"


@pytest.mark.parametrize("name", ["lstm_stack", "sequence_layers"])
def test_onnxruntime_matches_lathe(name):
    if not (EXPORT_DIR / f"{name}.onnx").exists():
        pytest.skip(f"{EXPORT_DIR}/{name}.onnx is absent: run `swift test --filter RecurrentLearningTests` first")
    meta = json.loads((EXPORT_DIR / f"{name}.json").read_text())
    x = np.fromfile(EXPORT_DIR / f"{name}.x.f32", dtype="<f4").reshape(meta["x_shape"])
    expected = np.fromfile(EXPORT_DIR / f"{name}.y.f32", dtype="<f4").reshape(meta["y_shape"])
    session = onnxruntime.InferenceSession(
        (EXPORT_DIR / f"{name}.onnx").read_bytes(), providers=["CPUExecutionProvider"]
    )
    (got,) = session.run(None, {"input": x})
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-5
