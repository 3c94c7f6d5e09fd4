"""Keras layers, as specs for Lathe's training engine (`lathe.keras.layers`).

Shapes are Keras's: images channels-last `(H, W, C)`. Each layer turns into one entry of the JSON
spec of include/lathe_train.h; a layer or option the engine does not have is refused with
`UnsupportedError` (a `LatheError` and a `NotImplementedError`) naming it when the model is built.
"""

import itertools

_counters = {}


def _unique_name(base):
    """Keras-style automatic names: dense, dense_1, dense_2, ..."""
    counter = _counters.setdefault(base, itertools.count())
    index = next(counter)
    return base if index == 0 else f"{base}_{index}"


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() and i > 0 and not name[i - 1].isupper() else c.lower()
                   for i, c in enumerate(name))


def _activation_name(activation):
    """A Keras activation given by name, None, or a function from lathe.keras.activations-like callables."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", str(activation))


class Layer:
    """A layer: its Keras class name and config. Keyword arguments Keras accepts on every layer
    (`name`, `input_shape`, `batch_input_shape`, `input_dim`, `trainable`, `dtype`) are taken here."""

    def __init__(self, name=None, input_shape=None, batch_input_shape=None, input_dim=None, trainable=True,
                 dtype=None, **options):
        self.name = name or _unique_name(_snake(type(self).__name__))
        self.trainable = trainable
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if input_dim is not None:
            input_shape = (input_dim,)
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._options = {k: v for k, v in options.items()}

    def get_config(self):
        """The Keras config of this layer (what the JSON spec carries)."""
        config = {"name": self.name}
        config.update(self._config())
        for key, value in self._options.items():
            config[key] = list(value) if isinstance(value, tuple) else value
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        if not self.trainable:
            config["trainable"] = False
        return config

    def _config(self):
        return {}

    def spec(self):
        """The layer's entry of the model spec: `{"class_name": ..., "config": {...}}`."""
        return {"class_name": type(self).__name__, "config": self.get_config()}

    def __call__(self, inputs, *args, **kwargs):
        """Applies the layer to symbolic inputs (`x = Dense(8)(inp)`) to build a functional `Model`; a
        merge layer takes a list. Each layer object can be called once (shared layers are not supported)."""
        values = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not values or not all(isinstance(v, KerasTensor) for v in values):
            from ._engine import UnsupportedError
            raise UnsupportedError(f"{self.name}: layers are called on Input(...) values to build a Model, "
                                   f"not on data (got {type(inputs).__name__})")
        if args or kwargs:
            from ._engine import UnsupportedError
            raise UnsupportedError(f"{self.name}: call arguments {list(kwargs) or args} are not supported")
        if getattr(self, "_called", False):
            from ._engine import UnsupportedError
            raise UnsupportedError(f"{self.name}: the layer is already used in the graph (shared layers are not supported)")
        if not isinstance(self, _Merge) and len(values) != 1:
            from .._errors import LatheError, Status
            raise LatheError(Status.INVALID_ARGUMENT, f"{self.name} takes one input, got {len(values)}")
        self._called = True
        return KerasTensor(self, values)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class KerasTensor:
    """A symbolic value of a functional model: an `Input`, or a layer applied to such values."""

    def __init__(self, layer, inputs):
        self.layer, self.inputs = layer, inputs

    def __repr__(self):
        return f"<KerasTensor from {self.layer.name}>"


def Input(shape=None, batch_size=None, name=None, batch_shape=None, dtype=None, **kwargs):
    """`keras.Input`: a functional model's input of `shape` (without the batch axis; channels-last for
    images); also accepted by `Sequential.add` as the input declaration."""
    if shape is None and batch_shape is None:
        from .._errors import LatheError, Status
        raise LatheError(Status.INVALID_ARGUMENT, "Input needs a shape (without the batch axis)")
    return KerasTensor(InputLayer(shape=shape, batch_shape=batch_shape, name=name or _unique_name("input_layer")), [])


class _Merge(Layer):
    """A layer that merges two or more values (called on a list)."""


class Add(_Merge):
    """The sum of two or more values of the same shape."""


class Concatenate(_Merge):
    """Values joined along `axis` (the batch axis is 0; images channels-last, so -1 joins channels)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _config(self):
        return {"axis": self.axis}


class InputLayer(Layer):
    """Declares the input shape (without the batch axis)."""

    def __init__(self, shape=None, batch_size=None, name=None, input_shape=None, batch_shape=None, **kwargs):
        if batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        super().__init__(name=name, input_shape=shape if shape is not None else input_shape, **kwargs)


class Dense(Layer):
    """`activation(x · kernel + bias)` over `(N, features)`."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = _activation_name(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def _config(self):
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}


class Conv2D(Layer):
    """2-D convolution over channels-last images `(N, H, W, C)`."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.data_format = data_format
        self.dilation_rate = dilation_rate
        self.groups = groups
        self.activation = _activation_name(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def _config(self):
        return {"filters": self.filters, "kernel_size": _pair(self.kernel_size), "strides": _pair(self.strides),
                "padding": self.padding, "data_format": self.data_format, "dilation_rate": _pair(self.dilation_rate),
                "groups": self.groups, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding
        self.data_format = data_format

    def _config(self):
        return {"pool_size": _pair(self.pool_size), "strides": None if self.strides is None else _pair(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pooling2D):
    """Max pooling over channels-last images; strides default to the pool size."""


class AveragePooling2D(_Pooling2D):
    """Average pooling over channels-last images; strides default to the pool size."""


class GlobalAveragePooling2D(Layer):
    """`(N, H, W, C)` → `(N, C)`: the mean over height and width."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format
        self.keepdims = keepdims

    def _config(self):
        return {"data_format": self.data_format, "keepdims": self.keepdims}


