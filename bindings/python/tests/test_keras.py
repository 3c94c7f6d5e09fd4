"""lathe.keras end to end: the Keras CNN snippet on scikit-learn's digits, ONNX export against onnxruntime,
an MLP with binary cross-entropy, callbacks, and clear errors for bad input.

Data: scikit-learn's bundled digits (1797 8×8 images, shipped inside the sklearn wheel; no download),
scaled to [0, 1], channels-last (N, 8, 8, 1), split 80/20 with a fixed permutation.
"""

import numpy as np
import onnxruntime
import pytest

from lathe import LatheError, LATHE_ERROR_SHAPE_MISMATCH, LATHE_ERROR_UNSUPPORTED_OP
from lathe.keras import UnsupportedError, callbacks, optimizers
from lathe.keras.callbacks import Callback, EarlyStopping, LambdaCallback
from lathe.keras.layers import (LSTM, Activation, AveragePooling2D, Conv2D, Dense, Dropout, Flatten,
                                GlobalAveragePooling2D, MaxPooling2D)
from lathe.keras.models import Sequential

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn provides the digits data set")

#: Held-out accuracy the snippet must reach on digits after 10 epochs.
DIGITS_ACCURACY = 0.95
#: F1 of the failure-classification MLP on its held-out split.
FAILURE_F1 = 0.9


def digits_split():
    """Digits as (x_train, y_train, x_test, y_test), 80/20 with a fixed permutation."""
    digits = sklearn_datasets.load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(0.8 * len(x))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def snippet_model():
    """The Keras snippet of issue 5, sized for 8×8 digits (only the imports differ from Keras)."""
    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(8, 8, 1)))
    model.add(MaxPooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(128, activation='relu'))
    model.add(Dense(10, activation='softmax'))
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    return model


@pytest.fixture(scope="module")
def trained_digits():
    x_train, y_train, x_test, y_test = digits_split()
    model = snippet_model()
    history = model.fit(x_train, y_train, epochs=10, batch_size=32, validation_data=(x_test, y_test), verbose=0)
    return model, history, (x_train, y_train, x_test, y_test)


def test_keras_snippet_learns_digits(trained_digits):
    model, history, (_, _, x_test, y_test) = trained_digits
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 10 for values in history.history.values())
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    predictions = model.predict(x_test)
    assert predictions.shape == (len(x_test), 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1, atol=1e-5)
    assert (predictions.argmax(axis=1) == y_test).mean() == pytest.approx(accuracy)
    assert accuracy >= DIGITS_ACCURACY, f"held-out accuracy {accuracy:.4f} < {DIGITS_ACCURACY}"
    assert history.history["val_accuracy"][-1] == pytest.approx(accuracy)
    assert loss == pytest.approx(history.history["val_loss"][-1], rel=1e-6)


def test_saved_onnx_matches_predict(trained_digits, tmp_path):
    model, _, (_, _, x_test, _) = trained_digits
    path = tmp_path / "m.onnx"
    model.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = model.predict(x_test)
    theirs = session.run(None, {session.get_inputs()[0].name: x_test})[0]
    assert np.max(np.abs(ours - theirs)) <= 1e-5
    assert model.to_onnx() == path.read_bytes()


def test_same_seed_same_weights():
    x_train, y_train, _, _ = digits_split()
    runs = []
    for _ in range(2):
        model = snippet_model()
        model.fit(x_train[:256], y_train[:256], epochs=2, batch_size=32, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def failure_data(n, rng):
    """Synthetic machine sensors: failure when temperature and vibration are both high (about 30% positives)."""
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = ((x[:, 0] + 0.8 * x[:, 1] > 0.7) | (x[:, 2] > 1.4)).astype(np.float32)
    return x, y


def test_mlp_binary_crossentropy_learns_failures():
    rng = np.random.default_rng(1)
    x, y = failure_data(2000, rng)
    x_test, y_test = failure_data(500, rng)
    model = Sequential([Dense(32, activation='relu', input_shape=(6,)), Dropout(0.1),
                        Dense(16, activation='relu'), Dense(1, activation='sigmoid')])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss='binary_crossentropy',
                  metrics=['accuracy'])
    history = model.fit(x, y, epochs=30, batch_size=64, validation_split=0.2, verbose=0)
    assert "val_accuracy" in history.history
    predicted = model.predict(x_test)[:, 0] > 0.5
    truth = y_test > 0.5
    tp = np.sum(predicted & truth)
    f1 = 2 * tp / (2 * tp + np.sum(predicted & ~truth) + np.sum(~predicted & truth))
    assert f1 >= FAILURE_F1, f"F1 {f1:.3f} < {FAILURE_F1}"


