"""Writes the ONNX models of the plugin examples, and numpy references of their custom ops.

    python3 make_models.py [OUT_DIR]      # default: this directory

- sobel_cnn.onnx: image [N,1,16,16] -> com.acme.vision:SobelEdges(scale=0.25) -> Conv -> Relu ->
  MaxPool -> GlobalAveragePool -> Flatten -> Gemm -> Softmax -> probs [N,3] (a defect CNN with an
  edge-enhancement layer in front, served by sobel_plugin.c).
- sobel_cnn_tail.onnx: the same network without SobelEdges (input "edges"), for references with
  onnxruntime.
- swish.onnx: x [N,8] -> com.acme.py:Swish(beta=1.5) -> Add(bias) -> y (served by python_plugin.py).
- highpass.onnx: signal [1,T] -> com.acme.dsp:HighPass(alpha=0.9) -> Relu -> y (dsp_highpass in
  dsp.c, bound through libffi).
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 16


def sobel_reference(x, scale=1.0):
    """Sobel gradient magnitude of each NCHW plane, zero-padded, times `scale` (float32)."""
    x = np.asarray(x, np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2], x.shape[3]

    def at(di, dj):
        return padded[:, :, 1 + di:1 + di + h, 1 + dj:1 + dj + w]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return (np.float32(scale) * np.sqrt(gx * gx + gy * gy)).astype(np.float32)


def swish_reference(x, beta=1.5):
    """x * sigmoid(beta x)."""
    return (x / (1 + np.exp(-beta * x))).astype(np.float32)


def highpass_reference(x, alpha=0.9):
    """dsp_highpass over the flattened samples."""
    flat = np.asarray(x, np.float32).ravel()
    y = np.empty_like(flat)
    if flat.size:
        y[0] = flat[0]
        for i in range(1, flat.size):
            y[i] = np.float32(alpha) * (y[i - 1] + flat[i] - flat[i - 1])
    return y.reshape(np.shape(x))


def _cnn_nodes_and_weights(source):
    rng = np.random.default_rng(7)
    weights = [
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32) * 0.5, "conv_w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) * 0.1, "conv_b"),
        numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32) * 0.1, "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", [source, "conv_w", "conv_b"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["act"], name="relu"),
        helper.make_node("MaxPool", ["act"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    return nodes, weights


def _model(graph, domains):
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, v) for d, v in domains.items()]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="lathe-examples")
    model.ir_version = 8
    return model


def sobel_cnn(domain_opset=1):
    """The defect CNN with SobelEdges in front."""
    nodes, weights = _cnn_nodes_and_weights("edges")
    sobel = helper.make_node("SobelEdges", ["image"], ["edges"], name="sobel", domain="com.acme.vision", scale=0.25)
    graph = helper.make_graph(
        [sobel] + nodes, "sobel_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])], weights)
    return _model(graph, {"com.acme.vision": domain_opset})


def sobel_cnn_tail():
    """The CNN without its SobelEdges layer (input 'edges'), runnable by onnxruntime."""
    nodes, weights = _cnn_nodes_and_weights("edges")
    graph = helper.make_graph(
        nodes, "sobel_cnn_tail",
        [helper.make_tensor_value_info("edges", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])], weights)
    return _model(graph, {})


def swish():
    """x -> Swish(beta=1.5) (a Python op) -> Add(bias) -> y."""
    bias = numpy_helper.from_array(np.linspace(-1, 1, 8).astype(np.float32), "bias")
    graph = helper.make_graph(
        [helper.make_node("Swish", ["x"], ["s"], name="swish", domain="com.acme.py", beta=1.5),
         helper.make_node("Add", ["s", "bias"], ["y"], name="add")],
        "swish",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], [bias])
    return _model(graph, {"com.acme.py": 1})


def highpass(length=64):
    """signal -> HighPass(alpha=0.9) (dsp_highpass through libffi) -> Relu -> y."""
    graph = helper.make_graph(
        [helper.make_node("HighPass", ["signal"], ["filtered"], name="highpass", domain="com.acme.dsp", alpha=0.9),
         helper.make_node("Relu", ["filtered"], ["y"], name="relu")],
        "highpass",
        [helper.make_tensor_value_info("signal", TensorProto.FLOAT, [1, length])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, length])])
    return _model(graph, {"com.acme.dsp": 1})


def write_all(directory):
    """Writes every example model into `directory`; returns their paths by name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, model in [("sobel_cnn", sobel_cnn()), ("sobel_cnn_tail", sobel_cnn_tail()),
                        ("swish", swish()), ("highpass", highpass())]:
        if name == "sobel_cnn_tail":
            onnx.checker.check_model(model)
        paths[name] = directory / f"{name}.onnx"
        onnx.save(model, paths[name])
    return paths


if __name__ == "__main__":
    for path in write_all(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent).values():
        print(path)
