"""Lathe on the committed workload models: models/{seed,torch,keras}/<name>/ and models/defect_cnn.onnx.

Each model directory holds model.onnx and reference data in the ONNX backend-test layout
(test_data_set_b1/ and test_data_set_b64/ with input_0.pb and output_0.pb). Lathe's outputs
are compared with the stored outputs and with a live onnxruntime run on the same inputs:
max abs error <= 1e-4 * max(1, max|reference|). Models that use ops outside the set Lathe
claims (exporters emit Cast, Slice, Expand, ...) are expected to fail until those ops exist.
"""
import pathlib
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, numpy_helper

import lathe
from test_onnx_node_suite import CLAIMED_OPS

MODELS = pathlib.Path(__file__).resolve().parents[3] / "models"
MODEL_DIRS = sorted(p.parent for p in MODELS.glob("*/*/model.onnx"))
BATCHES = (1, 64)


def read_tensor(path):
    """A numpy array from a TensorProto file."""
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def assert_close(actual, reference, what):
    """Shape equality and max abs error <= 1e-4 * max(1, max|reference|)."""
    actual = np.asarray(actual)
    assert actual.shape == reference.shape, f"{what}: shape {actual.shape}, expected {reference.shape}"
    scale = max(1.0, float(np.max(np.abs(reference))))
    error = float(np.max(np.abs(actual.astype(np.float64) - reference)))
    assert error <= 1e-4 * scale, f"{what}: max abs error {error:.3g} exceeds {1e-4 * scale:.3g}"


def unclaimed_ops(model):
    """Op types in `model` that Lathe does not claim."""
    return sorted({n.op_type for n in model.graph.node} - CLAIMED_OPS)


def model_param(model_dir):
    """A pytest param for `model_dir`, marked as an expected failure if it uses unclaimed ops."""
    ops = unclaimed_ops(onnx.load(str(model_dir / "model.onnx")))
    marks = [pytest.mark.xfail(reason=f"uses {', '.join(ops)}, not claimed by Lathe", strict=False)] if ops else []
    return pytest.param(model_dir, id=f"{model_dir.parent.name}/{model_dir.name}", marks=marks)


def declared_dims(value_info):
    """Dims of a graph input/output: ints where fixed, the symbolic name otherwise."""
    return [d.dim_param if d.WhichOneof("value") == "dim_param" else d.dim_value
            for d in value_info.type.tensor_type.shape.dim]


def check_metadata(model, proto):
    """lathe's inputs/outputs match the ONNX graph's declared names, shapes and dtypes."""
    initializers = {t.name for t in proto.graph.initializer}
    graph_inputs = [v for v in proto.graph.input if v.name not in initializers]
    for infos, values in ((model.inputs, graph_inputs), (model.outputs, list(proto.graph.output))):
        assert [i.name for i in infos] == [v.name for v in values]
        for info, value in zip(infos, values):
            assert list(info.shape) == declared_dims(value), f"{info.name}: shape {list(info.shape)}"
            assert np.dtype(info.dtype) == np.float32, f"{info.name}: dtype {info.dtype}"


def test_every_model_has_reference_data():
    """The three exporters' directories exist and each model has both batch sizes stored."""
    assert {p.parent.name for p in MODEL_DIRS} >= {"seed"}
    for model_dir in MODEL_DIRS:
        for batch in BATCHES:
            data = model_dir / f"test_data_set_b{batch}"
            assert (data / "input_0.pb").is_file() and (data / "output_0.pb").is_file(), data
            assert read_tensor(data / "input_0.pb").shape[0] == batch


@pytest.mark.parametrize("model_dir", [model_param(d) for d in MODEL_DIRS])
def test_model_matches_references(model_dir):
    """Batch 1, 64 and 1 again through one lathe model against stored and live onnxruntime outputs."""
    model_bytes = (model_dir / "model.onnx").read_bytes()
    proto = onnx.load_from_string(model_bytes)
    model = lathe.Model(model_bytes)
    check_metadata(model, proto)
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    input_name = proto.graph.input[0].name
    for batch in BATCHES + (1,):
        data = model_dir / f"test_data_set_b{batch}"
        x = read_tensor(data / "input_0.pb")
        stored = read_tensor(data / "output_0.pb")
        (live,) = session.run(None, {input_name: x})
        got = model.predict(x)
        assert_close(got, stored, f"batch {batch} vs stored")
        assert_close(got, live, f"batch {batch} vs onnxruntime")


def test_model_accepts_path():
    """A model file path works like its bytes."""
    model_dir = MODELS / "seed" / "mlp_8_12_8_1"
    x = read_tensor(model_dir / "test_data_set_b64" / "input_0.pb")
    stored = read_tensor(model_dir / "test_data_set_b64" / "output_0.pb")
    assert_close(lathe.Model(str(model_dir / "model.onnx")).predict(x), stored, "from path")


def test_defect_cnn_classifies_frames():
    """The README demo's model: image -> probs over ok/scratch/dent/stain, right on synthetic frames."""
    sys.path.insert(0, str(MODELS.parent / "scripts"))
    from make_seed_models import DEFECT_CLASSES, defect_frames

    path = MODELS / "defect_cnn.onnx"
    model = lathe.Model(str(path))
    check_metadata(model, onnx.load(str(path)))
    assert [i.name for i in model.inputs] == ["image"] and [o.name for o in model.outputs] == ["probs"]
    assert list(model.outputs[0].shape) == ["N", 4]
    rng = np.random.default_rng(5)
    frames = np.concatenate([defect_frames(kind, 16, rng) for kind in DEFECT_CLASSES])
    labels = np.repeat(np.arange(len(DEFECT_CLASSES)), 16)
    got = model.predict(frames)
    session = onnxruntime.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    (live,) = session.run(None, {"image": frames})
    assert_close(got, live, "defect_cnn vs onnxruntime")
    np.testing.assert_allclose(np.sum(got, axis=1), 1.0, rtol=1e-5)
    assert np.mean(np.argmax(got, axis=1) == labels) >= 0.95


def test_wrong_input_shape_raises():
    """A frame of the wrong size is refused with LatheError, not a crash."""
    model = lathe.Model(str(MODELS / "seed" / "cnn_a" / "model.onnx"))
    with pytest.raises(lathe.LatheError):
        model.predict(np.zeros((2, 1, 27, 28), np.float32))


def test_seed_script_reproduces_committed_files(tmp_path):
    """scripts/make_seed_models.py rebuilds the committed seed models and inputs byte for byte.

    Outputs (computed by onnxruntime) are compared within the usual tolerance, and so are the
    weights of defect_cnn, whose output layer is fitted to onnxruntime-computed features."""
    script = MODELS.parent / "scripts" / "make_seed_models.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    rebuilt = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(MODELS) for p in MODELS.rglob("*")
                       if p.is_file() and p.relative_to(MODELS).parts[0] in ("seed", "defect_cnn.onnx"))
    assert rebuilt == committed
    for relative in rebuilt:
        if relative.name == "output_0.pb":
            assert_close(read_tensor(tmp_path / relative), read_tensor(MODELS / relative), str(relative))
        elif relative.name == "defect_cnn.onnx":
            fresh, kept = (onnx.load(str(root / relative)).graph for root in (tmp_path, MODELS))
            assert [n.op_type for n in fresh.node] == [n.op_type for n in kept.node]
            for a, b in zip(fresh.initializer, kept.initializer):
                assert_close(numpy_helper.to_array(a), numpy_helper.to_array(b), a.name)
        else:
            assert (tmp_path / relative).read_bytes() == (MODELS / relative).read_bytes(), relative
