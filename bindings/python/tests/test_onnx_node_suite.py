"""The official ONNX backend node tests (from the installed onnx wheel) run through lathe.

A node test is in scope when its op (the op of the test's own node; for a function's
`_expanded` variant, the op it expands) is one Lathe claims. In-scope tests run unless
onnx_node_tests.txt beside this file names them with a one-line reason; those reasons are
either mechanical (an op outside the claimed set, a tensor type outside float32/float64/int64/
int32/int8/uint8/bool), which this module recomputes and checks against the file, or judged by hand
(e.g. a random training-mode mask). Everything not in the file must pass, compared as onnx's
own runner does: same dtype and shape, np.testing.assert_allclose(rtol=1e-3, atol=1e-7).
Shape/axes inputs that the node tests feed at run time (Reshape, Slice, Expand, ...) are fed
as they are: Lathe specialises its plan to the values of small integer inputs.

At the end of the session a per-op summary "OpType: N passed, M failed, K skipped" and the
totals are printed. To rewrite the mechanical entries of the list (hand-written ones are kept):
    python3 bindings/python/tests/test_onnx_node_suite.py --update
"""
import collections
import pathlib
import re
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

import lathe

#: The ops Lathe claims: every built-in entry of the default domain, read from the op table.
CLAIMED_OPS = frozenset(op.op_type for op in lathe.registered_ops() if op.domain == "" and op.origin == "builtin")
CLAIMED_DTYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.INT32,
                            TensorProto.INT8, TensorProto.UINT8, TensorProto.BOOL})
NODE_DIR = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
SKIP_LIST = pathlib.Path(__file__).with_name("onnx_node_tests.txt")
RTOL, ATOL = 1e-3, 1e-7
#: Ending of skip reasons for features Lathe refuses with an error; such tests are still run
#: and must still raise LatheError, so the list cannot go stale.
REFUSED = "refuses it"
#: The form of the reasons mechanical_reason computes (dropped by --update once they no longer apply).
MECHANICAL = re.compile(r"^(uses ops? .* not claimed|dtype .* not claimed|\w+-typed values not claimed)$")


def dtype_name(elem_type):
    """The ONNX name of a TensorProto element type, lower-cased (e.g. float16)."""
    return TensorProto.DataType.Name(elem_type).lower()


def base_name(test):
    """The test a function-expansion variant was derived from (itself otherwise)."""
    return re.sub(r"_expanded(_ver\d+)?$", "", test)


def load_model(test):
    """The test's ModelProto."""
    return onnx.load(str(NODE_DIR / test / "model.onnx"))


def primary_op(test, models):
    """The op a test exercises: the first node of its non-expanded model."""
    base = base_name(test)
    model = models.get(base) or models[test]
    return model.graph.node[0].op_type if model.graph.node else None


def subgraph_nodes(graph):
    """Every node of `graph`, including nodes of subgraphs held in attributes."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from subgraph_nodes(attribute.g)
            for g in attribute.graphs:
                yield from subgraph_nodes(g)


def mechanical_reason(model):
    """Why the model is out of Lathe's claims (unclaimed op or tensor type), or None."""
    nodes = list(subgraph_nodes(model.graph))
    unclaimed = sorted({n.op_type for n in nodes if n.domain not in ("", "ai.onnx")
                        or n.op_type not in CLAIMED_OPS})
    if unclaimed:
        return "uses op" + ("s " if len(unclaimed) > 1 else " ") + ", ".join(unclaimed) + " not claimed"
    bad_types = set()
    values = list(model.graph.input) + list(model.graph.output)
    for value in values:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"{kind.replace('_type', '')}-typed values not claimed"
        elem = value.type.tensor_type.elem_type
        if elem not in CLAIMED_DTYPES:
            bad_types.add(dtype_name(elem))
    tensors = list(model.graph.initializer)
    tensors += [a.t for n in nodes for a in n.attribute if a.type == onnx.AttributeProto.TENSOR]
    for tensor in tensors:
        if tensor.data_type not in CLAIMED_DTYPES:
            bad_types.add(dtype_name(tensor.data_type))
    if bad_types:
        return "dtype " + ", ".join(sorted(bad_types)) + " not claimed"
    return None


def discover():
    """In-scope tests: name -> (primary op, mechanical skip reason or None)."""
    names = sorted(p.name for p in NODE_DIR.iterdir() if (p / "model.onnx").is_file())
    models = {name: load_model(name) for name in names}
    scope = {}
    for name in names:
        op = primary_op(name, models)
        if op in CLAIMED_OPS:
            scope[name] = (op, mechanical_reason(models[name]))
    return scope


def read_skip_list(path=SKIP_LIST):
    """Parses `test_name: reason` lines (blank lines and # comments ignored)."""
    skips = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, reason = line.partition(":")
            skips[name.strip()] = reason.strip()
    return skips


SCOPE = discover()
SKIPS = read_skip_list() if SKIP_LIST.exists() else {}
OUTCOMES = collections.defaultdict(collections.Counter)


class NodeSuiteSummary:
    """Pytest plugin printing the per-op outcome table at the end of the session."""

    def pytest_terminal_summary(self, terminalreporter):
        """Writes one line per op family and the totals."""
        if not OUTCOMES:
            return
        terminalreporter.section("ONNX node suite by op")
        totals = collections.Counter()
        for op in sorted(OUTCOMES):
            counts = OUTCOMES[op]
            totals.update(counts)
            terminalreporter.write_line(f"{op}: {counts['passed']} passed, {counts['failed']} failed, "
                                        f"{counts['skipped']} skipped")
        terminalreporter.write_line(f"ONNX node suite total ({len(OUTCOMES)} ops): {totals['passed']} passed, "
                                    f"{totals['failed']} failed, {totals['skipped']} skipped")


