"""The Python binding: loading, introspection, predict, zero-copy DLPack in and out, errors."""

import ctypes
import gc
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest
from onnx import TensorProto, helper

import lathe
from lathe_test_models import (
    FLOAT,
    add_relu_model,
    assert_close,
    gemm_relu_model,
    onnxruntime_outputs,
    relu_model,
    serialize,
    two_layer_model,
)

RNG_SEED = 20261123


def random_input(shape, seed=RNG_SEED):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def expect_error(status, *fragments):
    """Context manager: a LatheError with `status` whose message contains every fragment."""
    class Checker:
        def __enter__(self):
            self.raises = pytest.raises(lathe.LatheError)
            self.info = self.raises.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.raises.__exit__(*exc)
            error = self.info.value
            assert error.status == status, f"status {error.status!r}, message {str(error)!r}"
            for fragment in fragments:
                assert fragment in str(error), f"{fragment!r} not in {str(error)!r}"
            return handled
    return Checker()


# Versions and constants


def test_versions():
    assert lathe.__version__ == "0.1.0"
    assert isinstance(lathe.version(), str) and lathe.version().count(".") == 2
    assert lathe.abi_version() == lathe.EXPECTED_ABI_VERSION == 1


def test_status_constants_match_the_header():
    expected = {
        "LATHE_OK": 0, "LATHE_ERROR_INVALID_ARGUMENT": 1, "LATHE_ERROR_PARSE": 2,
        "LATHE_ERROR_UNSUPPORTED_OP": 3, "LATHE_ERROR_SHAPE_MISMATCH": 4, "LATHE_ERROR_DTYPE_MISMATCH": 5,
        "LATHE_ERROR_OUT_OF_MEMORY": 6, "LATHE_ERROR_PLUGIN": 7, "LATHE_ERROR_IO": 8,
        "LATHE_ERROR_INVALID_STATE": 9, "LATHE_ERROR_INTERNAL": 10,
    }
    for name, value in expected.items():
        assert getattr(lathe, name) == value
        assert lathe.status_name(value) == name
        assert lathe.LatheError(value, "m").status_name == name


def test_lathe_error_carries_status_and_message():
    error = lathe.LatheError(lathe.LATHE_ERROR_PARSE, "bad bytes")
    assert isinstance(error, Exception)
    assert error.status == 2 and isinstance(error.status, int)
    assert str(error) == "bad bytes"
    assert lathe.LatheError(77, "future").status == 77


def test_missing_library_is_a_clear_import_error():
    env = dict(os.environ, LATHE_LIBRARY="/nonexistent/dir/liblathe.so")
    code = "import lathe"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            cwd=pathlib.Path(lathe.__file__).parents[1])
    assert result.returncode != 0
    assert "LibraryNotFoundError" in result.stderr
    assert "LATHE_LIBRARY: /nonexistent/dir/liblathe.so (not found)" in result.stderr
    assert isinstance(lathe.LibraryNotFoundError("x"), ImportError)


# Loading and introspection


def test_inputs_and_outputs_with_symbolic_dims():
    model = lathe.Model(two_layer_model())
    assert [i.name for i in model.inputs] == ["x"]
    assert model.inputs[0].shape == ("N", 4)
    assert model.inputs[0].dtype == np.float32 and isinstance(model.inputs[0].dtype, np.dtype)
    assert [(o.name, o.shape, o.dtype) for o in model.outputs] == [
        ("hidden", ("N", 6), np.dtype(np.float32)), ("scores", ("N", 3), np.dtype(np.float32))]
    assert "scores" in repr(model)


def test_unnamed_and_undeclared_dims():
    model = lathe.Model(relu_model(input_shape=[None, 3], output_shape=None))
    assert model.inputs[0].shape == ("", 3)
    assert model.outputs[0].shape is None


