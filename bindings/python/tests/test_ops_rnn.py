"""RNN (the simple recurrent cell) through lathe, compared with onnxruntime on randomized inputs over
directions, optional inputs (B, sequence_lens, initial_h), clip, activations and opsets. onnxruntime
refuses layout=1, so that layout is checked against onnxruntime run on the transposed layout-0 problem.
Tolerance: max abs error <= 1e-4 * max(1, max|reference|)."""
import itertools

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import lathe


def build(direction, optional, attrs, opset, layout, seq, batch, size, hidden, rng):
    """The model bytes and feeds of one RNN case."""
    nd = 2 if direction == "bidirectional" else 1
    feeds = {"x": rng.uniform(-1, 1, (batch, seq, size) if layout else (seq, batch, size)).astype(np.float32),
             "w": rng.uniform(-0.6, 0.6, (nd, hidden, size)).astype(np.float32),
             "r": rng.uniform(-0.6, 0.6, (nd, hidden, hidden)).astype(np.float32)}
    names = ["x", "w", "r"]
    if optional:
        feeds["b"] = rng.uniform(-0.5, 0.5, (nd, 2 * hidden)).astype(np.float32)
        feeds["lens"] = rng.integers(1, seq + 1, batch).astype(np.int32)
        state = (batch, nd, hidden) if layout else (nd, batch, hidden)
        feeds["h0"] = rng.uniform(-1, 1, state).astype(np.float32)
        names += ["b", "lens", "h0"]
    node = helper.make_node("RNN", names, ["y", "yh"], direction=direction, hidden_size=hidden,
                            **({"layout": 1} if layout else {}), **attrs)
    graph = helper.make_graph(
        [node], "rnn",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "yh")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString(), feeds


ATTRS = [{}, {"clip": 0.5}, {"activations": ["Relu", "Sigmoid"]}, {"activations": ["HardSigmoid", "Affine"],
                                                                   "activation_alpha": [0.3, 0.7], "activation_beta": [0.4, 0.1]}]


def attributes(index, direction):
    """Case `index`'s attributes, its activation list cut to one function per direction."""
    attrs = dict(ATTRS[index])
    if "activations" in attrs and direction != "bidirectional":
        attrs["activations"] = attrs["activations"][:1]
    return attrs


@pytest.mark.parametrize("direction,optional,attrs,opset",
                         list(itertools.product(["forward", "reverse", "bidirectional"], [False, True], range(4), [7, 14, 22])))
def test_rnn(direction, optional, attrs, opset):
    rng = np.random.default_rng(hash((direction, optional, attrs, opset)) % 2**32)
    data, feeds = build(direction, optional, attributes(attrs, direction), opset, 0, 4, 3, 5, 4, rng)
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    got = lathe.Model(data).predict(feeds)
    for name, ref in zip(["y", "yh"], expected):
        scale = max(1.0, float(np.abs(ref).max()))
        assert got[name].shape == ref.shape
        assert np.abs(got[name] - ref).max() <= 1e-4 * scale


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_rnn_batch_major_layout(direction):
    rng = np.random.default_rng(5)
    data, feeds = build(direction, True, {}, 14, 1, 4, 3, 5, 4, rng)
    got = lathe.Model(data).predict(feeds)
    plain = dict(feeds, x=feeds["x"].transpose(1, 0, 2).copy(), h0=feeds["h0"].transpose(1, 0, 2).copy())
    data0, _ = build(direction, True, {}, 14, 0, 4, 3, 5, 4, rng)
    y, yh = ort.InferenceSession(data0, providers=["CPUExecutionProvider"]).run(None, plain)
    np.testing.assert_allclose(got["y"], y.transpose(2, 0, 1, 3), atol=1e-5)
    np.testing.assert_allclose(got["yh"], yh.transpose(1, 0, 2), atol=1e-5)


def test_rnn_rejects_bad_direction():
    rng = np.random.default_rng(6)
    data, _ = build("sideways", False, {}, 14, 0, 2, 1, 2, 2, rng)
    with pytest.raises(lathe.LatheError, match="direction"):
        lathe.Model(data)
