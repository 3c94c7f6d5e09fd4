"""Lathe from Python: ONNX inference over liblathe.so through ctypes and numpy.

    import lathe
    model = lathe.Model("classifier.onnx")
    print(model.inputs, model.outputs)
    probabilities = model.predict(images)

The shared library is found through LATHE_LIBRARY, a copy bundled in this package, the
repository's .build/release and .build/debug, then the system loader (see README.md).
"""

from ._errors import (
    LATHE_ERROR_DTYPE_MISMATCH,
    LATHE_ERROR_INTERNAL,
    LATHE_ERROR_INVALID_ARGUMENT,
    LATHE_ERROR_INVALID_STATE,
    LATHE_ERROR_IO,
    LATHE_ERROR_OUT_OF_MEMORY,
    LATHE_ERROR_PARSE,
    LATHE_ERROR_PLUGIN,
    LATHE_ERROR_SHAPE_MISMATCH,
    LATHE_ERROR_UNSUPPORTED_OP,
    LATHE_OK,
    LatheError,
    Status,
)
from ._library import EXPECTED_ABI_VERSION, LibraryNotFoundError
from ._model import Binding, Model, TensorInfo
from ._native import lib as _lib
from ._native import library_path
from .plugins import (
    OpInfo,
    load_plugin,
    register_foreign_op,
    register_op,
    registered_ops,
    unregister_op,
)

#: Version of this Python binding; `version()` gives the loaded library's.
__version__ = "0.1.0"


def version():
    """The loaded liblathe's semantic version, e.g. "0.1.0"."""
    return _lib.lathe_version().decode()


def abi_version():
    """The C ABI version the loaded liblathe implements (checked at import to equal EXPECTED_ABI_VERSION)."""
    return _lib.lathe_abi_version()


def status_name(status):
    """The library's name for a status code ("LATHE_ERROR_PARSE")."""
    return _lib.lathe_status_name(int(status)).decode()


__all__ = [
    "EXPECTED_ABI_VERSION",
    "LATHE_ERROR_DTYPE_MISMATCH",
    "LATHE_ERROR_INTERNAL",
    "LATHE_ERROR_INVALID_ARGUMENT",
    "LATHE_ERROR_INVALID_STATE",
    "LATHE_ERROR_IO",
    "LATHE_ERROR_OUT_OF_MEMORY",
    "LATHE_ERROR_PARSE",
    "LATHE_ERROR_PLUGIN",
    "LATHE_ERROR_SHAPE_MISMATCH",
    "LATHE_ERROR_UNSUPPORTED_OP",
    "LATHE_OK",
    "Binding",
    "LatheError",
    "LibraryNotFoundError",
    "Model",
    "OpInfo",
    "Status",
    "TensorInfo",
    "abi_version",
    "library_path",
    "load_plugin",
    "register_foreign_op",
    "register_op",
    "registered_ops",
    "status_name",
    "unregister_op",
    "version",
]
