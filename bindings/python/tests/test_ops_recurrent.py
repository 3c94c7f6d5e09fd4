"""LSTM and GRU through lathe, compared with onnxruntime on randomized inputs over directions, layouts,
optional inputs (B, sequence_lens, initial_h, initial_c, P), clip, input_forget, linear_before_reset,
activation lists and opsets. onnxruntime refuses layout=1, so those cases are checked against
onnxruntime run on the transposed (layout=0) problem and against a numpy reference, itself checked
against onnxruntime on layout=0.
Tolerance: max abs error <= 1e-4 * max(1, max|reference|)."""
import itertools

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lathe

ACTIVATIONS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
               "HardSigmoid", "Elu", "Softsign", "Softplus"]
# Bounded functions for the gates (f); g and h may be any function.
GATE_ACTIVATIONS = ["Sigmoid", "HardSigmoid", "Softsign", "ScaledTanh"]
ALPHA_DEFAULTS = {"affine": 1.0, "leakyrelu": 0.01, "thresholdedrelu": 1.0, "scaledtanh": 1.0, "hardsigmoid": 0.2, "elu": 1.0}
BETA_DEFAULTS = {"affine": 0.0, "scaledtanh": 1.0, "hardsigmoid": 0.5}


def make_case(op, direction, layout, optional, variant, index):
    """One configuration: sizes, attributes and which optional inputs are wired."""
    rng = np.random.default_rng(1000 + index)
    nd = 2 if direction == "bidirectional" else 1
    case = dict(op=op, direction=direction, layout=layout, seq=int(rng.integers(1, 6)), batch=int(rng.integers(1, 4)),
                input=int(rng.integers(1, 5)), hidden=int(rng.integers(1, 6)), bias=optional, lens=optional,
                h0=optional, c0=optional and op == "LSTM", p=optional and op == "LSTM", attrs={},
                opset=[14, 17, 21][index % 3] if layout else [11, 14, 17, 21][index % 4])
    per_direction = 3 if op == "LSTM" else 2
    if op == "LSTM":
        if variant == 1:
            case["attrs"]["clip"] = 0.7
        if variant == 2:
            case["attrs"].update(clip=1.5, input_forget=1)
    else:
        case["attrs"]["linear_before_reset"] = variant % 2
        if variant >= 2:
            case["attrs"]["clip"] = 0.8
    if variant == 3 or (op == "GRU" and variant == 2):
        names = []
        for d in range(nd):
            names.append(GATE_ACTIVATIONS[(index + d) % 4])
            names += [ACTIVATIONS[(index + 2 * d + 5 * k) % 11] for k in range(per_direction - 1)]
        case["attrs"].update(activations=names, activation_alpha=[0.6, 0.3, 1.2, 0.4, 0.25, 0.9],
                             activation_beta=[0.3, 0.8, 0.5, 0.1])
    return case


def make_inputs(case, seed):
    """Random inputs in ONNX order (None for omitted ones), in the case's layout."""
    rng = np.random.default_rng(seed)
    nd = 2 if case["direction"] == "bidirectional" else 1
    g = (4 if case["op"] == "LSTM" else 3) * case["hidden"]
    seq, batch, hidden = case["seq"], case["batch"], case["hidden"]

    def uniform(shape, scale):
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    state = (nd, batch, hidden) if case["layout"] == 0 else (batch, nd, hidden)
    lens = None
    if case["lens"]:
        lens = rng.integers(0, seq + 1, batch).astype(np.int32)
        lens[0] = seq
        if batch > 1:
            lens[1] = 0
    inputs = [uniform((seq, batch, case["input"]) if case["layout"] == 0 else (batch, seq, case["input"]), 1),
              uniform((nd, g, case["input"]), 0.8), uniform((nd, g, hidden), 0.8),
              uniform((nd, 2 * g), 0.5) if case["bias"] else None, lens,
              uniform(state, 1) if case["h0"] else None, uniform(state, 1) if case["c0"] else None,
              uniform((nd, 3 * hidden), 0.5) if case["p"] else None]
    return inputs[:8] if case["op"] == "LSTM" else inputs[:6]


INPUT_NAMES = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]


def build(case, inputs, layout, outputs, initializers=False):
    """The one-node model; every present input but X is an initializer when `initializers`, else fed."""
    names = [INPUT_NAMES[i] if a is not None else "" for i, a in enumerate(inputs)]
    while names and names[-1] == "":
        names.pop()
    attrs = {"hidden_size": case["hidden"], "direction": case["direction"], **case["attrs"]}
    if layout:
        attrs["layout"] = 1
    node = helper.make_node(case["op"], names, outputs, **attrs)
    feeds = {n: a for n, a in zip(INPUT_NAMES, inputs) if a is not None and (n == "X" or not initializers)}
    inits = [numpy_helper.from_array(a, n) for n, a in zip(INPUT_NAMES, inputs)
             if a is not None and n != "X" and initializers]
    graph = helper.make_graph(
        [node], "t",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs if o],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case["opset"])])
    model.ir_version = 8
    return model.SerializeToString(), feeds


