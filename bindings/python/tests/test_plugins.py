"""Custom ops through every door: Python classes, C plugin libraries, foreign C functions through
libffi, and C vtables from a host program (Tests/c/plugin_test.c); failures, the registry
listing, and 4 threads x 1,000 runs mixing a plugin op with built-ins (Tests/c/plugin_threads.c).

The C sources are compiled with cc into a temporary directory. Registrations are process-wide, so
each test uses its own domain or op names.
"""

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import lathe
from lathe import plugins
from lathe_test_models import onnxruntime_outputs

REPOSITORY = Path(__file__).resolve().parents[3]
INCLUDE = REPOSITORY / "include"
EXAMPLES = REPOSITORY / "examples" / "plugins"
TESTS_C = REPOSITORY / "Tests" / "c"
CC = shutil.which(os.environ.get("CC", "cc"))
CXX = shutil.which(os.environ.get("CXX", "g++"))
LIBRARY_DIR = Path(lathe.library_path).resolve().parent if os.sep in lathe.library_path else None
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]

sys.path.insert(0, str(EXAMPLES))
import make_models  # noqa: E402

needs_cc = pytest.mark.skipif(CC is None or LIBRARY_DIR is None,
                              reason="needs cc and LATHE_LIBRARY pointing at a liblathe.so file")


