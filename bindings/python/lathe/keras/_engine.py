"""The training functions of include/lathe_train.h through ctypes, and the numpy conversions they need."""

import ctypes
import json

import numpy as np

from .._errors import LatheError, Status
from .._native import lib

#: `int (*lathe_epoch_callback)(void *user_data, int epoch, const char *logs_json)`.
EPOCH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


class UnsupportedError(LatheError, NotImplementedError):
    """A layer, option, loss or metric Keras has but Lathe's training engine does not (LATHE_ERROR_UNSUPPORTED_OP)."""

    def __init__(self, message):
        super().__init__(Status.UNSUPPORTED_OP, message)


def _declare():
    """Sets argtypes/restype of the training functions."""
    status = ctypes.c_int32
    handle = ctypes.c_void_p
    floats = ctypes.POINTER(ctypes.c_float)
    shape = ctypes.POINTER(ctypes.c_int64)
    string_out = ctypes.POINTER(ctypes.c_char_p)
    array = [floats, shape, ctypes.c_size_t]
    signatures = {
        "lathe_sequential_create": (status, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]),
        "lathe_sequential_free": (None, [handle]),
        "lathe_sequential_compile": (
            status, [handle, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t]),
        "lathe_sequential_fit": (
            status, [handle] + array * 4 + [ctypes.c_int, ctypes.c_int, ctypes.c_double, ctypes.c_int, ctypes.c_uint64,
                                            EPOCH_CALLBACK, ctypes.c_void_p, string_out]),
        "lathe_sequential_fit_weighted": (
            status, [handle] + array * 4 + [floats, floats, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_double,
                                            ctypes.c_int, ctypes.c_uint64, EPOCH_CALLBACK, ctypes.c_void_p, string_out]),
        "lathe_sequential_evaluate": (status, [handle] + array * 2 + [ctypes.c_int, string_out]),
        "lathe_sequential_evaluate_weighted": (status, [handle] + array * 2 + [floats, ctypes.c_int, string_out]),
        "lathe_sequential_save_checkpoint": (status, [handle, ctypes.c_char_p]),
        "lathe_sequential_load_checkpoint": (status, [handle, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]),
        "lathe_sequential_predict": (status, [handle] + array + [ctypes.c_int, floats, ctypes.c_size_t]),
        "lathe_sequential_summary": (status, [handle, string_out]),
        "lathe_sequential_set_trainable": (status, [handle, ctypes.c_char_p, ctypes.c_int]),
        "lathe_sequential_weight_count": (status, [handle, ctypes.POINTER(ctypes.c_size_t)]),
        "lathe_sequential_get_weights": (status, [handle, floats, ctypes.c_size_t]),
        "lathe_sequential_set_weights": (status, [handle, floats, ctypes.c_size_t]),
        "lathe_sequential_set_learning_rate": (status, [handle, ctypes.c_double]),
        "lathe_sequential_learning_rate": (status, [handle, ctypes.POINTER(ctypes.c_double)]),
        "lathe_sequential_save_onnx": (status, [handle, ctypes.c_char_p]),
        "lathe_sequential_export_onnx": (
            status, [handle, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]),
        "lathe_buffer_free": (None, [ctypes.c_void_p]),
    }
    missing = [name for name in signatures if not hasattr(lib, name)]
    if missing:
        raise ImportError(f"the loaded liblathe lacks the training functions {', '.join(missing)}; rebuild it")
    for name, (restype, argtypes) in signatures.items():
        getattr(lib, name).restype = restype
        getattr(lib, name).argtypes = argtypes


_declare()


def check(status):
    """Raises LatheError (UnsupportedError for LATHE_ERROR_UNSUPPORTED_OP) unless `status` is LATHE_OK."""
    if status != 0:
        raw = lib.lathe_last_error()
        message = raw.decode("utf-8", "replace") if raw else ""
        if status == Status.UNSUPPORTED_OP:
            raise UnsupportedError(message)
        raise LatheError(status, message)


def as_floats(array, name):
    """`array` as a C-contiguous float32 numpy array with a sample axis; LatheError when it cannot be."""
    try:
        result = np.ascontiguousarray(array, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise LatheError(Status.DTYPE_MISMATCH, f"{name} cannot be converted to float32: {error}") from None
    if result.ndim == 0:
        raise LatheError(Status.SHAPE_MISMATCH, f"{name} needs a sample axis, got a scalar")
    return result


def _pointer(array):
    """A float32 array's data pointer, or NULL for None."""
    return None if array is None else array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def array_arguments(array):
    """The (data, shape, rank) argument triple for a float32 array, or NULLs for None."""
    if array is None:
        return [None, None, 0]
    shape = (ctypes.c_int64 * array.ndim)(*array.shape)
    return [array.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), shape, array.ndim]


