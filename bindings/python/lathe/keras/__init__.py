"""`lathe.keras`: Keras's Sequential API on Lathe's native training engine.

Change only the imports of a Keras script:

    from lathe.keras.models import Sequential
    from lathe.keras.layers import Conv2D, MaxPooling2D, Flatten, Dense, Dropout

Layers, optimizers, losses, metrics and callbacks mirror Keras; what the engine does not support
raises `UnsupportedError` (a `lathe.LatheError` and a `NotImplementedError`) naming it.
`model.save("m.onnx")` exports ONNX.
"""

from . import callbacks, layers, losses, metrics, models, optimizers, regularizers, utils
from ._engine import UnsupportedError
from .layers import Input
from .models import Model, Sequential

__all__ = ["Input", "Model", "Sequential", "UnsupportedError", "callbacks", "layers", "losses", "metrics", "models", "optimizers",
           "regularizers", "utils"]
