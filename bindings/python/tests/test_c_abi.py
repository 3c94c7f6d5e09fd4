"""The C ABI from C: the header compiles as strict C99 and C++17, Tests/c/abi_test.c passes,
examples/c/predict.c agrees with onnxruntime and runs clean under valgrind."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import lathe
from lathe_test_models import assert_close, onnxruntime_outputs, relu_model, two_layer_model

REPOSITORY = Path(__file__).resolve().parents[3]
INCLUDE = REPOSITORY / "include"
C_STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CC = shutil.which(os.environ.get("CC", "cc"))
CXX = shutil.which(os.environ.get("CXX", "g++"))
LIBRARY_DIR = Path(lathe.library_path).resolve().parent if os.sep in lathe.library_path else None

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on PATH")

#: A translation unit that uses every declaration of lathe.h, so a bad prototype fails to compile.
HEADER_USE = r"""
#include "lathe.h"
typedef void (*any_function)(void);
int main(void) {
    any_function functions[] = {
        (any_function)lathe_version, (any_function)lathe_abi_version, (any_function)lathe_last_error,
        (any_function)lathe_status_name, (any_function)lathe_model_load_file,
        (any_function)lathe_model_load_memory, (any_function)lathe_model_free,
        (any_function)lathe_model_export_onnx, (any_function)lathe_model_save_onnx,
        (any_function)lathe_model_input_count, (any_function)lathe_model_output_count,
        (any_function)lathe_model_input_name, (any_function)lathe_model_output_name,
        (any_function)lathe_model_input_dtype, (any_function)lathe_model_output_dtype,
        (any_function)lathe_model_input_rank, (any_function)lathe_model_output_rank,
        (any_function)lathe_model_input_dim, (any_function)lathe_model_output_dim,
        (any_function)lathe_session_create, (any_function)lathe_session_free,
        (any_function)lathe_session_set_input, (any_function)lathe_session_set_input_dlpack,
        (any_function)lathe_session_run, (any_function)lathe_session_get_output,
        (any_function)lathe_session_copy_output, (any_function)lathe_session_get_output_dlpack,
    };
    lathe_status codes[] = {LATHE_OK, LATHE_ERROR_INVALID_ARGUMENT, LATHE_ERROR_PARSE,
        LATHE_ERROR_UNSUPPORTED_OP, LATHE_ERROR_SHAPE_MISMATCH, LATHE_ERROR_DTYPE_MISMATCH,
        LATHE_ERROR_OUT_OF_MEMORY, LATHE_ERROR_PLUGIN, LATHE_ERROR_IO, LATHE_ERROR_INVALID_STATE,
        LATHE_ERROR_INTERNAL};
    lathe_dtype dtypes[] = {LATHE_DTYPE_FLOAT32, LATHE_DTYPE_UINT8, LATHE_DTYPE_INT8, LATHE_DTYPE_INT32,
        LATHE_DTYPE_INT64, LATHE_DTYPE_BOOL, LATHE_DTYPE_FLOAT64};
    return (int)(sizeof functions + sizeof codes + sizeof dtypes) * 0 + LATHE_ABI_VERSION - 1;
}
"""


def run(command, **kwargs):
    """Runs a command; fails the test with its output if it exits non-zero."""
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} exited {result.returncode}\n"
                                    f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def link_flags():
    if LIBRARY_DIR is None:
        pytest.skip(f"liblathe was loaded through the system loader ({lathe.library_path}); "
                    "set LATHE_LIBRARY to link against a file")
    return [f"-L{LIBRARY_DIR}", f"-Wl,-rpath,{LIBRARY_DIR}", "-llathe"]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("c-abi")


@pytest.fixture(scope="module")
def predict_program(build_dir):
    program = build_dir / "predict"
    run([CC, "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{INCLUDE}",
         REPOSITORY / "examples" / "c" / "predict.c", "-o", program, *link_flags()])
    return program


@pytest.fixture(scope="module")
def abi_program(build_dir):
    program = build_dir / "abi_test"
    run([CC, *C_STRICT, "-g", f"-I{INCLUDE}", REPOSITORY / "Tests" / "c" / "abi_test.c", "-o", program,
         *link_flags()])
    return program


@pytest.fixture(scope="module")
def relu_path(build_dir):
    path = build_dir / "relu.onnx"
    path.write_bytes(relu_model())
    return path


@pytest.fixture(scope="module")
def two_layer_path(build_dir):
    path = build_dir / "two_layer.onnx"
    path.write_bytes(two_layer_model())
    return path


def test_header_compiles_as_strict_c99(tmp_path):
    source = tmp_path / "header.c"
    source.write_text(HEADER_USE)
    run([CC, *C_STRICT, f"-I{INCLUDE}", "-c", source, "-o", tmp_path / "header.o"])


@pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++) on PATH")
def test_header_compiles_as_cxx17(tmp_path):
    source = tmp_path / "header.cpp"
    source.write_text(HEADER_USE)
    run([CXX, "-x", "c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{INCLUDE}",
         "-c", source, "-o", tmp_path / "header.o"])


def test_abi_test_program(abi_program, relu_path):
    result = subprocess.run([abi_program, relu_path], capture_output=True, text=True, timeout=120)
    summary = re.search(r"(\d+) passed, (\d+) failed", result.stdout)
    assert summary, f"no summary\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert summary.group(2) == "0" and result.returncode == 0, result.stderr
    assert int(summary.group(1)) > 150


def deterministic_input(shape, index=0):
    """The input predict.c feeds without a file: x[i] = ((7 i + 3 index) % 17) / 8 - 1."""
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return (((7 * i + 3 * index) % 17).astype(np.float32) / np.float32(8) - np.float32(1)).reshape(shape)


def read_outputs(path, shapes):
    """Splits predict.c's raw output file into float32 arrays of the given shapes."""
    flat = np.fromfile(path, np.float32)
    assert flat.size == sum(int(np.prod(s)) for s in shapes)
    arrays, start = [], 0
    for shape in shapes:
        count = int(np.prod(shape))
        arrays.append(flat[start:start + count].reshape(shape))
        start += count
    return arrays


