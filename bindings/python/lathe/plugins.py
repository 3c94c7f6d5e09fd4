"""Custom ops from Python, foreign C functions, shared-library plugins and the op registry listing.

A Python op is a class (instantiated once per node as ``cls(attributes)``) or an object (shared by
every node) with:

``infer_shapes(input_shapes, input_dtypes) -> [(shape, dtype), ...]``
    one ``(tuple of ints, numpy dtype)`` per output, from the input shapes (tuples) and dtypes.
    An omitted optional input (an empty input name in the ONNX node) has shape and dtype None,
    and is None among the arrays of ``forward`` and ``backward``.
``forward(inputs, outputs)``
    ``inputs`` are read-only numpy views of Lathe's input buffers, ``outputs`` writable views of
    the preallocated outputs (no copies either way). Write into ``outputs``, or return one array
    (or a list with one per output) that Lathe copies into them.
``backward(inputs, outputs, output_grads) -> [input_grad, ...]`` (optional)
    makes the op differentiable (``Model.gradients``, training). ``inputs``/``outputs`` are the
    forward pass's tensors and ``output_grads`` dLoss/dOutput (float32, shaped like the outputs,
    zeros where no gradient flows), all read-only zero-copy views. Return dLoss/dInput: one array
    per input (or a single array for a one-input op), ``None`` for an input without a gradient.
    Lathe *adds* each returned array into the input's gradient buffer (other consumers of the same
    value add theirs), skipping inputs for which no gradient is wanted. Inference never calls it.

::

    class Scale:
        def __init__(self, attributes):
            self.factor = attributes.float("factor", 2.0)
        def infer_shapes(self, shapes, dtypes):
            return [(shapes[0], dtypes[0])]
        def forward(self, inputs, outputs):
            np.multiply(inputs[0], self.factor, out=outputs[0])

    lathe.register_op("com.acme", "Scale", Scale)

An exception raised by any of these methods fails the Lathe call with LATHE_ERROR_PLUGIN and a
message naming the node and carrying the exception's text. The binding keeps the objects and the
ctypes callbacks alive until Lathe releases the op (after ``unregister_op`` and once no model
uses it). Callbacks run on the thread that runs the model, holding the GIL.
"""

import ctypes
import inspect
import itertools
import os
import threading
import traceback

import numpy as np

from . import _library
from ._errors import LatheError, Status
from ._model import _CODES, _DTYPES
from ._native import check, lib

#: LATHE_MAX_RANK of lathe_plugin.h.
MAX_RANK = 8
_ABI_VERSION = 1
_INT32_MAX = 2**31 - 1


class _TensorType(ctypes.Structure):
    """lathe_tensor_type."""
    _fields_ = [("dtype", ctypes.c_int32), ("rank", ctypes.c_int32), ("dims", ctypes.c_int64 * MAX_RANK)]


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    """DLTensor of DLPack 0.6."""
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_Status = ctypes.c_int32
_INFER = ctypes.CFUNCTYPE(_Status, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_TensorType), ctypes.c_size_t,
                          ctypes.POINTER(_TensorType), ctypes.c_size_t)
_CREATE = ctypes.CFUNCTYPE(_Status, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                           ctypes.POINTER(ctypes.c_void_p))
_COMPUTE = ctypes.CFUNCTYPE(_Status, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_DLTensor), ctypes.c_size_t,
                            ctypes.POINTER(_DLTensor), ctypes.c_size_t)
_BACKWARD = ctypes.CFUNCTYPE(_Status, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_DLTensor), ctypes.c_size_t,
                             ctypes.POINTER(_DLTensor), ctypes.c_size_t, ctypes.POINTER(_DLTensor),
                             ctypes.POINTER(_DLTensor))
