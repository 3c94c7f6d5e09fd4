"""The loaded library and the one helper every call goes through."""

from . import _library
from ._errors import LatheError

lib, library_path = _library.load()


def check(status):
    """Raises LatheError with the calling thread's last Lathe message unless `status` is LATHE_OK."""
    if status != 0:
        message = lib.lathe_last_error()
        raise LatheError(status, message.decode("utf-8", "replace") if message else "")
