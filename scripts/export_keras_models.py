#!/usr/bin/env python3
"""Exports the six seed workloads as Keras models through tf2onnx.

Each model goes to models/keras/<name>/model.onnx (opset 17, dynamic batch axis) with
reference data in the ONNX backend-test layout: test_data_set_b1/ and test_data_set_b64/,
each holding input_0.pb and output_0.pb (outputs computed with onnxruntime and checked
against Keras itself). Images are NHWC, as Keras users feed them. Weights are seeded and
rounded to a 2**-12 grid; biases and BatchNormalization statistics are made non-trivial.

Usage: python3 scripts/export_keras_models.py [--out models]
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from keras import layers  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_seed_models import write_exported_model  # noqa: E402

OPSET = 17


def cnn_a():
    """MNIST CNN: Conv32 3x3, MaxPool, Flatten, Dense128, Dense10 softmax."""
    return keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax")])


def cnn_b():
    """Keras-tutorial CNN: Conv32, Conv64, Conv64, Dense64, Dense10 softmax."""
    return keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu"), layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])


def lstm_3x50():
    """Three stacked LSTM(50) layers with Dropout between them and Dense(1)."""
    return keras.Sequential([
        keras.Input((50, 8)), layers.LSTM(50, return_sequences=True), layers.Dropout(0.2),
        layers.LSTM(50, return_sequences=True), layers.Dropout(0.2), layers.LSTM(50),
        layers.Dropout(0.2), layers.Dense(1)])


def mlp_8_12_8_1():
    """Pima-style binary classifier with a sigmoid output."""
    return keras.Sequential([
        keras.Input((8,)), layers.Dense(12, activation="relu"),
        layers.Dense(8, activation="relu"), layers.Dense(1, activation="sigmoid")])


def mlp_16_32_16_1():
    """Regression MLP 16-32-16-1."""
    return keras.Sequential([
        keras.Input((16,)), layers.Dense(32, activation="relu"),
        layers.Dense(16, activation="relu"), layers.Dense(1)])


def resnet_small():
    """Narrow ResNet on 64x64x3: stem, identity block, strided projection block, Dense10."""
    x = keras.Input((64, 64, 3))

    def conv_bn(h, filters, kernel, stride=1):
        h = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(h)
        return layers.BatchNormalization()(h)

    h = layers.ReLU()(conv_bn(x, 32, 3))
    r = conv_bn(layers.ReLU()(conv_bn(h, 32, 3)), 32, 3)
    h = layers.ReLU()(layers.Add()([h, r]))
    r = conv_bn(layers.ReLU()(conv_bn(h, 64, 3, 2)), 64, 3)
    h = layers.ReLU()(layers.Add()([conv_bn(h, 64, 1, 2), r]))
    h = layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, layers.Dense(10)(h))


KERAS_MODELS = {
    "cnn_a": (cnn_a, (28, 28, 1)),
    "cnn_b": (cnn_b, (28, 28, 1)),
    "lstm_3x50": (lstm_3x50, (50, 8)),
    "mlp_8_12_8_1": (mlp_8_12_8_1, (8,)),
    "mlp_16_32_16_1": (mlp_16_32_16_1, (16,)),
    "resnet_small": (resnet_small, (64, 64, 3)),
}


def seeded_model(factory, seed):
    """Builds the model with seeded weights: random biases and BatchNorm statistics."""
    keras.utils.set_random_seed(seed)
    model = factory()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = (w.shape for w in weights)
            weights = [rng.uniform(0.5, 1.5, gamma), rng.normal(0.0, 0.1, beta),
                       rng.normal(0.0, 0.1, mean), rng.uniform(0.5, 2.0, var)]
        elif weights and not np.any(weights[-1]):
            weights[-1] = rng.normal(0.0, 0.05, weights[-1].shape)
        layer.set_weights([np.round(np.asarray(w) * 4096.0) / 4096.0 for w in weights])
    return model


def export(model, input_shape):
    """Converts `model` with tf2onnx to ONNX bytes with input `input` and output `output`."""
    spec = (tf.TensorSpec((None, *input_shape), tf.float32, name="input"),)

    @tf.function(input_signature=spec)
    def forward(x):
        return {"output": model(x, training=False)}

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models", type=pathlib.Path, help="models directory")
    args = parser.parse_args()
    for seed, (name, (factory, input_shape)) in enumerate(KERAS_MODELS.items(), start=21):
        model = seeded_model(factory, seed)
        model_bytes = export(model, input_shape)
        write_exported_model(args.out / "keras" / name, name, model_bytes, input_shape, 3000,
                             lambda x: np.asarray(model(x, training=False)))


if __name__ == "__main__":
    main()