_DESTROY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_RELEASE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _CustomOp(ctypes.Structure):
    """lathe_custom_op."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("abi_version", ctypes.c_uint32),
                ("domain", ctypes.c_char_p), ("op_type", ctypes.c_char_p),
                ("since_version", ctypes.c_int32), ("until_version", ctypes.c_int32),
                ("origin", ctypes.c_char_p), ("user_data", ctypes.c_void_p),
                ("infer", _INFER), ("create_state", _CREATE), ("compute", _COMPUTE),
                ("backward", _BACKWARD), ("destroy_state", _DESTROY), ("release", _RELEASE)]


def _declare():
    """Prototypes of the plugin functions of lathe.h."""
    c_char_p, c_int32, c_size_t, c_void_p = ctypes.c_char_p, ctypes.c_int32, ctypes.c_size_t, ctypes.c_void_p
    signatures = {
        "lathe_register_op": [ctypes.POINTER(_CustomOp)],
        "lathe_unregister_op": [c_char_p, c_char_p],
        "lathe_load_plugin": [c_char_p],
        "lathe_register_foreign_op": [c_char_p, c_char_p, c_int32, c_int32, c_char_p, c_char_p, c_char_p],
        "lathe_registry_count": [ctypes.POINTER(c_size_t)],
        "lathe_registry_get": [c_size_t, ctypes.POINTER(c_char_p), ctypes.POINTER(c_char_p),
                               ctypes.POINTER(c_int32), ctypes.POINTER(c_int32), ctypes.POINTER(c_char_p)],
        "lathe_attributes_get_int": [c_void_p, c_char_p, ctypes.POINTER(ctypes.c_int64)],
        "lathe_attributes_get_float": [c_void_p, c_char_p, ctypes.POINTER(ctypes.c_float)],
        "lathe_attributes_get_string": [c_void_p, c_char_p, ctypes.POINTER(c_char_p)],
        "lathe_attributes_get_ints": [c_void_p, c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_int64)),
                                      ctypes.POINTER(c_size_t)],
        "lathe_attributes_get_floats": [c_void_p, c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
                                        ctypes.POINTER(c_size_t)],
    }
    dltensor_p = ctypes.POINTER(_library.DLTensor)
    signatures["lathe_model_gradients"] = [c_void_p, dltensor_p, c_size_t, dltensor_p, c_size_t,
                                           ctypes.POINTER(c_char_p), c_size_t, ctypes.POINTER(c_void_p)]
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = _Status
    lib.lathe_plugin_set_error.argtypes = [c_char_p]
    lib.lathe_plugin_set_error.restype = None


_declare()


class Attributes:
    """A node's attributes, readable while the op's class is being instantiated for the node.

    Each getter returns `default` when the attribute is absent; an attribute of another type
    raises LatheError (LATHE_ERROR_INVALID_ARGUMENT).
    """

    def __init__(self, handle):
        self._handle = handle

    def _get(self, getter, name, out, default):
        status = getter(self._handle, name.encode(), *[ctypes.byref(o) for o in out])
        if status == Status.INVALID_ARGUMENT and lib.lathe_last_error().endswith(b"is absent"):
            return None if default is _ABSENT else default
        check(status)
        return _ABSENT

    def int(self, name, default=None):
        """An int attribute."""
        value = ctypes.c_int64()
        got = self._get(lib.lathe_attributes_get_int, name, [value], default)
        return value.value if got is _ABSENT else got

    def float(self, name, default=None):
        """A float attribute (ints are converted)."""
        value = ctypes.c_float()
        got = self._get(lib.lathe_attributes_get_float, name, [value], default)
        return value.value if got is _ABSENT else got

    def string(self, name, default=None):
        """A string attribute."""
        value = ctypes.c_char_p()
        got = self._get(lib.lathe_attributes_get_string, name, [value], default)
        return value.value.decode() if got is _ABSENT else got

    def ints(self, name, default=None):
        """A list-of-ints attribute."""
        values, count = ctypes.POINTER(ctypes.c_int64)(), ctypes.c_size_t()
        got = self._get(lib.lathe_attributes_get_ints, name, [values, count], default)
        return [values[i] for i in range(count.value)] if got is _ABSENT else got

    def floats(self, name, default=None):
        """A list-of-floats attribute."""
        values, count = ctypes.POINTER(ctypes.c_float)(), ctypes.c_size_t()
        got = self._get(lib.lathe_attributes_get_floats, name, [values, count], default)
        return [values[i] for i in range(count.value)] if got is _ABSENT else got


_ABSENT = object()

#: Registered Python ops by token (the C user_data), kept until Lathe calls release.
_ops = {}
#: Per-node instances by token (the C state), kept until Lathe calls destroy_state.
_states = {}
_tokens = itertools.count(1)
_lock = threading.Lock()


def _fail(error):
    """Hands an exception's text to Lathe and returns LATHE_ERROR_PLUGIN."""
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    lib.lathe_plugin_set_error(text.encode("utf-8", "replace"))
    return int(Status.PLUGIN)


def _implementation(user_data, state):
    """The object serving a node: its own instance, or the op's shared object."""
    if state:
        return _states[state]
    return _ops[user_data]["object"]