@pytest.mark.parametrize("optimizer", [
    optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True), optimizers.RMSprop(learning_rate=0.01),
    optimizers.AdamW(learning_rate=0.01), "sgd"])
def test_optimizers_train(optimizer):
    rng = np.random.default_rng(2)
    x, y = failure_data(512, rng)
    model = Sequential([Dense(16, activation='tanh', input_shape=(6,)), Dense(1, activation='sigmoid')])
    model.compile(optimizer=optimizer, loss='binary_crossentropy', metrics=['binary_accuracy'])
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_other_layers_and_regression():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 6, 6, 2)).astype(np.float32)
    y = x.mean(axis=(1, 2)) @ np.array([[1.0], [-2.0]], np.float32)
    model = Sequential([Conv2D(4, 3, padding='same', input_shape=(6, 6, 2)), Activation('relu'),
                        AveragePooling2D((2, 2)), GlobalAveragePooling2D(), Dense(1)])
    model.compile(optimizer=optimizers.Adam(0.01), loss='mse', metrics=['mae'])
    history = model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.predict(x).shape == (256, 1)


def test_early_stopping_stops_and_restores(capsys):
    x_train, y_train, x_test, y_test = digits_split()
    model = snippet_model()
    model.optimizer.learning_rate = 0.05  # too large: validation loss soon stops improving
    stopper = EarlyStopping(monitor='val_loss', patience=1, restore_best_weights=True)
    seen = []
    history = model.fit(x_train, y_train, epochs=40, batch_size=32, validation_data=(x_test, y_test), verbose=0,
                        callbacks=[stopper, LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))])
    epochs_run = len(history.history["loss"])
    assert epochs_run < 40 and stopper.stopped_epoch == epochs_run - 1
    assert seen == list(range(epochs_run))
    best = min(history.history["val_loss"])
    assert model.evaluate(x_test, y_test, verbose=0)[0] == pytest.approx(best, rel=1e-5)


def test_custom_callback_stops_training_and_progress_lines(capsys):
    class StopAtTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.last_logs = logs
            if epoch == 1:
                self.model.stop_training = True

    rng = np.random.default_rng(4)
    x, y = failure_data(128, rng)
    model = Sequential([Dense(4, activation='relu', input_shape=(6,)), Dense(1, activation='sigmoid')])
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    stop = StopAtTwo()
    history = model.fit(x, y, epochs=10, callbacks=[stop], verbose=1)
    assert len(history.history["loss"]) == 2 and set(stop.last_logs) == {"loss", "accuracy"}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Epoch 1/10") and "loss: " in lines[0] and lines[1].startswith("Epoch 2/10")


def test_callback_exception_propagates():
    def boom(epoch, logs):
        raise RuntimeError("from the callback")

    x, y = failure_data(64, np.random.default_rng(5))
    model = Sequential([Dense(1, activation='sigmoid', input_shape=(6,))])
    model.compile(optimizer='adam', loss='binary_crossentropy')
    with pytest.raises(RuntimeError, match="from the callback"):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[LambdaCallback(on_epoch_end=boom)])


def test_reduce_lr_on_plateau_changes_engine_rate():
    x, y = failure_data(64, np.random.default_rng(6))
    model = Sequential([Dense(1, activation='sigmoid', input_shape=(6,))])
    model.compile(optimizer=optimizers.SGD(learning_rate=1e-9), loss='binary_crossentropy')
    model.fit(x, y, epochs=4, verbose=0, callbacks=[callbacks.ReduceLROnPlateau(monitor='loss', patience=1,
                                                                                 factor=0.5, min_delta=1.0)])
    assert model.optimizer.learning_rate < 1e-9


# Bad input ---------------------------------------------------------------------------------------

@pytest.fixture
def small_cnn():
    model = snippet_model()
    return model


def test_label_out_of_range_is_clear(small_cnn):
    x_train, y_train, _, _ = digits_split()
    y = y_train[:64].copy()
    y[5] = 10
    with pytest.raises(LatheError, match=r"epoch 1, batch \d+ of 2: label 10(\.0)? of sample 5 is out of range for 10 classes"):
        small_cnn.fit(x_train[:64], y, epochs=1, shuffle=False, verbose=0)


