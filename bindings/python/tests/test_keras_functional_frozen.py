"""Per-layer trainable=False and the functional Model builder of lathe.keras, checked against numpy,
Keras 3 (forward with the same weights) and onnxruntime (exported ONNX, 1e-5)."""

import numpy as np
import pytest

from lathe import LatheError
from lathe.keras import Input, Model, Sequential
from lathe.keras.layers import Add, BatchNormalization, Concatenate, Dense


def _data(n=256, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype(np.float32)
    return x, y


def test_frozen_layer_weights_bit_identical_and_in_get_weights():
    x, y = _data()
    frozen = Dense(16, activation="relu", trainable=False)
    model = Sequential([Dense(16, activation="relu", input_shape=(6,)), frozen, Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    before = model.get_weights()
    assert len(before) == 6   # frozen kernel and bias are still listed, as in Keras
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    after = model.get_weights()
    assert np.array_equal(before[2], after[2]) and np.array_equal(before[3], after[3])
    assert not np.array_equal(before[0], after[0]) and not np.array_equal(before[4], after[4])


def test_trainable_change_takes_effect_at_compile():
    x, y = _data()
    first = Dense(8, activation="tanh", input_shape=(6,))
    model = Sequential([first, Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    first.trainable = False
    w0 = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0)   # not recompiled: still trained (Keras semantics)
    w1 = model.get_weights()
    assert not np.array_equal(w0[0], w1[0])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    w2 = model.get_weights()
    assert np.array_equal(w1[0], w2[0]) and np.array_equal(w1[1], w2[1])
    assert not np.array_equal(w1[2], w2[2])


def test_frozen_batch_normalization_runs_in_inference_mode():
    x, y = _data()
    model = Sequential([Dense(8, input_shape=(6,)), BatchNormalization(trainable=False), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    # Inference-mode BN with its initial statistics (mean 0, variance 1, gamma 1, beta 0) is x / sqrt(1 + eps):
    # the frozen layer's output equals the same model without it, rescaled; the loss in training equals evaluate.
    w = model.get_weights()
    h = x @ w[0] + w[1]
    expected = (h / np.sqrt(1 + 1e-3)) @ w[4] + w[5]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    assert np.array_equal(w[2], np.ones(8, np.float32)) and np.array_equal(w[3], np.zeros(8, np.float32))


def _residual_mlp():
    inp = Input(shape=(6,))
    h = Dense(16, activation="relu")(inp)
    skip = Dense(16)(h)
    h2 = Add()([h, skip])
    out = Dense(1)(h2)
    return Model(inputs=inp, outputs=out)


def test_residual_mlp_learns_and_matches_numpy():
    x, y = _data(512)
    model = _residual_mlp()
    model.compile(optimizer="adam", loss="mse")
    w = model.get_weights()
    h = np.maximum(x @ w[0] + w[1], 0)
    expected = (h + h @ w[2] + w[3]) @ w[4] + w[5]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    base = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=40, batch_size=32, verbose=0)
    final = model.evaluate(x, y, verbose=0)
    assert final < 0.15 * base, (base, final)   # stated threshold: MSE below 15% of the untrained one


def test_concatenate_two_branches_learns_and_exports(tmp_path):
    x, y = _data(512)
    inp = Input(shape=(6,))
    a = Dense(8, activation="relu")(inp)
    b = Dense(8, activation="tanh")(inp)
    out = Dense(1)(Concatenate()([a, b]))
    model = Model(inputs=inp, outputs=out)
    model.compile(optimizer="adam", loss="mse")
    base = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=40, batch_size=32, verbose=0)
    final = model.evaluate(x, y, verbose=0)
    assert final < 0.2 * base, (base, final)
    path = tmp_path / "f.onnx"
    model.save(str(path))
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, rtol=1e-5)


def test_functional_forward_equals_keras():
    keras = pytest.importorskip("keras")
    x, _ = _data(64)
    model = _residual_mlp()
    model.compile(optimizer="adam", loss="mse")
    kin = keras.Input(shape=(6,))
    kh = keras.layers.Dense(16, activation="relu")(kin)
    kout = keras.layers.Dense(1)(keras.layers.Add()([kh, keras.layers.Dense(16)(kh)]))
    reference = keras.Model(kin, kout)
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), reference.predict(x, verbose=0), atol=1e-5, rtol=1e-5)


def test_bad_graphs_give_clear_errors():
    inp, other = Input(shape=(6,)), Input(shape=(6,))
    with pytest.raises(LatheError, match="disconnected"):
        Model(inputs=inp, outputs=Dense(1)(other))
    bad = Model(inputs=inp, outputs=Add()([Dense(4)(inp), Dense(5)(inp)]))
    with pytest.raises(LatheError, match="same shape"):
        bad.compile(optimizer="adam", loss="mse")
    shared = Dense(3)
    shared(Input(shape=(2,)))
    with pytest.raises(LatheError, match="shared"):
        shared(Input(shape=(2,)))
    with pytest.raises(LatheError, match="called on Input"):
        Dense(2)(np.zeros((1, 2), np.float32))