class Engine:
    """Owns one `lathe_sequential` handle."""

    def __init__(self, spec):
        handle = ctypes.c_void_p()
        check(lib.lathe_sequential_create(json.dumps(spec).encode(), ctypes.byref(handle)))
        self._handle = handle

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle:
            lib.lathe_sequential_free(handle)
            self._handle = None

    def compile(self, optimizer, loss, metrics):
        names = (ctypes.c_char_p * max(len(metrics), 1))(*[m.encode() for m in metrics])
        check(lib.lathe_sequential_compile(self._handle, optimizer.encode(), loss.encode(), names, len(metrics)))

    def fit(self, x, y, x_val, y_val, epochs, batch_size, validation_split, shuffle, seed, on_epoch_end,
            sample_weight=None, class_weight=None):
        """Trains; `on_epoch_end(epoch, logs)` returns True to stop. `sample_weight`: float32 (N,) or None;
        `class_weight`: float32 (classes,) indexed by class, or None. Returns the history dict."""
        failure = []

        def callback(_user_data, epoch, logs_json):
            try:
                return 1 if on_epoch_end(epoch, json.loads(logs_json.decode())) else 0
            except BaseException as error:  # re-raised after the C call returns
                failure.append(error)
                return 1

        c_callback = EPOCH_CALLBACK(callback)
        history = ctypes.c_char_p()
        status = lib.lathe_sequential_fit_weighted(
            self._handle, *array_arguments(x), *array_arguments(y), *array_arguments(x_val), *array_arguments(y_val),
            _pointer(sample_weight), _pointer(class_weight), 0 if class_weight is None else class_weight.size,
            epochs, batch_size, validation_split, 1 if shuffle else 0, seed, c_callback, None, ctypes.byref(history))
        if failure:
            raise failure[0]
        check(status)
        return json.loads(history.value.decode())

    def evaluate(self, x, y, batch_size, sample_weight=None):
        logs = ctypes.c_char_p()
        check(lib.lathe_sequential_evaluate_weighted(self._handle, *array_arguments(x), *array_arguments(y),
                                                     _pointer(sample_weight), batch_size, ctypes.byref(logs)))
        return json.loads(logs.value.decode())

    def save_checkpoint(self, path):
        check(lib.lathe_sequential_save_checkpoint(self._handle, str(path).encode()))

    def load_checkpoint(self, path):
        """Restores a checkpoint; True when optimizer state was restored too."""
        restored = ctypes.c_int()
        check(lib.lathe_sequential_load_checkpoint(self._handle, str(path).encode(), ctypes.byref(restored)))
        return bool(restored.value)

    def predict(self, x, batch_size, output_shape):
        out = np.empty((x.shape[0],) + tuple(output_shape), dtype=np.float32)
        check(lib.lathe_sequential_predict(self._handle, *array_arguments(x), batch_size,
                                           out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.size))
        return out

    def set_trainable(self, layer_name, trainable):
        """Freezes or unfreezes a layer from the next compile on."""
        check(lib.lathe_sequential_set_trainable(self._handle, layer_name.encode(), int(bool(trainable))))

    def summary(self):
        text = ctypes.c_char_p()
        check(lib.lathe_sequential_summary(self._handle, ctypes.byref(text)))
        return json.loads(text.value.decode())

    def get_weights(self):
        count = ctypes.c_size_t()
        check(lib.lathe_sequential_weight_count(self._handle, ctypes.byref(count)))
        flat = np.empty(count.value, dtype=np.float32)
        check(lib.lathe_sequential_get_weights(self._handle, flat.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                               flat.size))
        return flat

    def set_weights(self, flat):
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        check(lib.lathe_sequential_set_weights(self._handle, flat.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                               flat.size))

    @property
    def learning_rate(self):
        rate = ctypes.c_double()
        check(lib.lathe_sequential_learning_rate(self._handle, ctypes.byref(rate)))
        return rate.value

    @learning_rate.setter
    def learning_rate(self, value):
        check(lib.lathe_sequential_set_learning_rate(self._handle, float(value)))

    def save_onnx(self, path):
        check(lib.lathe_sequential_save_onnx(self._handle, str(path).encode()))

    def onnx_bytes(self):
        data = ctypes.c_void_p()
        size = ctypes.c_size_t()
        check(lib.lathe_sequential_export_onnx(self._handle, ctypes.byref(data), ctypes.byref(size)))
        try:
            return ctypes.string_at(data, size.value)
        finally:
            lib.lathe_buffer_free(data)
