"""Helpers shared by the benchmark driver (run.py) and its fresh-process probe (probe.py).

Kept free of onnx and of both engines, so a probe only imports the engine it measures.
"""

import numpy as np


def make_feeds(inputs, batch, rng):
    """Random feeds {name: array} for `inputs` ([[name, shape, dtype], ...], None = batch dim).

    float inputs are uniform in [-1, 1); other types are zeros.
    """
    feeds = {}
    for name, shape, dtype in inputs:
        dims = tuple(batch if dim is None else dim for dim in shape)
        if np.dtype(dtype).kind == "f":
            feeds[name] = rng.uniform(-1.0, 1.0, size=dims).astype(dtype)
        else:
            feeds[name] = np.zeros(dims, dtype=dtype)
    return feeds


def ort_session(onnxruntime, model, threads):
    """An ONNX Runtime CPU session with `threads` intra-op threads, one inter-op thread, sequential.

    `model` is a path or the model's bytes. Graph optimisation stays at ORT's default (all).
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def resident_kb(field="VmRSS"):
    """A memory figure of this process in KiB from /proc/self/status: VmRSS (now) or VmHWM (peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0