def test_mismatched_sample_counts_are_clear(small_cnn):
    x_train, y_train, _, _ = digits_split()
    with pytest.raises(LatheError, match="x has 64 samples but y has 63") as error:
        small_cnn.fit(x_train[:64], y_train[:63], verbose=0)
    assert error.value.status == LATHE_ERROR_SHAPE_MISMATCH


def test_wrong_input_shape_is_clear(small_cnn):
    with pytest.raises(LatheError, match=r"x has shape \[4, 8, 8\] but the model takes \[N\] \+ \[8, 8, 1\]"):
        small_cnn.predict(np.zeros((4, 8, 8), np.float32))
    with pytest.raises(LatheError, match=r"x has shape \[4, 28, 28, 1\]"):
        small_cnn.evaluate(np.zeros((4, 28, 28, 1), np.float32), np.zeros(4))


def test_nan_input_names_epoch_and_batch(small_cnn):
    x_train, y_train, _, _ = digits_split()
    x = x_train[:64].copy()
    x[40, 2, 2, 0] = np.nan
    before = small_cnn.get_weights()
    with pytest.raises(LatheError, match=r"epoch 1, batch 2 of 2: input of sample 40 is not finite"):
        small_cnn.fit(x, y_train[:64], epochs=1, shuffle=False, verbose=0)
    after = small_cnn.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))  # the first batch was applied


def test_unsupported_layers_and_options_are_named():
    model = Sequential([LSTM(50, go_backwards=True, input_shape=(10, 3)), Dense(1)])
    with pytest.raises(UnsupportedError, match="go_backwards=true is not supported") as error:
        model.compile(optimizer='adam', loss='mse')
    assert error.value.status == LATHE_ERROR_UNSUPPORTED_OP and isinstance(error.value, NotImplementedError)
    with pytest.raises(UnsupportedError, match="stateful=true is not supported"):
        Sequential([__import__("lathe.keras.layers").keras.layers.SimpleRNN(4, stateful=True, input_shape=(10, 3))]).compile(optimizer='adam', loss='mse')
    model = Sequential([Dense(4, input_shape=(3,), bias_regularizer="l2")])
    with pytest.raises(UnsupportedError, match=r"layer 0 \(Dense 'dense.*'\): unsupported key \"bias_regularizer\""):
        model.compile(optimizer='adam', loss='mse')
    with pytest.raises(UnsupportedError, match="kernel_regularizer .*L1.* is not supported"):
        Sequential([Dense(4, input_shape=(3,), kernel_regularizer={"class_name": "L1", "config": {"l1": 0.1}})]).compile(
            optimizer='adam', loss='mse')
    with pytest.raises(UnsupportedError, match="dilation_rate"):
        Sequential([Conv2D(2, 3, dilation_rate=2, input_shape=(8, 8, 1))]).compile(optimizer='adam', loss='mse')
    with pytest.raises(UnsupportedError, match="top_k"):
        Sequential([Dense(1, input_shape=(3,))]).compile(optimizer='adam', loss='mse',
                                                         metrics=[__import__("lathe.keras.metrics").keras.metrics.Precision(top_k=2)])
    with pytest.raises(LatheError, match="unknown loss 'hinge'"):
        Sequential([Dense(1, input_shape=(3,))]).compile(optimizer='adam', loss='hinge')
    with pytest.raises(UnsupportedError, match=r"saves ONNX \(.onnx\)"):
        snippet_model().save("model.keras")


def test_input_shape_from_data_and_weights_round_trip():
    x, y = failure_data(64, np.random.default_rng(7))
    model = Sequential([Dense(3, activation='relu'), Dense(1, activation='sigmoid')])
    model.compile(optimizer='adam', loss='binary_crossentropy')
    assert not model.built
    model.fit(x, y, epochs=1, verbose=0)
    assert model.input_shape == (None, 6) and model.output_shape == (None, 1)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(6, 3), (3,), (3, 1), (1,)]
    model.set_weights([np.zeros_like(w) for w in weights])
    np.testing.assert_array_equal(model.predict(x), 0.5)
    with pytest.raises(LatheError, match="set_weights: expected shapes"):
        model.set_weights(weights[:2])
