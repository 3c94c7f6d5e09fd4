"""A small GAN, trained alternately with lathe.keras, that learns to draw 8×8 synthetic scratch patches.

Real patches: a dark, slightly noisy background (−1 ± 0.1) crossed by one bright straight scratch (+1),
horizontal, vertical or diagonal, at a random place. The generator maps 8 normal numbers to a patch
(Dense → Reshape → Conv2DTranspose, tanh); the discriminator (Conv2D → Flatten → Dense, sigmoid) tells real
from generated. Each step:

    discriminator.train_on_batch(real + fake patches, 1 / 0 labels)
    gradient = discriminator.input_gradient(fake, ones)       # "call these real" (D not changed)
    generator.train_on_output_gradient(noise, gradient)      # G moves to fool D

At the end it prints the discriminator's accuracy on fresh real and generated patches (near 0.5 when the
two are hard to tell apart) and statistics of real, generated and untrained-generator patches: mean pixel,
bright-pixel fraction, and the fraction that "is a scratch" (bright pixels forming one straight line of at
least 6 pixels, with at most 2 stray bright pixels) — a check independent of the discriminator.

    python3 examples/python/gan_defect_patches.py [--steps 1500] [--seed 0]
"""

import argparse

import numpy as np

from lathe.keras.layers import Conv2D, Conv2DTranspose, Dense, Flatten, Reshape
from lathe.keras.models import Sequential
from lathe.keras.optimizers import Adam

SIZE, LATENT = 8, 8


def real_patches(n, rng):
    """`n` patches (n, 8, 8, 1) in [-1, 1] with one straight bright scratch each."""
    patches = -1 + 0.1 * rng.standard_normal((n, SIZE, SIZE, 1))
    for patch, kind, offset in zip(patches, rng.integers(0, 4, n), rng.integers(1, SIZE - 1, n)):
        index = np.arange(SIZE)
        if kind == 0:
            patch[offset, :, 0] = 1
        elif kind == 1:
            patch[:, offset, 0] = 1
        elif kind == 2:
            patch[index, index, 0] = 1
        else:
            patch[index, SIZE - 1 - index, 0] = 1
    return np.clip(patches, -1, 1).astype(np.float32)


def lines():
    """Every straight line of pixels of the patch: rows, columns and the two diagonals."""
    index = np.arange(SIZE)
    result = [(np.full(SIZE, r), index) for r in range(SIZE)] + [(index, np.full(SIZE, c)) for c in range(SIZE)]
    return result + [(index, index), (index, SIZE - 1 - index)]


LINES = lines()


def is_scratch(patch):
    """Bright pixels (> 0) make one straight line of at least 6 pixels, with at most 2 bright pixels off it."""
    bright = patch[:, :, 0] > 0
    total = bright.sum()
    return any(bright[r, c].sum() >= 6 and total - bright[r, c].sum() <= 2 for r, c in LINES)


def statistics(patches):
    """Mean pixel, fraction of bright pixels, fraction of patches that are a scratch."""
    return {"mean": float(patches.mean()), "bright": float((patches > 0).mean()),
            "scratch": float(np.mean([is_scratch(p) for p in patches]))}


def build(seed):
    generator = Sequential([Dense(4 * 4 * 16, activation="relu", input_shape=(LATENT,)), Reshape((4, 4, 16)),
                            Conv2DTranspose(1, 3, strides=2, padding="same", activation="tanh")], seed=seed)
    discriminator = Sequential([Conv2D(16, 3, strides=2, padding="same", activation="leaky_relu",
                                       input_shape=(SIZE, SIZE, 1)),
                                Flatten(), Dense(1, activation="sigmoid")], seed=seed + 1)
    discriminator.compile(optimizer=Adam(learning_rate=0.001, beta_1=0.5), loss="binary_crossentropy",
                          metrics=["accuracy"])
    # The generator's loss comes through the discriminator; compile sets its optimizer.
    generator.compile(optimizer=Adam(learning_rate=0.002, beta_1=0.5), loss="mse")
    return generator, discriminator


def train(steps=1500, batch=32, seed=0, log_every=0):
    """Trains a GAN; returns (generator, discriminator, untrained-generator patches)."""
    rng = np.random.default_rng(seed)
    generator, discriminator = build(seed)
    untrained = generator.predict(rng.standard_normal((256, LATENT)).astype(np.float32))
    ones, zeros = np.ones((batch, 1), np.float32), np.zeros((batch, 1), np.float32)
    for step in range(1, steps + 1):
        fake = generator.predict(rng.standard_normal((batch, LATENT)).astype(np.float32))
        d_loss, d_accuracy = discriminator.train_on_batch(np.concatenate([real_patches(batch, rng), fake]),
                                                          np.concatenate([ones, zeros]))
        noise = rng.standard_normal((batch, LATENT)).astype(np.float32)
        gradient = discriminator.input_gradient(generator.predict(noise), ones)
        generator.train_on_output_gradient(noise, gradient)
        if log_every and step % log_every == 0:
            print(f"step {step}: discriminator loss {d_loss:.3f}, accuracy {d_accuracy:.3f}", flush=True)
    return generator, discriminator, untrained


def report(generator, discriminator, untrained, seed=1):
    """Discriminator accuracy on fresh real and generated patches, and the statistics of each kind."""
    rng = np.random.default_rng(10_000 + seed)
    real = real_patches(256, rng)
    fake = generator.predict(rng.standard_normal((256, LATENT)).astype(np.float32))
    x = np.concatenate([real, fake])
    y = np.concatenate([np.ones((256, 1)), np.zeros((256, 1))]).astype(np.float32)
    accuracy = float(discriminator.evaluate(x, y, verbose=0)[1])
    result = {"discriminator_accuracy": accuracy, "real": statistics(real), "generated": statistics(fake),
              "untrained": statistics(untrained)}
    return result, fake


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generator, discriminator, untrained = train(args.steps, seed=args.seed, log_every=max(args.steps // 10, 1))
    result, fake = report(generator, discriminator, untrained)
    print(f"discriminator accuracy on fresh real + generated patches: {result['discriminator_accuracy']:.3f}")
    for kind in ("real", "generated", "untrained"):
        s = result[kind]
        print(f"{kind:>9}: mean pixel {s['mean']:+.3f}, bright fraction {s['bright']:.3f}, scratches {s['scratch']:.3f}")
    print("four generated patches (# bright, . dark):")
    for row in range(SIZE):
        print("   ".join("".join("#" if fake[i, row, c, 0] > 0 else "." for c in range(SIZE)) for i in range(4)))


if __name__ == "__main__":
    main()
