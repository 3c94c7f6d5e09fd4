"""Keras regularizers (`lathe.keras.regularizers`): L2 on a layer's kernel (`kernel_regularizer=l2(0.01)`).

The penalty `l2 · Σ kernel²` joins the training loss (and the reported loss), as in Keras. A regularizer
is its own Keras config (a dict), so layers carry it into the model spec unchanged.
"""

from .._errors import LatheError, Status


class L2(dict):
    """`l2 · Σ w²` over the kernel (Keras default factor 0.01)."""

    def __init__(self, l2=0.01):
        l2 = float(l2)
        if not l2 >= 0:
            raise LatheError(Status.INVALID_ARGUMENT, f"L2: factor must be >= 0, got {l2}")
        super().__init__(class_name="L2", config={"l2": l2})
        self.l2 = l2

    def get_config(self):
        return {"l2": self.l2}


#: Keras's lower-case alias.
l2 = L2


def get(identifier):
    """A regularizer from "l2", an L2 object or its config dict."""
    if identifier is None or isinstance(identifier, L2):
        return identifier
    if identifier in ("l2", "L2"):
        return L2()
    if isinstance(identifier, dict) and identifier.get("class_name") in ("L2", "l2"):
        return L2(**identifier.get("config", {}))
    raise LatheError(Status.UNSUPPORTED_OP, f"regularizer {identifier!r} is not supported (only l2)")


__all__ = ["L2", "get", "l2"]
