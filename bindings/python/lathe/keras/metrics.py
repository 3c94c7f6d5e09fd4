"""Keras metrics (`lathe.keras.metrics`), by name or object; accumulated in Lathe per epoch.

Precision, Recall, F1Score and AUC treat every output as a binary decision, as Keras does: predicted
positive when the output exceeds the threshold, truly positive when the target exceeds 0.5 (class
indices of sparse targets expanded to one-hot rows). For one sigmoid output they are the binary metrics.
`AUC` is Keras's: the ROC curve at `num_thresholds` evenly spaced thresholds, by the trapezoidal rule.
`F1Score` reports one number: Keras's `average=None` (a per-class vector) is reported micro-averaged
(the same for one output); `threshold=None` predicts each row's argmax (one output: p > 0.5).
Metrics are not weighted by `sample_weight` or `class_weight` (as Keras's `metrics=`).
"""

import json

from .._errors import LatheError, Status
from ._engine import UnsupportedError

#: Metric names Lathe computes, mapped to the history key it reports.
_NAMES = {"accuracy": "accuracy", "acc": "accuracy", "binary_accuracy": "binary_accuracy",
          "mae": "mae", "mean_absolute_error": "mae", "rmse": "rmse", "root_mean_squared_error": "rmse",
          "precision": "precision", "recall": "recall", "f1": "f1_score", "f1_score": "f1_score", "auc": "auc"}


class Metric:
    """A metric: what the engine computes (`engine_spec`: a name or a JSON config), the key the engine
    reports it under (`engine_name`) and the history key Keras would use (`name`)."""

    engine_name = None

    def __init__(self, name=None, dtype=None):
        self.name = name or self.engine_name

    @property
    def engine_spec(self):
        """The name or JSON config lathe_sequential_compile takes."""
        return self.engine_name

    def _json(self, config):
        return json.dumps({"class_name": type(self).__name__, "config": config})


class Accuracy(Metric):
    engine_name = "accuracy"


class CategoricalAccuracy(Metric):
    engine_name = "accuracy"


class SparseCategoricalAccuracy(Metric):
    engine_name = "accuracy"


class BinaryAccuracy(Metric):
    engine_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        super().__init__(name, dtype)
        if threshold != 0.5:
            raise UnsupportedError("BinaryAccuracy: only threshold=0.5 is supported")


class MeanAbsoluteError(Metric):
    engine_name = "mae"


class RootMeanSquaredError(Metric):
    engine_name = "rmse"

    def __init__(self, name=None, dtype=None):
        super().__init__(name or "root_mean_squared_error", dtype)


class _Thresholded(Metric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name, dtype)
        for key, value in (("top_k", top_k), ("class_id", class_id)):
            if value is not None:
                raise UnsupportedError(f"{type(self).__name__}: {key} is not supported")
        if isinstance(thresholds, (list, tuple)):
            if len(thresholds) != 1:
                raise UnsupportedError(f"{type(self).__name__}: only one threshold is supported, got {thresholds}")
            thresholds = thresholds[0]
        self.thresholds = 0.5 if thresholds is None else float(thresholds)

    @property
    def engine_spec(self):
        return self._json({"thresholds": self.thresholds})


class Precision(_Thresholded):
    """TP / (TP + FP) at `thresholds` (default 0.5)."""
    engine_name = "precision"


class Recall(_Thresholded):
    """TP / (TP + FN) at `thresholds` (default 0.5)."""
    engine_name = "recall"


class F1Score(Metric):
    """F1 over the output columns, combined as `average` ("micro", "macro", "weighted"; None = micro)."""
    engine_name = "f1_score"

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(name, dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise LatheError(Status.INVALID_ARGUMENT, f"F1Score: average must be None, 'micro', 'macro' or 'weighted', got {average!r}")
        self.average = average or "micro"
        self.threshold = None if threshold is None else float(threshold)

    @property
    def engine_spec(self):
        return self._json({"average": self.average, "threshold": self.threshold})


class AUC(Metric):
    """Area under the ROC curve, Keras's way (`num_thresholds` thresholds, trapezoidal rule)."""
    engine_name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        super().__init__(name, dtype)
        for key, value, default in (("curve", curve, "ROC"), ("summation_method", summation_method, "interpolation"),
                                    ("thresholds", thresholds, None), ("multi_label", multi_label, False),
                                    ("num_labels", num_labels, None), ("label_weights", label_weights, None),
                                    ("from_logits", from_logits, False)):
            if value != default:
                raise UnsupportedError(f"AUC: {key}={value!r} is not supported (only {default!r})")
        self.num_thresholds = int(num_thresholds)

    @property
    def engine_spec(self):
        return self._json({"num_thresholds": self.num_thresholds})


def get(identifier):
    """(engine spec, engine key, history key) for a metric name or object."""
    if isinstance(identifier, Metric):
        return identifier.engine_spec, identifier.engine_name, identifier.name
    if isinstance(identifier, str):
        if identifier not in _NAMES:
            raise LatheError(Status.INVALID_ARGUMENT,
                             f"unknown or unsupported metric '{identifier}' (supported: {', '.join(sorted(_NAMES))})")
        return identifier, _NAMES[identifier], _NAMES[identifier]
    raise UnsupportedError(f"metric {identifier!r} is not supported: use a name or a lathe.keras.metrics object")


__all__ = ["AUC", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "F1Score", "MeanAbsoluteError", "Metric",
           "Precision", "Recall", "RootMeanSquaredError", "SparseCategoricalAccuracy", "get"]
