"""Keras optimizers (`lathe.keras.optimizers`): SGD, Adam, AdamW, RMSprop with Keras's defaults, learning-rate
schedules (`lathe.keras.optimizers.schedules`) and gradient clipping (`clipnorm`, `clipvalue`, `global_clipnorm`)."""

import json
import sys

from . import _schedules as schedules

from .._errors import LatheError, Status
from ._engine import UnsupportedError


class Optimizer:
    """An optimizer config; the update itself runs in Lathe."""

    def __init__(self, learning_rate, global_clipnorm=None, clipnorm=None, clipvalue=None, weight_decay=None,
                 use_ema=False, name=None, **kwargs):
        if isinstance(learning_rate, dict):
            learning_rate = getattr(schedules, str(learning_rate.get("class_name")), lambda **_: None)(
                **learning_rate.get("config", {})) or learning_rate
        if not isinstance(learning_rate, (int, float, schedules.LearningRateSchedule)):
            raise UnsupportedError(f"{type(self).__name__}: learning_rate must be a number or a "
                                   f"lathe.keras.optimizers.schedules schedule, got {learning_rate!r}")
        if sum(value is not None for value in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise LatheError(Status.INVALID_ARGUMENT, f"{type(self).__name__}: only one of clipnorm, clipvalue and "
                                                      "global_clipnorm can be set")
        if kwargs:
            raise UnsupportedError(f"{type(self).__name__}: unsupported arguments {sorted(kwargs)}")
        self.schedule = learning_rate if isinstance(learning_rate, schedules.LearningRateSchedule) else None
        self._learning_rate = self.schedule(0) if self.schedule else float(learning_rate)
        self._engine = None
        self.clipnorm, self.clipvalue = clipnorm, clipvalue
        self.global_clipnorm = global_clipnorm
        self.weight_decay = weight_decay
        self.use_ema = use_ema
        self.name = name or type(self).__name__.lower()

    @property
    def learning_rate(self):
        """The step size of the next step (a schedule's at the current step); while a compiled model uses this
        optimizer, read from and written to Lathe. A scheduled rate cannot be set."""
        return self._engine.learning_rate if self._engine is not None else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if self.schedule is not None:
            raise LatheError(Status.INVALID_STATE, f"{type(self).__name__} follows a learning-rate schedule; "
                                                   "its learning rate cannot be set")
        self._learning_rate = float(value)
        if self._engine is not None:
            self._engine.learning_rate = self._learning_rate

    def get_config(self):
        """Keras's config keys, as include/lathe_train.h reads them."""
        rate = self.schedule.spec() if self.schedule else self.learning_rate
        config = {"learning_rate": rate, "global_clipnorm": self.global_clipnorm, "clipnorm": self.clipnorm,
                  "clipvalue": self.clipvalue, "weight_decay": self.weight_decay, "use_ema": self.use_ema}
        config.update(self._config())
        return config

    def _config(self):
        return {}

    def to_json(self):
        """The optimizer as the JSON lathe_sequential_compile takes."""
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()})


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), amsgrad

    def _config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """RMSprop."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), centered

    def _config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(identifier):
    """An Optimizer from a name ("adam"), an Optimizer, or a Keras-style config dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise LatheError(Status.INVALID_ARGUMENT, f"unknown optimizer '{identifier}' (sgd, adam, adamw, rmsprop)")
        return cls()
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(str(identifier.get("class_name", "")).lower())
        if cls is None:
            raise LatheError(Status.INVALID_ARGUMENT, f"unknown optimizer {identifier!r}")
        return cls(**identifier.get("config", {}))
    raise LatheError(Status.INVALID_ARGUMENT, f"cannot use {identifier!r} as an optimizer")


# `from lathe.keras.optimizers.schedules import ExponentialDecay` works as in Keras.
sys.modules[__name__ + ".schedules"] = schedules

__all__ = ["Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "get", "schedules"]
