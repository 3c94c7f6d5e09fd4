"""The training C ABI from C: Tests/c/train_test.c compiled with cc (strict C99) passes, and the ONNX file it
writes runs in onnxruntime."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

import lathe

REPOSITORY = Path(__file__).resolve().parents[3]
CC = shutil.which(os.environ.get("CC", "cc"))
LIBRARY_DIR = Path(lathe.library_path).resolve().parent if os.sep in lathe.library_path else None

pytestmark = pytest.mark.skipif(CC is None or LIBRARY_DIR is None, reason="needs cc and a liblathe.so file path")


def test_train_test_program(tmp_path):
    program = tmp_path / "train_test"
    build = subprocess.run([CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{REPOSITORY / 'include'}",
                            str(REPOSITORY / "Tests" / "c" / "train_test.c"), "-o", str(program), f"-L{LIBRARY_DIR}",
                            f"-Wl,-rpath,{LIBRARY_DIR}", "-llathe"], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    onnx_path = tmp_path / "mlp.onnx"
    result = subprocess.run([str(program), str(onnx_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(", 0 failed")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.array([[1.0, 1.0], [-1.0, -1.0]], np.float32)
    probabilities = session.run(None, {"input": x})[0]
    assert probabilities[0, 0] > 0.5 > probabilities[1, 0]