def run_ort(data, feeds, outputs):
    values = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    return dict(zip([o for o in outputs if o], values))


def run_lathe(data, feeds, outputs):
    got = lathe.Model(data).predict(dict(feeds))
    if not isinstance(got, dict):
        got = {[o for o in outputs if o][0]: got}
    return got


def to_layout0(inputs):
    """The same problem with batch-major X and states transposed to sequence-major."""
    out = list(inputs)
    out[0] = np.ascontiguousarray(inputs[0].transpose(1, 0, 2))
    for i in (5, 6):
        if i < len(out) and out[i] is not None:
            out[i] = np.ascontiguousarray(out[i].transpose(1, 0, 2))
    return out


def from_layout0(name, value):
    """An output of the sequence-major problem in batch-major layout."""
    return value.transpose(2, 0, 1, 3) if name == "Y" else value.transpose(1, 0, 2)


def activate(name, alpha, beta, x):
    """The ONNX recurrent activation `name`, in float64."""
    n = name.lower()
    if n == "relu":
        return np.maximum(x, 0)
    if n == "tanh":
        return np.tanh(x)
    if n == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if n == "affine":
        return alpha * x + beta
    if n == "leakyrelu":
        return np.where(x >= 0, x, alpha * x)
    if n == "thresholdedrelu":
        return np.where(x >= alpha, x, 0)
    if n == "scaledtanh":
        return alpha * np.tanh(beta * x)
    if n == "hardsigmoid":
        return np.clip(alpha * x + beta, 0, 1)
    if n == "elu":
        return np.where(x >= 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1))
    if n == "softsign":
        return x / (1 + np.abs(x))
    if n == "softplus":
        return np.logaddexp(0, x)
    raise ValueError(name)


def reference(case, inputs):
    """Naive numpy LSTM/GRU: each batch entry on its own, step by step. Returns Y, Y_h(, Y_c) in the case's layout."""
    op, H, layout = case["op"], case["hidden"], case["layout"]
    nd = 2 if case["direction"] == "bidirectional" else 1
    G = 4 if op == "LSTM" else 3
    x, w, r, b, lens, h0 = [a.astype(np.float64) if a is not None and a.dtype != np.int32 else a for a in inputs[:6]]
    c0, p = ([a.astype(np.float64) if a is not None else None for a in inputs[6:8]] + [None, None])[:2]
    if layout:
        x = x.transpose(1, 0, 2)
        h0 = h0.transpose(1, 0, 2) if h0 is not None else None
        c0 = c0.transpose(1, 0, 2) if c0 is not None else None
    seq, batch = x.shape[0], x.shape[1]
    a = case["attrs"]
    per_direction = 3 if op == "LSTM" else 2
    names = a.get("activations", ["Sigmoid", "Tanh", "Tanh"][:per_direction])
    if len(names) == per_direction and nd == 2:
        names = names + names
    alphas, betas = list(a.get("activation_alpha", [])), list(a.get("activation_beta", []))
    acts = []
    for n in names:
        al = (alphas.pop(0) if alphas else ALPHA_DEFAULTS[n.lower()]) if n.lower() in ALPHA_DEFAULTS else 0
        be = (betas.pop(0) if betas else BETA_DEFAULTS[n.lower()]) if n.lower() in BETA_DEFAULTS else 0
        acts.append((n, al, be))
    clip = a.get("clip")

    def cl(v):
        return np.clip(v, -clip, clip) if clip is not None else v

    y = np.zeros((seq, nd, batch, H))
    yh = np.zeros((nd, batch, H))
    yc = np.zeros((nd, batch, H))
    for d in range(nd):
        f, g = (lambda v, k=acts[d * per_direction]: activate(*k, v)), (lambda v, k=acts[d * per_direction + 1]: activate(*k, v))
        wb = b[d, :G * H] if b is not None else np.zeros(G * H)
        rb = b[d, G * H:] if b is not None else np.zeros(G * H)
        for n in range(batch):
            length = int(lens[n]) if lens is not None else seq
            h = h0[d, n] if h0 is not None else np.zeros(H)
            c = c0[d, n] if c0 is not None else np.zeros(H)
            steps = range(length - 1, -1, -1) if case["direction"] == "reverse" or d == 1 else range(length)
            for t in steps:
                xw = w[d] @ x[t, n] + wb
                if op == "LSTM":
                    hr = r[d] @ h + rb
                    pi, po, pf = (p[d, :H], p[d, H:2 * H], p[d, 2 * H:]) if p is not None else (0, 0, 0)
                    i = f(cl(xw[:H] + hr[:H] + pi * c))
                    ff = 1 - i if a.get("input_forget") else f(cl(xw[2 * H:3 * H] + hr[2 * H:3 * H] + pf * c))
                    c = ff * c + i * g(cl(xw[3 * H:] + hr[3 * H:]))
                    o = f(cl(xw[H:2 * H] + hr[H:2 * H] + po * c))
                    h = o * activate(*acts[d * 3 + 2], c)
                else:
                    z = f(cl(xw[:H] + r[d, :H] @ h + rb[:H]))
                    rr = f(cl(xw[H:2 * H] + r[d, H:2 * H] @ h + rb[H:2 * H]))
                    if a.get("linear_before_reset"):
                        cand = g(cl(xw[2 * H:] + rr * (r[d, 2 * H:] @ h + rb[2 * H:])))
                    else:
                        cand = g(cl(xw[2 * H:] + r[d, 2 * H:] @ (rr * h) + rb[2 * H:]))
                    h = (1 - z) * cand + z * h
                y[t, d, n] = h
            if length > 0:
                yh[d, n], yc[d, n] = h, c
    out = {"Y": y, "Y_h": yh, "Y_c": yc}
    if layout:
        out = {k: from_layout0(k, v) for k, v in out.items()}
    return out


