"""Model loading: float16/bfloat16 tensors widened to float32 at load, and external tensor data
(`data_location: EXTERNAL`) read relative to the model file with unsafe locations refused.
Models are written with onnx.external_data_helper; results compared with onnxruntime (or numpy) within
max abs error <= 1e-4 * max(1, max|reference|)."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

import lathe
from test_ops_basic import assert_close


def matmul_model(weight, bias, input_type=TensorProto.FLOAT):
    """y = x · W + b with W and b as initializers."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", input_type, [2, weight.shape[0]])],
                              [helper.make_tensor_value_info("y", input_type, None)],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_float16_initializers_widened():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3)).astype(np.float16)
    b = rng.standard_normal(3).astype(np.float16)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    model = matmul_model(w, b)
    # onnxruntime needs matching types: compare with the float32 product of the same half values.
    got = lathe.Model(model.SerializeToString()).predict(x)
    assert_close(got, x @ w.astype(np.float32) + b.astype(np.float32))


def test_float16_graph_input_reported_as_float32():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 3)).astype(np.float16)
    b = rng.standard_normal(3).astype(np.float16)
    x = rng.standard_normal((2, 4)).astype(np.float16)
    model = matmul_model(w, b, TensorProto.FLOAT16)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = lathe.Model(model.SerializeToString()).predict(x.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref.astype(np.float32), atol=2e-2, rtol=2e-2)  # onnxruntime rounds to half


def test_bfloat16_constant_attribute():
    values = np.array([1.5, -2.25, 3.0, 0.0078125], np.float32)  # exactly representable in bfloat16
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    tensor = helper.make_tensor("c", TensorProto.BFLOAT16, [4], bits.tobytes(), raw=True)
    graph = helper.make_graph([helper.make_node("Constant", [], ["c"], value=tensor), helper.make_node("Add", ["x", "c"], ["y"])],
                              "bf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(lathe.Model(model.SerializeToString()).predict(x), x + values)


def save_external(model, directory, location="weights.bin"):
    """Saves `model` with every initializer in one external file; returns the model path."""
    external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True, location=location,
                                                        size_threshold=0)
    path = os.path.join(directory, "model.onnx")
    onnx.save_model(model, path)
    return path


def test_external_data_loads_relative_to_model(tmp_path):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    path = save_external(matmul_model(w, b), str(tmp_path))
    assert os.path.getsize(tmp_path / "weights.bin") >= w.nbytes + b.nbytes
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert_close(lathe.Model(path).predict(x), ref)


def test_external_float16_data(tmp_path):
    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 3)).astype(np.float16)
    b = rng.standard_normal(3).astype(np.float16)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    path = save_external(matmul_model(w, b), str(tmp_path), location="sub_half.bin")
    assert_close(lathe.Model(path).predict(x), x @ w.astype(np.float32) + b.astype(np.float32))


def test_external_data_from_memory_needs_directory(tmp_path):
    rng = np.random.default_rng(5)
    path = save_external(matmul_model(rng.standard_normal((4, 3)).astype(np.float32),
                                      np.zeros(3, np.float32)), str(tmp_path))
    data = open(path, "rb").read()
    with pytest.raises(lathe.LatheError) as error:
        lathe.Model(data)
    assert error.value.status_name == "LATHE_IO" or "directory" in str(error.value)
    assert "directory" in str(error.value)


def external_model_with_location(location, directory):
    """A model whose weight claims to live at `location` (written as is, without checks)."""
    w = np.ones((4, 3), np.float32)
    model = matmul_model(w, np.zeros(3, np.float32))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", "0"), ("length", str(w.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = os.path.join(directory, "model.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../outside.bin", "sub/../../outside.bin", "/etc/passwd", "escape_link.bin", "missing.bin"])
def test_external_data_unsafe_or_missing_locations_refused(tmp_path, location):
    inner = tmp_path / "model_dir"
    inner.mkdir()
    (tmp_path / "outside.bin").write_bytes(np.ones(12, np.float32).tobytes())
    os.symlink(tmp_path / "outside.bin", inner / "escape_link.bin")
    path = external_model_with_location(location, str(inner))
    with pytest.raises(lathe.LatheError) as error:
        lathe.Model(path)
    message = str(error.value)
    assert "'w'" in message
    assert location.split("/")[-1] in message or location in message


def test_external_data_length_mismatch(tmp_path):
    path = external_model_with_location("short.bin", str(tmp_path))
    (tmp_path / "short.bin").write_bytes(b"\0" * 8)
    with pytest.raises(lathe.LatheError, match="short.bin"):
        lathe.Model(path)
