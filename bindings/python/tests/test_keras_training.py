"""The numerics and state of lathe.keras training, each against an independent numpy (or scikit-learn) reference:
losses (Huber, binary cross-entropy) with sample and class weights, their gradients (one plain SGD step with
learning rate 1 moves the weights by minus the gradient), Nesterov SGD / AdamW / RMSprop updates, learning-rate
schedules, gradient clipping, L2 regularisation, precision/recall/F1/AUC, checkpoints that resume bit for bit,
and clear errors for bad input.

The model used for exact checks is one Dense layer (kernel w, bias b) trained full-batch without shuffling,
so each epoch is one optimizer step on the whole data; numpy recomputes the same step in float64.
"""

import numpy as np
import pytest

from lathe import LatheError
from lathe.keras import losses, metrics, optimizers, regularizers
from lathe.keras.callbacks import ModelCheckpoint
from lathe.keras.layers import Dense, Dropout
from lathe.keras.models import Sequential
from lathe.keras.optimizers import schedules

#: Tolerances: float32 engine against float64 numpy.
LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 2e-5


def linear_data(n=24, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x @ np.array([[1.5], [-2.0], [0.5]], np.float32)[:features] + 0.3 + rng.normal(scale=2, size=(n, 1))).astype(np.float32)
    return x, y


def linear_model(optimizer, loss, activation=None, **dense):
    model = Sequential([Dense(1, activation=activation, input_shape=(3,), **dense)], seed=4)
    model.compile(optimizer=optimizer, loss=loss)
    return model


def train_steps(model, x, y, steps, **fit):
    """`steps` full-batch optimizer steps; returns (kernel, bias) after each."""
    after = []
    for _ in range(steps):
        model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0, **fit)
        w, b = model.get_weights()
        after.append((w.astype(np.float64), b.astype(np.float64)))
    return after


def numpy_linear_gradient(w, b, x, y, loss_gradient, weights=None):
    """Gradient of mean_i(weight_i · loss(x_i·w + b, y_i)) for one output, given dloss/dprediction."""
    p = x.astype(np.float64) @ w + b
    weights = np.ones(len(x)) if weights is None else weights
    d = loss_gradient(p, y.astype(np.float64)) * weights[:, None] / len(x)
    return x.T.astype(np.float64) @ d, d.sum(axis=0)


# Losses and weights ---------------------------------------------------------------------------------------------

def huber(e, delta):
    return np.where(np.abs(e) <= delta, 0.5 * e * e, delta * np.abs(e) - 0.5 * delta * delta)


def test_huber_loss_and_gradient_with_sample_weights_match_numpy():
    x, y = linear_data()
    sample_weight = np.random.default_rng(1).uniform(0, 3, size=len(x)).astype(np.float32)
    model = linear_model(optimizers.SGD(learning_rate=1.0), losses.Huber(delta=1.3))
    w, b = [a.astype(np.float64) for a in model.get_weights()]
    p = x.astype(np.float64) @ w + b
    # Keras: per-sample loss (mean over outputs) times its weight, summed, divided by the number of samples.
    expected = np.sum(huber(p - y, 1.3)[:, 0] * sample_weight) / len(x)
    assert model.evaluate(x, y, sample_weight=sample_weight, verbose=0) == pytest.approx(expected, rel=LOSS_TOLERANCE)
    gw, gb = numpy_linear_gradient(w, b, x, y, lambda p, t: np.clip(p - t, -1.3, 1.3), sample_weight)
    (w1, b1), = train_steps(model, x, y, 1, sample_weight=sample_weight)
    np.testing.assert_allclose(w1, w - gw, atol=WEIGHT_TOLERANCE)
    np.testing.assert_allclose(b1, b - gb, atol=WEIGHT_TOLERANCE)
    assert losses.get("huber").delta == 1.0


