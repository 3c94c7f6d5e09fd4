#!/usr/bin/env python3
"""Builds Lathe's seed workload models with onnx.helper and writes reference data.

Each model goes to models/seed/<name>/model.onnx (opset 17, symbolic batch dim "N") with
reference data in the ONNX backend-test layout: test_data_set_b1/ and test_data_set_b64/,
each holding input_0.pb and output_0.pb (TensorProto; outputs computed with onnxruntime).
Also writes models/defect_cnn.onnx, the four-class defect-inspection CNN of the README demo.

Weights are seeded and rounded to a 2**-12 grid, so the files are reproducible byte for byte
and their low-entropy mantissas pack small in git.

Usage: python3 scripts/make_seed_models.py [--out models]
"""

import argparse
import pathlib

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
BATCH = "N"
BATCH_SIZES = (1, 64)


class GraphBuilder:
    """Accumulates nodes and seeded initializers for one single-input, single-output graph."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.initializers = []
        self.counter = 0

    def fresh(self, stem):
        """Returns a new unique value name starting with `stem`."""
        self.counter += 1
        return f"{stem}_{self.counter}"

    def constant(self, stem, array):
        """Adds `array` as an initializer and returns its name."""
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, stem, shape, fan_in):
        """Adds a He-scaled random float32 weight rounded to a 2**-12 grid."""
        values = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
        return self.constant(stem, quantize(values))

    def bias(self, stem, size):
        """Adds a small random float32 bias rounded to a 2**-12 grid."""
        return self.constant(stem, quantize(self.rng.normal(0.0, 0.05, size=size)))

    def node(self, op_type, inputs, n_outputs=1, **attributes):
        """Appends a node and returns its output name (or a list when it has several)."""
        outputs = [self.fresh(op_type.lower()) for _ in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=outputs[0], **attributes))
        return outputs[0] if n_outputs == 1 else outputs

    def conv(self, x, c_in, c_out, kernel, stride=1, pad=0, bias=True):
        """Conv with a [c_out, c_in, k, k] weight and optional bias."""
        w = self.weight("conv_w", (c_out, c_in, kernel, kernel), c_in * kernel * kernel)
        inputs = [x, w] + ([self.bias("conv_b", c_out)] if bias else [])
        return self.node("Conv", inputs, kernel_shape=[kernel, kernel], strides=[stride, stride],
                         pads=[pad] * 4)

    def batch_norm(self, x, channels):
        """Inference-mode BatchNormalization with non-trivial statistics."""
        scale = self.constant("bn_scale", quantize(self.rng.uniform(0.5, 1.5, channels)))
        shift = self.constant("bn_bias", quantize(self.rng.normal(0.0, 0.1, channels)))
        mean = self.constant("bn_mean", quantize(self.rng.normal(0.0, 0.1, channels)))
        var = self.constant("bn_var", quantize(self.rng.uniform(0.5, 2.0, channels)))
        return self.node("BatchNormalization", [x, scale, shift, mean, var], epsilon=1e-5)

    def dense(self, x, n_in, n_out, trans_b=True):
        """Gemm; PyTorch-style [out, in] weight with transB=1, Keras-style [in, out] otherwise."""
        shape = (n_out, n_in) if trans_b else (n_in, n_out)
        w = self.weight("fc_w", shape, n_in)
        return self.gemm(x, w, self.bias("fc_b", n_out), trans_b)

    def gemm(self, x, w, b, trans_b=True):
        """Gemm with initializer names `w` and `b`."""
        return self.node("Gemm", [x, w, b], transB=int(trans_b))

    def max_pool(self, x):
        """2x2 max pooling with stride 2."""
        return self.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])

    def model(self, name, x, y, input_shape, output_shape, output="output"):
        """Wraps the graph into an opset-17 ModelProto whose output `y` is renamed `output`."""
        nodes = self.nodes + [helper.make_node("Identity", [y], [output], name=output)]
        graph = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, [BATCH, *input_shape])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, [BATCH, *output_shape])],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="lathe-seed-models")
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def quantize(values):
    """Rounds to multiples of 2**-12 as float32."""
    return (np.round(np.asarray(values) * 4096.0) / 4096.0).astype(np.float32)


def cnn_a_features(g, x):
    """cnn_a up to its 128 hidden units: Conv32 3x3, Relu, MaxPool, Flatten, Gemm128, Relu."""
    h = g.node("Relu", [g.conv(x, 1, 32, 3)])
    h = g.node("Flatten", [g.max_pool(h)], axis=1)
    return g.node("Relu", [g.dense(h, 32 * 13 * 13, 128)])


def cnn_a():
    """MNIST CNN: Conv32 3x3, Relu, MaxPool, Flatten, Gemm128, Relu, Gemm10, Softmax (NCHW)."""
    g = GraphBuilder(1)
    x = "input"
    y = g.node("Softmax", [g.dense(cnn_a_features(g, x), 128, 10)], axis=-1)
    return g, x, y, (1, 28, 28), (10,)


DEFECT_CLASSES = ("ok", "scratch", "dent", "stain")


def defect_frames(kind, count, rng):
    """Synthetic 28x28 grey frames [count, 1, 28, 28] of one defect kind, in [0, 1].

    A clean surface is a grey level with sensor noise; a scratch is a bright line at a random
    angle; a dent is a dark disc; a stain is a blotchy darker patch."""
    frames = rng.uniform(0.4, 0.6, (count, 1, 1, 1)) + rng.normal(0.0, 0.02, (count, 1, 28, 28))
    yy, xx = np.mgrid[:28, :28]
    for frame in frames[:, 0]:
        if kind == "scratch":
            angle, length = rng.uniform(0, np.pi), rng.uniform(12, 24)
            cy, cx = rng.uniform(9, 19, 2)
            t = np.linspace(-length / 2, length / 2, 64)
            rows = np.clip(np.round(cy + t * np.sin(angle)), 0, 27).astype(int)
            cols = np.clip(np.round(cx + t * np.cos(angle)), 0, 27).astype(int)
            frame[rows, cols] = rng.uniform(0.85, 1.0)
        elif kind == "dent":
            cy, cx = rng.uniform(7, 21, 2)
            frame[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(2.5, 5.5) ** 2] = rng.uniform(0.1, 0.25)
        elif kind == "stain":
            h, w = rng.integers(8, 15, 2)
            top, left = rng.integers(2, 26 - h), rng.integers(2, 26 - w)
            frame[top:top + h, left:left + w] -= rng.uniform(0.15, 0.35) * rng.random((h, w))
    return np.clip(frames, 0.0, 1.0).astype(np.float32)


def defect_filters(rng):
    """32 3x3 filters and biases for defect features, each responding only to a strong pattern.

    0-3: bright lines (horizontal, vertical, two diagonals); 4/5: bright/dark points against
    their surround; 6-10: dark patches below five grey levels; 11/12: bright patches; 13-16:
    steps to each neighbour (blotchy texture); 17-31: seeded random filters."""
    w = np.zeros((32, 1, 3, 3))
    b = np.zeros(32)
    lines = ([(1, 0), (1, 1), (1, 2)], [(0, 1), (1, 1), (2, 1)], [(0, 0), (1, 1), (2, 2)],
             [(0, 2), (1, 1), (2, 0)])
    for c, line in enumerate(lines):
        on = np.zeros((3, 3))
        on[tuple(np.transpose(line))] = 1.0
        w[c, 0], b[c] = on / 3 - (1 - on) / 6, -0.2
    surround = np.full((3, 3), 1 / 8)
    surround[1, 1] = -1.0
    w[4, 0], b[4] = -surround, -0.15
    w[5, 0], b[5] = surround, -0.08
    for c, level in zip(range(6, 11), (0.2, 0.25, 0.3, 0.35, 0.4)):
        w[c, 0], b[c] = -1 / 9, level
    for c, level in zip(range(11, 13), (0.7, 0.8)):
        w[c, 0], b[c] = 1 / 9, -level
    for c, (dy, dx) in zip(range(13, 17), ((0, 1), (0, -1), (1, 0), (-1, 0))):
        w[c, 0, 1, 1], w[c, 0, 1 + dy, 1 + dx], b[c] = 1.0, -1.0, -0.08
    w[17:] = rng.normal(0.0, np.sqrt(2 / 9), (15, 1, 3, 3))
    b[17:] = rng.normal(0.0, 0.05, 15)
    return quantize(w), quantize(b)


def defect_cnn():
    """cnn_a with four classes (ok, scratch, dent, stain) that tells synthetic defects apart.

    The convolution holds pattern detectors (defect_filters); each of the 128 hidden units
    averages one filter's pooled map over the frame above one of four thresholds; the output
    layer is fitted by ridge regression of those features onto scaled one-hot targets over
    synthetic frames (about 99.9% right on fresh ones)."""
    g = GraphBuilder(7)
    x = "image"
    conv_w, conv_b = defect_filters(g.rng)
    h = g.node("Relu", [g.node("Conv", [x, g.constant("conv_w", conv_w), g.constant("conv_b", conv_b)],
                               kernel_shape=[3, 3])])
    h = g.node("Flatten", [g.max_pool(h)], axis=1)
    positions = 13 * 13
    hidden_w = np.zeros((128, 32 * positions))
    hidden_b = np.zeros(128)
    for c in range(32):
        for k, threshold in enumerate((0.0, 0.004, 0.015, 0.04)):
            hidden_w[4 * c + k, c * positions:(c + 1) * positions] = 16.0 / positions
            hidden_b[4 * c + k] = -16.0 * threshold
    features = g.node("Relu", [g.gemm(h, g.constant("fc_w", quantize(hidden_w)),
                                      g.constant("fc_b", quantize(hidden_b)))])
    hidden = g.model("defect_features", x, features, (1, 28, 28), (128,))
    session = onnxruntime.InferenceSession(hidden.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(8)
    frames = np.concatenate([defect_frames(k, 500, rng) for k in DEFECT_CLASSES])
    labels = np.repeat(np.arange(len(DEFECT_CLASSES)), 500)
    (h,) = session.run(None, {x: frames})
    h = np.concatenate([h, np.ones((len(h), 1), np.float32)], axis=1).astype(np.float64)
    targets = 8.0 * np.eye(len(DEFECT_CLASSES))[labels] - 4.0
    solution = np.linalg.solve(h.T @ h + 0.1 * np.eye(h.shape[1]), h.T @ targets)
    w = g.constant("fc_w", quantize(solution[:-1].T))
    b = g.constant("fc_b", quantize(solution[-1]))
    y = g.node("Softmax", [g.gemm(features, w, b)], axis=-1)
    model = g.model("defect_cnn", x, y, (1, 28, 28), (len(DEFECT_CLASSES),), output="probs")
    model.doc_string = "Defect inspection CNN; output classes: " + ", ".join(DEFECT_CLASSES) + "."
    helper.set_model_props(model, {"classes": ",".join(DEFECT_CLASSES)})
    return model


def cnn_b():
    """Keras-tutorial CNN on NHWC 28x28x1, transposed to NCHW and back before Flatten."""
    g = GraphBuilder(2)
    x = "input"
    h = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    h = g.max_pool(g.node("Relu", [g.conv(h, 1, 32, 3)]))
    h = g.max_pool(g.node("Relu", [g.conv(h, 32, 64, 3)]))
    h = g.node("Relu", [g.conv(h, 64, 64, 3)])
    h = g.node("Transpose", [h], perm=[0, 2, 3, 1])
    h = g.node("Flatten", [h], axis=1)
    h = g.node("Relu", [g.dense(h, 3 * 3 * 64, 64, trans_b=False)])
    y = g.node("Softmax", [g.dense(h, 64, 10, trans_b=False)], axis=1)
    return g, x, y, (28, 28, 1), (10,)


def lstm_3x50():
    """Three stacked LSTM(50) on batch-first [N, 50, 8], last time step, Gemm to 1."""
    g = GraphBuilder(3)
    x = "input"
    hidden = 50
    squeeze_axes = g.constant("axes", np.array([1], dtype=np.int64))
    h = g.node("Transpose", [x], perm=[1, 0, 2])
    n_in = 8
    for layer in range(3):
        w = g.weight("lstm_w", (1, 4 * hidden, n_in), n_in + hidden)
        r = g.weight("lstm_r", (1, 4 * hidden, hidden), n_in + hidden)
        b = g.constant("lstm_b", quantize(g.rng.normal(0.0, 0.1, (1, 8 * hidden))))
        y_all = g.node("LSTM", [h, w, r, b], hidden_size=hidden)
        h = g.node("Squeeze", [y_all, squeeze_axes])
        if layer < 2:
            h = g.node("Dropout", [h])
        n_in = hidden
    last = g.node("Gather", [h, g.constant("last_step", np.array(-1, dtype=np.int64))], axis=0)
    last = g.node("Dropout", [last])
    y = g.dense(last, hidden, 1)
    return g, x, y, (50, 8), (1,)


def mlp_8_12_8_1():
    """Pima-style binary classifier: Gemm12 Relu Gemm8 Relu Gemm1 Sigmoid."""
    g = GraphBuilder(4)
    x = "input"
    h = g.node("Relu", [g.dense(x, 8, 12, trans_b=False)])
    h = g.node("Relu", [g.dense(h, 12, 8, trans_b=False)])
    y = g.node("Sigmoid", [g.dense(h, 8, 1, trans_b=False)])
    return g, x, y, (8,), (1,)


def mlp_16_32_16_1():
    """Regression MLP: Gemm32 Relu Gemm16 Relu Gemm1."""
    g = GraphBuilder(5)
    x = "input"
    h = g.node("Relu", [g.dense(x, 16, 32)])
    h = g.node("Relu", [g.dense(h, 32, 16)])
    y = g.dense(h, 16, 1)
    return g, x, y, (16,), (1,)


def resnet_small():
    """Narrow ResNet on 3x64x64: stem, identity block, strided projection block, GAP, Gemm10."""
    g = GraphBuilder(6)
    x = "input"
    h = g.node("Relu", [g.batch_norm(g.conv(x, 3, 32, 3, pad=1, bias=False), 32)])
    # Identity residual block at 32 channels.
    r = g.node("Relu", [g.batch_norm(g.conv(h, 32, 32, 3, pad=1, bias=False), 32)])
    r = g.batch_norm(g.conv(r, 32, 32, 3, pad=1, bias=False), 32)
    h = g.node("Relu", [g.node("Add", [h, r])])
    # Downsampling block to 64 channels with a strided 1x1 projection on the skip path.
    r = g.node("Relu", [g.batch_norm(g.conv(h, 32, 64, 3, stride=2, pad=1, bias=False), 64)])
    r = g.batch_norm(g.conv(r, 64, 64, 3, pad=1, bias=False), 64)
    skip = g.batch_norm(g.conv(h, 32, 64, 1, stride=2, bias=False), 64)
    h = g.node("Relu", [g.node("Add", [skip, r])])
    h = g.node("Flatten", [g.node("GlobalAveragePool", [h])], axis=1)
    y = g.dense(h, 64, 10)
    return g, x, y, (3, 64, 64), (10,)


SEED_MODELS = {
    "cnn_a": cnn_a,
    "cnn_b": cnn_b,
    "lstm_3x50": lstm_3x50,
    "mlp_8_12_8_1": mlp_8_12_8_1,
    "mlp_16_32_16_1": mlp_16_32_16_1,
    "resnet_small": resnet_small,
}


def sample_input(name, shape, seed):
    """Seeded float32 input: 8-bit images scaled by 1/256 for CNNs, standard normal otherwise."""
    rng = np.random.default_rng(seed)
    if name.startswith("cnn") or name.startswith("resnet"):
        return (rng.integers(0, 256, shape) / 256.0).astype(np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def write_reference_data(model_dir, model_bytes, name, input_shape):
    """Writes test_data_set_b{1,64}/{input_0,output_0}.pb with outputs from onnxruntime."""
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    for batch in BATCH_SIZES:
        data_dir = model_dir / f"test_data_set_b{batch}"
        data_dir.mkdir(parents=True, exist_ok=True)
        x = sample_input(name, (batch, *input_shape), seed=1000 + batch)
        (y,) = session.run([output_name], {input_name: x})
        write_tensor(data_dir / "input_0.pb", x, input_name)
        write_tensor(data_dir / "output_0.pb", y, output_name)


def write_tensor(path, array, name):
    """Serializes `array` as a named TensorProto."""
    path.write_bytes(numpy_helper.from_array(array, name).SerializeToString())


def write_exported_model(model_dir, name, model_bytes, input_shape, input_seed, reference):
    """Writes an exporter's `model.onnx` and its reference data sets to `model_dir`.

    For each of BATCH_SIZES, a seeded input (seed `input_seed + batch`) is run by onnxruntime,
    checked against `reference(x)` (the exporting framework's own output) to rtol 1e-4 / atol 1e-5,
    and written as test_data_set_b<batch>/{input_0,output_0}.pb.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.onnx").write_bytes(model_bytes)
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    for batch in BATCH_SIZES:
        x = sample_input(name, (batch, *input_shape), seed=input_seed + batch)
        (y,) = session.run(["output"], {"input": x})
        np.testing.assert_allclose(y, reference(x), rtol=1e-4, atol=1e-5)
        data_dir = model_dir / f"test_data_set_b{batch}"
        data_dir.mkdir(parents=True, exist_ok=True)
        write_tensor(data_dir / "input_0.pb", x, "input")
        write_tensor(data_dir / "output_0.pb", y, "output")
    print(f"{model_dir / 'model.onnx'}: {len(model_bytes)} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models", type=pathlib.Path, help="models directory")
    args = parser.parse_args()
    for name, build in SEED_MODELS.items():
        g, x, y, input_shape, output_shape = build()
        model = g.model(name, x, y, input_shape, output_shape)
        model_dir = args.out / "seed" / name
        model_dir.mkdir(parents=True, exist_ok=True)
        model_bytes = model.SerializeToString()
        (model_dir / "model.onnx").write_bytes(model_bytes)
        write_reference_data(model_dir, model_bytes, name, input_shape)
        print(f"{model_dir / 'model.onnx'}: {len(model_bytes)} bytes")
    defect = defect_cnn()
    (args.out / "defect_cnn.onnx").write_bytes(defect.SerializeToString())
    print(f"{args.out / 'defect_cnn.onnx'}: {defect.ByteSize()} bytes")


if __name__ == "__main__":
    main()
