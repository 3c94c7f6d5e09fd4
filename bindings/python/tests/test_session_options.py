"""`lathe.Model(..., threads=N)`: the same results on any thread count, deterministic on one thread,
and the session's arena reported through the C ABI."""

import ctypes

import numpy as np
import pytest

import lathe
from lathe._native import lib
from lathe_test_models import assert_close, onnxruntime_outputs, serialize, weights
from onnx import TensorProto, helper


def conv_model():
    """Conv → BatchNormalization → Relu → Flatten → Gemm: exercises BN folding and activation fusion."""
    return serialize(
        [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
         helper.make_node("Relu", ["n"], ["r"]),
         helper.make_node("Flatten", ["r"], ["f"]),
         helper.make_node("Gemm", ["f", "G"], ["y"], transB=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [weights("W", (5, 2, 3, 3), 1), weights("s", (5,), 2), weights("b", (5,), 3), weights("m", (5,), 4),
         helper.make_tensor("v", TensorProto.FLOAT, [5], [0.5, 1, 1.5, 2, 2.5]), weights("G", (3, 180), 5)],
    )


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_threads_match_onnxruntime(threads):
    data = conv_model()
    x = np.random.default_rng(threads).standard_normal((9, 2, 6, 6)).astype(np.float32)
    with lathe.Model(data, threads=threads) as model:
        y = model.predict(x)
        assert_close(y, onnxruntime_outputs(data, {"x": x})["y"])
        assert np.array_equal(model.predict(x), y)


def test_single_thread_is_bitwise_deterministic():
    data = conv_model()
    x = np.random.default_rng(5).standard_normal((4, 2, 6, 6)).astype(np.float32)
    first = lathe.Model(data).predict(x)
    second = lathe.Model(data, threads=1).predict(x)
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("threads", [0, -1, 1000])
def test_bad_thread_count_is_rejected(threads):
    with pytest.raises(lathe.LatheError) as info:
        lathe.Model(conv_model(), threads=threads)
    assert info.value.status == lathe.Status.INVALID_ARGUMENT
    assert "threads" in str(info.value)


def test_arena_bytes_after_run():
    model = ctypes.c_void_p()
    data = conv_model()
    assert lib.lathe_model_load_memory(data, len(data), ctypes.byref(model)) == 0
    session = ctypes.c_void_p()
    assert lib.lathe_session_create_with_options(model, None, ctypes.byref(session)) == 0
    size = ctypes.c_size_t(123)
    assert lib.lathe_session_arena_bytes(session, ctypes.byref(size)) == 0
    assert size.value == 0
    x = np.ones((2, 2, 6, 6), np.float32)
    shape = (ctypes.c_int64 * 4)(*x.shape)
    assert lib.lathe_session_set_input(session, b"x", 1, shape, 4, x.ctypes.data, x.nbytes) == 0
    assert lib.lathe_session_run(session) == 0
    assert lib.lathe_session_arena_bytes(session, ctypes.byref(size)) == 0
    # Conv output (2·5·36 floats) and its im2col scratch at least; 64-byte granules.
    assert size.value >= 2 * 5 * 36 * 4 and size.value % 64 == 0
    lib.lathe_session_free(session)
    lib.lathe_model_free(model)