def test_class_weights_weight_binary_crossentropy_like_keras():
    x, y = linear_data()
    y = (y > 0).astype(np.float32)
    class_weight = {0: 1.0, 1: 20.0}
    model = linear_model(optimizers.SGD(learning_rate=1.0), "binary_crossentropy", activation="sigmoid")
    w, b = [a.astype(np.float64) for a in model.get_weights()]
    q = np.clip(1 / (1 + np.exp(-(x.astype(np.float64) @ w + b))), 1e-7, 1 - 1e-7)
    per_sample = -(y * np.log(q) + (1 - y) * np.log(1 - q))[:, 0]
    weights = np.where(y[:, 0] == 1, 20.0, 1.0)
    # Class weights act as sample weights: the weighted evaluate equals the numpy weighted mean.
    assert model.evaluate(x, y, sample_weight=weights, verbose=0) == pytest.approx(np.sum(per_sample * weights) / len(x),
                                                                               rel=LOSS_TOLERANCE)
    gw, gb = numpy_linear_gradient(w, b, x, y, lambda p, t: 1 / (1 + np.exp(-p)) - t, weights)
    history = model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0, class_weight=class_weight)
    assert history.history["loss"][0] == pytest.approx(np.sum(per_sample * weights) / len(x), rel=LOSS_TOLERANCE)
    w1, b1 = model.get_weights()
    np.testing.assert_allclose(w1, w - gw, atol=WEIGHT_TOLERANCE)
    np.testing.assert_allclose(b1, b - gb, atol=WEIGHT_TOLERANCE)


def test_class_weights_of_sparse_labels_and_onehot_rows():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=30)
    for loss, y in (("sparse_categorical_crossentropy", labels), ("categorical_crossentropy", np.eye(3)[labels])):
        weighted = Sequential([Dense(3, activation="softmax", input_shape=(3,))], seed=2)
        weighted.compile(optimizer=optimizers.SGD(learning_rate=0.5), loss=loss)
        explicit = Sequential([Dense(3, activation="softmax", input_shape=(3,))], seed=2)
        explicit.compile(optimizer=optimizers.SGD(learning_rate=0.5), loss=loss)
        weighted.fit(x, y, epochs=2, batch_size=8, verbose=0, class_weight={2: 5.0})   # classes 0, 1 weigh 1
        explicit.fit(x, y, epochs=2, batch_size=8, verbose=0, sample_weight=np.where(labels == 2, 5.0, 1.0))
        for a, b in zip(weighted.get_weights(), explicit.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_l2_kernel_regularizer_joins_loss_and_gradient():
    x, y = linear_data()
    model = linear_model(optimizers.SGD(learning_rate=0.1), "mse", kernel_regularizer=regularizers.l2(0.05))
    w, b = [a.astype(np.float64) for a in model.get_weights()]
    p = x.astype(np.float64) @ w + b
    assert model.evaluate(x, y, verbose=0) == pytest.approx(np.mean((p - y) ** 2) + 0.05 * np.sum(w * w), rel=LOSS_TOLERANCE)
    gw, gb = numpy_linear_gradient(w, b, x, y, lambda p, t: 2 * (p - t))
    (w1, b1), = train_steps(model, x, y, 1)
    np.testing.assert_allclose(w1, w - 0.1 * (gw + 2 * 0.05 * w), atol=WEIGHT_TOLERANCE)
    np.testing.assert_allclose(b1, b - 0.1 * gb, atol=WEIGHT_TOLERANCE)   # biases are not regularised


# Optimizers -----------------------------------------------------------------------------------------------------

def reference_steps(update, x, y, w, b, steps, state):
    """Full-batch MSE steps with `update(param, grad, state, key, step)` in float64."""
    out = []
    for t in range(steps):
        gw, gb = numpy_linear_gradient(w, b, x, y, lambda p, q: 2 * (p - q))
        w, b = update(w, gw, state, "w", t), update(b, gb, state, "b", t)
        out.append((w, b))
    return out


def nesterov(lr, momentum):
    def update(p, g, state, key, t):   # Keras: m = μm − lr·g; p += μm − lr·g (torch's form, rescaled)
        m = momentum * state.get(key, 0) - lr * g
        state[key] = m
        return p + momentum * m - lr * g
    return update


def adamw(lr, decay, beta1=0.9, beta2=0.999, eps=1e-7):
    def update(p, g, state, key, t):
        m, v = state.get(key, (0, 0))
        p = p - lr * decay * p
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
        state[key] = (m, v)
        alpha = lr * np.sqrt(1 - beta2 ** (t + 1)) / (1 - beta1 ** (t + 1))
        return p - alpha * m / (np.sqrt(v) + eps)
    return update


def rmsprop(lr, rho, momentum, centered, eps=1e-7):
    def update(p, g, state, key, t):
        v, mom, mean = state.get(key, (0, 0, 0))
        v = rho * v + (1 - rho) * g * g
        mean = rho * mean + (1 - rho) * g if centered else mean
        increment = lr * g / np.sqrt(v - mean * mean + eps if centered else v + eps)
        mom = momentum * mom + increment
        state[key] = (v, mom, mean)
        return p - (mom if momentum > 0 else increment)
    return update


@pytest.mark.parametrize("optimizer, update", [
    (optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True), nesterov(0.05, 0.9)),
    (optimizers.AdamW(learning_rate=0.1, weight_decay=0.05), adamw(0.1, 0.05)),
    (optimizers.RMSprop(learning_rate=0.01, rho=0.8), rmsprop(0.01, 0.8, 0.0, False)),
    (optimizers.RMSprop(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True), rmsprop(0.01, 0.8, 0.5, True)),
], ids=["sgd-nesterov", "adamw", "rmsprop", "rmsprop-centered-momentum"])
def test_optimizer_steps_match_keras_formulas(optimizer, update):
    x, y = linear_data()
    model = linear_model(optimizer, "mse")
    w, b = [a.astype(np.float64) for a in model.get_weights()]
    for (w1, b1), (w2, b2) in zip(train_steps(model, x, y, 4), reference_steps(update, x, y, w, b, 4, {})):
        np.testing.assert_allclose(w1, w2, atol=WEIGHT_TOLERANCE)
        np.testing.assert_allclose(b1, b2, atol=WEIGHT_TOLERANCE)


