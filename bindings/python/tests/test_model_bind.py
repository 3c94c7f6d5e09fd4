"""`Model.bind(x).run()`, the pre-bound fast path: the same outputs as `predict` and onnxruntime
(max abs error <= 1e-5 * max(1, max|reference|)), in-place input updates seen by the next run,
buffers reused, `predict` in between, copies of arrays that cannot be bound in place, errors."""
import pathlib

import numpy as np
import onnxruntime
import pytest

import lathe

SEED = pathlib.Path(__file__).resolve().parents[3] / "models" / "seed"


def close(actual, reference):
    scale = max(1.0, float(np.max(np.abs(reference))))
    return float(np.max(np.abs(np.asarray(actual, np.float64) - reference))) <= 1e-5 * scale


@pytest.mark.parametrize("name", ["cnn_a", "mlp_16_32_16_1", "lstm_3x50"])
def test_bound_runs_match_predict_and_onnxruntime(name):
    path = SEED / name / "model.onnx"
    ort = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    info = ort.get_inputs()[0]
    shape = [1 if isinstance(d, str) or d is None else d for d in info.shape]
    rng = np.random.default_rng(4)
    with lathe.Model(path) as model:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        binding = model.bind(x)
        first = binding.run()
        assert not first.flags.writeable
        assert close(first, ort.run(None, {info.name: x})[0])
        assert np.array_equal(first, model.predict(x))
        # New data written into the bound array is what the next run reads; the buffer is reused.
        x[...] = rng.uniform(-1, 1, shape).astype(np.float32)
        second = binding.run()
        assert second is first
        assert close(second, ort.run(None, {info.name: x})[0])
        # A predict on other data in between: the binding binds its array again.
        other = rng.uniform(-1, 1, shape).astype(np.float32)
        assert close(model.predict(other), ort.run(None, {info.name: other})[0])
        assert close(binding.run(), ort.run(None, {info.name: x})[0])


def test_arrays_that_cannot_be_bound_in_place_are_copied_once():
    path = SEED / "mlp_8_12_8_1" / "model.onnx"
    with lathe.Model(path) as model:
        base = np.random.default_rng(5).uniform(-1, 1, (3, 16)).astype(np.float32)
        strided = base[:, ::2]
        binding = model.bind(strided)
        bound = binding.inputs[model.inputs[0].name]
        assert bound is not strided and np.array_equal(bound, strided)
        assert np.array_equal(binding.run(), model.predict(np.ascontiguousarray(strided)))
        assert binding.run().shape == (3, 1)


def test_errors():
    path = SEED / "mlp_8_12_8_1" / "model.onnx"
    model = lathe.Model(path)
    with pytest.raises(lathe.LatheError) as error:
        model.bind(np.zeros((1, 8), np.float64))
    assert error.value.status == lathe.Status.DTYPE_MISMATCH
    with pytest.raises(lathe.LatheError) as error:
        model.bind(np.zeros((1, 5), np.float32))
    assert error.value.status == lathe.Status.SHAPE_MISMATCH
    with pytest.raises(lathe.LatheError) as error:
        model.bind({})
    assert error.value.status == lathe.Status.INVALID_ARGUMENT
    binding = model.bind(np.zeros((2, 8), np.float32))
    model.close()
    with pytest.raises(lathe.LatheError) as error:
        binding.run()
    assert error.value.status == lathe.Status.INVALID_STATE
