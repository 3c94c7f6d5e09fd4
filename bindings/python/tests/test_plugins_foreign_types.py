"""Foreign kernels beyond float32: f64/i32/i64/u8 pointers declared in the signature, checked against
the node's tensor dtypes, with outputs of another element type and shaped like another input."""

import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper

import lathe
from test_plugins import CC, STRICT, TESTS_C, needs_cc

pytestmark = needs_cc

TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE, np.int32: TensorProto.INT32,
         np.int64: TensorProto.INT64, np.uint8: TensorProto.UINT8}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    output = tmp_path_factory.mktemp("foreign") / "libforeign_types.so"
    result = subprocess.run([CC, *STRICT, "-O1", "-fPIC", "-shared", str(TESTS_C / "foreign_types.c"), "-o", str(output)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return str(output)


def model(domain, op_type, inputs, outputs, **attributes):
    """inputs/outputs: (name, numpy type, shape) lists; one domain:op_type node between them."""
    node = helper.make_node(op_type, [n for n, _, _ in inputs], [n for n, _, _ in outputs], name="ffi", domain=domain,
                            **attributes)
    graph = helper.make_graph([node], "foreign",
                              [helper.make_tensor_value_info(n, TYPES[t], s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, TYPES[t], s) for n, t, s in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid(domain, 1)]).SerializeToString()


def test_double_tensors_and_attribute(library):
    lathe.register_foreign_op("com.ffi.types", "ScaleF64", library, "scale_f64", "void(in0:f64, out0:f64, count0, double k)")
    x = np.linspace(-1, 1, 12).reshape(3, 4) + 1e-12      # beyond float32's precision
    y = lathe.Model(model("com.ffi.types", "ScaleF64", [("x", np.float64, [3, 4])], [("y", np.float64, [3, 4])],
                          k=0.1)).predict(x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, np.float64(np.float32(0.1)) * x, rtol=1e-15)   # k is a float attribute


def test_int32_inputs_with_int_return(library):
    lathe.register_foreign_op("com.ffi.types", "AddI32", library, "add_i32", "int(in0:i32, in1:i32, out0:i32, count0)")
    m = lathe.Model(model("com.ffi.types", "AddI32", [("a", np.int32, [5]), ("b", np.int32, [5])],
                          [("y", np.int32, [5])]))
    a, b = np.arange(5, dtype=np.int32) * 1000, np.arange(5, dtype=np.int32) - 7
    np.testing.assert_array_equal(m.predict({"a": a, "b": b}), a + b)
    with pytest.raises(lathe.LatheError, match="returned 1") as error:      # overflow: the function fails
        m.predict({"a": np.full(5, 2**31 - 1, np.int32), "b": np.ones(5, np.int32)})
    assert error.value.status == lathe.LATHE_ERROR_PLUGIN


def test_int64_with_count64(library):
    # count640: the element count of input 0 as int64_t ("count64" K with K = 0).
    lathe.register_foreign_op("com.ffi.types", "CumSum64", library, "cumsum_i64", "void(in0:i64, out0:i64, count640)")
    x = np.array([[3, -1, 4], [1, 5, -9]], np.int64) * 10**12
    y = lathe.Model(model("com.ffi.types", "CumSum64", [("x", np.int64, [2, 3])], [("y", np.int64, [2, 3])])).predict(x)
    np.testing.assert_array_equal(y, np.cumsum(x.ravel()).reshape(2, 3))


def test_uint8_output_from_float_input(library):
    lathe.register_foreign_op("com.ffi.types", "Mask", library, "threshold_u8", "void(in0, out0:u8, count0, float t)")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 8)).astype(np.float32)
    y = lathe.Model(model("com.ffi.types", "Mask", [("x", np.float32, [2, 8])], [("y", np.uint8, [2, 8])],
                          t=0.25)).predict(x)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, np.where(x > 0.25, 255, 0).astype(np.uint8))


def test_output_shaped_like_a_later_input_and_count_only_inputs_of_any_type(library):
    # Input 0 is passed only as a count, so any dtype goes; the output is shaped like input 1.
    lathe.register_foreign_op("com.ffi.types", "Invert", library, "invert_second", "void(count0, in1:u8, out0:in1:u8, count1)")
    m = lathe.Model(model("com.ffi.types", "Invert", [("n", np.int64, [2]), ("p", np.uint8, [2, 3])],
                          [("y", np.uint8, [2, 3])]))
    pixels = np.array([[0, 1, 2], [200, 254, 255]], np.uint8)
    np.testing.assert_array_equal(m.predict({"n": np.zeros(2, np.int64), "p": pixels}), 255 - pixels)


def test_a_tensor_of_the_wrong_dtype_is_refused_naming_the_input(library):
    lathe.register_foreign_op("com.ffi.types", "ScaleF64b", library, "scale_f64", "void(in0:f64, out0:f64, count0, double k)")
    m = lathe.Model(model("com.ffi.types", "ScaleF64b", [("x", np.float32, [4])], [("y", np.float64, [4])], k=2.0))
    with pytest.raises(lathe.LatheError) as error:
        m.predict(np.ones(4, np.float32))
    assert error.value.status == lathe.LATHE_ERROR_DTYPE_MISMATCH
    assert "input 0 must be float64" in str(error.value) and "float32" in str(error.value)


@pytest.mark.parametrize("signature, reason", [
    ("void(in0:f16, out0, count0)", "'f16'"),
    ("void(in0, out0:f64:f32, count0)", "'f32'"),
    ("void(in0, out0:in0:in1, count0)", "'in1'"),
    ("void(in0:in0, out0, count0)", "'in0'"),
    ("void(in0:f64, in0:f32, out0, count0)", "two element types"),
    ("void(in0, out0:f64, out0:f32, count0)", "declared twice"),
])
def test_malformed_element_types(library, signature, reason):
    with pytest.raises(lathe.LatheError) as error:
        lathe.register_foreign_op("com.ffi.types.bad", "Bad", library, "scale_f64", signature)
    assert error.value.status == lathe.LATHE_ERROR_INVALID_ARGUMENT
    assert "foreign signature" in str(error.value) and reason in str(error.value)
