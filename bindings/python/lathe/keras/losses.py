"""Keras losses (`lathe.keras.losses`), by name or object; computed in Lathe."""

import json

from .._errors import LatheError, Status
from ._engine import UnsupportedError

#: Keras loss names Lathe computes, and the class each means.
_NAMES = {
    "mse": "MeanSquaredError", "mean_squared_error": "MeanSquaredError",
    "mae": "MeanAbsoluteError", "mean_absolute_error": "MeanAbsoluteError",
    "huber": "Huber", "huber_loss": "Huber",
    "binary_crossentropy": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
}


class Loss:
    """A loss config; the computation runs in Lathe."""

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size", **kwargs):
        if reduction not in ("sum_over_batch_size", "auto", None):
            raise UnsupportedError(f"{type(self).__name__}: reduction '{reduction}' is not supported")
        if kwargs:
            raise UnsupportedError(f"{type(self).__name__}: unsupported arguments {sorted(kwargs)}")
        self.from_logits = bool(from_logits)
        self.name = name

    def to_json(self):
        """The loss as the JSON lathe_sequential_compile takes."""
        return json.dumps({"class_name": type(self).__name__, "config": {"from_logits": self.from_logits}})

    @property
    def sparse(self):
        """Whether targets are class indices."""
        return False


class MeanSquaredError(Loss):
    """Mean of squared differences."""

    def to_json(self):
        return json.dumps({"class_name": "MeanSquaredError", "config": {}})


class MeanAbsoluteError(Loss):
    """Mean of absolute differences."""

    def to_json(self):
        return json.dumps({"class_name": "MeanAbsoluteError", "config": {}})


class Huber(Loss):
    """Keras's Huber loss: `0.5·e²` where `|e| ≤ delta`, else `delta·|e| − 0.5·delta²` (mean over outputs)."""

    def __init__(self, delta=1.0, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.delta = float(delta)
        if not self.delta > 0:
            raise LatheError(Status.INVALID_ARGUMENT, f"Huber: delta must be positive, got {delta}")

    def to_json(self):
        return json.dumps({"class_name": "Huber", "config": {"delta": self.delta}})


class BinaryCrossentropy(Loss):
    """Binary cross-entropy, from probabilities or (from_logits=True) logits."""


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot targets."""


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against class indices."""

    @property
    def sparse(self):
        return True


def get(identifier):
    """A Loss from a Keras name or a Loss object."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier)
        if cls is None:
            raise LatheError(Status.INVALID_ARGUMENT,
                             f"unknown loss '{identifier}' ({', '.join(sorted(_NAMES))})")
        return globals()[cls]()
    raise UnsupportedError(f"loss {identifier!r} is not supported: use a name or a lathe.keras.losses object "
                           "(custom loss functions cannot run inside Lathe's engine)")


__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "Huber", "Loss", "MeanAbsoluteError", "MeanSquaredError",
           "SparseCategoricalCrossentropy", "get"]
