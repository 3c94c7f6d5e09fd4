"""Step-by-step training (train_on_batch, input_gradient, train_on_output_gradient) and the GAN example.

- input_gradient equals central finite differences of evaluate's loss (float64 sums over float32 passes,
  eps 1e-2, tolerance 2e-3 absolute on gradients of order 0.1);
- train_on_output_gradient with the MSE gradient 2(ŷ − y)/size makes the same SGD step as train_on_batch
  (weights equal within 1e-6), and train_on_batch's loss equals evaluate's before the step;
- examples/python/gan_defect_patches.py, reduced to 400 steps, learns: generated patches' mean pixel and
  bright-pixel fraction come within 0.15 / 0.06 of the real ones (the untrained generator is off by more
  than 0.4 / 0.1), some generated patches are scratches, and the discriminator cannot tell them apart
  perfectly (accuracy <= 0.9)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from lathe import LatheError
from lathe.keras.layers import Dense
from lathe.keras.models import Sequential
from lathe.keras.optimizers import SGD

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "python"))
import gan_defect_patches as gan  # noqa: E402


def small_model(seed=3):
    model = Sequential([Dense(5, activation="tanh", input_shape=(4,)), Dense(2)], seed=seed)
    model.compile(optimizer=SGD(learning_rate=0.1), loss="mse")
    return model


def test_input_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    model = small_model()
    x = rng.normal(size=(6, 4)).astype(np.float32)
    y = rng.normal(size=(6, 2)).astype(np.float32)
    before = model.get_weights()
    analytic = model.input_gradient(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    numeric = np.zeros_like(analytic)
    eps = 1e-2
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric[index] = (np.float64(model.evaluate(plus, y, verbose=0)) - model.evaluate(minus, y, verbose=0)) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, atol=2e-3)
    assert np.abs(analytic).max() > 1e-2


def test_output_gradient_step_equals_train_on_batch():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    a, b = small_model(), small_model()
    loss_before = a.evaluate(x, y, verbose=0)
    assert a.train_on_batch(x, y) == pytest.approx(loss_before, rel=1e-6)
    prediction = b.predict(x)
    b.train_on_output_gradient(x, 2 * (prediction - y) / prediction.size)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-6)
    assert a.evaluate(x, y, verbose=0) < loss_before


def test_step_errors_are_clear():
    model = small_model()
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(LatheError, match="output_gradient has shape \\(3, 3\\), the output for x has \\(3, 2\\)"):
        model.train_on_output_gradient(x, np.zeros((3, 3)))
    with pytest.raises(LatheError, match="x has 3 samples but y has 2"):
        model.train_on_batch(x, np.zeros((2, 2)))
    bad = x.copy()
    bad[1, 1] = np.nan
    before = model.get_weights()
    with pytest.raises(LatheError, match="non-finite"):
        model.train_on_batch(bad, np.zeros((3, 2)))
    assert all(np.array_equal(p, q) for p, q in zip(before, model.get_weights()))
    with pytest.raises(LatheError, match="compile"):
        Sequential([Dense(1, input_shape=(2,))]).train_on_batch(np.zeros((1, 2)), np.zeros((1, 1)))


def test_gan_example_learns_scratch_patches():
    generator, discriminator, untrained = gan.train(steps=400, seed=0)
    result, _ = gan.report(generator, discriminator, untrained)
    print(f"\nGAN after 400 steps: {result}")
    real, generated, start = result["real"], result["generated"], result["untrained"]
    assert abs(start["mean"] - real["mean"]) > 0.4 and abs(start["bright"] - real["bright"]) > 0.1
    assert abs(generated["mean"] - real["mean"]) < 0.15
    assert abs(generated["bright"] - real["bright"]) < 0.06
    assert generated["scratch"] > 0 and real["scratch"] == 1
    assert result["discriminator_accuracy"] <= 0.9
