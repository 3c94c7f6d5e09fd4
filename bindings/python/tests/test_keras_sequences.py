"""lathe.keras sequence layers: the predictive-maintenance LSTM stack of issue 5 (shrunk for test time)
learns a synthetic remaining-useful-life task; GRU/Conv1D/BatchNormalization train; exports match
onnxruntime within 1e-5."""
import numpy as np
import onnxruntime
import pytest

from lathe import LatheError
from lathe.keras.layers import GRU, LSTM, BatchNormalization, Conv1D, Dense, Dropout, Flatten, MaxPooling1D, Reshape
from lathe.keras.models import Sequential


def degradation_windows(count, steps=20, sensors=4, seed=0):
    """Windows of `sensors` noisy signals whose drift grows as the machine wears; target = remaining life in [0, 1]."""
    rng = np.random.default_rng(seed)
    life = rng.uniform(0, 1, count).astype(np.float32)
    t = np.linspace(0, 1, steps, dtype=np.float32)
    wear = (1 - life)[:, None, None] * (0.5 + t[None, :, None])
    gains = rng.uniform(0.5, 1.5, sensors).astype(np.float32)
    x = wear * gains + 0.05 * rng.standard_normal((count, steps, sensors)).astype(np.float32)
    return x.astype(np.float32), life[:, None]


def test_lstm_stack_learns_remaining_useful_life(tmp_path):
    x, y = degradation_windows(448)
    model = Sequential()
    model.add(LSTM(16, return_sequences=True, input_shape=(20, 4)))
    model.add(Dropout(0.2))
    model.add(LSTM(16, return_sequences=True))
    model.add(Dropout(0.2))
    model.add(LSTM(16))
    model.add(Dropout(0.2))
    model.add(Dense(1))
    model.compile(optimizer='adam', loss='mean_squared_error')
    history = model.fit(x[:384], y[:384], epochs=12, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    rmse = float(np.sqrt(np.mean((model.predict(x[384:]) - y[384:]) ** 2)))
    assert rmse <= 0.08, f"held-out RMSE {rmse:.4f} (target spread {float(np.std(y)):.3f})"
    path = tmp_path / "rul.onnx"
    model.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ort,) = session.run(None, {session.get_inputs()[0].name: x[384:]})
    assert np.max(np.abs(ort - model.predict(x[384:]))) <= 1e-5


def test_gru_conv1d_batchnorm_train_and_export(tmp_path):
    x, y = degradation_windows(256, seed=1)
    model = Sequential([Conv1D(8, 3, activation="relu", input_shape=(20, 4)), MaxPooling1D(2), BatchNormalization(),
                        GRU(8, return_sequences=True), GRU(8), Reshape((8, 1)), Flatten(), Dense(1)])
    model.compile(optimizer='adam', loss='mse')
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "gru.onnx"
    model.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ort,) = session.run(None, {session.get_inputs()[0].name: x[:16]})
    assert np.max(np.abs(ort - model.predict(x[:16]))) <= 1e-5


def test_lstm_wrong_rank_is_clear():
    model = Sequential([LSTM(4, input_shape=(20, 4)), Dense(1)])
    model.compile(optimizer='adam', loss='mse')
    with pytest.raises(LatheError, match="shape"):
        model.fit(np.zeros((8, 20), np.float32), np.zeros((8, 1), np.float32), epochs=1, verbose=0)
