"""Finding, loading and declaring liblathe.so: the C ABI of include/lathe.h, seen through ctypes."""

import ctypes
import ctypes.util
import os
from pathlib import Path

#: The ABI version of include/lathe.h this binding was written against (LATHE_ABI_VERSION).
EXPECTED_ABI_VERSION = 1

_LIBRARY_FILE = "liblathe.so"
_PACKAGE_DIR = Path(__file__).resolve().parent


class LibraryNotFoundError(ImportError):
    """liblathe.so could not be found or loaded; the message lists every place that was tried."""


class DLDevice(ctypes.Structure):
    """DLPack's `DLDevice`."""

    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    """DLPack's `DLDataType`."""

    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    """DLPack's `DLTensor`."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    """DLPack's `DLManagedTensor` (the unversioned one, as lathe.h uses)."""


#: `void (*deleter)(DLManagedTensor *self)`.
DLPACK_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", ctypes.c_void_p),
]


def _repository_root():
    """The source repository holding this package (bindings/python/lathe), or None when installed elsewhere."""
    root = _PACKAGE_DIR.parents[2] if len(_PACKAGE_DIR.parents) > 2 else None
    if root is not None and (root / "include" / "lathe.h").is_file():
        return root
    return None


def candidate_paths():
    """Where liblathe.so is looked for, in order: (description, path or bare name for the system loader)."""
    candidates = []
    env = os.environ.get("LATHE_LIBRARY")
    if env:
        candidates.append(("LATHE_LIBRARY", env))
    candidates.append(("bundled with the package", str(_PACKAGE_DIR / _LIBRARY_FILE)))
    root = _repository_root()
    if root is not None:
        for config in ("release", "debug"):
            candidates.append((f"repository .build/{config}", str(root / ".build" / config / _LIBRARY_FILE)))
    candidates.append(("system loader", ctypes.util.find_library("lathe") or _LIBRARY_FILE))
    return candidates


def load():
    """Loads the first liblathe.so found, declares its functions and checks its ABI version.

    LATHE_LIBRARY, when set, is the only file tried: pointing at a library and silently getting
    another would hide the mistake.
    """
    tried = []
    for description, path in candidate_paths():
        is_file_path = os.sep in path
        if is_file_path and not os.path.exists(path):
            tried.append(f"  {description}: {path} (not found)")
        else:
            try:
                lib = ctypes.CDLL(path)
            except OSError as error:
                tried.append(f"  {description}: {path} ({error})")
            else:
                _declare(lib)
                _check_abi(lib, path)
                return lib, path
        if description == "LATHE_LIBRARY":
            break
    raise LibraryNotFoundError(
        "cannot load liblathe.so; looked in:\n" + "\n".join(tried)
        + "\nBuild it with `swift build -c release --product lathe` in the repository, "
        "or set LATHE_LIBRARY to its path."
    )


def _check_abi(lib, path):
    """Refuses a library whose ABI version differs from the one this binding was written for."""
    found = lib.lathe_abi_version()
    if found != EXPECTED_ABI_VERSION:
        raise LibraryNotFoundError(
            f"{path} implements Lathe C ABI version {found}, but this binding expects version "
            f"{EXPECTED_ABI_VERSION}; install the binding that matches the library."
        )


def _declare(lib):
    """Sets argtypes/restype for every function of lathe.h."""
    c_size_p = ctypes.POINTER(ctypes.c_size_t)
    c_char_pp = ctypes.POINTER(ctypes.c_char_p)
    status = ctypes.c_int32
    handle = ctypes.c_void_p
    handle_p = ctypes.POINTER(ctypes.c_void_p)
    signatures = {
        "lathe_version": (ctypes.c_char_p, []),
        "lathe_abi_version": (ctypes.c_uint32, []),
        "lathe_last_error": (ctypes.c_char_p, []),
        "lathe_status_name": (ctypes.c_char_p, [status]),
        "lathe_model_load_file": (status, [ctypes.c_char_p, handle_p]),
        "lathe_model_load_memory": (status, [ctypes.c_void_p, ctypes.c_size_t, handle_p]),
        "lathe_model_free": (None, [handle]),
        "lathe_model_export_onnx": (status, [handle, ctypes.POINTER(ctypes.c_void_p), c_size_p]),
        "lathe_model_save_onnx": (status, [handle, ctypes.c_char_p]),
        "lathe_buffer_free": (None, [ctypes.c_void_p]),
        "lathe_model_input_count": (status, [handle, c_size_p]),
        "lathe_model_output_count": (status, [handle, c_size_p]),
        "lathe_model_input_name": (status, [handle, ctypes.c_size_t, c_char_pp]),
        "lathe_model_output_name": (status, [handle, ctypes.c_size_t, c_char_pp]),
        "lathe_model_input_dtype": (status, [handle, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32)]),
        "lathe_model_output_dtype": (status, [handle, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32)]),
        "lathe_model_input_rank": (status, [handle, ctypes.c_size_t, c_size_p]),
        "lathe_model_output_rank": (status, [handle, ctypes.c_size_t, c_size_p]),
        "lathe_model_input_dim": (
            status, [handle, ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64), c_char_pp]),
        "lathe_model_output_dim": (
            status, [handle, ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64), c_char_pp]),
        "lathe_session_create": (status, [handle, handle_p]),
        "lathe_session_free": (None, [handle]),
        "lathe_session_set_input": (
            status, [handle, ctypes.c_char_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t,
                     ctypes.c_void_p, ctypes.c_size_t]),
        "lathe_session_set_input_dlpack": (status, [handle, ctypes.c_char_p, ctypes.c_void_p]),
        "lathe_session_run": (status, [handle]),
        "lathe_session_get_output": (
            status, [handle, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int32),
                     ctypes.POINTER(ctypes.POINTER(ctypes.c_int64)), c_size_p]),
        "lathe_session_copy_output": (status, [handle, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]),
        "lathe_session_get_output_dlpack": (status, [handle, ctypes.c_char_p, handle_p]),
        "lathe_session_options_create": (status, [handle_p]),
        "lathe_session_options_free": (None, [handle]),
        "lathe_session_options_set_threads": (status, [handle, ctypes.c_int32]),
        "lathe_session_options_set_optimize": (status, [handle, ctypes.c_int32]),
        "lathe_session_create_with_options": (status, [handle, handle, handle_p]),
        "lathe_session_arena_bytes": (status, [handle, c_size_p]),
    }
    missing = [name for name in signatures if not hasattr(lib, name)]
    if missing:
        raise LibraryNotFoundError(f"{lib._name} lacks functions of lathe.h: {', '.join(missing)}")
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
