"""Keras metrics (`lathe.keras.metrics`), by name or object; accumulated in Lathe per epoch."""

from .._errors import LatheError, Status
from ._engine import UnsupportedError

#: Metric names Lathe computes, mapped to the history key it reports.
_NAMES = {"accuracy": "accuracy", "acc": "accuracy", "binary_accuracy": "binary_accuracy",
          "mae": "mae", "mean_absolute_error": "mae", "rmse": "rmse", "root_mean_squared_error": "rmse"}


class Metric:
    """A metric by its Lathe name (`engine_name`) and the history key Keras would use (`name`)."""

    engine_name = None

    def __init__(self, name=None, **kwargs):
        if self.engine_name is None:
            raise UnsupportedError(f"metric {type(self).__name__} is not supported by Lathe's training engine "
                                   f"(supported: {', '.join(sorted(set(_NAMES)))}); compute it from predict()")
        self.name = name or self.engine_name


class Accuracy(Metric):
    engine_name = "accuracy"


class CategoricalAccuracy(Metric):
    engine_name = "accuracy"


class SparseCategoricalAccuracy(Metric):
    engine_name = "accuracy"


class BinaryAccuracy(Metric):
    engine_name = "binary_accuracy"


class MeanAbsoluteError(Metric):
    engine_name = "mae"


class RootMeanSquaredError(Metric):
    engine_name = "rmse"


class Precision(Metric):
    """Not computed by the engine yet."""


class Recall(Metric):
    """Not computed by the engine yet."""


class AUC(Metric):
    """Not computed by the engine yet."""


class F1Score(Metric):
    """Not computed by the engine yet."""


def get(identifier):
    """(engine name, history key) for a metric name or object."""
    if isinstance(identifier, Metric):
        return identifier.engine_name, identifier.name
    if isinstance(identifier, str):
        if identifier not in _NAMES:
            raise LatheError(Status.INVALID_ARGUMENT,
                             f"unknown or unsupported metric '{identifier}' (supported: {', '.join(sorted(_NAMES))})")
        return _NAMES[identifier], _NAMES[identifier]
    raise UnsupportedError(f"metric {identifier!r} is not supported: use a name or a lathe.keras.metrics object")


__all__ = ["AUC", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "F1Score", "MeanAbsoluteError", "Metric",
           "Precision", "Recall", "RootMeanSquaredError", "SparseCategoricalAccuracy", "get"]
