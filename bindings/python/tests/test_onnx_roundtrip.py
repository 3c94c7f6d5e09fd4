"""Round trip of every op Lathe claims: ONNX → lathe → ONNX (`Model.to_onnx`) → onnxruntime and lathe.

The corpus is every ONNX backend node test the node suite runs (test_onnx_node_suite.py: in scope and
not skip-listed), plus hand-built models for claimed ops that no such node test covers (the
ai.onnx.ml ops, whose reference is onnxruntime on the original model) and a Python plugin op in a
custom domain. For each model:

- the exported bytes pass `onnx.checker.check_model`, and keep the original's opset imports and
  every node's op type and domain, in order;
- onnxruntime runs the exported bytes and matches the expected outputs at the node suite's
  tolerances (rtol 1e-3, atol 1e-7); see ORT_DEVIATIONS for the few tests onnxruntime itself fails
  on the original model;
- lathe loads the exported bytes again and matches the expected outputs;
- exporting that re-imported model gives the same bytes (the export is a fixed point).

At the end of the session one line per op, "OpType: N round-tripped, M failed", and the totals are
printed. `test_every_claimed_op_round_trips` checks the corpus covers every claimed op.
"""
import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import lathe
import test_onnx_node_suite as node_suite

#: Node tests onnxruntime gets wrong on the original model too: test -> (kind, reason). For
#: "refuses", onnxruntime must refuse the original and the export alike; for "differs", its outputs
#: on the export must equal its outputs on the original (which must still differ from onnx's
#: reference, so that the entry cannot go stale). Lathe's re-import is checked as for every test.
ORT_DEVIATIONS = {
    "test_gru_batchwise": ("refuses", "onnxruntime does not implement layout=1 (batch-major) GRU"),
    "test_lstm_batchwise": ("refuses", "onnxruntime does not implement layout=1 (batch-major) LSTM"),
    "test_simple_rnn_batchwise": ("refuses", "onnxruntime does not implement layout=1 (batch-major) RNN"),
    "test_resize_downsample_scales_cubic_align_corners": (
        "differs", "onnxruntime's align_corners cubic downsampling differs from onnx's reference"),
    "test_resize_downsample_scales_linear_align_corners": (
        "differs", "onnxruntime's align_corners linear downsampling differs from onnx's reference"),
}

NODE_TESTS = sorted(t for t in node_suite.SCOPE if t not in node_suite.SKIPS)
OUTCOMES = collections.defaultdict(collections.Counter)


class RoundTripSummary:
    """Pytest plugin printing the per-op round-trip table at the end of the session."""

    def pytest_terminal_summary(self, terminalreporter):
        """Writes one line per op and the totals."""
        if not OUTCOMES:
            return
        terminalreporter.section("ONNX round trip by op")
        totals = collections.Counter()
        for op in sorted(OUTCOMES):
            totals.update(OUTCOMES[op])
            terminalreporter.write_line(f"{op}: {OUTCOMES[op]['passed']} round-tripped, {OUTCOMES[op]['failed']} failed")
        terminalreporter.write_line(f"ONNX round trip total ({len(OUTCOMES)} ops): {totals['passed']} round-tripped, "
                                    f"{totals['failed']} failed")


@pytest.fixture(scope="session", autouse=True)
def round_trip_summary(request):
    """Registers the summary plugin once per session."""
    request.config.pluginmanager.register(RoundTripSummary(), "lathe-round-trip-summary")
    yield


def ort_session(data):
    """An onnxruntime CPU session on model bytes, with its warnings silenced."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def ort_run(data, feeds, output_names):
    """onnxruntime's outputs on model bytes, as a dict name -> array."""
    return dict(zip(output_names, ort_session(data).run(output_names, feeds)))


def opsets(model):
    """A model's opset imports as a dict (the default domain spelled "")."""
    return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}


def export(data):
    """Loads ONNX bytes into lathe and exports them again; returns the exported bytes."""
    with lathe.Model(data) as model:
        return model.to_onnx()