class Flatten(Layer):
    """Each sample to a vector, in channels-last order (as Keras)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format

    def _config(self):
        return {"data_format": self.data_format}


class Dropout(Layer):
    """Zeroes a fraction `rate` of values during training; identity at inference and in exported ONNX."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.noise_shape = noise_shape

    def _config(self):
        return {"rate": self.rate, "noise_shape": self.noise_shape}


class Activation(Layer):
    """A standalone activation (relu, sigmoid, tanh, softmax, leaky_relu, linear)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activation_name(activation)

    def _config(self):
        return {"activation": self.activation}


class Conv1D(Layer):
    """1-D convolution over channels-last sequences `(N, T, C)`."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size, self.strides, self.padding = kernel_size, strides, padding
        self.data_format, self.dilation_rate, self.groups = data_format, dilation_rate, groups
        self.activation = _activation_name(activation)
        self.use_bias, self.kernel_initializer, self.bias_initializer = use_bias, kernel_initializer, bias_initializer

    def _config(self):
        return {"filters": self.filters, "kernel_size": _single(self.kernel_size), "strides": _single(self.strides),
                "padding": self.padding, "data_format": self.data_format, "dilation_rate": _single(self.dilation_rate),
                "groups": self.groups, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}


class Conv2DTranspose(Layer):
    """Transposed 2-D convolution over channels-last images `(N, H, W, C)` → `(N, H', W', filters)`, with
    Keras's output sizes ("valid": `H·s + max(k − s, 0)`, "same": `H·s`, or set by `output_padding`)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size, self.strides, self.padding = kernel_size, strides, padding
        self.output_padding, self.data_format, self.dilation_rate = output_padding, data_format, dilation_rate
        self.activation = _activation_name(activation)
        self.use_bias, self.kernel_initializer, self.bias_initializer = use_bias, kernel_initializer, bias_initializer

    def _config(self):
        return {"filters": self.filters, "kernel_size": _pair(self.kernel_size), "strides": _pair(self.strides),
                "padding": self.padding, "output_padding": _pair(self.output_padding), "data_format": self.data_format,
                "dilation_rate": _pair(self.dilation_rate), "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}


class MaxPooling1D(Layer):
    """Max over windows of a channels-last sequence `(N, T, C)`."""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides, self.padding, self.data_format = pool_size, strides, padding, data_format

    def _config(self):
        return {"pool_size": _single(self.pool_size), "strides": _single(self.strides), "padding": self.padding,
                "data_format": self.data_format}


class Reshape(Layer):
    """Each sample to `target_shape` (channels-last order, as Keras)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = [int(d) for d in target_shape]

    def _config(self):
        return {"target_shape": self.target_shape}


class BatchNormalization(Layer):
    """Normalises the last axis with batch statistics in training and moving statistics at inference."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.momentum, self.epsilon, self.center, self.scale = axis, float(momentum), float(epsilon), center, scale

    def _config(self):
        return {"axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}


class _Recurrent(Layer):
    """Options shared by LSTM and GRU; input `(N, T, F)`, output `(N, units)` or `(N, T, units)`."""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.options = {"activation": _activation_name(activation), "recurrent_activation": _activation_name(recurrent_activation),
                        "use_bias": use_bias, "dropout": float(dropout), "recurrent_dropout": float(recurrent_dropout),
                        "return_sequences": bool(return_sequences), "return_state": return_state,
                        "go_backwards": go_backwards, "stateful": stateful, "unroll": unroll}

    def _config(self):
        return {"units": self.units, **self.options}


class LSTM(_Recurrent):
    """Keras LSTM (Keras initialisers: Glorot kernel, orthogonal recurrent kernel, forget-gate bias 1)."""

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.options["unit_forget_bias"] = bool(unit_forget_bias)


class GRU(_Recurrent):
    """Keras GRU with `reset_after=True` (Keras's default)."""

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.options["reset_after"] = reset_after


class SimpleRNN(Layer):
    """`h_t = activation(x_t · kernel + h_{t−1} · recurrent_kernel + bias)` over `(N, T, F)` (ONNX RNN);
    output `(N, units)`, or `(N, T, units)` with `return_sequences`. Activations: tanh (default), relu,
    sigmoid, linear. Weights (get_weights): kernel `[1, units, F]`, recurrent kernel `[1, units, units]`,
    bias `[1, 2·units]` (ONNX's input and recurrent biases, summed in the cell)."""

    def __init__(self, units, activation="tanh", use_bias=True, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.options = {"activation": _activation_name(activation), "use_bias": use_bias, "dropout": float(dropout),
                        "recurrent_dropout": float(recurrent_dropout), "return_sequences": bool(return_sequences),
                        "return_state": return_state, "go_backwards": go_backwards, "stateful": stateful,
                        "unroll": unroll, "kernel_initializer": kernel_initializer,
                        "recurrent_initializer": recurrent_initializer, "bias_initializer": bias_initializer}

    def _config(self):
        return {"units": self.units, **self.options}


def _single(value):
    """An int from an int or a one-element sequence (None stays None)."""
    if value is None or isinstance(value, int):
        return value
    (only,) = value
    return int(only)


def _pair(value):
    """An int or a pair as a two-element list (None stays None)."""
    if value is None:
        return None
    if isinstance(value, int):
        return [value, value]
    return [int(v) for v in value]


__all__ = ["Activation", "Add", "Concatenate", "KerasTensor", "AveragePooling2D", "BatchNormalization", "Conv1D", "Conv2D", "Conv2DTranspose", "Dense",
           "Dropout", "Flatten", "GRU", "GlobalAveragePooling2D", "Input", "InputLayer", "LSTM", "Layer",
           "MaxPooling1D", "MaxPooling2D", "Reshape", "SimpleRNN"]