def _view(tensor, writable):
    """A zero-copy numpy view of a DLTensor's elements; None for an omitted input (NULL data, no dtype)."""
    if not tensor.data and tensor.dtype.bits == 0:
        return None
    dtype = _DTYPES[_dtype_code(tensor.dtype)]
    shape = tuple(tensor.shape[i] for i in range(tensor.ndim))
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        array = np.empty(shape, dtype)
    else:
        buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(tensor.data + tensor.byte_offset)
        array = np.frombuffer(buffer, dtype).reshape(shape)
    if not writable:
        array.flags.writeable = False
    return array


def _dtype_code(dl):
    """The lathe_dtype code of a DLDataType."""
    table = {(2, 32): 1, (1, 8): 2, (0, 8): 3, (0, 32): 6, (0, 64): 7, (6, 8): 9, (2, 64): 11}
    return table[(dl.code, dl.bits)]


@_INFER
def _infer(user_data, state, inputs, input_count, outputs, output_count):
    try:
        shapes = [None if inputs[i].rank < 0 else tuple(inputs[i].dims[d] for d in range(inputs[i].rank))
                  for i in range(input_count)]
        dtypes = [None if inputs[i].rank < 0 else _DTYPES[inputs[i].dtype] for i in range(input_count)]
        result = list(_implementation(user_data, state).infer_shapes(shapes, dtypes))
        if len(result) != output_count:
            raise ValueError(f"infer_shapes returned {len(result)} outputs; the node has {output_count}")
        for i, (shape, dtype) in enumerate(result):
            shape = tuple(int(d) for d in shape)
            if len(shape) > MAX_RANK:
                raise ValueError(f"infer_shapes gave output {i} rank {len(shape)} (at most {MAX_RANK})")
            outputs[i].dtype = _CODES[np.dtype(dtype)]
            outputs[i].rank = len(shape)
            for d, size in enumerate(shape):
                outputs[i].dims[d] = size
        return 0
    except BaseException as error:  # noqa: BLE001 - every failure must become a status
        return _fail(error)


@_CREATE
def _create(user_data, attributes, input_count, output_count, out_state):
    try:
        record = _ops[user_data]
        if not record["per_node"]:
            out_state[0] = None
            return 0
        instance = record["object"](Attributes(attributes))
        token = next(_tokens)
        with _lock:
            _states[token] = instance
        out_state[0] = token
        return 0
    except BaseException as error:  # noqa: BLE001
        return _fail(error)


@_COMPUTE
def _compute(user_data, state, inputs, input_count, outputs, output_count):
    try:
        ins = [_view(inputs[i], False) for i in range(input_count)]
        outs = [_view(outputs[i], True) for i in range(output_count)]
        result = _implementation(user_data, state).forward(ins, outs)
        if result is not None:
            results = [result] if isinstance(result, np.ndarray) else list(result)
            if len(results) != output_count:
                raise ValueError(f"forward returned {len(results)} arrays; the node has {output_count} outputs")
            for i, (out, value) in enumerate(zip(outs, results)):
                value = np.asarray(value)
                if value.shape != out.shape:
                    raise ValueError(f"forward returned shape {value.shape} for output {i}; "
                                     f"infer_shapes gave {out.shape}")
                out[...] = value
        return 0
    except BaseException as error:  # noqa: BLE001
        return _fail(error)


@_BACKWARD
def _backward(user_data, state, inputs, input_count, outputs, output_count, output_grads, input_grads):
    try:
        ins = [_view(inputs[i], False) for i in range(input_count)]
        outs = [_view(outputs[i], False) for i in range(output_count)]
        douts = [_view(output_grads[i], False) for i in range(output_count)]
        result = _implementation(user_data, state).backward(ins, outs, douts)
        results = [result] if isinstance(result, np.ndarray) or result is None else list(result)
        if len(results) != input_count:
            raise ValueError(f"backward returned {len(results)} gradients; the node has {input_count} inputs")
        for i, value in enumerate(results):
            if value is None or not input_grads[i].data:
                continue
            value = np.asarray(value)
            if ins[i] is None or value.shape != ins[i].shape:
                raise ValueError(f"backward returned shape {value.shape} for the gradient of input {i}, "
                                 f"whose shape is {None if ins[i] is None else ins[i].shape}")
            gradient = _view(input_grads[i], True)
            gradient += value
        return 0
    except BaseException as error:  # noqa: BLE001
        return _fail(error)


@_DESTROY
def _destroy(user_data, state):
    try:
        with _lock:
            _states.pop(state, None)
    except BaseException:  # noqa: BLE001 - may run during interpreter shutdown
        pass


@_RELEASE
def _release(user_data):
    try:
        with _lock:
            _ops.pop(user_data, None)
    except BaseException:  # noqa: BLE001
        pass


