"""`lathe.Model`: load an ONNX model, inspect its inputs and outputs, predict."""

import ctypes
import os
import threading
from collections.abc import Mapping

import numpy as np

from . import _dlpack
from ._errors import LatheError, Status
from ._library import DLTensor
from ._native import check, lib

#: lathe_dtype codes (ONNX TensorProto.DataType) and their numpy types.
_DTYPES = {
    1: np.dtype(np.float32),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    6: np.dtype(np.int32),
    7: np.dtype(np.int64),
    9: np.dtype(np.bool_),
    11: np.dtype(np.float64),
}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}


def _dltensors(arrays):
    """A ctypes array of DLTensors over C-contiguous numpy arrays, and what must outlive its use."""
    codes = {"f": 2, "i": 0, "u": 1, "b": 6}
    tensors = (DLTensor * max(len(arrays), 1))()
    shapes = []
    for tensor, array in zip(tensors, arrays):
        shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        shapes.append(shape)
        tensor.data = array.ctypes.data
        tensor.device.device_type, tensor.device.device_id = 1, 0
        tensor.ndim = array.ndim
        tensor.dtype.code, tensor.dtype.bits, tensor.dtype.lanes = codes[array.dtype.kind], array.dtype.itemsize * 8, 1
        tensor.shape = shape
        tensor.byte_offset = 0
    return tensors, (arrays, shapes)


class TensorInfo:
    """A declared input or output of a model.

    Attributes:
        name: the value's name in the model.
        shape: a tuple with an int per fixed dimension and a str per symbolic one ("N"; "" when
            the model leaves it unnamed), or None when the model does not declare the rank.
        dtype: the element type, a numpy dtype.
    """

    __slots__ = ("name", "shape", "dtype")

    def __init__(self, name, shape, dtype):
        self.name = name
        self.shape = shape
        self.dtype = dtype

    def __eq__(self, other):
        if not isinstance(other, TensorInfo):
            return NotImplemented
        return (self.name, self.shape, self.dtype) == (other.name, other.shape, other.dtype)

    def __hash__(self):
        return hash((self.name, self.shape, self.dtype))

    def __repr__(self):
        return f"TensorInfo(name={self.name!r}, shape={self.shape!r}, dtype={self.dtype})"


def _describe(model, kind):
    """The declared inputs (`kind` "input") or outputs ("output") of a C model handle."""
    def function(suffix):
        return getattr(lib, f"lathe_model_{kind}_{suffix}")

    count = ctypes.c_size_t()
    check(function("count")(model, ctypes.byref(count)))
    infos = []
    for index in range(count.value):
        name = ctypes.c_char_p()
        check(function("name")(model, index, ctypes.byref(name)))
        code = ctypes.c_int32()
        check(function("dtype")(model, index, ctypes.byref(code)))
        rank = ctypes.c_size_t()
        status = function("rank")(model, index, ctypes.byref(rank))
        shape = None
        if status != Status.INVALID_STATE:
            check(status)
            dims = []
            for axis in range(rank.value):
                dim = ctypes.c_int64()
                symbol = ctypes.c_char_p()
                check(function("dim")(model, index, axis, ctypes.byref(dim), ctypes.byref(symbol)))
                dims.append((symbol.value or b"").decode() if dim.value < 0 else dim.value)
            shape = tuple(dims)
        dtype = _DTYPES.get(code.value)
        if dtype is None:
            raise LatheError(Status.DTYPE_MISMATCH,
                             f"{kind} '{name.value.decode()}' has element type code {code.value}, "
                             "which this binding does not know")
        infos.append(TensorInfo(name.value.decode(), shape, dtype))
    return infos


