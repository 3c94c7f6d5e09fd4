"""Step-by-step training for lathe.keras models: Keras's `train_on_batch`, and the two calls that chain
models for alternating training such as a GAN's (`input_gradient`, `train_on_output_gradient`).

    d_loss = discriminator.train_on_batch(np.concatenate([real, fake]), labels)
    grad = discriminator.input_gradient(generator.predict(noise), np.ones((n, 1)))   # D unchanged
    generator.train_on_output_gradient(noise, grad)        # G learns to fool D

Over lathe_sequential_train_on_batch, lathe_sequential_input_gradient and
lathe_sequential_train_on_output_gradient (include/lathe_train.h)."""

import ctypes
import json

import numpy as np

from .._errors import LatheError, Status
from .._native import lib
from ._engine import array_arguments, as_floats, check


def _declare():
    status, handle = ctypes.c_int32, ctypes.c_void_p
    floats = ctypes.POINTER(ctypes.c_float)
    array = [floats, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t]
    signatures = {
        "lathe_sequential_train_on_batch": [handle] + array * 2 + [ctypes.POINTER(ctypes.c_char_p)],
        "lathe_sequential_input_gradient": [handle] + array * 2 + [floats, ctypes.c_size_t],
        "lathe_sequential_train_on_output_gradient": [handle] + array + [floats, ctypes.c_size_t],
    }
    missing = [name for name in signatures if not hasattr(lib, name)]
    if missing:
        raise ImportError(f"the loaded liblathe lacks {', '.join(missing)}; rebuild it")
    for name, argtypes in signatures.items():
        getattr(lib, name).restype = status
        getattr(lib, name).argtypes = argtypes


_declare()


class StepTraining:
    """The step-by-step methods of `Sequential` (a mixin over its engine, inputs and targets)."""

    def _step_model(self, what, x):
        self._require_compiled(what)
        x = self._inputs(x)
        if self._engine is None:
            raise LatheError(Status.INVALID_STATE, f"{what}: the model is not built")
        return x

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns its loss (and metrics, as `evaluate` does), computed
        before the step."""
        if sample_weight is not None or class_weight is not None:
            raise LatheError(Status.UNSUPPORTED_OP, "train_on_batch: sample_weight and class_weight are not supported")
        if y is None:
            raise LatheError(Status.INVALID_ARGUMENT, "train_on_batch needs targets y")
        x = self._step_model("train_on_batch", x)
        y = self._targets(y)
        logs = ctypes.c_char_p()
        check(lib.lathe_sequential_train_on_batch(self._engine._handle, *array_arguments(x), *array_arguments(y),
                                                  ctypes.byref(logs)))
        logs = self._rename(json.loads(logs.value.decode()))
        if return_dict:
            return logs
        if not self._metric_names:
            return logs["loss"]
        return [logs["loss"]] + [logs[user] for _, user in self._metric_names]

    def input_gradient(self, x, y):
        """dLoss/dx of the compiled loss (the batch mean) with targets `y`, in inference mode; the model is
        not changed. Shaped like `x`."""
        x = self._step_model("input_gradient", x)
        y = self._targets(y)
        out = np.empty_like(x)
        check(lib.lathe_sequential_input_gradient(self._engine._handle, *array_arguments(x), *array_arguments(y),
                                                  out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size))
        return out

    def train_on_output_gradient(self, x, output_gradient):
        """One optimizer step where dLoss/d(output for `x`) is `output_gradient` (e.g. another model's
        `input_gradient`); the compiled loss is not used."""
        x = self._step_model("train_on_output_gradient", x)
        gradient = as_floats(output_gradient, "output_gradient")
        expected = (x.shape[0],) + tuple(self._summary["output_shape"])
        if gradient.shape != expected:
            raise LatheError(Status.SHAPE_MISMATCH,
                             f"output_gradient has shape {gradient.shape}, the output for x has {expected}")
        check(lib.lathe_sequential_train_on_output_gradient(
            self._engine._handle, *array_arguments(x), gradient.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            gradient.size))