def check_export(original, exported):
    """The exported model is valid ONNX with the original's opset imports and node sequence."""
    proto = onnx.load_from_string(exported)
    onnx.checker.check_model(proto)
    assert opsets(proto) == opsets(original)
    def ops(graph):
        return [(n.op_type, "" if n.domain == "ai.onnx" else n.domain) for n in graph.node]

    assert ops(proto.graph) == ops(original.graph)
    assert [v.name for v in proto.graph.output] == [v.name for v in original.graph.output]


def check_reimport(exported, feeds, output_names, expected):
    """lathe runs the exported bytes with the expected outputs, and exports them unchanged."""
    with lathe.Model(exported) as model:
        node_suite.assert_outputs_match(node_suite.predict_all(model, feeds, output_names), output_names,
                                        expected, who="lathe (re-imported)")
        assert model.to_onnx() == exported, "exporting the re-imported model changed the bytes"


def record(op, body):
    """Runs `body`, counting the outcome under `op`."""
    try:
        body()
    except BaseException:
        OUTCOMES[op]["failed"] += 1
        raise
    OUTCOMES[op]["passed"] += 1


@pytest.mark.parametrize("test", NODE_TESTS)
def test_node_round_trip(test):
    """Node test `test` survives import → export, in onnxruntime and in lathe."""
    def body():
        original, feeds, output_names, expected = node_suite.node_test_data(test)
        exported = export(original.SerializeToString())
        check_export(original, exported)
        deviation = ORT_DEVIATIONS.get(test)
        if deviation is None:
            node_suite.assert_outputs_match(ort_run(exported, feeds, output_names), output_names, expected,
                                            who="onnxruntime (exported)")
        elif deviation[0] == "refuses":
            for data in (original.SerializeToString(), exported):
                with pytest.raises(Exception, match="not supported|NOT_IMPLEMENTED|FAIL"):
                    ort_session(data)
        else:
            on_original = ort_run(original.SerializeToString(), feeds, output_names)
            with pytest.raises(AssertionError):
                node_suite.assert_outputs_match(on_original, output_names, expected)
            node_suite.assert_outputs_match(ort_run(exported, feeds, output_names), output_names,
                                            [on_original[n] for n in output_names], who="onnxruntime (exported)")
        check_reimport(exported, feeds, output_names, expected)

    record(node_suite.SCOPE[test][0], body)


def test_ort_deviations_are_node_tests_that_run():
    """Every ORT_DEVIATIONS entry names a node test of the corpus."""
    assert set(ORT_DEVIATIONS) <= set(NODE_TESTS)


# Hand-built models for claimed ops no node test of the corpus covers (the ai.onnx.ml ops; Einsum,
# whose node tests are float64), and for float16 carried inside a graph. The reference is
# onnxruntime on the original model.

ML_DOMAIN = "ai.onnx.ml"


def ml_model(node, inputs, outputs):
    """A one-node model importing the default domain (opset 17) and ai.onnx.ml (opset 3)."""
    graph = helper.make_graph([node], "ml", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML_DOMAIN, 3)])
    model.ir_version = 8
    return model