class Model:
    """An ONNX model loaded into Lathe, with one inference session.

    `Model(path)` reads a file (str or os.PathLike); `Model(data)` parses ONNX bytes (bytes,
    bytearray or memoryview). Calls to `predict` are serialized by a lock, so a Model may be
    shared between threads; use one Model per thread to run in parallel. Free the native
    resources with `close()` or a `with` block (garbage collection also frees them).
    `threads` (default 1) is how many threads one `predict` may use: 1 is deterministic and
    jitter-free; more split each batch between a persistent pool of sleeping worker threads.
    """

    def __init__(self, source, *, threads=1):
        self._model = None
        self._session = None
        self._lock = threading.Lock()
        #: Bumped whenever predict (or a Binding) sets the session's inputs, so a Binding knows when
        #: its arrays are no longer the ones bound.
        self._feed_generation = 0
        handle = ctypes.c_void_p()
        if isinstance(source, (str, os.PathLike)):
            check(lib.lathe_model_load_file(os.fsencode(source), ctypes.byref(handle)))
        elif isinstance(source, (bytes, bytearray, memoryview)):
            data = source if isinstance(source, bytes) else memoryview(source).tobytes()
            check(lib.lathe_model_load_memory(data, len(data), ctypes.byref(handle)))
        else:
            raise TypeError(f"Model() takes a path or ONNX bytes, not {type(source).__name__}")
        self._model = handle.value
        try:
            #: Declared inputs, in model order: a list of TensorInfo.
            self.inputs = _describe(self._model, "input")
            #: Declared outputs, in model order: a list of TensorInfo.
            self.outputs = _describe(self._model, "output")
            options = ctypes.c_void_p()
            check(lib.lathe_session_options_create(ctypes.byref(options)))
            try:
                check(lib.lathe_session_options_set_threads(options, threads))
                session = ctypes.c_void_p()
                check(lib.lathe_session_create_with_options(self._model, options, ctypes.byref(session)))
                self._session = session.value
            finally:
                lib.lathe_session_options_free(options)
        except BaseException:
            self.close()
            raise
        self._input_by_name = {info.name: info for info in self.inputs}

    def predict(self, x, *, writable=False):
        """Runs the model.

        Args:
            x: a numpy array for a single-input model, or a dict input name -> array giving every
                input. Arrays are passed with their own dtype (a mismatch raises
                LATHE_ERROR_DTYPE_MISMATCH); Python lists and scalars are converted to the
                declared dtype. C-contiguous, aligned, writable arrays are read in place; others
                are copied.
            writable: return writable copies instead of the read-only arrays Lathe hands out
                without copying.

        Returns:
            One numpy array for a single-output model, else a dict output name -> array. The
            arrays stay valid and unchanged across later calls.

        Raises:
            LatheError: with the status and message from Lathe.
        """
        feeds = self._feeds(x)
        with self._lock:
            self._require_open()
            self._feed_generation += 1
            for name, array in feeds:
                self._feed(name, array)
            missing = [info.name for info in self.inputs if info.name not in dict(feeds)]
            if missing:
                raise LatheError(Status.INVALID_ARGUMENT,
                                 "missing input " + ", ".join(f"'{name}'" for name in missing)
                                 + f" (inputs: {self._input_names()})")
            self._run()
            results = {info.name: self._fetch(info.name) for info in self.outputs}
        if writable:
            results = {name: np.array(array) for name, array in results.items()}
        if len(self.outputs) == 1:
            return results[self.outputs[0].name]
        return results

    def to_onnx(self):
        """The model's graph as loaded (not the optimised plan) as ONNX model bytes.

        Nodes, domains, attributes, initializers and opset imports are kept; float16 and bfloat16
        tensors, widened to float32 at load, come back as float32.
        """
        with self._lock:
            self._require_open()
            data, size = ctypes.c_void_p(), ctypes.c_size_t()
            check(lib.lathe_model_export_onnx(self._model, ctypes.byref(data), ctypes.byref(size)))
        try:
            return ctypes.string_at(data, size.value)
        finally:
            lib.lathe_buffer_free(data)

    def save(self, path):
        """Writes `to_onnx()` to the file `path` (str or os.PathLike), replacing it.

        Raises:
            LatheError: LATHE_ERROR_IO naming the path when it cannot be written.
        """
        with self._lock:
            self._require_open()
            check(lib.lathe_model_save_onnx(self._model, os.fsencode(path)))

    def gradients(self, x, output_grads, wrt):
        """Back-propagates through the model (lathe_model_gradients): dLoss/dValue for each value in `wrt`.

        The model runs on `x` (as `predict` runs it, in inference mode), then the output gradients
        flow back through the op table's backward functions, custom ops' included. The model is
        not changed: to train weights with this, make them graph inputs and update them yourself.

        Args:
            x: the inputs, as for `predict` (one array, or a dict name -> array giving every input).
            output_grads: dLoss/dOutput, shaped like the outputs (converted to float32): one array
                for a single-output model, else a dict output name -> array giving every output.
            wrt: the name of a float32 input or initializer, or a list of them.

        Returns:
            dLoss/dValue as a float32 array shaped like the value, or a list of them for a list.

        Raises:
            LatheError: LATHE_ERROR_UNSUPPORTED_OP when a value in `wrt` flows through an op without
                a backward (the message names the op and node); LATHE_ERROR_PLUGIN when a custom
                op's backward fails; shape and dtype errors.
        """
        names = [wrt] if isinstance(wrt, str) else list(wrt)
        feeds = dict(self._feeds(x))
        missing = [info.name for info in self.inputs if info.name not in feeds]
        if missing:
            raise LatheError(Status.INVALID_ARGUMENT, "missing input " + ", ".join(f"'{n}'" for n in missing)
                             + f" (inputs: {self._input_names()})")
        if not isinstance(output_grads, Mapping):
            if len(self.outputs) != 1:
                raise LatheError(Status.INVALID_ARGUMENT,
                                 f"the model has {len(self.outputs)} outputs: pass a dict name -> gradient")
            output_grads = {self.outputs[0].name: output_grads}
        missing = [info.name for info in self.outputs if info.name not in output_grads]
        if missing:
            raise LatheError(Status.INVALID_ARGUMENT, "no gradient given for output " + ", ".join(missing))
        arrays = [np.ascontiguousarray(feeds[info.name]) for info in self.inputs]
        seeds = [np.ascontiguousarray(output_grads[info.name], dtype=np.float32) for info in self.outputs]
        inputs, keep_inputs = _dltensors(arrays)
        seed_tensors, keep_seeds = _dltensors(seeds)
        encoded = (ctypes.c_char_p * max(len(names), 1))(*[name.encode() for name in names])
        managed = (ctypes.c_void_p * max(len(names), 1))()
        with self._lock:
            self._require_open()
            check(lib.lathe_model_gradients(self._model, inputs, len(arrays), seed_tensors, len(seeds),
                                            encoded, len(names), managed))
        del keep_inputs, keep_seeds
        results = [np.array(np.from_dlpack(_dlpack.DLPackTensor(managed[i]))) for i in range(len(names))]
        return results[0] if isinstance(wrt, str) else results

    def bind(self, x):
        """Binds inputs once for repeated runs: the fast path for calling a model in a loop.

        Args:
            x: as for `predict` (an array, or a dict giving every input). C-contiguous, aligned,
                writable numpy arrays are bound in place: Lathe reads their current contents at
                every `Binding.run()`, so write new data into them rather than binding again.
                Other values are converted or copied once into arrays the Binding owns
                (`Binding.inputs`).

        Returns:
            A `Binding` whose `run()` returns the outputs in buffers it reuses.

        Raises:
            LatheError: as `predict` for inputs that do not fit the model.
        """
        return Binding(self, x)

    def close(self):
        """Frees the session and the model; later predict calls raise. Calling it again is a no-op."""
        with self._lock:
            session, self._session = self._session, None
            model, self._model = self._model, None
        if session is not None:
            lib.lathe_session_free(session)
        if model is not None:
            lib.lathe_model_free(model)

    def __enter__(self):
        """The model itself; leaving the block closes it."""
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        if getattr(self, "_lock", None) is not None:
            self.close()

    def __repr__(self):
        state = "" if self._session is not None else ", closed"
        return f"<lathe.Model inputs={self.inputs!r} outputs={self.outputs!r}{state}>"

    # Steps of predict, used directly by the tests; the caller holds the lock.

    def _feed(self, name, array):
        """Sets one input; returns True when Lathe reads the array's memory in place (DLPack)."""
        encoded = name.encode()
        if array.flags.c_contiguous and array.flags.aligned and array.flags.writeable:
            capsule = array.__dlpack__()
            check(lib.lathe_session_set_input_dlpack(self._session, encoded, _dlpack.capsule_tensor(capsule)))
            _dlpack.mark_consumed(capsule)
            return True
        compact = array if array.flags.c_contiguous and array.flags.aligned else array.copy(order="C")
        shape = (ctypes.c_int64 * compact.ndim)(*compact.shape)
        check(lib.lathe_session_set_input(self._session, encoded, _CODES[compact.dtype], shape, compact.ndim,
                                          compact.ctypes.data, compact.nbytes))
        return False

    def _run(self):
        """Runs the session on the inputs set so far."""
        check(lib.lathe_session_run(self._session))

    def _fetch(self, name):
        """Output `name` of the last run, read in place through DLPack (read-only)."""
        encoded = name.encode()
        managed = ctypes.c_void_p()
        check(lib.lathe_session_get_output_dlpack(self._session, encoded, ctypes.byref(managed)))
        if not managed.value:
            raise LatheError(Status.INTERNAL, f"lathe_session_get_output_dlpack gave no tensor for '{name}'")
        return np.from_dlpack(_dlpack.DLPackTensor(managed.value))

    def _require_open(self):
        """Raises LATHE_ERROR_INVALID_STATE once the model has been closed."""
        if self._session is None:
            raise LatheError(Status.INVALID_STATE, "the model has been closed")

    def _input_names(self):
        """The input names, quoted, for messages: "'a', 'b'"."""
        return ", ".join(f"'{info.name}'" for info in self.inputs)

    def _feeds(self, x):
        """(name, numpy array) pairs from predict's argument, checked for what Lathe cannot see."""
        if isinstance(x, Mapping):
            items = list(x.items())
        elif len(self.inputs) == 1:
            items = [(self.inputs[0].name, x)]
        else:
            raise LatheError(Status.INVALID_ARGUMENT,
                             f"the model has {len(self.inputs)} inputs ({self._input_names()}): "
                             "pass a dict name -> array")
        feeds = []
        for name, value in items:
            if not isinstance(name, str):
                raise LatheError(Status.INVALID_ARGUMENT, f"input names must be str, not {type(name).__name__}")
            feeds.append((name, self._as_array(name, value)))
        return feeds

    def _as_array(self, name, value):
        """`value` as a numpy array of a dtype Lathe knows (see predict for the conversions)."""
        info = self._input_by_name.get(name)
        try:
            if isinstance(value, np.ndarray):
                array = value
            elif isinstance(value, (list, tuple, int, float, bool)) and info is not None:
                array = np.asarray(value, dtype=info.dtype)
            else:
                array = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise LatheError(Status.INVALID_ARGUMENT, f"input '{name}': {error}") from error
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if array.dtype not in _CODES:
            expected = f"expects {info.dtype}, " if info is not None else ""
            raise LatheError(Status.DTYPE_MISMATCH,
                             f"input '{name}' {expected}got {array.dtype}, which Lathe does not support")
        return array


