"""lathe.keras SimpleRNN and Conv2DTranspose: forward equal to Keras 3 (and to a numpy reference of Keras's
formula) given the same weights, exported ONNX equal to onnxruntime, and learning from Python.

Tolerances: forwards against Keras/numpy within 1e-5 absolute (float32, values of order 1); exported
models against onnxruntime within 1e-5. The Keras comparisons are skipped when keras is not importable."""

import os

import numpy as np
import pytest

from lathe import LatheError
from lathe.keras import UnsupportedError
from lathe.keras.layers import Conv2DTranspose, Dense, Flatten, Reshape, SimpleRNN
from lathe.keras.models import Sequential

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
try:
    import keras
except Exception as error:  # any import failure of keras or its backend
    keras = None
    KERAS_SKIP = f"keras is not importable: {error}"
else:
    KERAS_SKIP = ""

needs_keras = pytest.mark.skipif(keras is None, reason=KERAS_SKIP or "keras is not importable")
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
               "linear": lambda v: v}


def simple_rnn_reference(x, kernel, recurrent, bias, activation, return_sequences):
    """Keras's SimpleRNN formula in float64: h_t = f(x_t · kernel + h_{t-1} · recurrent + bias)."""
    f = ACTIVATIONS[activation]
    h = np.zeros((x.shape[0], kernel.shape[1]))
    states = []
    for t in range(x.shape[1]):
        h = f(x[:, t].astype(np.float64) @ kernel + h @ recurrent + bias)
        states.append(h)
    return np.stack(states, axis=1) if return_sequences else h


def lathe_simple_rnn(units, steps, features, activation, return_sequences, kernel, recurrent, bias):
    """A one-layer Lathe model holding Keras-layout weights (kernel [F, units], recurrent [units, units])."""
    model = Sequential([SimpleRNN(units, activation=activation, return_sequences=return_sequences,
                                  input_shape=(steps, features))])
    model.build()
    model.set_weights([kernel.T[None].astype(np.float32), recurrent.T[None].astype(np.float32),
                       np.concatenate([bias, np.zeros_like(bias)])[None].astype(np.float32)])
    return model


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_simple_rnn_matches_numpy_formula(activation, return_sequences):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (5, 7, 3)).astype(np.float32)
    kernel, recurrent, bias = rng.uniform(-0.5, 0.5, (3, 4)), rng.uniform(-0.5, 0.5, (4, 4)), rng.uniform(-0.3, 0.3, 4)
    model = lathe_simple_rnn(4, 7, 3, activation, return_sequences, kernel, recurrent, bias)
    expected = simple_rnn_reference(x, kernel, recurrent, bias, activation, return_sequences)
    np.testing.assert_allclose(model.predict(x), expected, atol=1e-5)


@needs_keras
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_simple_rnn_matches_keras(activation, return_sequences):
    keras.utils.set_random_seed(5)
    reference = keras.Sequential([keras.Input(shape=(6, 3)),
                                  keras.layers.SimpleRNN(5, activation=activation, return_sequences=return_sequences,
                                                         bias_initializer="random_uniform")])
    kernel, recurrent, bias = reference.layers[0].get_weights()
    x = np.random.default_rng(4).uniform(-1, 1, (8, 6, 3)).astype(np.float32)
    model = lathe_simple_rnn(5, 6, 3, activation, return_sequences, kernel, recurrent, bias)
    np.testing.assert_allclose(model.predict(x), reference.predict(x, verbose=0), atol=1e-5)