def register_op(domain, op_type, cls_or_obj, since=1, until=None):
    """Registers a Python op for `(domain, op_type)` at opsets `since`...`until` (None: no limit).

    `cls_or_obj` is a class, instantiated once per node as ``cls(attributes)`` with an
    :class:`Attributes`, or an object shared by all nodes. See the module docs for its methods.

    Raises:
        LatheError: LATHE_ERROR_INVALID_ARGUMENT when the op overlaps an existing registration.
        TypeError: when `cls_or_obj` lacks ``infer_shapes`` or ``forward``.
    """
    for method in ("infer_shapes", "forward"):
        if not callable(getattr(cls_or_obj, method, None)):
            raise TypeError(f"{cls_or_obj!r} has no {method}() method")
    per_node = inspect.isclass(cls_or_obj)
    name = cls_or_obj.__name__ if per_node else type(cls_or_obj).__name__
    token = next(_tokens)
    with _lock:
        _ops[token] = {"object": cls_or_obj, "per_node": per_node}
    op = _CustomOp()
    op.struct_size = ctypes.sizeof(_CustomOp)
    op.abi_version = _ABI_VERSION
    op.domain = domain.encode()
    op.op_type = op_type.encode()
    op.since_version = since
    op.until_version = 0 if until is None else until
    op.origin = f"python:{name}".encode()
    op.user_data = token
    op.infer, op.create_state, op.compute = _infer, _create, _compute
    if callable(getattr(cls_or_obj, "backward", None)):
        op.backward = _backward
    op.destroy_state, op.release = _destroy, _release
    status = lib.lathe_register_op(ctypes.byref(op))
    if status != 0:
        with _lock:
            _ops.pop(token, None)
    check(status)


def unregister_op(domain, op_type):
    """Removes `(domain, op_type)` from the op table; loaded models keep working.

    Raises:
        LatheError: LATHE_ERROR_INVALID_ARGUMENT when nothing is registered under that name.
    """
    check(lib.lathe_unregister_op(domain.encode(), op_type.encode()))


def register_foreign_op(domain, op_type, library, symbol, signature, since=1, until=None):
    """Binds the C function `symbol` of the shared library at `library` as op `(domain, op_type)`.

    `signature` declares its prototype, e.g. ``"void(in0, out0, count0, float alpha)"`` for
    ``void f(const float *in, float *out, size_t n, float alpha)``; see
    lathe_register_foreign_op in lathe_plugin.h for the language.

    Raises:
        LatheError: LATHE_ERROR_IO if the library cannot be opened; LATHE_ERROR_INVALID_ARGUMENT for
            a missing symbol, a malformed signature or an overlapping registration.
    """
    check(lib.lathe_register_foreign_op(domain.encode(), op_type.encode(), since, 0 if until is None else until,
                                        os.fsencode(library), symbol.encode(), signature.encode()))


def load_plugin(path):
    """Loads a shared-library plugin and runs its lathe_plugin_init (see lathe_plugin.h)."""
    check(lib.lathe_load_plugin(os.fsencode(path)))


class OpInfo(tuple):
    """One registry entry: (domain, op_type, since, until, origin); until is None for no limit."""

    __slots__ = ()

    def __new__(cls, domain, op_type, since, until, origin):
        return super().__new__(cls, (domain, op_type, since, until, origin))

    domain = property(lambda self: self[0], doc="The op's domain ('' is ONNX's own).")
    op_type = property(lambda self: self[1], doc="The op's name.")
    since = property(lambda self: self[2], doc="First opset version served.")
    until = property(lambda self: self[3], doc="Last opset version served, or None.")
    origin = property(lambda self: self[4], doc='"builtin", a plugin path, "python:Class", "ffi:..."')


def registered_ops():
    """Every entry of the op table, built-in and custom, as OpInfo tuples."""
    count = ctypes.c_size_t()
    check(lib.lathe_registry_count(ctypes.byref(count)))
    entries = []
    for index in range(count.value):
        domain, op_type, origin = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_char_p()
        since, until = ctypes.c_int32(), ctypes.c_int32()
        check(lib.lathe_registry_get(index, ctypes.byref(domain), ctypes.byref(op_type), ctypes.byref(since),
                                     ctypes.byref(until), ctypes.byref(origin)))
        entries.append(OpInfo(domain.value.decode(), op_type.value.decode(), since.value,
                              None if until.value == _INT32_MAX else until.value, origin.value.decode()))
    return entries


__all__ = ["Attributes", "OpInfo", "load_plugin", "register_foreign_op", "register_op", "registered_ops",
           "unregister_op", "LatheError"]
