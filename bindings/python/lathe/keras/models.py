"""`lathe.keras.models.Sequential`: Keras's Sequential API, trained by Lathe's native engine.

    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    ...
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=10, batch_size=32, validation_data=(x_val, y_val))
    model.save("model.onnx")   # ONNX, runs in lathe.Model, onnxruntime, ...
    model.save_weights("model.ckpt")   # checkpoint: weights + optimizer state, to resume exactly

Inputs are float32 (converted), channels-last for images; targets are float32 values shaped like the
output, or class indices `(N,)` for sparse categorical cross-entropy. The model is built (its native
graph created and weights initialised) at compile when the input shape is known, else at the first
fit/evaluate/predict from the data.
"""

import sys
import time

import numpy as np

from .._errors import LatheError, Status
from . import callbacks as callbacks_module
from . import layers as layers_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from ._engine import Engine, as_floats
from ._steps import StepTraining

#: Seed of weight initialisation and shuffling for models created after `utils.set_random_seed`.
_default_seed = [0]


class Sequential(StepTraining):
    """A linear stack of layers (Keras's Sequential); `train_on_batch`, `input_gradient` and
    `train_on_output_gradient` come from `StepTraining` (lathe/keras/_steps.py)."""

    def __init__(self, layers=None, name=None, seed=None):
        self.name = name or "sequential"
        self.seed = _default_seed[0] if seed is None else int(seed)
        self.layers = []
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.history = None
        self._compiled = None
        self._metric_names = []
        self._engine = None
        self._summary = None
        for layer in layers or []:
            self.add(layer)

    # Building -----------------------------------------------------------------------------------

    def add(self, layer):
        """Appends a layer (before the model is built); an `Input(...)` value declares the input shape."""
        if isinstance(layer, layers_module.KerasTensor) and isinstance(layer.layer, layers_module.InputLayer):
            layer = layer.layer
        if not isinstance(layer, layers_module.Layer):
            raise LatheError(Status.INVALID_ARGUMENT, f"Sequential.add takes a lathe.keras layer, got {layer!r}")
        if self._engine is not None:
            raise LatheError(Status.INVALID_STATE, "cannot add a layer after the model is built")
        self.layers.append(layer)

    def pop(self):
        """Removes the last layer (before the model is built)."""
        if self._engine is not None:
            raise LatheError(Status.INVALID_STATE, "cannot remove a layer after the model is built")
        return self.layers.pop()

    def _declared_input_shape(self):
        for layer in self.layers[:1]:
            return layer.input_shape
        return None

    def to_json(self):
        """The model spec (Keras's to_json form) that include/lathe_train.h reads."""
        import json
        return json.dumps(self._spec(self._declared_input_shape()))

    def _spec(self, input_shape):
        spec = {"class_name": "Sequential", "config": {"name": self.name, "layers": [l.spec() for l in self.layers]},
                "seed": self.seed}
        if input_shape is not None:
            spec["input_shape"] = [int(d) for d in input_shape]
        return spec

    def build(self, input_shape=None):
        """Creates the native model; `input_shape` may include the batch axis (None) as in Keras."""
        if self._engine is not None:
            return
        if input_shape is not None and len(input_shape) > 0 and input_shape[0] is None:
            input_shape = tuple(input_shape)[1:]
        shape = self._declared_input_shape() or input_shape
        if shape is None:
            raise LatheError(Status.INVALID_STATE,
                             "the model has no input shape yet: give input_shape to the first layer or call fit first")
        self._engine = Engine(self._spec(shape))
        self._summary = self._engine.summary()
        if self._compiled is not None:
            self._apply_compile()

    @property
    def built(self):
        return self._engine is not None

    @property
    def input_shape(self):
        self._require_built()
        return (None,) + tuple(self._summary["input_shape"])

    @property
    def output_shape(self):
        self._require_built()
        return (None,) + tuple(self._summary["output_shape"])

    def _require_built(self):
        if self._engine is None:
            raise LatheError(Status.INVALID_STATE, "the model is not built yet (no input shape known)")

    # Compiling ----------------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", **kwargs):
        """Sets the optimizer (name or lathe.keras.optimizers object), loss and metrics (names or objects)."""
        if loss is None:
            raise LatheError(Status.INVALID_ARGUMENT, "compile needs a loss")
        for key, value in (("loss_weights", loss_weights), ("weighted_metrics", weighted_metrics)):
            if value is not None:
                raise metrics_module.UnsupportedError(f"compile: {key} is not supported")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        resolved = [metrics_module.get(m) for m in (metrics or [])]
        seen = {}
        self._metric_names = []
        for _, key, user in resolved:   # the engine numbers repeated keys: f1_score, f1_score_1, ...
            count = seen[key] = seen.get(key, -1) + 1
            self._metric_names.append((f"{key}_{count}" if count else key, user))
        self._compiled = (self.optimizer.to_json(), self.loss.to_json(), [spec for spec, _, _ in resolved])
        if self._engine is not None:
            self._apply_compile()
        elif self._declared_input_shape() is not None:
            self.build()

    def _apply_compile(self):
        self.optimizer._engine = None
        for layer in self.layers:   # Keras's layer.trainable takes effect at compile (ONNXModel's is its import default)
            if not isinstance(layer, (layers_module.InputLayer, _onnx_layer_class())):
                self._engine.set_trainable(layer.name, layer.trainable)
        self._engine.compile(*self._compiled)
        self._summary = self._engine.summary()   # which weights train changes at compile
        self.optimizer._engine = self._engine

    def _require_compiled(self, what):
        if self._compiled is None:
            raise LatheError(Status.INVALID_STATE, f"call compile(optimizer, loss, metrics) before {what}")

    def _rename(self, logs):
        """Engine metric keys to the names the user gave (e.g. a metrics object's name)."""
        renames = {engine: user for engine, user in self._metric_names if engine != user}
        out = {}
        for key, value in logs.items():
            prefix = "val_" if key.startswith("val_") else ""
            base = key[len(prefix):]
            out[prefix + renames.get(base, base)] = value
        # Keras's order: loss, metrics, then the validation ones.
        return dict(sorted(out.items(), key=lambda item: (item[0].startswith("val_"), item[0].split("val_")[-1] != "loss")))

    # Data ---------------------------------------------------------------------------------------

    def _inputs(self, x, name="x"):
        x = as_floats(x, name)
        if self._engine is None:
            self.build(x.shape[1:])
        return x

    def _targets(self, y, name="y"):
        if self.loss is not None and self.loss.sparse:
            y = np.asarray(y)
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
        return as_floats(y, name)

    # Training -----------------------------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Trains for `epochs` epochs; returns a History whose `.history` maps each key to per-epoch values.

        `class_weight` ({class: weight}) or `sample_weight` ((N,) array) multiply each sample's loss, as in Keras.
        Epochs are counted over all fit calls (and kept by save_weights): with the model's seed, the epoch's
        index fixes its shuffling and dropout, so fit(epochs=2) equals fit(epochs=1) twice, bit for bit."""
        self._require_compiled("fit")
        for key, value in (("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps)):
            if value is not None:
                raise metrics_module.UnsupportedError(f"fit: {key} is not supported yet")
        if validation_freq != 1:
            raise metrics_module.UnsupportedError("fit: validation_freq other than 1 is not supported")
        if y is None:
            raise LatheError(Status.INVALID_ARGUMENT, "fit needs targets y")
        x = self._inputs(x)
        y = self._targets(y)
        if class_weight is not None and sample_weight is not None:
            raise LatheError(Status.INVALID_ARGUMENT, "fit: give class_weight or sample_weight, not both (as Keras)")
        weights = None if sample_weight is None else self._sample_weights(sample_weight, len(x))
        class_weights = None if class_weight is None else _class_weight_array(class_weight)
        x_val = y_val = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise LatheError(Status.INVALID_ARGUMENT, "validation_data must be (x_val, y_val)")
            x_val, y_val = as_floats(validation_data[0], "x_val"), self._targets(validation_data[1], "y_val")
        batch_size = 32 if batch_size is None else int(batch_size)
        epochs = int(epochs)
        verbose = 1 if verbose == "auto" else int(verbose)

        history = callbacks_module.History()
        chain = callbacks_module.CallbackList(list(callbacks or []) + [history], self,
                                              {"epochs": epochs, "verbose": verbose, "steps": None})
        progress = _Progress(epochs, verbose)
        self.stop_training = False
        chain.on_train_begin()
        if epochs > initial_epoch:
            chain.on_epoch_begin(initial_epoch)
        started = [time.perf_counter()]

        def on_epoch_end(index, logs):
            epoch = initial_epoch + index
            logs = self._rename(logs)
            progress.epoch_end(epoch, logs, time.perf_counter() - started[0])
            chain.on_epoch_end(epoch, logs)
            if self.stop_training:
                return True
            if epoch + 1 < epochs:
                chain.on_epoch_begin(epoch + 1)
            started[0] = time.perf_counter()
            return False

        self._engine.fit(x, y, x_val, y_val, max(epochs - initial_epoch, 0), batch_size, float(validation_split),
                         shuffle, self.seed % (1 << 64), on_epoch_end, weights, class_weights)
        chain.on_train_end()
        self.history = history
        return history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss (and metrics: `[loss, metric, ...]`, or a dict with return_dict) over `x`, `y`."""
        self._require_compiled("evaluate")
        x = self._inputs(x)
        weights = None if sample_weight is None else self._sample_weights(sample_weight, len(x))
        logs = self._rename(self._engine.evaluate(x, self._targets(y), 32 if batch_size is None else int(batch_size),
                                                  weights))
        if return_dict:
            return logs
        if not self._metric_names:
            return logs["loss"]
        return [logs["loss"]] + [logs[user] for _, user in self._metric_names]

    @staticmethod
    def _sample_weights(sample_weight, samples):
        weights = as_floats(sample_weight, "sample_weight").reshape(-1)
        if weights.size != samples:
            raise LatheError(Status.SHAPE_MISMATCH, f"sample_weight has {weights.size} entries but x has {samples} samples")
        return weights

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The outputs for `x`, a float32 array `(N,) + output_shape`."""
        x = self._inputs(x)
        return self._engine.predict(x, 32 if batch_size is None else int(batch_size), self._summary["output_shape"])

    def __call__(self, x):
        return self.predict(x)

    # Weights and saving -------------------------------------------------------------------------

    def get_weights(self):
        """Every weight (trained or frozen, as Keras) as numpy arrays, in layer order (Dense kernels `[in, out]`; Conv2D kernels in
        ONNX layout `[filters, C, kh, kw]`, not Keras's `[kh, kw, C, filters]`)."""
        self._require_built()
        flat = self._engine.get_weights()
        arrays, start = [], 0
        for weight in self._summary["weights"]:
            size = int(np.prod(weight["shape"]))
            arrays.append(flat[start:start + size].reshape(weight["shape"]).copy())
            start += size
        return arrays

    @property
    def trainable_weights(self):
        """The weights the optimizer updates (those of trainable layers), as numpy arrays, in layer order."""
        return [w for w, info in zip(self.get_weights(), self._summary["weights"]) if info["trainable"]]

    def set_weights(self, weights):
        """Overwrites the weights from arrays shaped as get_weights returns them."""
        self._require_built()
        expected = [tuple(w["shape"]) for w in self._summary["weights"]]
        got = [tuple(np.shape(w)) for w in weights]
        if got != expected:
            raise LatheError(Status.SHAPE_MISMATCH, f"set_weights: expected shapes {expected}, got {got}")
        self._engine.set_weights(np.concatenate([np.asarray(w, dtype=np.float32).ravel() for w in weights])
                                 if weights else np.empty(0, np.float32))

    def count_params(self):
        self._require_built()
        return sum(int(np.prod(w["shape"])) for w in self._summary["weights"])

    def save(self, filepath, overwrite=True, **kwargs):
        """Exports the trained model to ONNX (inference graph; Dropout removed) at `filepath`, or, for a path
        ending in `.ckpt`, writes a training checkpoint (as save_weights)."""
        filepath = str(filepath)
        if filepath.endswith((".keras", ".h5")):
            raise metrics_module.UnsupportedError(
                f"save('{filepath}'): Lathe saves ONNX (.onnx) or its own checkpoints (.ckpt, see save_weights)")
        self._require_built()
        if filepath.endswith(".ckpt"):
            self._engine.save_checkpoint(filepath)
        else:
            self._engine.save_onnx(filepath)

    def save_weights(self, filepath, overwrite=True):
        """Writes a checkpoint: every weight, the optimizer's state (step count, learning rate, moments) and the
        number of epochs trained, so that load_weights into the same architecture resumes training exactly.
        The format is Lathe's (see include/lathe_train.h, lathe_sequential_save_checkpoint), whatever the name."""
        self._require_built()
        self._engine.save_checkpoint(str(filepath))

    def load_weights(self, filepath, skip_mismatch=False):
        """Restores a checkpoint of save_weights. Compile first (with the same optimizer class) to restore the
        optimizer state as well; otherwise only the weights and epoch count are restored, with a warning."""
        if skip_mismatch:
            raise metrics_module.UnsupportedError("load_weights: skip_mismatch is not supported")
        self._require_built()
        if not self._engine.load_checkpoint(str(filepath)) and self._compiled is None:
            import warnings
            warnings.warn("load_weights: the model is not compiled, so the optimizer state was not restored "
                          "(compile first to resume training exactly)", stacklevel=2)

    def to_onnx(self):
        """The trained model as ONNX bytes (load with lathe.Model or onnxruntime)."""
        self._require_built()
        return self._engine.onnx_bytes()

    def summary(self, print_fn=print):
        """Prints the layers, the input/output shapes and the parameter count."""
        self._require_built()
        lines = [f'Model: "{self.name}"', f"input shape: {self.input_shape}"]
        lines += [f"  {layer['name']} ({layer['class_name']})" for layer in self._summary["layers"]]
        lines += [f"output shape: {self.output_shape}", f"Total params: {self.count_params():,}"]
        for line in lines:
            print_fn(line)


def _onnx_layer_class():
    from .onnx_models import ONNXModel
    return ONNXModel


class Model(Sequential):
    """A functional model (Keras's `Model(inputs=..., outputs=...)`): layers called on `Input(...)` values,
    wired as a directed acyclic graph from one input to one output; compile/fit/evaluate/predict/save/
    get_weights as Sequential. `layers` lists the input layer, then the layers in a topological order."""

    def __init__(self, inputs=None, outputs=None, name=None, seed=None):
        single = lambda v, what: v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v
        inputs, outputs = single(inputs, "inputs"), single(outputs, "outputs")
        if isinstance(inputs, (list, tuple)) or isinstance(outputs, (list, tuple)):
            raise metrics_module.UnsupportedError("Model: several inputs or outputs are not supported (one each)")
        if not isinstance(inputs, layers_module.KerasTensor) or not isinstance(inputs.layer, layers_module.InputLayer):
            raise LatheError(Status.INVALID_ARGUMENT, "Model: inputs must be an Input(...) value")
        if not isinstance(outputs, layers_module.KerasTensor):
            raise LatheError(Status.INVALID_ARGUMENT, f"Model: outputs must be a layer's output value, got {outputs!r}")
        super().__init__(name=name or "functional", seed=seed)
        order, seen, stack = [], {id(inputs)}, [(outputs, False)]
        while stack:   # depth-first post-order from the output
            value, expanded = stack.pop()
            if id(value) in seen and not expanded:
                continue
            if expanded:
                seen.add(id(value))
                order.append(value)
                continue
            if isinstance(value.layer, layers_module.InputLayer):
                raise LatheError(Status.INVALID_ARGUMENT, f"Model: the output depends on input '{value.layer.name}', "
                                 "which is not the model's input (a disconnected graph)")
            stack.append((value, True))
            stack.extend((v, False) for v in reversed(value.inputs) if id(v) not in seen)
        self._input = inputs
        self._nodes = order
        self.layers = [inputs.layer] + [v.layer for v in order]
        self.inputs, self.outputs = [inputs], [outputs]

    def add(self, layer):
        raise LatheError(Status.INVALID_STATE, "a functional Model is defined by its inputs and outputs; add is for Sequential")

    def pop(self):
        raise LatheError(Status.INVALID_STATE, "a functional Model is defined by its inputs and outputs; pop is for Sequential")

    def _declared_input_shape(self):
        return self._input.layer.input_shape

    def _spec(self, input_shape):
        entries = [{"class_name": "InputLayer", "name": self._input.layer.name,
                    "config": {"name": self._input.layer.name, "shape": [int(d) for d in input_shape]}}]
        for value in self._nodes:
            entry = value.layer.spec()
            entry["name"] = value.layer.name
            entry["inbound_nodes"] = [v.layer.name for v in value.inputs]
            entries.append(entry)
        return {"class_name": "Functional", "seed": self.seed,
                "config": {"name": self.name, "layers": entries, "output_layers": [self._nodes[-1].layer.name]}}


def _class_weight_array(class_weight):
    """Keras's {class: weight} as a float32 array indexed by class (1 for classes not listed)."""
    import numpy
    if not isinstance(class_weight, dict) or not all(isinstance(k, (int, numpy.integer)) and k >= 0 for k in class_weight):
        raise LatheError(Status.INVALID_ARGUMENT, f"class_weight must map class indices (ints >= 0) to weights, got {class_weight!r}")
    array = numpy.ones(max(class_weight, default=-1) + 1, dtype=numpy.float32)
    for k, v in class_weight.items():
        array[int(k)] = float(v)
    return array


class _Progress:
    """One line per epoch (verbose >= 1); on a terminal, with a bar as Keras draws."""

    def __init__(self, epochs, verbose):
        self.epochs, self.verbose = epochs, verbose
        self.tty = verbose == 1 and sys.stdout.isatty()

    def epoch_end(self, epoch, logs, seconds):
        if self.verbose < 1:
            return
        values = " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())
        bar = "━" * 20 + " " if self.tty else ""
        print(f"Epoch {epoch + 1}/{self.epochs} - {bar}{seconds:.2f}s - {values}", flush=True)


__all__ = ["Model", "Sequential"]

# Fine-tuning imported ONNX networks: `load_onnx` lives in lathe.keras.onnx_models.
from .onnx_models import load_onnx  # noqa: E402

__all__.append("load_onnx")
