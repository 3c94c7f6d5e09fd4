#!/usr/bin/env python3
"""Visual quality inspection with Lathe from Python: classify camera frames of parts with a
defect-inspection CNN and print each frame's class probabilities.

Usage: python3 examples/python/inspect_parts.py MODEL.onnx

The frames are synthetic 28x28 grey images (a clean surface, one with a scratch, one with a dent,
one with a stain) standing in for what a line camera delivers.
"""
import sys

import numpy as np

import lathe

CLASSES = ["ok", "scratch", "dent", "stain"]


def synthetic_frames(batch_dim: int) -> np.ndarray:
    """Four grey-level frames shaped [4, 1, 28, 28], float32 in [0, 1]."""
    rng = np.random.default_rng(0)
    frames = 0.5 + 0.02 * rng.standard_normal((4, 1, 28, 28))
    frames[1, 0, np.arange(4, 24), np.arange(6, 26)] = 0.95          # diagonal scratch
    yy, xx = np.mgrid[:28, :28]
    frames[2, 0][(yy - 14) ** 2 + (xx - 12) ** 2 < 16] = 0.15         # round dent
    frames[3, 0, 8:20, 10:22] -= 0.25 * rng.random((12, 12))           # blotchy stain
    return np.clip(frames, 0, 1).astype(np.float32)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    model = lathe.Model(sys.argv[1])
    (inp,), (out,) = model.inputs, model.outputs
    print(f"model: input {inp.name} {list(inp.shape)} {inp.dtype}, output {out.name} {list(out.shape)} {out.dtype}")
    frames = synthetic_frames(4)
    probabilities = model.predict(frames)
    names = CLASSES if probabilities.shape[1] == len(CLASSES) else [f"class {i}" for i in range(probabilities.shape[1])]
    for label, row in zip(["clean", "scratched", "dented", "stained"], probabilities):
        shown = "  ".join(f"{n}={p:.3f}" for n, p in zip(names, row))
        print(f"frame {label:9s} -> {names[int(np.argmax(row))]:7s} ({shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