def float_input(name, shape):
    """A float32 graph input or output."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def default_model(nodes, inputs, outputs, opset=17):
    """A model of the default domain only."""
    return helper.make_model(helper.make_graph(nodes, "hand", inputs, outputs),
                             opset_imports=[helper.make_opsetid("", opset)])


X = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -4.0], [2.0, 2.0, 2.0], [-1.0, 0.0, 7.5]], np.float32)


def hand_models():
    """name -> (op, ModelProto, feeds)."""
    models = {}
    models["scaler"] = ("Scaler", ml_model(
        helper.make_node("Scaler", ["x"], ["y"], domain=ML_DOMAIN, offset=[0.5, -1.0, 2.0], scale=[2.0, 0.5, -1.5]),
        [float_input("x", [None, 3])], [float_input("y", [None, 3])]), {"x": X})
    for norm in ("MAX", "L1", "L2"):
        models[f"normalizer_{norm.lower()}"] = ("Normalizer", ml_model(
            helper.make_node("Normalizer", ["x"], ["y"], domain=ML_DOMAIN, norm=norm),
            [float_input("x", [None, 3])], [float_input("y", [None, 3])]), {"x": np.abs(X) + 0.5})
    models["linear_regressor"] = ("LinearRegressor", ml_model(
        helper.make_node("LinearRegressor", ["x"], ["y"], domain=ML_DOMAIN, targets=2,
                         coefficients=[0.5, -1.0, 2.0, 1.5, 0.25, -0.75], intercepts=[0.1, -0.2]),
        [float_input("x", [None, 3])], [float_input("y", [None, 2])]), {"x": X})
    for transform in ("NONE", "SOFTMAX", "LOGISTIC"):
        models[f"linear_classifier_{transform.lower()}"] = ("LinearClassifier", ml_model(
            helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain=ML_DOMAIN,
                             classlabels_ints=[3, 7, 11], coefficients=[0.5, -1.0, 2.0, 1.5, 0.25, -0.75, -1, 1, 0.5],
                             intercepts=[0.1, -0.2, 0.3], post_transform=transform),
            [float_input("x", [None, 3])],
            [helper.make_tensor_value_info("label", TensorProto.INT64, [None]), float_input("scores", [None, 3])]),
            {"x": X})
    models["array_feature_extractor"] = ("ArrayFeatureExtractor", ml_model(
        helper.make_node("ArrayFeatureExtractor", ["x", "indices"], ["y"], domain=ML_DOMAIN),
        [float_input("x", [None, 3]), helper.make_tensor_value_info("indices", TensorProto.INT64, [2])],
        [float_input("y", [None, 2])]), {"x": X, "indices": np.array([2, 0], np.int64)})
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 4, 5)).astype(np.float32)
    for name, equation, feeds, shape in [("batch_matmul", "bij,bjk->bik", {"a": a, "b": b}, [2, 3, 5]),
                                         ("contract_two_axes", "bij,bjk->ik", {"a": a, "b": b}, [3, 5]),
                                         ("transpose", "bij->jbi", {"a": a}, [3, 2, 4]),
                                         ("diagonal_sum", "ii->", {"a": rng.standard_normal((4, 4)).astype(np.float32)}, [])]:
        inputs = [float_input(n, list(v.shape)) for n, v in feeds.items()]
        models[f"einsum_{name}"] = ("Einsum", default_model(
            [helper.make_node("Einsum", list(feeds), ["y"], equation=equation)], inputs, [float_input("y", shape)], 12),
            feeds)
    half = np.array([0.1, 1 + 2**-11, 65519.0, 65520.0, -3.14159, 2**-25, 6.1e-5], np.float32)
    models["cast_float16_inside"] = ("Cast", default_model(
        [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
         helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)],
        [float_input("x", [7])], [float_input("y", [7])]), {"x": half})
    return models


HAND_MODELS = hand_models()


@pytest.mark.parametrize("name", sorted(HAND_MODELS))
def test_hand_built_round_trip(name):
    """A hand-built model survives import → export; onnxruntime on the original is the reference."""
    op, original, feeds = HAND_MODELS[name]

    def body():
        onnx.checker.check_model(original)
        output_names = [v.name for v in original.graph.output]
        with np.errstate(over="ignore"):
            reference = ort_run(original.SerializeToString(), feeds, output_names)
        expected = [reference[n] for n in output_names]
        with lathe.Model(original.SerializeToString()) as model:
            node_suite.assert_outputs_match(node_suite.predict_all(model, feeds, output_names), output_names, expected)
            exported = model.to_onnx()
        check_export(original, exported)
        node_suite.assert_outputs_match(ort_run(exported, feeds, output_names), output_names, expected,
                                        who="onnxruntime (exported)")
        check_reimport(exported, feeds, output_names, expected)

    record(f"{ML_DOMAIN}.{op}" if original.graph.node[0].domain == ML_DOMAIN else op, body)


class Shift:
    """A Python op y = x + delta (attribute), for the custom-domain round trip."""

    def __init__(self, attributes):
        self.delta = attributes.float("delta", 0.0)

    def infer_shapes(self, shapes, dtypes):
        return [(shapes[0], dtypes[0])]

    def forward(self, inputs, outputs):
        np.add(inputs[0], np.float32(self.delta), out=outputs[0])


def test_custom_domain_op_keeps_domain_opset_and_attributes(tmp_path):
    """A plugin op in its own domain: export keeps its domain, opset import and attributes; save() too."""
    lathe.register_op("com.lathe.roundtrip", "Shift", Shift, since=2, until=4)
    try:
        nodes = [helper.make_node("Shift", ["x"], ["s"], domain="com.lathe.roundtrip", delta=1.5),
                 helper.make_node("Relu", ["s"], ["y"])]
        graph = helper.make_graph(nodes, "custom", [float_input("x", ["N", 3])], [float_input("y", ["N", 3])])
        original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                           helper.make_opsetid("com.lathe.roundtrip", 3)])
        with lathe.Model(original.SerializeToString()) as model:
            exported = model.to_onnx()
            path = tmp_path / "custom.onnx"
            model.save(path)
        assert path.read_bytes() == exported
        proto = onnx.load_from_string(exported)
        onnx.checker.check_model(proto)
        assert opsets(proto) == {"": 13, "com.lathe.roundtrip": 3}
        shift = proto.graph.node[0]
        assert (shift.op_type, shift.domain) == ("Shift", "com.lathe.roundtrip")
        assert helper.get_attribute_value(shift.attribute[0]) == pytest.approx(1.5)
        dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["N", 3]
        expected = [np.maximum(X + np.float32(1.5), 0)]
        check_reimport(exported, {"x": X}, ["y"], expected)
    finally:
        lathe.unregister_op("com.lathe.roundtrip", "Shift")


def test_every_claimed_op_round_trips():
    """Every built-in op (any domain) is covered by a node test of the corpus or a hand-built model."""
    covered = {("", node_suite.SCOPE[t][0]) for t in NODE_TESTS}
    covered |= {(m.graph.node[0].domain, op) for op, m, _ in HAND_MODELS.values()}
    claimed = {(op.domain, op.op_type) for op in lathe.registered_ops() if op.origin == "builtin"}
    missing = sorted(claimed - covered)
    assert not missing, f"claimed ops without a round-trip test: {missing}"


def test_save_and_to_onnx_errors(tmp_path):
    """save() names an unwritable path; a closed model refuses to export."""
    original, _, _, _ = node_suite.node_test_data("test_relu")
    model = lathe.Model(original.SerializeToString())
    with pytest.raises(lathe.LatheError) as error:
        model.save(tmp_path / "missing-dir" / "model.onnx")
    assert error.value.status == lathe.LATHE_ERROR_IO and "missing-dir/model.onnx" in str(error.value)
    model.close()
    for call in (model.to_onnx, lambda: model.save(tmp_path / "closed.onnx")):
        with pytest.raises(lathe.LatheError) as error:
            call()
        assert error.value.status == lathe.LATHE_ERROR_INVALID_STATE


def test_cli_export_writes_a_valid_model(tmp_path):
    """`lathe-cli export IN OUT` (built beside the library) writes the same bytes as Model.to_onnx."""
    import pathlib
    import subprocess

    from lathe._native import library_path

    cli = pathlib.Path(library_path).parent / "lathe-cli"
    if not cli.exists():
        pytest.skip(f"no lathe-cli beside {library_path} (swift build --product lathe-cli)")
    source = node_suite.NODE_DIR / "test_conv_with_strides_padding" / "model.onnx"
    target = tmp_path / "exported.onnx"
    subprocess.run([cli, "export", source, target], check=True, capture_output=True, timeout=60)
    onnx.checker.check_model(onnx.load(str(target)))
    assert target.read_bytes() == export(source.read_bytes())
    failed = subprocess.run([cli, "export", source, tmp_path / "missing" / "x.onnx"], capture_output=True, text=True,
                            timeout=60)
    assert failed.returncode != 0 and "missing/x.onnx" in failed.stderr