def conv_transpose_reference(x, kernel, bias, strides, padding, output_padding=None):
    """Keras's Conv2DTranspose in float64 from its definition: scatter every input pixel times the kernel
    (Keras layout [kh, kw, filters, C]) at stride, size the output by Keras's rule, and place it
    TensorFlow's way: "same" crops the surplus evenly (the odd pixel after), "valid" crops at the end."""
    n, h, w, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    full = np.zeros((n, (h - 1) * strides[0] + kh, (w - 1) * strides[1] + kw, filters))
    for i in range(h):
        for j in range(w):
            full[:, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw] += np.einsum(
                "nc,abfc->nabf", x[:, i, j].astype(np.float64), kernel)
    sizes, begins = [], []
    for axis, (size, k, s) in enumerate(((h, kh, strides[0]), (w, kw, strides[1]))):
        if output_padding is None:
            out = size * s if padding == "same" else size * s + max(k - s, 0)
        else:
            out = (size - 1) * s + k - 2 * (k // 2 if padding == "same" else 0) + output_padding[axis]
        begin = max((size - 1) * s + k - out, 0) // 2 if padding == "same" else 0
        sizes.append(out)
        begins.append(begin)
    padded = np.zeros((n, max(full.shape[1], begins[0] + sizes[0]), max(full.shape[2], begins[1] + sizes[1]), filters))
    padded[:, :full.shape[1], :full.shape[2]] = full
    return padded[:, begins[0]:begins[0] + sizes[0], begins[1]:begins[1] + sizes[1]] + bias


CONV_CASES = [((3, 3), (1, 1), "valid", None), ((3, 3), (2, 2), "valid", None), ((3, 3), (2, 2), "same", None),
              ((2, 3), (2, 1), "same", None), ((1, 1), (2, 2), "valid", None), ((2, 2), (3, 3), "same", None),
              ((4, 4), (2, 2), "same", None), ((3, 3), (2, 2), "same", (1, 1)), ((3, 3), (3, 2), "valid", (2, 1))]


def lathe_conv_transpose(kernel, bias, strides, padding, output_padding, input_shape):
    model = Sequential([Conv2DTranspose(kernel.shape[2], kernel.shape[:2], strides=strides, padding=padding,
                                        output_padding=output_padding, input_shape=input_shape)])
    model.build()
    model.set_weights([kernel.transpose(3, 2, 0, 1).astype(np.float32), bias.astype(np.float32)])
    return model


@pytest.mark.parametrize("kernel_size,strides,padding,output_padding", CONV_CASES)
def test_conv_transpose_matches_numpy_definition(kernel_size, strides, padding, output_padding):
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (2, 5, 4, 3)).astype(np.float32)
    kernel, bias = rng.uniform(-0.5, 0.5, kernel_size + (2, 3)), rng.uniform(-0.3, 0.3, 2)
    model = lathe_conv_transpose(kernel, bias, strides, padding, output_padding, (5, 4, 3))
    expected = conv_transpose_reference(x, kernel, bias, strides, padding, output_padding)
    got = model.predict(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


@needs_keras
@pytest.mark.parametrize("kernel_size,strides,padding,output_padding", CONV_CASES)
def test_conv_transpose_matches_keras(kernel_size, strides, padding, output_padding):
    keras.utils.set_random_seed(7)
    reference = keras.Sequential([keras.Input(shape=(5, 4, 3)),
                                  keras.layers.Conv2DTranspose(2, kernel_size, strides=strides, padding=padding,
                                                               output_padding=output_padding,
                                                               bias_initializer="random_uniform")])
    kernel, bias = reference.layers[0].get_weights()
    x = np.random.default_rng(8).uniform(-1, 1, (3, 5, 4, 3)).astype(np.float32)
    model = lathe_conv_transpose(kernel, bias, strides, padding, output_padding, (5, 4, 3))
    expected = reference.predict(x, verbose=0)
    got = model.predict(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_trained_models_export_to_onnx_matching_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(9)
    cases = [
        (Sequential([SimpleRNN(8, return_sequences=True, input_shape=(6, 2)), SimpleRNN(4, activation="relu"),
                     Dense(1)]), rng.normal(size=(40, 6, 2)), rng.normal(size=(40, 1))),
        (Sequential([Dense(16, activation="relu", input_shape=(4,)), Reshape((2, 2, 4)),
                     Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"),
                     Conv2DTranspose(1, 2, strides=2, padding="valid")]), rng.normal(size=(40, 4)), rng.normal(size=(40, 8, 8, 1))),
    ]
    for index, (model, x, y) in enumerate(cases):
        model.compile(optimizer="adam", loss="mse")
        history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        path = tmp_path / f"model{index}.onnx"
        model.save(str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        theirs = session.run(None, {"input": x.astype(np.float32)})[0]
        np.testing.assert_allclose(model.predict(x), theirs, atol=1e-5)


def test_simple_rnn_learns_from_python():
    """The sign of the sum of a sequence: held-out accuracy >= 0.9 after 30 epochs."""
    rng = np.random.default_rng(10)
    x = rng.normal(size=(600, 8, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.float32)
    model = Sequential([SimpleRNN(12, input_shape=(8, 1)), Dense(1, activation="sigmoid")], seed=1)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x[:500], y[:500], epochs=30, batch_size=32, verbose=0)
    accuracy = model.evaluate(x[500:], y[500:], verbose=0)[1]
    assert accuracy >= 0.9, accuracy


def test_bad_settings_are_named():
    with pytest.raises(UnsupportedError, match="activation 'softmax'|softmax.*not supported"):
        Sequential([SimpleRNN(4, activation="softmax", input_shape=(5, 2))]).build()
    with pytest.raises(UnsupportedError, match="recurrent_initializer"):
        Sequential([SimpleRNN(4, recurrent_initializer="glorot_uniform", input_shape=(5, 2))]).build()
    with pytest.raises(LatheError, match="output_padding 2 must be in \\[0, stride 2\\)"):
        Sequential([Conv2DTranspose(2, 3, strides=2, output_padding=2, input_shape=(4, 4, 1))]).build()
    with pytest.raises(LatheError, match="SimpleRNN needs a sequence input"):
        Sequential([SimpleRNN(4, input_shape=(5,))]).build()
    with pytest.raises(LatheError, match="Conv2DTranspose needs an image input"):
        Sequential([Conv2DTranspose(2, 3, input_shape=(5, 2))]).build()