@pytest.mark.parametrize("schedule", [
    schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5),
    schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5, staircase=True),
    schedules.PiecewiseConstantDecay([1, 2], [0.05, 0.02, 0.01]),
    schedules.CosineDecay(0.05, decay_steps=3, alpha=0.1),
    schedules.CosineDecay(0.0, decay_steps=3, warmup_target=0.05, warmup_steps=2),
    schedules.InverseTimeDecay(0.05, decay_steps=1, decay_rate=0.5),
], ids=["exponential", "exponential-staircase", "piecewise", "cosine", "cosine-warmup", "inverse-time"])
def test_learning_rate_schedules_apply_per_step(schedule):
    x, y = linear_data()
    model = linear_model(optimizers.SGD(learning_rate=schedule), "mse")
    w, b = [a.astype(np.float64) for a in model.get_weights()]
    plain = lambda p, g, state, key, t: p - schedule(t) * g   # Keras: step t uses schedule(t), t from 0
    for (w1, b1), (w2, b2) in zip(train_steps(model, x, y, 5), reference_steps(plain, x, y, w, b, 5, {})):
        np.testing.assert_allclose(w1, w2, atol=WEIGHT_TOLERANCE)
        np.testing.assert_allclose(b1, b2, atol=WEIGHT_TOLERANCE)
    assert model.optimizer.learning_rate == pytest.approx(schedule(5), rel=1e-6, abs=1e-9)
    with pytest.raises(LatheError, match="schedule"):
        model.optimizer.learning_rate = 0.1


