"""Keras optimizers (`lathe.keras.optimizers`): SGD, Adam, AdamW, RMSprop with Keras's defaults."""

import json

from .._errors import LatheError, Status
from ._engine import UnsupportedError


class Optimizer:
    """An optimizer config; the update itself runs in Lathe."""

    def __init__(self, learning_rate, global_clipnorm=None, clipnorm=None, clipvalue=None, weight_decay=None,
                 use_ema=False, name=None, **kwargs):
        if callable(learning_rate) or not isinstance(learning_rate, (int, float)):
            raise UnsupportedError(f"{type(self).__name__}: learning-rate schedules are not supported; pass a number "
                                   "(use callbacks.ReduceLROnPlateau or LearningRateScheduler to change it)")
        for key, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
            if value is not None:
                raise UnsupportedError(f"{type(self).__name__}: {key} is not supported (global_clipnorm is)")
        if kwargs:
            raise UnsupportedError(f"{type(self).__name__}: unsupported arguments {sorted(kwargs)}")
        self._learning_rate = float(learning_rate)
        self._engine = None
        self.global_clipnorm = global_clipnorm
        self.weight_decay = weight_decay
        self.use_ema = use_ema
        self.name = name or type(self).__name__.lower()

    @property
    def learning_rate(self):
        """The step size; while a compiled model uses this optimizer, read from and written to Lathe."""
        return self._engine.learning_rate if self._engine is not None else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = float(value)
        if self._engine is not None:
            self._engine.learning_rate = self._learning_rate

    def get_config(self):
        """Keras's config keys, as include/lathe_train.h reads them."""
        config = {"learning_rate": self.learning_rate, "global_clipnorm": self.global_clipnorm,
                  "weight_decay": self.weight_decay, "use_ema": self.use_ema}
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


__all__ = ["Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "get"]
