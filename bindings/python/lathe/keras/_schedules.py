"""Keras learning-rate schedules (`lathe.keras.optimizers.schedules`), applied per optimizer step by Lathe.

Pass one as an optimizer's `learning_rate`; calling it (`schedule(step)`) gives Keras's formula in
numpy, the same the engine evaluates (in float64, rounded to float32).
"""

import math

from .._errors import LatheError, Status


class LearningRateSchedule:
    """A schedule: its Keras class name and config."""

    def get_config(self):
        raise NotImplementedError

    def spec(self):
        """The Keras config form the engine reads."""
        return {"class_name": type(self).__name__, "config": self.get_config()}


def _positive_steps(name, decay_steps):
    if int(decay_steps) <= 0:
        raise LatheError(Status.INVALID_ARGUMENT, f"{name}: decay_steps must be positive, got {decay_steps}")
    return int(decay_steps)


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate · decay_rate^(step / decay_steps)` (exponent floored with `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive_steps("ExponentialDecay", decay_steps)
        self.decay_rate, self.staircase, self.name = float(decay_rate), bool(staircase), name

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase else p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate · step / decay_steps)` (quotient floored with `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive_steps("InverseTimeDecay", decay_steps)
        self.decay_rate, self.staircase, self.name = float(decay_rate), bool(staircase), name

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate / (1 + self.decay_rate * (math.floor(p) if self.staircase else p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` while step <= boundaries[0], `values[i]` while boundaries[i-1] < step <= boundaries[i], then
    the last value."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        self.boundaries, self.values, self.name = [float(b) for b in boundaries], [float(v) for v in values], name
        if len(self.values) != len(self.boundaries) + 1:
            raise LatheError(Status.INVALID_ARGUMENT, "PiecewiseConstantDecay: values needs one more entry than boundaries")

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}


class CosineDecay(LearningRateSchedule):
    """Cosine decay to `alpha` times the start over `decay_steps`, after an optional linear warm-up of
    `warmup_steps` from `initial_learning_rate` to `warmup_target`."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive_steps("CosineDecay", decay_steps)
        self.alpha, self.name = float(alpha), name
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        def decayed(s, start):
            return start * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * s / self.decay_steps)) + self.alpha)
        if self.warmup_target is None:
            return decayed(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            return (self.warmup_target - self.initial_learning_rate) * step / self.warmup_steps + self.initial_learning_rate
        return decayed(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


__all__ = ["CosineDecay", "ExponentialDecay", "InverseTimeDecay", "LearningRateSchedule", "PiecewiseConstantDecay"]
