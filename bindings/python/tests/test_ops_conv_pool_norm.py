"""Conv, MaxPool, AveragePool, GlobalAveragePool and BatchNormalization through lathe, compared with
onnxruntime on randomized inputs and attribute combinations over opsets 7-21.
Tolerance: max abs error <= 1e-4 * max(1, max|reference|)."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lathe


def build(node, inputs, opset, initializers=(), output_types=None):
    """Serialized one-node model: `inputs` (name -> array) are graph inputs, `initializers` constants."""
    output_types = output_types or [TensorProto.FLOAT] * len(node.output)
    graph = helper.make_graph(
        [node], "t",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(o, t, None) for o, t in zip(node.output, output_types) if o],
        [numpy_helper.from_array(a, n) for n, a in initializers],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def run_both(node, inputs, opset, initializers=(), output_types=None):
    """Runs the one-node model in onnxruntime and lathe; returns (lathe outputs, onnxruntime outputs)."""
    data = build(node, inputs, opset, initializers, output_types)
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, inputs)
    got = lathe.Model(data).predict(dict(inputs))
    outputs = [o for o in node.output if o]
    if not isinstance(got, dict):
        got = {outputs[0]: got}
    return [got[o] for o in outputs], expected


def assert_close(got, ref):
    assert got.shape == ref.shape
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    assert np.max(np.abs(got - ref), initial=0) <= 1e-4 * scale


def random_window(rng, spatial, dilation=True, pads_below_kernel=False):
    """Random kernel, strides, dilations and pads for `spatial` axes."""
    kernel = [int(rng.integers(1, 4 if spatial < 3 else 3)) for _ in range(spatial)]
    strides = [int(rng.integers(1, 4)) for _ in range(spatial)]
    dilations = [int(rng.integers(1, 3)) if dilation else 1 for _ in range(spatial)]
    if pads_below_kernel:
        pads = [int(rng.integers(0, kernel[i % spatial])) for i in range(2 * spatial)]
    else:
        pads = [int(rng.integers(0, 3)) for _ in range(2 * spatial)]
    return kernel, strides, dilations, pads


def fits(size, kernel, dilations, pads):
    """Whether every dilated kernel fits its explicitly padded input axis."""
    r = len(size)
    return all(size[i] + pads[i] + pads[r + i] >= (kernel[i] - 1) * dilations[i] + 1 for i in range(r))


def same_pads_negative(size, kernel, strides, dilations):
    """Whether SAME padding would be negative on some axis (onnxruntime rejects that; lathe clamps to 0)."""
    return any(((size[i] + strides[i] - 1) // strides[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 < size[i]
               for i in range(len(size)))


def conv_cases():
    rng = np.random.default_rng(2024)
    cases = []
    while len(cases) < 48:
        opset = [11, 13, 17, 21][len(cases) % 4]
        spatial = [1, 2, 2, 3][int(rng.integers(0, 4))]
        group = [1, 1, 2, 3][int(rng.integers(0, 4))]
        depthwise = group > 1 and rng.random() < 0.5
        kernel, strides, dilations, pads = random_window(rng, spatial)
        size = [int(rng.integers(1, 9 if spatial < 3 else 6)) for _ in range(spatial)]
        auto_pad = ["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][int(rng.integers(0, 6))]
        if auto_pad.startswith("SAME"):
            dilations = [1] * spatial  # onnxruntime refuses dilated SAME convolutions
            if same_pads_negative(size, kernel, strides, dilations):
                continue
        elif not fits(size, kernel, dilations, pads if auto_pad == "NOTSET" else [0] * 2 * spatial):
            continue
        cg = 1 if depthwise else int(rng.integers(1, 4))
        attrs = {"group": group, "strides": strides, "dilations": dilations, "auto_pad": auto_pad}
        if auto_pad == "NOTSET":
            attrs["pads"] = pads
        if rng.random() < 0.5:
            attrs["kernel_shape"] = kernel
        cases.append(dict(opset=opset, x=[int(rng.integers(1, 3)), cg * group] + size,
                          w=[int(rng.integers(1, 4)) * group, cg] + kernel, bias=bool(rng.random() < 0.5),
                          const_w=bool(rng.random() < 0.5), attrs=attrs, seed=len(cases)))
    return cases


@pytest.mark.parametrize("case", conv_cases(), ids=lambda c: f"op{c['opset']}-x{c['x']}-w{c['w']}-{c['attrs']['auto_pad']}-g{c['attrs']['group']}")
def test_conv(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x"]).astype(np.float32)
    w = rng.standard_normal(case["w"]).astype(np.float32)
    params = [("w", w)]
    if case["bias"]:
        params.append(("b", rng.standard_normal(case["w"][0]).astype(np.float32)))
    names = ["x"] + [n for n, _ in params]
    inputs, inits = ({"x": x}, params) if case["const_w"] else ({"x": x, **dict(params)}, [])
    (got,), (ref,) = run_both(helper.make_node("Conv", names, ["y"], **case["attrs"]), inputs, case["opset"], inits)
    assert_close(got, ref)


def test_conv_pointwise_grouped():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 8, 6, 5)).astype(np.float32)
    w = rng.standard_normal((12, 2, 1, 1)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    (got,), (ref,) = run_both(helper.make_node("Conv", ["x", "w", "b"], ["y"], group=4), {"x": x}, 17, [("w", w), ("b", b)])
    assert_close(got, ref)


def pool_cases(op):
    rng = np.random.default_rng(11 if op == "MaxPool" else 13)
    opsets = [8, 10, 11, 12, 21] if op == "MaxPool" else [7, 10, 11, 19, 21]
    cases = []
    while len(cases) < 50:
        opset = opsets[len(cases) % len(opsets)]
        spatial = [1, 2, 2, 3][int(rng.integers(0, 4))]
        dilated = (op == "MaxPool" and opset >= 10) or opset >= 19
        kernel, strides, dilations, pads = random_window(rng, spatial, dilation=dilated, pads_below_kernel=True)
        size = [int(rng.integers(1, 10 if spatial < 3 else 6)) for _ in range(spatial)]
        auto_pad = ["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][int(rng.integers(0, 6))]
        if auto_pad.startswith("SAME"):
            dilations = [1] * spatial  # onnxruntime sizes SAME padding from the undilated kernel
            if same_pads_negative(size, kernel, strides, dilations):
                continue
        if not fits(size, kernel, dilations, pads if auto_pad == "NOTSET" else [0] * 2 * spatial):
            continue
        attrs = {"kernel_shape": kernel, "strides": strides, "auto_pad": auto_pad}
        if any(d != 1 for d in dilations):
            attrs["dilations"] = dilations
        if auto_pad == "NOTSET":
            attrs["pads"] = pads
            if opset >= 10 and rng.random() < 0.5:
                attrs["ceil_mode"] = 1
        outputs = ["y"]
        if op == "AveragePool" and rng.random() < 0.5:
            attrs["count_include_pad"] = 1
        if op == "MaxPool":
            if rng.random() < 0.5:
                attrs["storage_order"] = int(rng.integers(0, 2))
            if rng.random() < 0.6:
                outputs.append("i")
        cases.append(dict(op=op, opset=opset, x=[int(rng.integers(1, 3)), int(rng.integers(1, 4))] + size,
                          attrs=attrs, outputs=outputs, seed=len(cases)))
    return cases


@pytest.mark.parametrize("case", pool_cases("MaxPool") + pool_cases("AveragePool"),
                         ids=lambda c: f"{c['op']}-op{c['opset']}-x{c['x']}-{c['attrs']['auto_pad']}-{len(c['outputs'])}out")
def test_pool(case):
    x = np.random.default_rng(case["seed"]).standard_normal(case["x"]).astype(np.float32)
    node = helper.make_node(case["op"], ["x"], case["outputs"], **case["attrs"])
    got, ref = run_both(node, {"x": x}, case["opset"], output_types=[TensorProto.FLOAT, TensorProto.INT64])
    assert_close(got[0], ref[0])
    if len(case["outputs"]) == 2:
        assert got[1].dtype == np.int64
        np.testing.assert_array_equal(got[1], ref[1])


@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 4, 5, 6), (2, 2, 3, 2, 4)])
def test_global_average_pool(shape):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    (got,), (ref,) = run_both(helper.make_node("GlobalAveragePool", ["x"], ["y"]), {"x": x}, 17)
    assert_close(got, ref)


@pytest.mark.parametrize("opset", [9, 14, 15, 21])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 4, 3, 3), (1, 2, 2, 3, 2)])
def test_batch_normalization(opset, shape):
    rng = np.random.default_rng(opset * 10 + len(shape))
    c = shape[1]
    x = rng.standard_normal(shape).astype(np.float32)
    stats = [("scale", rng.standard_normal(c)), ("bias", rng.standard_normal(c)),
             ("mean", rng.standard_normal(c)), ("var", rng.uniform(0.1, 2, c))]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-3)
    (got,), (ref,) = run_both(node, {"x": x}, opset, [(n, a.astype(np.float32)) for n, a in stats])
    assert_close(got, ref)


def test_batch_normalization_training_mode_is_refused():
    c = 3
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1)
    inits = [(n, np.ones(c, np.float32)) for n in ("s", "b", "m", "v")]
    x = np.zeros((2, c, 4), np.float32)
    with pytest.raises(lathe.LatheError) as info:
        lathe.Model(build(node, {"x": x}, 15, inits)).predict(x)
    assert "training_mode" in str(info.value)


def test_conv_channel_mismatch_is_a_lathe_error():
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    data = build(node, {"x": np.zeros((1, 3, 5, 5), np.float32)}, 17, [("w", np.zeros((4, 2, 3, 3), np.float32))])
    with pytest.raises(lathe.LatheError) as info:
        lathe.Model(data).predict(np.zeros((1, 3, 5, 5), np.float32))
    assert "channels" in str(info.value)


def test_pool_kernel_larger_than_input_is_a_lathe_error():
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[6, 2])
    with pytest.raises(lathe.LatheError) as info:
        lathe.Model(build(node, {"x": np.zeros((1, 1, 5, 5), np.float32)}, 17)).predict(np.zeros((1, 1, 5, 5), np.float32))
    assert "larger than the padded input" in str(info.value)
