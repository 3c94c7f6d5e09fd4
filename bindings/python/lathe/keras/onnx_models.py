"""Fine-tuning imported ONNX networks with lathe.keras (transfer learning).

    from lathe.keras.models import load_onnx
    from lathe.keras.layers import Dense

    model = load_onnx("defect_cnn.onnx", cut_at="relu_10")     # backbone frozen by default
    model.add(Dense(1, activation="sigmoid"))                   # a new head
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=20)                                  # x as the ONNX model takes it
    model.save("scratch_detector.onnx")

`load_onnx` returns a `Sequential` whose first layer is the imported network (an `ONNXModel` layer), so
`add`, `compile`, `fit`, `evaluate`, `predict` and `save` work as for any Sequential model. Inputs are fed
exactly as the ONNX model declares them (e.g. channels-first `(N, 1, 28, 28)`). What is trained:

* `trainable=False` (the default, as Keras's `base_model.trainable = False`) freezes every imported weight;
  `trainable=True` trains them all.
* `freeze` / `unfreeze` list node or initializer names whose weights are frozen / trained regardless.
* Weights are the float initializers of Conv, ConvTranspose, Gemm, MatMul, Add, BatchNormalization (scale,
  bias) and LSTM/GRU/RNN; other initializers stay constants. Frozen BatchNormalization nodes run in
  inference mode during fit, keeping their moving statistics.
* `cut_at` names the tensor where the imported graph ends (nodes after it are dropped); a per-sample
  rank-3 tensor there is read as channels-first `(C, H, W)` by the layers added after it.

Frozen weights are in `get_weights()` (as Keras lists them; `trainable_weights` has the trained ones) and kept, bit for bit, in the
exported model under the names `imported/<initializer>`.
"""

import os

from .._errors import LatheError, Status
from . import layers as layers_module


class ONNXModel(layers_module.Layer):
    """An imported ONNX network as a layer (see the module documentation). Set `trainable` (the layer's
    attribute, as in Keras) before the model is built."""

    def __init__(self, path, cut_at=None, trainable=False, freeze=(), unfreeze=(), name=None):
        from .._model import Model
        path = os.fspath(path)
        with Model(path) as loaded:
            inputs = loaded.inputs
        if len(inputs) != 1 or inputs[0].shape is None or len(inputs[0].shape) < 2 or \
                not all(isinstance(d, int) and d > 0 for d in inputs[0].shape[1:]):
            described = [(i.name, i.shape) for i in inputs]
            raise LatheError(Status.INVALID_ARGUMENT,
                             f"load_onnx: '{path}' must have one input [N, fixed sizes...], has {described}")
        super().__init__(name=name, input_shape=inputs[0].shape[1:], trainable=trainable)
        self.path = os.path.abspath(path)
        self.cut_at = cut_at
        self.freeze = [str(n) for n in freeze]
        self.unfreeze = [str(n) for n in unfreeze]

    def get_config(self):
        return {"name": self.name, "path": self.path, "cut_at": self.cut_at, "trainable": bool(self.trainable),
                "freeze": self.freeze, "unfreeze": self.unfreeze}


def load_onnx(path, trainable=False, cut_at=None, freeze=(), unfreeze=(), name=None, seed=None):
    """A Sequential model made of the ONNX network at `path`, ready for `add` (a new head), `compile` and
    `fit`. See the module documentation for `trainable`, `cut_at`, `freeze` and `unfreeze`."""
    from .models import Sequential
    return Sequential([ONNXModel(path, cut_at=cut_at, trainable=trainable, freeze=freeze, unfreeze=unfreeze)],
                      name=name, seed=seed)


__all__ = ["ONNXModel", "load_onnx"]
