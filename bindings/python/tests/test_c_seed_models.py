"""Every committed model under models/ (seed, torch, keras) run from C through examples/c/predict.c at
batch 1 and 64, compared with the stored onnxruntime outputs (max abs error <= 1e-4 * max(1, max|ref|))."""
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

from test_c_abi import CC, INCLUDE, REPOSITORY, link_flags, run

MODEL_DIRS = sorted(p.parent for p in (REPOSITORY / "models").glob("*/*/model.onnx"))

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on PATH")


def read_tensor(path):
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


@pytest.fixture(scope="module")
def predict_program(tmp_path_factory):
    program = tmp_path_factory.mktemp("c-seed") / "predict"
    run([CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{INCLUDE}",
         REPOSITORY / "examples" / "c" / "predict.c", "-o", program, *link_flags()])
    return program


def test_models_are_present():
    names = {f"{d.parent.name}/{d.name}" for d in MODEL_DIRS}
    for source in ("seed", "torch", "keras"):
        for model in ("cnn_a", "cnn_b", "lstm_3x50", "mlp_8_12_8_1", "mlp_16_32_16_1", "resnet_small"):
            assert f"{source}/{model}" in names


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=lambda d: f"{d.parent.name}/{d.name}")
@pytest.mark.parametrize("batch", ["b1", "b64"])
def test_predict_from_c_matches_reference(predict_program, model_dir, batch, tmp_path):
    data = model_dir / f"test_data_set_{batch}"
    x = read_tensor(data / "input_0.pb")
    expected = read_tensor(data / "output_0.pb")
    x.astype(np.float32).tofile(tmp_path / "x.f32")
    run([predict_program, model_dir / "model.onnx", tmp_path / "x.f32", tmp_path / "y.raw"])
    got = np.fromfile(tmp_path / "y.raw", dtype=np.float32)
    assert got.size == expected.size, f"{got.size} values, expected {expected.size}"
    got = got.reshape(expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected))))
    assert float(np.max(np.abs(got - expected))) <= 1e-4 * scale