class Binding:
    """Inputs of a Model bound once, and output buffers reused by every run (`Model.bind`).

    `run()` costs one call into Lathe plus one copy per output, against `predict`'s per-call
    conversion, input binding and output allocation. The arrays `run()` returns are the
    Binding's own buffers, read-only and overwritten by the next `run()`: copy them to keep a
    result. A Binding shares the Model's session and lock; a `predict` in between is fine (the
    next `run()` binds its inputs again).

    Attributes:
        inputs: dict input name -> the numpy array bound for it (the caller's array when it was
            bound in place).
    """

    def __init__(self, model, x):
        self._model = model
        feeds = model._feeds(x)
        names = {name for name, _ in feeds}
        missing = [info.name for info in model.inputs if info.name not in names]
        if missing:
            raise LatheError(Status.INVALID_ARGUMENT,
                             "missing input " + ", ".join(f"'{name}'" for name in missing)
                             + f" (inputs: {model._input_names()})")
        self.inputs = {}
        for name, array in feeds:
            if not (array.flags.c_contiguous and array.flags.aligned and array.flags.writeable):
                array = np.array(array, order="C", copy=True)
            self.inputs[name] = array
        self._outputs = None
        self._generation = None
        with model._lock:
            model._require_open()
            self._bind()
            self._run_and_copy()

    def _bind(self):
        """Sets every input in place on the session; the caller holds the model's lock."""
        model = self._model
        model._feed_generation += 1
        for name, array in self.inputs.items():
            model._feed(name, array)
        self._generation = model._feed_generation

    def _run_and_copy(self):
        """Runs and copies each output into its buffer (made at the first run); the caller holds the lock."""
        model = self._model
        session = model._session
        check(lib.lathe_session_run(session))
        if self._outputs is None:
            outputs = []
            for info in model.outputs:
                encoded = info.name.encode()
                data, code, shape, rank = (ctypes.c_void_p(), ctypes.c_int32(), ctypes.POINTER(ctypes.c_int64)(),
                                           ctypes.c_size_t())
                check(lib.lathe_session_get_output(session, encoded, ctypes.byref(data), ctypes.byref(code),
                                                   ctypes.byref(shape), ctypes.byref(rank)))
                dtype = _DTYPES.get(code.value)
                if dtype is None:
                    raise LatheError(Status.DTYPE_MISMATCH,
                                     f"output '{info.name}' has element type code {code.value}, "
                                     "which this binding does not know")
                buffer = np.empty(tuple(shape[axis] for axis in range(rank.value)), dtype=dtype)
                buffer.flags.writeable = False  # for the caller; Lathe writes through the pointer
                outputs.append((info.name, encoded, buffer, ctypes.c_void_p(buffer.ctypes.data), buffer.nbytes))
            self._outputs = outputs
        for _, encoded, buffer, pointer, size in self._outputs:
            check(lib.lathe_session_copy_output(session, encoded, pointer, size))

    def run(self):
        """Runs the model on the bound inputs' current contents.

        Returns:
            One numpy array for a single-output model, else a dict output name -> array: the
            Binding's buffers, read-only, overwritten by the next `run()`.

        Raises:
            LatheError: with the status and message from Lathe (LATHE_ERROR_INVALID_STATE once
                the model is closed).
        """
        model = self._model
        with model._lock:
            if model._session is None:
                raise LatheError(Status.INVALID_STATE, "the model has been closed")
            if self._generation != model._feed_generation:
                self._bind()
            self._run_and_copy()
        outputs = self._outputs
        if len(outputs) == 1:
            return outputs[0][2]
        return {name: buffer for name, _, buffer, _, _ in outputs}

    def __repr__(self):
        return f"<lathe.Binding inputs={ {name: a.shape for name, a in self.inputs.items()} !r}>"