def assert_close(got, ref, what=""):
    assert got.shape == ref.shape, what
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    err = np.max(np.abs(got - ref), initial=0)
    assert err <= 1e-4 * scale, f"{what}: max|diff| = {err}"


CASES = []
for _op in ["LSTM", "GRU"]:
    for _i, (_d, _l, _opt, _v) in enumerate(itertools.product(
            ["forward", "reverse", "bidirectional"], [0, 1], [False, True], range(4))):
        CASES.append(pytest.param(make_case(_op, _d, _l, _opt, _v, _i), id=f"{_op}-{_d}-layout{_l}-{'all' if _opt else 'none'}-v{_v}"))


def expected_outputs(case, inputs, outputs):
    """onnxruntime's results (on the transposed problem for layout=1)."""
    if case["layout"] == 0:
        data, feeds = build(case, inputs, 0, outputs)
        return run_ort(data, feeds, outputs)
    data, feeds = build(dict(case, layout=0), to_layout0(inputs), 0, outputs)
    return {k: from_layout0(k, v) for k, v in run_ort(data, feeds, outputs).items()}


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_onnxruntime(case):
    """The numpy reference agrees with onnxruntime, so it can stand in where onnxruntime cannot run."""
    outputs = ["Y", "Y_h", "Y_c"] if case["op"] == "LSTM" else ["Y", "Y_h"]
    inputs = make_inputs(case, 7)
    expected = expected_outputs(case, inputs, outputs)
    ref = reference(case, inputs)
    for name in outputs:
        assert_close(ref[name].astype(np.float32), expected[name], name)


@pytest.mark.parametrize("case", CASES)
def test_matches_onnxruntime(case):
    outputs = ["Y", "Y_h", "Y_c"] if case["op"] == "LSTM" else ["Y", "Y_h"]
    inputs = make_inputs(case, 11)
    expected = expected_outputs(case, inputs, outputs)
    ref = reference(case, inputs)
    # Weights fed at run time in one half of the cases, as initializers in the other.
    data, feeds = build(case, inputs, case["layout"], outputs, initializers=case["bias"])
    got = run_lathe(data, feeds, outputs)
    for name in outputs:
        assert_close(got[name], expected[name], name)
        assert_close(got[name], ref[name].astype(np.float32), name)


@pytest.mark.parametrize("op,outputs", [("LSTM", ["", "Y_h"]), ("LSTM", ["", "", "Y_c"]), ("LSTM", ["Y", "", "Y_c"]),
                                        ("GRU", ["", "Y_h"]), ("GRU", ["Y"])])
def test_output_subsets(op, outputs):
    case = make_case(op, "bidirectional", 0, True, 0, 5)
    inputs = make_inputs(case, 13)
    data, feeds = build(case, inputs, 0, outputs)
    expected = run_ort(data, feeds, outputs)
    got = run_lathe(data, feeds, outputs)
    assert set(got) == set(expected)
    for name in expected:
        assert_close(got[name], expected[name], name)