def test_declared_dtypes():
    data = serialize(
        [helper.make_node("Add", ["a", "b"], ["c"], name="add")],
        [helper.make_tensor_value_info("a", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("b", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("c", TensorProto.INT64, [2])],
    )
    model = lathe.Model(data)
    assert [i.dtype for i in model.inputs] == [np.dtype(np.int64)] * 2
    assert model.outputs[0].dtype == np.int64


@pytest.mark.parametrize("kind", ["str", "pathlib", "bytes", "bytearray", "memoryview"])
def test_model_sources(tmp_path, kind):
    data = gemm_relu_model()
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    source = {"str": str(path), "pathlib": path, "bytes": data, "bytearray": bytearray(data),
              "memoryview": memoryview(data)}[kind]
    x = random_input((2, 4))
    with lathe.Model(source) as model:
        assert_close(model.predict(x), onnxruntime_outputs(data, {"x": x})["y"])


def test_model_rejects_other_sources():
    with pytest.raises(TypeError):
        lathe.Model(42)


# predict


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_predict_array_matches_onnxruntime(batch):
    data = gemm_relu_model(features=8, units=5)
    x = random_input((batch, 8), seed=batch)
    y = lathe.Model(data).predict(x)
    assert isinstance(y, np.ndarray)
    assert_close(y, onnxruntime_outputs(data, {"x": x})["y"])


def test_predict_dict_matches_onnxruntime():
    data = gemm_relu_model()
    x = random_input((3, 4))
    assert_close(lathe.Model(data).predict({"x": x}), onnxruntime_outputs(data, {"x": x})["y"])


def test_multi_output_returns_dict():
    data = two_layer_model()
    x = random_input((4, 4))
    result = lathe.Model(data).predict(x)
    expected = onnxruntime_outputs(data, {"x": x})
    assert list(result) == ["hidden", "scores"]
    for name in expected:
        assert_close(result[name], expected[name])


def test_multi_input_dict():
    data = add_relu_model()
    feeds = {"a": random_input((2, 3), 1), "b": random_input((2, 3), 2)}
    result = lathe.Model(data).predict(feeds)
    expected = onnxruntime_outputs(data, feeds)
    assert set(result) == {"sum", "act"}
    for name in expected:
        assert_close(result[name], expected[name])


def test_python_lists_take_the_declared_dtype():
    y = lathe.Model(relu_model()).predict([[1, -2, 3], [-4, 5, -6]])
    np.testing.assert_array_equal(y, np.array([[1, 0, 3], [0, 5, 0]], np.float32))


def test_batch_size_can_change_between_calls():
    data = gemm_relu_model()
    model = lathe.Model(data)
    for batch in (3, 1, 7, 3):
        x = random_input((batch, 4), seed=batch)
        assert_close(model.predict(x), onnxruntime_outputs(data, {"x": x})["y"])


@pytest.mark.parametrize("layout", ["transposed", "strided", "fortran", "big-endian", "readonly", "unaligned"])
def test_inputs_that_are_not_read_in_place(layout):
    base = random_input((8, 8))
    x = {
        "transposed": base[:, :4].T.copy().T,
        "strided": base[::2, ::2],
        "fortran": np.asfortranarray(base[:3, :4]),
        "big-endian": base[:3, :4].astype(">f4"),
        "readonly": np.frombuffer(base[:3, :4].tobytes(), np.float32).reshape(3, 4),
        "unaligned": np.frombuffer(b"\0" + base[:3, :4].tobytes(), np.float32, offset=1).reshape(3, 4),
    }[layout]
    assert not (x.flags.c_contiguous and x.flags.aligned and x.flags.writeable and x.dtype.isnative)
    data = gemm_relu_model()
    expected = onnxruntime_outputs(data, {"x": np.ascontiguousarray(x, np.float32)})["y"]
    assert_close(lathe.Model(data).predict(x), expected)


def test_zero_copy_input_reads_the_callers_memory():
    model = lathe.Model(relu_model())
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    references = sys.getrefcount(x)
    with model._lock:
        assert model._feed("x", x) is True
        assert sys.getrefcount(x) == references + 1  # the DLPack tensor Lathe holds keeps x alive
        x[:] = [[-1, 2, -3], [4, -5, 6]]  # visible to Lathe: it reads x in place
        model._run()
        y = model._fetch("y")
    np.testing.assert_array_equal(y, [[0, 2, 0], [4, 0, 6]])
    model.close()
    assert sys.getrefcount(x) == references  # released by lathe_session_free


def test_copied_input_is_independent_of_the_caller():
    model = lathe.Model(relu_model())
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    view = np.asfortranarray(x)
    with model._lock:
        assert model._feed("x", view) is False
        view[:] = 0
        model._run()
        y = model._fetch("y")
    np.testing.assert_array_equal(y, [[1, 0, 3], [0, 5, 0]])


def test_outputs_come_through_dlpack_read_only():
    model = lathe.Model(relu_model())
    y = model.predict(np.array([[1, -2, 3]], np.float32))
    assert y.dtype == np.float32 and y.shape == (1, 3)
    assert not y.flags.writeable and not y.flags.owndata
    assert y.ctypes.data % 16 == 0
    with pytest.raises(ValueError):
        y[0, 0] = 5
    writable = model.predict(np.array([[1, -2, 3]], np.float32), writable=True)
    writable[0, 0] = 5
    np.testing.assert_array_equal(writable, [[5, 0, 3]])


def test_dlpack_export_object_protocol():
    model = lathe.Model(relu_model())
    model.predict(np.ones((2, 3), np.float32))
    with model._lock:
        managed = ctypes.c_void_p()
        lathe._native.check(lathe._native.lib.lathe_session_get_output_dlpack(
            model._session, b"y", ctypes.byref(managed)))
    exported = lathe._dlpack.DLPackTensor(managed.value)
    assert exported.__dlpack_device__() == (1, 0)
    with pytest.raises(BufferError):
        exported.__dlpack__(copy=True)
    with pytest.raises(BufferError):
        exported.__dlpack__(dl_device=(2, 0))
    array = np.from_dlpack(exported)
    np.testing.assert_array_equal(array, np.ones((2, 3)))
    with pytest.raises(BufferError):
        exported.__dlpack__()
    # A capsule nobody consumes gives the tensor back through its destructor, and an object never
    # exported through its own finalizer.
    with model._lock:
        lathe._native.check(lathe._native.lib.lathe_session_get_output_dlpack(
            model._session, b"y", ctypes.byref(managed)))
    capsule = lathe._dlpack.DLPackTensor(managed.value).__dlpack__()
    assert "dltensor" in repr(capsule)
    del capsule
    with model._lock:
        lathe._native.check(lathe._native.lib.lathe_session_get_output_dlpack(
            model._session, b"y", ctypes.byref(managed)))
    unexported = lathe._dlpack.DLPackTensor(managed.value)
    del unexported
    gc.collect()


def test_outputs_survive_later_predicts_and_close():
    data = two_layer_model()
    model = lathe.Model(data)
    x1, x2 = random_input((3, 4), 1), random_input((3, 4), 2)
    first = model.predict(x1)
    saved = {name: array.copy() for name, array in first.items()}
    second = model.predict(x2)
    for name in saved:
        np.testing.assert_array_equal(first[name], saved[name])
        assert not np.shares_memory(first[name], second[name])
        assert not np.array_equal(first[name], second[name])
    model.close()
    del model
    gc.collect()
    for name in saved:
        np.testing.assert_array_equal(first[name], saved[name])
    expected = onnxruntime_outputs(data, {"x": x2})
    for name in expected:
        assert_close(second[name], expected[name])


def test_concurrent_predicts_share_one_model():
    data = gemm_relu_model()
    model = lathe.Model(data)
    inputs = [random_input((2 + i % 3, 4), seed=i) for i in range(8)]
    expected = [onnxruntime_outputs(data, {"x": x})["y"] for x in inputs]
    failures = []

    def work(i):
        for _ in range(20):
            try:
                assert_close(model.predict(inputs[i]), expected[i])
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]


def test_close_is_idempotent_and_final():
    model = lathe.Model(relu_model())
    with model:
        model.predict(np.ones((1, 3), np.float32))
    model.close()
    assert "closed" in repr(model)
    with expect_error(lathe.LATHE_ERROR_INVALID_STATE, "closed"):
        model.predict(np.ones((1, 3), np.float32))


# Errors


def test_truncated_model_bytes():
    data = gemm_relu_model()
    for truncated in (data[:-1], data[: len(data) // 2]):
        with expect_error(lathe.LATHE_ERROR_PARSE, "not a valid ONNX model"):
            lathe.Model(truncated)


def test_random_bytes():
    with expect_error(lathe.LATHE_ERROR_PARSE, "ONNX"):
        lathe.Model(np.random.default_rng(7).bytes(300))


def test_empty_bytes():
    with expect_error(lathe.LATHE_ERROR_PARSE, "empty"):
        lathe.Model(b"")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.onnx"
    with expect_error(lathe.LATHE_ERROR_IO, str(path)):
        lathe.Model(path)


def test_unknown_op():
    data = serialize(
        [helper.make_node("Frobnicate", ["x"], ["y"], name="frob")],
        [helper.make_tensor_value_info("x", FLOAT, [1])],
        [helper.make_tensor_value_info("y", FLOAT, [1])],
        check=False,
    )
    with expect_error(lathe.LATHE_ERROR_UNSUPPORTED_OP,
                      "unsupported op 'Frobnicate' (domain '', opset 17) at node 'frob'"):
        lathe.Model(data)


def test_unknown_op_in_custom_domain():
    data = serialize(
        [helper.make_node("Widget", ["x"], ["y"], name="w", domain="com.acme")],
        [helper.make_tensor_value_info("x", FLOAT, [1])],
        [helper.make_tensor_value_info("y", FLOAT, [1])],
        extra_opsets=[("com.acme", 2)],
        check=False,
    )
    with expect_error(lathe.LATHE_ERROR_UNSUPPORTED_OP,
                      "unsupported op 'Widget' (domain 'com.acme', opset 2) at node 'w'"):
        lathe.Model(data)


def test_wrong_input_name():
    model = lathe.Model(relu_model())
    with expect_error(lathe.LATHE_ERROR_INVALID_ARGUMENT, "'nope'"):
        model.predict({"nope": np.ones((1, 3), np.float32)})


def test_wrong_rank():
    model = lathe.Model(gemm_relu_model())
    with expect_error(lathe.LATHE_ERROR_SHAPE_MISMATCH, "'x'"):
        model.predict(np.ones(4, np.float32))


def test_wrong_dimension():
    model = lathe.Model(gemm_relu_model())
    with expect_error(lathe.LATHE_ERROR_SHAPE_MISMATCH, "'x'"):
        model.predict(np.ones((2, 5), np.float32))


def test_wrong_dtype():
    model = lathe.Model(gemm_relu_model())
    with expect_error(lathe.LATHE_ERROR_DTYPE_MISMATCH, "'x'", "float32", "float64"):
        model.predict(np.ones((2, 4), np.float64))
    with expect_error(lathe.LATHE_ERROR_DTYPE_MISMATCH, "'x'", "int32"):
        model.predict(np.ones((2, 4), np.int32))


def test_dtype_lathe_does_not_support():
    model = lathe.Model(gemm_relu_model())
    with expect_error(lathe.LATHE_ERROR_DTYPE_MISMATCH, "'x'", "float16"):
        model.predict(np.ones((2, 4), np.float16))


def test_multi_input_model_given_one_array():
    model = lathe.Model(add_relu_model())
    with expect_error(lathe.LATHE_ERROR_INVALID_ARGUMENT, "2 inputs", "'a'", "'b'"):
        model.predict(np.ones((1, 3), np.float32))


def test_missing_input_in_dict():
    model = lathe.Model(add_relu_model())
    model.predict({"a": np.ones((1, 3), np.float32), "b": np.ones((1, 3), np.float32)})
    with expect_error(lathe.LATHE_ERROR_INVALID_ARGUMENT, "missing input 'b'"):
        model.predict({"a": np.ones((1, 3), np.float32)})


def test_ragged_list_input():
    model = lathe.Model(relu_model())
    with expect_error(lathe.LATHE_ERROR_INVALID_ARGUMENT, "'x'"):
        model.predict([[1, 2, 3], [4]])


def test_model_is_usable_after_errors():
    data = gemm_relu_model()
    model = lathe.Model(data)
    x = random_input((2, 4))
    for bad in (np.ones((2, 5), np.float32), np.ones((2, 4), np.float64), {"nope": x}):
        with pytest.raises(lathe.LatheError):
            model.predict(bad)
    assert_close(model.predict(x), onnxruntime_outputs(data, {"x": x})["y"])


def test_failed_dlpack_input_is_released():
    """A rejected zero-copy input goes back to numpy (the capsule's destructor calls the deleter)."""
    model = lathe.Model(gemm_relu_model())
    x = np.ones((2, 5), np.float32)
    references = sys.getrefcount(x)
    with pytest.raises(lathe.LatheError):
        model.predict(x)
    gc.collect()
    assert sys.getrefcount(x) == references


@pytest.mark.parametrize("onnx_type,dtype", [(TensorProto.INT64, np.int64), (TensorProto.INT32, np.int32)])
def test_integer_inputs_and_outputs(onnx_type, dtype):
    data = serialize(
        [helper.make_node("Add", ["a", "b"], ["c"], name="add")],
        [helper.make_tensor_value_info("a", onnx_type, ["N"]), helper.make_tensor_value_info("b", onnx_type, ["N"])],
        [helper.make_tensor_value_info("c", onnx_type, ["N"])],
    )
    feeds = {"a": np.array([1, -2, 2**30], dtype), "b": np.array([3, 4, 5], dtype)}
    result = lathe.Model(data).predict(feeds)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, onnxruntime_outputs(data, feeds)["c"])


def test_scalar_and_empty_inputs():
    scalar = serialize([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                       [helper.make_tensor_value_info("x", FLOAT, [])],
                       [helper.make_tensor_value_info("y", FLOAT, [])])
    model = lathe.Model(scalar)
    assert model.inputs[0].shape == ()
    for x, expected in ((np.float32(-3), 0), (np.array(5, np.float32), 5), (2.5, 2.5)):
        y = model.predict(x)
        assert y.shape == () and y.dtype == np.float32 and y == expected
    empty = lathe.Model(relu_model()).predict(np.zeros((0, 3), np.float32))
    assert empty.shape == (0, 3) and empty.dtype == np.float32