@pytest.fixture(scope="session", autouse=True)
def node_suite_summary(request):
    """Registers the summary plugin once per session."""
    plugin = NodeSuiteSummary()
    request.config.pluginmanager.register(plugin, "lathe-node-suite-summary")
    yield


def read_tensor(path):
    """A numpy array and its stored name from a TensorProto file."""
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return tensor.name, numpy_helper.to_array(tensor)


def node_test_data(test):
    """The test's model, its feeds (input name -> array), output names and expected outputs."""
    model = load_model(test)
    initializer_names = {t.name for t in model.graph.initializer}
    input_names = [v.name for v in model.graph.input if v.name not in initializer_names]
    output_names = [v.name for v in model.graph.output]
    data_dir = NODE_DIR / test / "test_data_set_0"
    feeds = {}
    for i, name in enumerate(input_names):
        path = data_dir / f"input_{i}.pb"
        if path.exists():
            stored_name, array = read_tensor(path)
            feeds[stored_name or name] = array
    expected = [read_tensor(data_dir / f"output_{i}.pb")[1] for i in range(len(output_names))]
    return model, feeds, output_names, expected


def assert_outputs_match(actual_by_name, output_names, expected, who="lathe"):
    """Compares outputs (name -> array) with the references as onnx's runner does."""
    for name, reference in zip(output_names, expected):
        assert name in actual_by_name, f"{who} returned no output {name!r}"
        actual = np.asarray(actual_by_name[name])
        assert actual.dtype == reference.dtype, f"{who} {name}: dtype {actual.dtype}, expected {reference.dtype}"
        assert actual.shape == reference.shape, f"{who} {name}: shape {actual.shape}, expected {reference.shape}"
        if reference.dtype.kind in "fc":
            np.testing.assert_allclose(actual, reference, rtol=RTOL, atol=ATOL, err_msg=f"{who} {name}")
        else:
            np.testing.assert_array_equal(actual, reference, err_msg=f"{who} {name}")


def predict_all(lathe_model, feeds, output_names):
    """Runs a lathe.Model; the outputs as a dict name -> array."""
    result = lathe_model.predict(feeds)
    return result if isinstance(result, dict) else {output_names[0]: result}


def run_node_test(test):
    """Runs one node test through lathe and compares every output like onnx's runner."""
    import lathe

    model, feeds, output_names, expected = node_test_data(test)
    with lathe.Model(model.SerializeToString()) as lathe_model:
        assert_outputs_match(predict_all(lathe_model, feeds, output_names), output_names, expected)


def assert_still_refused(test):
    """Fails if lathe now runs a test the skip list says it refuses."""
    import lathe

    try:
        run_node_test(test)
    except lathe.LatheError:
        return
    pytest.fail(f"lathe no longer refuses {test}; remove it from onnx_node_tests.txt")


@pytest.mark.parametrize("test", sorted(SCOPE))
def test_node(test):
    """Runs `test` unless the skip list names it; records the outcome under its op."""
    op = SCOPE[test][0]
    try:
        if test in SKIPS:
            if SKIPS[test].endswith(REFUSED):
                assert_still_refused(test)
            OUTCOMES[op]["skipped"] += 1
            pytest.skip(SKIPS[test])
        run_node_test(test)
    except BaseException as error:
        if isinstance(error, pytest.skip.Exception):
            raise
        OUTCOMES[op]["failed"] += 1
        raise
    OUTCOMES[op]["passed"] += 1


def test_skip_list_matches_mechanical_reasons():
    """Every out-of-claims test is listed with its computed reason; no entry is stale."""
    stale = sorted(set(SKIPS) - set(SCOPE))
    assert not stale, f"onnx_node_tests.txt names tests that are not in scope: {stale}"
    for test, (_, reason) in SCOPE.items():
        if reason is not None:
            assert SKIPS.get(test) == reason, f"{test} must be listed as '{test}: {reason}'"


def update_skip_list():
    """Rewrites onnx_node_tests.txt: computed reasons for out-of-claims tests, hand-written ones kept."""
    old = read_skip_list() if SKIP_LIST.exists() else {}
    mechanical = {t: r for t, (_, r) in SCOPE.items() if r is not None}
    manual = {t: r for t, r in old.items() if t in SCOPE and t not in mechanical and not MECHANICAL.match(r)}
    lines = [
        "# ONNX backend node tests (onnx 1.22.0) skipped by bindings/python/tests/test_onnx_node_suite.py.",
        "# One line each: `test_name: reason`. Only in-scope tests (their op is claimed by Lathe) appear;",
        "# every in-scope test not listed here must pass. Entries under 'Out of claims' are computed by",
        "# `python3 bindings/python/tests/test_onnx_node_suite.py --update`; the others are judged by hand.",
        "",
        "# Judged by hand",
        *[f"{t}: {r}" for t, r in sorted(manual.items())],
        "",
        "# Out of claims",
        *[f"{t}: {r}" for t, r in sorted(mechanical.items())],
    ]
    SKIP_LIST.write_text("\n".join(lines) + "\n")
    print(f"{SKIP_LIST}: {len(manual)} judged, {len(mechanical)} computed, {len(SCOPE)} in scope")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update_skip_list()
    else:
        print(__doc__)