def test_activations_once_for_both_directions():
    case = make_case("GRU", "bidirectional", 0, True, 0, 3)
    case["attrs"]["activations"] = ["HardSigmoid", "Softsign"]
    inputs = make_inputs(case, 17)
    data, feeds = build(case, inputs, 0, ["Y", "Y_h"])
    ref = reference(case, inputs)
    got = run_lathe(data, feeds, ["Y", "Y_h"])
    for name in ["Y", "Y_h"]:
        assert_close(got[name], ref[name].astype(np.float32), name)


INVALID_ARGUMENT, SHAPE_MISMATCH = 1, 4  # lathe.h status codes


@pytest.mark.parametrize("change,status,words", [
    ("direction", INVALID_ARGUMENT, "direction"), ("hidden_size", SHAPE_MISMATCH, "W must have shape"),
    ("W", SHAPE_MISMATCH, "W must have shape"), ("lens", INVALID_ARGUMENT, "sequence_lens"),
    ("layout_opset13", INVALID_ARGUMENT, "opset 14"), ("activation", INVALID_ARGUMENT, "Swish")])
def test_errors(change, status, words):
    case = make_case("LSTM", "forward", 0, True, 0, 2)
    inputs = make_inputs(case, 19)
    if change == "direction":
        case["attrs"]["direction"] = "sideways"
    elif change == "hidden_size":
        case["attrs"]["hidden_size"] = case["hidden"] + 1
    elif change == "W":
        inputs[1] = inputs[1][:, :, :-1] if inputs[1].shape[2] > 1 else np.concatenate([inputs[1]] * 2, axis=2)
    elif change == "lens":
        inputs[4] = np.full_like(inputs[4], case["seq"] + 1)
    elif change == "layout_opset13":
        case["opset"] = 13
        case["attrs"]["layout"] = 1
    elif change == "activation":
        case["attrs"]["activations"] = ["Sigmoid", "Tanh", "Swish"]
    data, feeds = build(case, inputs, 0, ["Y", "Y_h", "Y_c"])
    with pytest.raises(lathe.LatheError) as info:
        lathe.Model(data).predict(dict(feeds))
    assert int(info.value.status) == status
    assert words in str(info.value)


@pytest.mark.parametrize("batch,hidden,direction,layout", [
    (1, 50, "forward", 0), (2, 17, "reverse", 1), (3, 16, "bidirectional", 0), (5, 33, "forward", 1),
    (9, 50, "bidirectional", 1), (64, 20, "forward", 0)])
def test_lstm_fused_step_sizes(batch, hidden, direction, layout):
    """The default LSTM cell at the sizes of the fused step kernel's tiles (1–4 batch rows × 1–4 chunks of
    16 hidden units, partial last chunk), weights both as initializers (packed at plan time) and as
    inputs (packed per run); against onnxruntime (layout 0) and the numpy reference."""
    case = make_case("LSTM", direction, layout, True, 0, 1)
    case.update(seq=7, batch=batch, input=6, hidden=hidden, lens=False, p=False)
    outputs = ["Y", "Y_h", "Y_c"]
    inputs = make_inputs(case, 23)
    expected = expected_outputs(case, inputs, outputs)
    ref = reference(case, inputs)
    for initializers in [True, False]:
        data, feeds = build(case, inputs, layout, outputs, initializers=initializers)
        got = run_lathe(data, feeds, outputs)
        for name in outputs:
            assert_close(got[name], expected[name], name)
            assert_close(got[name], ref[name].astype(np.float32), name)
    for subset in [["", "Y_h"], ["", "", "Y_c"]]:   # without Y the state alternates between two buffers
        data, feeds = build(case, inputs, layout, subset, initializers=True)
        got = run_lathe(data, feeds, subset)
        for name in got:
            assert_close(got[name], expected[name], name)


@pytest.mark.parametrize("batch,layout", [(10, 0), (16, 1)])
def test_lstm_fused_step_two_lanes(batch, layout):
    """With two threads the fused LSTM splits the batch rows between the lanes: the same bits as one
    thread (each row's arithmetic does not depend on its tile), and onnxruntime's result within tolerance."""
    case = make_case("LSTM", "bidirectional", layout, True, 0, 1)
    case.update(seq=6, batch=batch, input=5, hidden=50, lens=False, p=False)
    outputs = ["Y", "Y_h", "Y_c"]
    inputs = make_inputs(case, 29)
    expected = expected_outputs(case, inputs, outputs)
    data, feeds = build(case, inputs, layout, outputs, initializers=True)
    one = lathe.Model(data).predict(dict(feeds))
    two = lathe.Model(data, threads=2).predict(dict(feeds))
    for name in outputs:
        assert np.array_equal(one[name], two[name]), name
        assert_close(two[name], expected[name], name)