@pytest.mark.parametrize("clip", [{"clipnorm": 0.5}, {"clipvalue": 0.2}, {"global_clipnorm": 0.5}])
def test_gradient_clipping_matches_keras(clip):
    x, y = linear_data()
    model = linear_model(optimizers.SGD(learning_rate=0.1, **clip), "mse")
    w, b = [a.astype(np.float64) for a in model.get_weights()]
    gw, gb = numpy_linear_gradient(w, b, x, y, lambda p, t: 2 * (p - t))
    if "clipnorm" in clip:
        gw, gb = [g * 0.5 / max(np.linalg.norm(g), 0.5) for g in (gw, gb)]
    elif "clipvalue" in clip:
        gw, gb = np.clip(gw, -0.2, 0.2), np.clip(gb, -0.2, 0.2)
    else:
        total = np.sqrt(np.sum(gw ** 2) + np.sum(gb ** 2))
        gw, gb = gw * 0.5 / max(total, 0.5), gb * 0.5 / max(total, 0.5)
    (w1, b1), = train_steps(model, x, y, 1)
    np.testing.assert_allclose(w1, w - 0.1 * gw, atol=WEIGHT_TOLERANCE)
    np.testing.assert_allclose(b1, b - 0.1 * gb, atol=WEIGHT_TOLERANCE)
    with pytest.raises(LatheError, match="only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


# Metrics --------------------------------------------------------------------------------------------------------

def test_binary_metrics_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = ((x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.8, size=400)) > 0.3).astype(np.float32)[:, None]
    model = Sequential([Dense(1, activation="sigmoid", input_shape=(3,))], seed=1)
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["precision", "recall", "auc", metrics.F1Score(threshold=0.5), "binary_accuracy", "mae", "rmse"])
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    p = model.predict(x)[:, 0]
    predicted = (p > 0.5).astype(int)
    assert logs["precision"] == pytest.approx(sk.precision_score(y[:, 0], predicted), abs=1e-12)
    assert logs["recall"] == pytest.approx(sk.recall_score(y[:, 0], predicted), abs=1e-12)
    assert logs["f1_score"] == pytest.approx(sk.f1_score(y[:, 0], predicted), abs=1e-12)
    assert logs["binary_accuracy"] == pytest.approx(np.mean(predicted == y[:, 0]), abs=1e-12)
    assert logs["mae"] == pytest.approx(np.mean(np.abs(p - y[:, 0])), rel=1e-5)
    assert logs["rmse"] == pytest.approx(np.sqrt(np.mean((p - y[:, 0]) ** 2)), rel=1e-5)
    # Keras's 200-threshold trapezoid against the exact AUC: within 5e-3 (the discretisation).
    assert logs["auc"] == pytest.approx(sk.roc_auc_score(y[:, 0], p), abs=5e-3)
    # Keras's thresholds, written out in numpy: the same number to float64 rounding.
    thresholds = np.concatenate([[-1e-7], np.arange(1, 199) / 199.0, [1 + 1e-7]])
    positive = p[None, :] > thresholds.astype(np.float32)[:, None]
    tp, fp = (positive & (y[:, 0] > 0.5)).sum(1), (positive & (y[:, 0] <= 0.5)).sum(1)
    tpr, fpr = tp / (y > 0.5).sum(), fp / (y <= 0.5).sum()
    assert logs["auc"] == pytest.approx(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2), abs=1e-9)
    history = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0).history
    assert {"precision", "recall", "auc", "f1_score", "val_auc", "val_precision"} <= set(history)


def test_multiclass_f1_averages_and_sparse_precision():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    labels = np.argmax(x[:, :3] + rng.normal(scale=0.7, size=(300, 3)), axis=1)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))], seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[metrics.F1Score(average="macro", name="f1_macro"), metrics.F1Score(average="weighted", name="f1_w"),
                           metrics.Precision(), metrics.Recall()])
    model.fit(x, labels, epochs=3, verbose=0)
    logs = model.evaluate(x, labels, verbose=0, return_dict=True)
    p = model.predict(x)
    predicted = np.argmax(p, axis=1)
    assert logs["f1_macro"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"), abs=1e-12)
    assert logs["f1_w"] == pytest.approx(sk.f1_score(labels, predicted, average="weighted"), abs=1e-12)
    # Precision/recall over every output at 0.5 against one-hot labels (what Keras computes for one-hot targets).
    onehot, positive = np.eye(3)[labels].ravel() > 0.5, p.ravel() > 0.5
    assert logs["precision"] == pytest.approx((positive & onehot).sum() / max(positive.sum(), 1), abs=1e-12)
    assert logs["recall"] == pytest.approx((positive & onehot).sum() / onehot.sum(), abs=1e-12)


# Checkpoints ----------------------------------------------------------------------------------------------------

def checkpoint_model():
    model = Sequential([Dense(16, activation="relu", input_shape=(3,), kernel_regularizer="l2"), Dropout(0.3),
                        Dense(1, activation="sigmoid")], seed=8)
    model.compile(optimizer=optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.01, 10, 0.7), clipnorm=1.0),
                  loss="binary_crossentropy", metrics=["auc"])
    return model