def tolerance_close(actual, expected):
    """max|diff| <= 1e-4 * max(1, max|expected|)."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    assert float(np.max(np.abs(actual - expected))) <= 1e-4 * scale


def compile_c(sources, output, *flags, shared=False):
    """Compiles C sources against lathe.h and liblathe; fails the test with the compiler's output."""
    command = [CC, *STRICT, "-O1", f"-I{INCLUDE}", *map(str, sources), "-o", str(output), *flags,
               f"-L{LIBRARY_DIR}", f"-Wl,-rpath,{LIBRARY_DIR}", "-llathe", "-lm"]
    if shared:
        command[1:1] = ["-fPIC", "-shared"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return output


def model_bytes(nodes, inputs, outputs, domains, initializers=()):
    """An ONNX model from nodes and (name, shape) inputs/outputs, float32 throughout."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs], list(initializers))
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, v) for d, v in domains.items()]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def one_op_model(domain, op_type, opset=1, shape=("N", 4), out_shape=None, **attributes):
    """x -> domain:op_type -> y."""
    node = helper.make_node(op_type, ["x"], ["y"], name="custom", domain=domain, **attributes)
    return model_bytes([node], [("x", list(shape))], [("y", list(out_shape or shape))], {domain: opset})


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    if CC is None or LIBRARY_DIR is None:
        pytest.skip("needs cc and LATHE_LIBRARY pointing at a liblathe.so file")
    directory = tmp_path_factory.mktemp("plugins")
    make_models.write_all(directory)
    return directory


@pytest.fixture(scope="module")
def sobel_plugin(build):
    """The example Sobel plugin, compiled and loaded into this process."""
    library = compile_c([EXAMPLES / "sobel_plugin.c"], build / "libsobel_plugin.so", shared=True)
    lathe.load_plugin(str(library))
    return library


@pytest.fixture(scope="module")
def dsp_library(build):
    """The example DSP routines (no Lathe dependency)."""
    output = build / "libdsp.so"
    result = subprocess.run([CC, "-std=c99", "-O1", "-fPIC", "-shared", str(EXAMPLES / "dsp.c"), "-o", str(output)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(scope="module")
def case_plugins(build):
    """Tests/c/plugin_cases.c built once per case; the default case is loaded into this process."""
    libraries = {}
    for case in ["", "CASE_BAD_ABI", "CASE_NO_INIT", "CASE_INIT_FAILS", "CASE_DUPLICATE"]:
        flags = [f"-D{case}"] if case else []
        libraries[case or "default"] = compile_c([TESTS_C / "plugin_cases.c"], build / f"libcase_{case or 'default'}.so",
                                                 *flags, shared=True)
    lathe.load_plugin(str(libraries["default"]))
    return libraries


# --- Python ops -----------------------------------------------------------------------------------


class Swish:
    """y = x * sigmoid(beta x); one instance per node, beta from the node's attribute."""

    instances = 0

    def __init__(self, attributes):
        self.beta = attributes.float("beta", 1.0)
        self.absent = attributes.int("nonexistent", 11)
        Swish.instances += 1

    def infer_shapes(self, input_shapes, input_dtypes):
        return [(input_shapes[0], input_dtypes[0])]

    def forward(self, inputs, outputs):
        x = inputs[0]
        assert not x.flags.writeable and not x.flags.owndata      # a view of Lathe's buffer
        assert outputs[0].flags.writeable and not outputs[0].flags.owndata
        np.divide(x, 1 + np.exp(-self.beta * x), out=outputs[0])


def test_python_op_in_the_example_model_matches_numpy(build):
    lathe.register_op("com.acme.py", "Swish", Swish)
    try:
        model = lathe.Model(str(build / "swish.onnx"))
        x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
        bias = np.linspace(-1, 1, 8).astype(np.float32)
        tolerance_close(model.predict(x), make_models.swish_reference(x, 1.5) + bias)
        assert Swish.instances >= 1
        assert any(op[:2] == ("com.acme.py", "Swish") and op.origin == "python:Swish" for op in lathe.registered_ops())
    finally:
        lathe.unregister_op("com.acme.py", "Swish")


class Affine:
    """A shared object (not a class): forward returns the result instead of writing outputs."""

    def infer_shapes(self, input_shapes, input_dtypes):
        return [(input_shapes[0], np.float32), ((input_shapes[0][0],), np.float32)]

    def forward(self, inputs, outputs):
        x = inputs[0]
        return [3 * x - 1, x.sum(axis=1)]


def test_python_op_with_two_outputs_returning_arrays():
    lathe.register_op("com.py.affine", "Affine", Affine())
    node = helper.make_node("Affine", ["x"], ["a", "s"], name="affine", domain="com.py.affine")
    data = model_bytes([node], [("x", ["N", 3])], [("a", ["N", 3]), ("s", ["N"])], {"com.py.affine": 1})
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = lathe.Model(data).predict(x)
    tolerance_close(out["a"], 3 * x - 1)
    tolerance_close(out["s"], x.sum(axis=1))


class Saturating:
    """Raises on samples above 100, like a driver refusing a saturated sensor."""

    def __init__(self, attributes):
        self.limit = attributes.float("limit", 100.0)

    def infer_shapes(self, input_shapes, input_dtypes):
        return [(input_shapes[0], input_dtypes[0])]

    def forward(self, inputs, outputs):
        if inputs[0].max() > self.limit:
            raise ValueError(f"sensor saturated at {inputs[0].max():g}")
        outputs[0][...] = inputs[0]


def test_exception_in_python_becomes_a_plugin_error_and_the_model_stays_usable():
    lathe.register_op("com.py.sat", "Saturating", Saturating)
    model = lathe.Model(one_op_model("com.py.sat", "Saturating"))
    with pytest.raises(lathe.LatheError) as error:
        model.predict(np.full((1, 4), 250, np.float32))
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN
    assert "'custom'" in str(error.value) and "ValueError: sensor saturated at 250" in str(error.value)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(model.predict(x), x)


class BadInference:
    """infer_shapes raises."""

    def infer_shapes(self, input_shapes, input_dtypes):
        raise KeyError("no shape for you")

    def forward(self, inputs, outputs):
        raise AssertionError("never called")


def test_exception_in_python_inference():
    lathe.register_op("com.py.bad", "BadInference", BadInference())
    model = lathe.Model(one_op_model("com.py.bad", "BadInference"))
    with pytest.raises(lathe.LatheError) as error:
        model.predict(np.ones((1, 4), np.float32))
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN and "no shape for you" in str(error.value)


class Grows:
    """Claims one column more than its input: Lathe catches it against the declared output shape."""

    def infer_shapes(self, input_shapes, input_dtypes):
        n, c = input_shapes[0]
        return [((n, c + 1), np.float32)]

    def forward(self, inputs, outputs):
        outputs[0][...] = 0


def test_python_op_reporting_a_shape_the_model_does_not_declare():
    lathe.register_op("com.py.grow", "Grows", Grows())
    model = lathe.Model(one_op_model("com.py.grow", "Grows"))
    with pytest.raises(lathe.LatheError) as error:
        model.predict(np.ones((2, 4), np.float32))
    assert error.value.status == lathe.LATHE_ERROR_SHAPE_MISMATCH
    assert "'custom'" in str(error.value) and "[2, 5]" in str(error.value) and "[N, 4]" in str(error.value)


def test_unregister_keeps_loaded_models_and_releases_the_python_object_later():
    before = set(plugins._ops)
    lathe.register_op("com.py.unreg", "Swish", Swish)
    tokens = set(plugins._ops) - before
    model = lathe.Model(one_op_model("com.py.unreg", "Swish", beta=2.0))
    lathe.unregister_op("com.py.unreg", "Swish")
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    tolerance_close(model.predict(x), make_models.swish_reference(x, 2.0))
    with pytest.raises(lathe.LatheError) as error:
        lathe.Model(one_op_model("com.py.unreg", "Swish"))
    assert error.value.status == lathe.LATHE_ERROR_UNSUPPORTED_OP
    assert str(error.value).endswith("unsupported op 'Swish' (domain 'com.py.unreg', opset 1) at node 'custom'")
    assert len(tokens) == 1 and tokens <= set(plugins._ops)   # still alive: the model uses it
    model.close()
    del model
    gc.collect()
    assert not tokens & set(plugins._ops)              # released by Lathe
    with pytest.raises(lathe.LatheError) as error:
        lathe.unregister_op("com.py.unreg", "Swish")
    assert error.value.status == lathe.LATHE_ERROR_INVALID_ARGUMENT


def test_duplicate_python_registration_names_the_existing_origin():
    lathe.register_op("com.py.dup", "Twice", Saturating, since=1, until=5)
    with pytest.raises(lathe.LatheError) as error:
        lathe.register_op("com.py.dup", "Twice", Affine(), since=3)
    assert error.value.status == lathe.LATHE_ERROR_INVALID_ARGUMENT
    assert "python:Saturating" in str(error.value) and "1...5" in str(error.value)
    lathe.register_op("com.py.dup", "Twice", Affine(), since=6)   # a disjoint range is fine


def test_custom_domain_opset_import_is_honoured():
    lathe.register_op("com.py.versioned", "Swish", Swish, since=2, until=3)
    with pytest.raises(lathe.LatheError) as error:
        lathe.Model(one_op_model("com.py.versioned", "Swish", opset=1))
    assert "unsupported op 'Swish' (domain 'com.py.versioned', opset 1) at node 'custom'" in str(error.value)
    lathe.Model(one_op_model("com.py.versioned", "Swish", opset=3))
    with pytest.raises(lathe.LatheError):
        lathe.Model(one_op_model("com.py.versioned", "Swish", opset=4))


def test_register_op_rejects_objects_without_forward():
    with pytest.raises(TypeError):
        lathe.register_op("com.py.none", "Nothing", object())


# --- C plugin libraries ---------------------------------------------------------------------------


def sobel_expected(build, image):
    """onnxruntime on the CNN tail, fed numpy's Sobel of the image."""
    edges = make_models.sobel_reference(image, 0.25)
    return onnxruntime_outputs((build / "sobel_cnn_tail.onnx").read_bytes(), {"edges": edges})["probs"]


def test_c_plugin_sobel_cnn_matches_numpy_and_onnxruntime(build, sobel_plugin):
    image = np.random.default_rng(5).random((3, 1, 16, 16)).astype(np.float32)
    model = lathe.Model(str(build / "sobel_cnn.onnx"))
    tolerance_close(model.predict(image), sobel_expected(build, image))
    listed = [op for op in lathe.registered_ops() if op.domain == "com.acme.vision"]
    assert listed == [("com.acme.vision", "SobelEdges", 1, None, str(sobel_plugin))]


def test_sobel_layer_alone_matches_numpy(sobel_plugin):
    node = helper.make_node("SobelEdges", ["x"], ["y"], name="sobel", domain="com.acme.vision", scale=2.0)
    data = model_bytes([node], [("x", [2, 3, 5, 7])], [("y", [2, 3, 5, 7])], {"com.acme.vision": 1})
    x = np.random.default_rng(9).standard_normal((2, 3, 5, 7)).astype(np.float32)
    tolerance_close(lathe.Model(data).predict(x), make_models.sobel_reference(x, 2.0))


def test_c_plugin_compute_error_reaches_the_caller_and_the_session_stays_usable(case_plugins):
    model = lathe.Model(one_op_model("com.test", "Flaky"))
    with pytest.raises(lathe.LatheError) as error:
        model.predict(np.array([[-1, 2, 3, 4]], np.float32))
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN
    message = str(error.value)
    assert "'custom'" in message and "negative first sample" in message and "LATHE_ERROR_INVALID_ARGUMENT" in message
    x = np.array([[1, 2, 3, 4]], np.float32)
    np.testing.assert_array_equal(model.predict(x), 2 * x)


def test_c_plugin_reporting_a_wrong_output_shape_is_caught_before_compute(case_plugins):
    model = lathe.Model(one_op_model("com.test", "WrongShape", shape=(3, 4)))
    with pytest.raises(lathe.LatheError) as error:
        model.predict(np.ones((3, 4), np.float32))
    assert error.value.status == lathe.LATHE_ERROR_SHAPE_MISMATCH
    assert "'custom'" in str(error.value) and "[4, 4]" in str(error.value) and "[3, 4]" in str(error.value)
    negative = lathe.Model(one_op_model("com.test", "NegativeDim"))
    with pytest.raises(lathe.LatheError) as error:
        negative.predict(np.ones((3, 4), np.float32))
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN and "negative dimensions [-5, 4]" in str(error.value)


def test_plugin_library_not_found(tmp_path):
    with pytest.raises(lathe.LatheError) as error:
        lathe.load_plugin(str(tmp_path / "libabsent.so"))
    assert error.value.status == lathe.LATHE_ERROR_IO and "libabsent.so" in str(error.value)


def test_plugin_without_init_symbol(case_plugins):
    with pytest.raises(lathe.LatheError) as error:
        lathe.load_plugin(str(case_plugins["CASE_NO_INIT"]))
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN
    assert str(case_plugins["CASE_NO_INIT"]) in str(error.value) and "lathe_plugin_init" in str(error.value)


def test_plugin_with_wrong_abi_version(case_plugins):
    with pytest.raises(lathe.LatheError) as error:
        lathe.load_plugin(str(case_plugins["CASE_BAD_ABI"]))
    message = str(error.value)
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN
    assert "ABI version 99" in message and "ABI version 1" in message and "CASE_BAD_ABI" in message
    assert not [op for op in lathe.registered_ops() if op.op_type == "FromTheFuture"]


def test_plugin_whose_init_fails_leaves_nothing_registered(case_plugins):
    with pytest.raises(lathe.LatheError) as error:
        lathe.load_plugin(str(case_plugins["CASE_INIT_FAILS"]))
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN and "init gave up" in str(error.value)
    assert not [op for op in lathe.registered_ops() if op.op_type == "Partial"]


def test_plugin_registering_a_duplicate_op(case_plugins):
    with pytest.raises(lathe.LatheError) as error:
        lathe.load_plugin(str(case_plugins["CASE_DUPLICATE"]))
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN
    assert "already registered" in str(error.value) and str(case_plugins["default"]) in str(error.value)
    flaky = [op for op in lathe.registered_ops() if op.op_type == "Flaky"]
    assert [op.origin for op in flaky] == [str(case_plugins["default"])]


# --- Foreign functions through libffi -------------------------------------------------------------


def test_foreign_highpass_matches_numpy(build, dsp_library):
    lathe.register_foreign_op("com.acme.dsp", "HighPass", str(dsp_library), "dsp_highpass",
                              "void(in0, out0, count0, float alpha)")
    signal = np.random.default_rng(2).standard_normal((1, 64)).astype(np.float32)
    out = lathe.Model(str(build / "highpass.onnx")).predict(signal)
    tolerance_close(out, np.maximum(make_models.highpass_reference(signal, 0.9), 0))
    origin = [op.origin for op in lathe.registered_ops() if op.op_type == "HighPass"]
    assert origin == [f"ffi:{dsp_library}:dsp_highpass"]


def test_foreign_int_return_and_double_attribute(dsp_library):
    lathe.register_foreign_op("com.ffi.gain", "Gain", str(dsp_library), "dsp_gain_checked",
                              "int(in0, out0, count640, double gain)")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(lathe.Model(one_op_model("com.ffi.gain", "Gain", gain=2.5)).predict(x), 2.5 * x)
    with pytest.raises(lathe.LatheError) as error:
        lathe.Model(one_op_model("com.ffi.gain", "Gain", gain=-1.0)).predict(x)
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN
    assert "'custom'" in str(error.value) and "dsp_gain_checked" in str(error.value) and "returned 1" in str(error.value)


def test_foreign_library_or_symbol_missing(tmp_path, dsp_library):
    with pytest.raises(lathe.LatheError) as error:
        lathe.register_foreign_op("com.ffi.err", "A", str(tmp_path / "libnothere.so"), "f", "void(in0, out0)")
    assert error.value.status == lathe.LATHE_ERROR_IO and "libnothere.so" in str(error.value)
    with pytest.raises(lathe.LatheError) as error:
        lathe.register_foreign_op("com.ffi.err", "A", str(dsp_library), "dsp_lowpass", "void(in0, out0)")
    assert error.value.status == lathe.LATHE_ERROR_INVALID_ARGUMENT
    assert "dsp_lowpass" in str(error.value) and str(dsp_library) in str(error.value)


@pytest.mark.parametrize("signature", [
    "void in0, out0", "float(in0, out0)", "void(in0, out0, pointer p)", "void(in0, out0, bogus)",
    "void(in0, count0)", "void(in0, out1)", "void(in0, out0:x1)", "void(in0, out0, float a b)", "void(in0,, out0)",
])
def test_foreign_malformed_signature(dsp_library, signature):
    with pytest.raises(lathe.LatheError) as error:
        lathe.register_foreign_op("com.ffi.bad", "Bad", str(dsp_library), "dsp_highpass", signature)
    assert error.value.status == lathe.LATHE_ERROR_INVALID_ARGUMENT and "foreign signature" in str(error.value)


def test_foreign_declaration_that_does_not_match_the_node(dsp_library):
    lathe.register_foreign_op("com.ffi.arity", "Two", str(dsp_library), "dsp_highpass",
                              "void(in0, out0, count1, float alpha)")
    with pytest.raises(lathe.LatheError) as error:                 # the declaration takes 2 inputs
        lathe.Model(one_op_model("com.ffi.arity", "Two", alpha=0.5))
    assert error.value.status == lathe.LATHE_ERROR_INVALID_ARGUMENT
    assert "takes 2 input(s), the node has 1" in str(error.value) and "'custom'" in str(error.value)

    lathe.register_foreign_op("com.ffi.attr", "HP", str(dsp_library), "dsp_highpass",
                              "void(in0, out0, count0, float alpha)")
    with pytest.raises(lathe.LatheError) as error:                 # attribute absent
        lathe.Model(one_op_model("com.ffi.attr", "HP"))
    assert "attribute 'alpha' is required" in str(error.value)
    with pytest.raises(lathe.LatheError) as error:                 # attribute of the wrong type
        lathe.Model(one_op_model("com.ffi.attr", "HP", alpha="high"))
    assert error.value.status == lathe.LATHE_ERROR_INVALID_ARGUMENT and "'alpha' must be a float" in str(error.value)

    node = helper.make_node("HP", ["x"], ["y"], name="custom", domain="com.ffi.attr", alpha=0.5)
    graph = helper.make_graph([node], "ints", [helper.make_tensor_value_info("x", TensorProto.INT64, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.ffi.attr", 1)])
    with pytest.raises(lathe.LatheError) as error:                 # an input that is not float32
        lathe.Model(model.SerializeToString()).predict(np.arange(4, dtype=np.int64))
    assert error.value.status == lathe.LATHE_ERROR_DTYPE_MISMATCH and "input 0 must be float32" in str(error.value)


# --- The registry listing -------------------------------------------------------------------------


def test_registry_lists_builtins_and_plugins(case_plugins):
    ops = lathe.registered_ops()
    assert ("", "Relu", 1, None, "builtin") in [tuple(op) for op in ops] or any(
        op.op_type == "Relu" and op.origin == "builtin" for op in ops)
    assert ops == sorted(ops, key=lambda op: (op.domain, op.op_type, op.since))
    assert any(op.domain == "com.test" and op.op_type == "Flaky" for op in ops)


# --- From C ---------------------------------------------------------------------------------------


HEADER_USE = r"""
#include "lathe.h"
#include "lathe_plugin.h"
typedef void (*any_function)(void);
int main(void) {
    any_function functions[] = {
        (any_function)lathe_register_op, (any_function)lathe_unregister_op, (any_function)lathe_plugin_set_error,
        (any_function)lathe_attributes_get_int, (any_function)lathe_attributes_get_float,
        (any_function)lathe_attributes_get_string, (any_function)lathe_attributes_get_ints,
        (any_function)lathe_attributes_get_floats, (any_function)lathe_attributes_get_tensor,
        (any_function)lathe_load_plugin, (any_function)lathe_register_foreign_op,
        (any_function)lathe_registry_count, (any_function)lathe_registry_get,
    };
    static lathe_custom_op op;
    static lathe_tensor_type type;
    lathe_plugin_init_fn init = 0;
    (void)init;
    return (int)(sizeof functions + sizeof op + sizeof type) * 0 + LATHE_MAX_RANK - 8;
}
"""


@needs_cc
def test_plugin_header_compiles_as_strict_c99_and_cxx17(tmp_path):
    source = tmp_path / "header.c"
    source.write_text(HEADER_USE)
    result = subprocess.run([CC, *STRICT, f"-I{INCLUDE}", "-c", str(source), "-o", str(tmp_path / "c.o")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    if CXX is not None:
        result = subprocess.run([CXX, "-x", "c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic",
                                 f"-I{INCLUDE}", "-c", str(source), "-o", str(tmp_path / "cxx.o")],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@needs_cc
def test_vtable_abi_from_a_host_program(build):
    program = compile_c([TESTS_C / "plugin_test.c"], build / "plugin_test")
    table = numpy_helper.from_array(np.array([3, 7], np.float32), "table")
    node = helper.make_node("Scale", ["x"], ["s"], name="scale", domain="com.host", factor=3, gain=0.5,
                            label="dbl", sizes=[1, 2], weights=[0.25])
    node.attribute.append(helper.make_attribute("table", table))
    data = model_bytes([node, helper.make_node("Relu", ["s"], ["y"], name="relu")],
                       [("x", ["N", 4])], [("y", ["N", 4])], {"com.host": 1})
    (build / "scale.onnx").write_bytes(data)
    result = subprocess.run([program, build / "scale.onnx"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = int(result.stdout.split(" passed")[0].split()[-1])
    assert passed >= 35 and "0 failed" in result.stdout


@needs_cc
def test_four_threads_thousand_runs_with_a_plugin_op(build, sobel_plugin):
    program = compile_c([TESTS_C / "plugin_threads.c"], build / "plugin_threads", "-pthread")
    result = subprocess.run([program, sobel_plugin, build / "sobel_cnn.onnx"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4000 runs, 0 mismatches" in result.stdout
    image = (((np.arange(2 * 16 * 16) * 7) % 13) / np.float32(13)).astype(np.float32).reshape(2, 1, 16, 16)
    probs = [float(v) for v in result.stdout.split("probs")[1].split()]
    tolerance_close(np.array(probs, np.float32), sobel_expected(build, image)[0])


@needs_cc
def test_c_example_runs_plugin_and_foreign_op(build, dsp_library):
    program = compile_c([EXAMPLES / "run_plugins.c"], build / "run_plugins")
    plugin = compile_c([EXAMPLES / "sobel_plugin.c"], build / "libsobel_copy.so", shared=True)
    result = subprocess.run([program, plugin, dsp_library, build / "sobel_cnn.onnx", build / "highpass.onnx",
                             build / "out.raw"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    raw = np.fromfile(build / "out.raw", np.float32)
    image = (((np.arange(2 * 16 * 16) * 7) % 13) / np.float32(13)).astype(np.float32).reshape(2, 1, 16, 16)
    tolerance_close(raw[:6].reshape(2, 3), sobel_expected(build, image))
    signal = (np.sin(np.arange(64, dtype=np.float32) / np.float32(3)) + np.arange(64, dtype=np.float32) / 16)
    tolerance_close(raw[6:], np.maximum(make_models.highpass_reference(signal.astype(np.float32), 0.9), 0))
    assert "registered: com.acme.vision SobelEdges 1" in result.stdout


@needs_cc
def test_python_example_runs(build, sobel_plugin, dsp_library):
    for name in ["libsobel_plugin.so", "libdsp.so"]:
        assert (build / name).exists()
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPOSITORY / "bindings" / "python"),
                                                               os.environ.get("PYTHONPATH", "")]))
    script = f"import sys; sys.path.insert(0, {str(EXAMPLES)!r}); import python_plugin; python_plugin.main({str(build)!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=environment)
    assert result.returncode == 0, result.stderr
    assert "registered: com.acme.py Swish python:Swish" in result.stdout
    assert "registered: com.acme.dsp HighPass ffi:" in result.stdout
