"""`lathe.keras.utils`: seeding and label helpers."""

import numpy as np

from . import models


def set_random_seed(seed):
    """Seeds weight initialisation and shuffling of models created afterwards (as keras.utils.set_random_seed)."""
    models._default_seed[0] = int(seed)


def to_categorical(y, num_classes=None):
    """Class indices to one-hot float32 rows."""
    y = np.asarray(y, dtype=np.int64).ravel()
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    out = np.zeros((y.size, num_classes), dtype=np.float32)
    out[np.arange(y.size), y] = 1
    return out


__all__ = ["set_random_seed", "to_categorical"]