def test_checkpoint_resumes_bit_for_bit(tmp_path):
    x, y = linear_data(n=90)
    y = (y > 0).astype(np.float32)
    straight = checkpoint_model()
    full = straight.fit(x, y, epochs=2, batch_size=16, verbose=0, class_weight={1: 3.0}).history
    first = checkpoint_model()
    first.fit(x, y, epochs=1, batch_size=16, verbose=0, class_weight={1: 3.0},
              callbacks=[ModelCheckpoint(str(tmp_path / "epoch{epoch}.ckpt"), save_weights_only=True)])
    resumed = checkpoint_model()
    resumed.load_weights(tmp_path / "epoch1.ckpt")
    second = resumed.fit(x, y, epochs=1, batch_size=16, verbose=0, class_weight={1: 3.0}).history
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert second["loss"][0] == full["loss"][1] and second["auc"][0] == full["auc"][1]
    assert resumed.optimizer.learning_rate == straight.optimizer.learning_rate
    # save() with .ckpt writes the same kind of file; an uncompiled model restores weights only, with a warning.
    straight.save(tmp_path / "model.ckpt")
    bare = Sequential([Dense(16, activation="relu", input_shape=(3,), kernel_regularizer="l2"), Dropout(0.3),
                       Dense(1, activation="sigmoid")], seed=1)
    bare.build()
    with pytest.warns(UserWarning, match="optimizer state was not restored"):
        bare.load_weights(tmp_path / "model.ckpt")
    for a, b in zip(straight.get_weights(), bare.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_errors_are_clear(tmp_path):
    model = checkpoint_model()
    model.save_weights(tmp_path / "m.ckpt")
    other = Sequential([Dense(4, input_shape=(3,)), Dense(1)])
    other.compile(optimizer="adam", loss="mse")
    with pytest.raises(LatheError, match="checkpoint weight 'dense.*' has shape|checkpoint has no weight"):
        other.load_weights(tmp_path / "m.ckpt")
    sgd = checkpoint_model()
    sgd.compile(optimizer="sgd", loss="binary_crossentropy")
    with pytest.raises(LatheError, match="holds Adam state but the model is compiled with SGD"):
        sgd.load_weights(tmp_path / "m.ckpt")
    (tmp_path / "bad.ckpt").write_bytes(b"LATHECKP\x01\x00\x00\x00\x05\x00")
    with pytest.raises(LatheError, match="checkpoint: truncated"):
        model.load_weights(tmp_path / "bad.ckpt")
    with pytest.raises(LatheError, match="cannot open"):
        model.load_weights(tmp_path / "missing.ckpt")


# Bad input ------------------------------------------------------------------------------------------------------

def test_nan_target_and_diverging_loss_stop_with_last_good_weights():
    x, y = linear_data(n=64)
    model = linear_model(optimizers.SGD(learning_rate=0.01), "mse")
    poisoned = y.copy()
    poisoned[37, 0] = np.nan
    before = model.get_weights()
    with pytest.raises(LatheError, match=r"epoch 1, batch 3 of 4: target of sample 37 is not finite"):
        model.fit(x, poisoned, epochs=1, batch_size=16, shuffle=False, verbose=0)
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # A learning rate that overflows the weights: training stops naming the epoch and batch, weights stay finite.
    wild = linear_model(optimizers.SGD(learning_rate=1e30), "mse")
    with pytest.raises(LatheError, match=r"epoch \d+, batch \d+ of 4: .*(not finite|non-finite)") as error:
        wild.fit(x * 1e5, y, epochs=5, batch_size=16, verbose=0)
    assert "last good step" in str(error.value)
    assert all(np.isfinite(w).all() for w in wild.get_weights())


def test_bad_weights_are_clear():
    x, y = linear_data()
    model = linear_model("sgd", "mse")
    with pytest.raises(LatheError, match="sample_weight has 3 entries but x has 24 samples"):
        model.fit(x, y, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(LatheError, match="sample weight -1.0 of sample 0 is negative"):
        model.fit(x, y, sample_weight=-np.ones(len(x)), verbose=0)
    with pytest.raises(LatheError, match="class weight -2.0 of class 1"):
        model.fit(x, (y > 0).astype(np.float32), class_weight={1: -2.0}, verbose=0)
    with pytest.raises(LatheError, match="class_weight or sample_weight, not both"):
        model.fit(x, y, class_weight={0: 1.0}, sample_weight=np.ones(len(x)), verbose=0)
    with pytest.raises(LatheError, match="class_weight must map class indices"):
        model.fit(x, y, class_weight={"a": 1.0}, verbose=0)