def test_predict_example_deterministic_input(predict_program, two_layer_path, tmp_path):
    out = tmp_path / "out.raw"
    result = run([predict_program, two_layer_path, "-", out])
    assert "input  0: 'x' float32 [N, 4]" in result.stdout
    assert "output 0: 'hidden' float32 [N, 6]" in result.stdout
    assert "output 1: 'scores' float32 [N, 3]" in result.stdout
    assert "output 'scores' float32 [1, 3]" in result.stdout
    expected = onnxruntime_outputs(two_layer_path.read_bytes(), {"x": deterministic_input((1, 4))})
    hidden, scores = read_outputs(out, [(1, 6), (1, 3)])
    assert_close(hidden, expected["hidden"])
    assert_close(scores, expected["scores"])
    assert f"argmax {int(np.argmax(expected['scores'][0]))}" in result.stdout.split("output 'scores'")[1]


def test_predict_example_input_file(predict_program, two_layer_path, tmp_path):
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    x.tofile(tmp_path / "x.f32")
    out = tmp_path / "out.raw"
    result = run([predict_program, two_layer_path, tmp_path / "x.f32", out])
    assert "output 'scores' float32 [5, 3]" in result.stdout
    expected = onnxruntime_outputs(two_layer_path.read_bytes(), {"x": x})
    hidden, scores = read_outputs(out, [(5, 6), (5, 3)])
    assert_close(hidden, expected["hidden"])
    assert_close(scores, expected["scores"])


def test_predict_example_reports_errors(predict_program, tmp_path):
    result = subprocess.run([predict_program, tmp_path / "absent.onnx"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "LATHE_ERROR_IO" in result.stderr and "absent.onnx" in result.stderr
    usage = subprocess.run([predict_program], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


VALGRIND = shutil.which("valgrind")
VALGRIND_FLAGS = ["--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite"]


@pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")
def test_predict_example_under_valgrind(predict_program, two_layer_path, tmp_path):
    result = subprocess.run([VALGRIND, *VALGRIND_FLAGS, predict_program, two_layer_path, "-", tmp_path / "o.raw"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-6000:]
    assert "definitely lost: 0 bytes" in result.stderr or "All heap blocks were freed" in result.stderr


@pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")
def test_abi_test_under_valgrind(abi_program, relu_path):
    result = subprocess.run([VALGRIND, *VALGRIND_FLAGS, abi_program, relu_path],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]
    assert "definitely lost: 0 bytes" in result.stderr or "All heap blocks were freed" in result.stderr
