"""Status codes of lathe.h and the exception that carries them."""

import enum


class Status(enum.IntEnum):
    """The `LATHE_*` status codes of lathe.h. Later libraries may return codes not listed here."""

    OK = 0
    INVALID_ARGUMENT = 1
    PARSE = 2
    UNSUPPORTED_OP = 3
    SHAPE_MISMATCH = 4
    DTYPE_MISMATCH = 5
    OUT_OF_MEMORY = 6
    PLUGIN = 7
    IO = 8
    INVALID_STATE = 9
    INTERNAL = 10


LATHE_OK = Status.OK
LATHE_ERROR_INVALID_ARGUMENT = Status.INVALID_ARGUMENT
LATHE_ERROR_PARSE = Status.PARSE
LATHE_ERROR_UNSUPPORTED_OP = Status.UNSUPPORTED_OP
LATHE_ERROR_SHAPE_MISMATCH = Status.SHAPE_MISMATCH
LATHE_ERROR_DTYPE_MISMATCH = Status.DTYPE_MISMATCH
LATHE_ERROR_OUT_OF_MEMORY = Status.OUT_OF_MEMORY
LATHE_ERROR_PLUGIN = Status.PLUGIN
LATHE_ERROR_IO = Status.IO
LATHE_ERROR_INVALID_STATE = Status.INVALID_STATE
LATHE_ERROR_INTERNAL = Status.INTERNAL


class LatheError(Exception):
    """A failed Lathe call: `status` is the `LATHE_*` code, `str(error)` is Lathe's message."""

    def __init__(self, status, message):
        super().__init__(message)
        try:
            self.status = Status(status)
        except ValueError:
            self.status = int(status)

    @property
    def status_name(self):
        """The code's name as in lathe.h ("LATHE_ERROR_PARSE"), or "status N" for a code this binding does not know."""
        if isinstance(self.status, Status):
            return "LATHE_OK" if self.status == Status.OK else f"LATHE_ERROR_{self.status.name}"
        return f"status {self.status}"

    def __repr__(self):
        return f"LatheError({self.status_name}, {str(self)!r})"
