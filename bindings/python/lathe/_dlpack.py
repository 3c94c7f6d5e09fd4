"""DLPack capsules without a compiled extension: PyCapsule calls through ctypes.pythonapi.

Capsule protocol (unversioned DLPack): a capsule named "dltensor" holds a DLManagedTensor*; the
consumer that takes ownership renames it "used_dltensor". A capsule destructor calls the tensor's
deleter only if nobody took it, i.e. the name is still "dltensor".
"""

import ctypes

from ._library import DLPACK_DELETER, DLManagedTensor


def _keep_forever(obj):
    """Leaks one reference so `obj` outlives every capsule that points into it, even at shutdown."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    return obj


#: Capsule names: PyCapsule keeps the char pointer, so the bytes objects must never be freed.
_DLTENSOR = _keep_forever(b"dltensor")
_USED_DLTENSOR = _keep_forever(b"used_dltensor")

_PyCapsule_New = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi))
_PyCapsule_GetPointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))
_PyCapsule_SetName = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_SetName", ctypes.pythonapi))
# The destructor receives a capsule whose refcount is already zero: only raw-pointer calls are safe there.
_PyCapsule_IsValid_raw = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi))
_PyCapsule_GetPointer_raw = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def call_deleter(managed_address):
    """Calls a DLManagedTensor's deleter (if it has one), giving the tensor back to its producer."""
    deleter = DLManagedTensor.from_address(managed_address).deleter
    if deleter:
        DLPACK_DELETER(deleter)(managed_address)


def _destroy_capsule(capsule_address):
    """PyCapsule destructor: gives the tensor back unless a consumer renamed the capsule (took it)."""
    if _PyCapsule_IsValid_raw(capsule_address, _DLTENSOR):
        call_deleter(_PyCapsule_GetPointer_raw(capsule_address, _DLTENSOR))


_CAPSULE_DESTRUCTOR = _keep_forever(ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_destroy_capsule))
_CAPSULE_DESTRUCTOR_ADDRESS = ctypes.cast(_CAPSULE_DESTRUCTOR, ctypes.c_void_p).value


def capsule_tensor(capsule):
    """The DLManagedTensor* inside an unconsumed "dltensor" capsule (raises if it is anything else)."""
    return _PyCapsule_GetPointer(capsule, _DLTENSOR)


def mark_consumed(capsule):
    """Renames a capsule "used_dltensor": its tensor now belongs to whoever took it."""
    _PyCapsule_SetName(capsule, _USED_DLTENSOR)


class DLPackTensor:
    """One DLManagedTensor* produced by Lathe, offered through the DLPack protocol (`np.from_dlpack`).

    The first `__dlpack__` call hands the tensor over in a "dltensor" capsule; if nobody takes
    the tensor, the capsule (or this object, if never exported) calls its deleter exactly once.
    """

    __slots__ = ("_address", "_device")

    def __init__(self, managed_address):
        self._address = managed_address
        device = DLManagedTensor.from_address(managed_address).dl_tensor.device
        self._device = (device.device_type, device.device_id)

    def __dlpack_device__(self):
        """(device type, device id) of the tensor, e.g. (1, 0) for the CPU."""
        return self._device

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """Returns an unversioned "dltensor" capsule; `max_version` is accepted, as the protocol allows."""
        if self._address is None:
            raise BufferError("this Lathe tensor has already been exported")
        if dl_device is not None and tuple(dl_device) != self._device:
            raise BufferError(f"Lathe tensor lives on device {self._device}, not {tuple(dl_device)}")
        if copy:
            raise BufferError("Lathe exports its tensors without copying; copy=True is not supported")
        address, self._address = self._address, None
        try:
            return _PyCapsule_New(address, _DLTENSOR, _CAPSULE_DESTRUCTOR_ADDRESS)
        except BaseException:
            call_deleter(address)
            raise

    def __del__(self):
        """Gives the tensor back if it was never exported."""
        address, self._address = getattr(self, "_address", None), None
        if address is not None:
            call_deleter(address)
