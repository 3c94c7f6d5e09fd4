"""A steady-state run of an optimized liblathe allocates nothing: Tests/c/alloc_count.c interposes malloc
and friends and counts every call made across iterations of set_input + run + get_output (1,000 at
batch 1, `RUNS[64]` at batch 64), after warm-up, for each seed model (models/seed/*/model.onnx, or
$LATHE_SEED_MODELS) and two models built here, on one thread (the default)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from onnx import TensorProto, helper

import lathe
from lathe_test_models import serialize, weights

REPOSITORY = Path(__file__).resolve().parents[3]
CC = shutil.which(os.environ.get("CC", "cc"))


def optimized_library_dir():
    """Where the liblathe under test is: $LATHE_ALLOC_LIBRARY, else this checkout's release build when
    present, else the library the binding loaded. An unoptimized (debug) build calls unspecialised
    generic standard-library code that boxes values on the heap, so only optimized builds are checked."""
    if "LATHE_ALLOC_LIBRARY" in os.environ:
        return Path(os.environ["LATHE_ALLOC_LIBRARY"]).resolve().parent
    release = REPOSITORY / ".build" / "release" / "liblathe.so"
    if release.exists():
        return release.resolve().parent
    return Path(lathe.library_path).resolve().parent if os.sep in lathe.library_path else None


LIBRARY_DIR = optimized_library_dir()
SEED_DIR = Path(os.environ.get("LATHE_SEED_MODELS", REPOSITORY / "models" / "seed"))
SEED_MODELS = sorted(SEED_DIR.glob("*/model.onnx")) if SEED_DIR.is_dir() else []
#: Iterations counted at batch 1; at batch 64 fewer by default ($LATHE_ALLOC_RUNS_B64), since the
#: ResNet-style model takes most of a second per batch-64 run and every run takes the same path.
RUNS = {1: 1000, 64: int(os.environ.get("LATHE_ALLOC_RUNS_B64", "50"))}

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler (cc) on PATH"),
    pytest.mark.skipif(LIBRARY_DIR is None, reason="set LATHE_LIBRARY to link the test program against a file"),
    pytest.mark.skipif(LIBRARY_DIR is not None and LIBRARY_DIR.name == "debug",
                       reason="only an optimized liblathe runs allocation-free: swift build -c release --product lathe"),
]

FLOAT = TensorProto.FLOAT


def conv_net():
    """Conv → BatchNormalization → Relu → MaxPool → Conv (1×1) + residual Add → Relu → Flatten → Gemm → Softmax."""
    return serialize(
        [helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["n1"]),
         helper.make_node("Relu", ["n1"], ["r1"]),
         helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Conv", ["p1", "W2"], ["c2"]),
         helper.make_node("Add", ["c2", "p1"], ["a2"]),
         helper.make_node("Relu", ["a2"], ["r2"]),
         helper.make_node("Flatten", ["r2"], ["f"]),
         helper.make_node("Gemm", ["f", "W3", "B3"], ["g"], transB=1),
         helper.make_node("Softmax", ["g"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 2, 8, 8])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 5])],
        [weights("W1", (4, 2, 3, 3), 1), weights("B1", (4,), 2), weights("s", (4,), 3), weights("b", (4,), 4),
         weights("m", (4,), 5), helper.make_tensor("v", FLOAT, [4], [0.5, 1.0, 1.5, 2.0]),
         weights("W2", (4, 4, 1, 1), 6), weights("W3", (5, 64), 7), weights("B3", (5,), 8)],
    )


def recurrent_net():
    """Transpose → LSTM → Squeeze → GRU → MatMul + Add → Tanh."""
    return serialize(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
         helper.make_node("LSTM", ["t", "W", "R", "B"], ["h"], hidden_size=6),
         helper.make_node("Squeeze", ["h", "axis1"], ["s"]),
         helper.make_node("GRU", ["s", "Wg", "Rg"], ["", "hg"], hidden_size=5),
         helper.make_node("Squeeze", ["hg", "axis0"], ["last"]),
         helper.make_node("MatMul", ["last", "M"], ["mm"]),
         helper.make_node("Add", ["mm", "bias"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["y"])],
        [helper.make_tensor_value_info("x", FLOAT, ["N", 7, 3])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 2])],
        [weights("W", (1, 24, 3), 1), weights("R", (1, 24, 6), 2), weights("B", (1, 48), 3),
         weights("Wg", (1, 15, 6), 4), weights("Rg", (1, 15, 5), 5), weights("M", (5, 2), 6), weights("bias", (2,), 7),
         helper.make_tensor("axis1", TensorProto.INT64, [1], [1]), helper.make_tensor("axis0", TensorProto.INT64, [1], [0])],
    )


@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    build = tmp_path_factory.mktemp("alloc")
    program = build / "alloc_count"
    subprocess.run([CC, "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{REPOSITORY / 'include'}",
                    REPOSITORY / "Tests" / "c" / "alloc_count.c", "-o", program,
                    f"-L{LIBRARY_DIR}", f"-Wl,-rpath,{LIBRARY_DIR}", "-llathe"], check=True)
    for name, data in [("conv_net", conv_net()), ("recurrent_net", recurrent_net())]:
        (build / f"{name}.onnx").write_bytes(data)
    return program, build


def count(program, model, batch):
    """Runs the counter; returns (allocations, arena bytes)."""
    runs = RUNS[batch]
    result = subprocess.run([program, model, str(batch), str(runs)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"allocations (\d+) runs (\d+) arena (\d+)", result.stdout)
    assert match, result.stdout
    assert int(match.group(2)) == runs
    return int(match.group(1)), int(match.group(3))


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("name", ["conv_net", "recurrent_net"])
def test_builtin_models_run_without_allocating(counter, name, batch):
    program, build = counter
    allocations, arena = count(program, build / f"{name}.onnx", batch)
    assert allocations == 0
    assert arena > 0


@pytest.mark.skipif(not SEED_MODELS, reason=f"no seed models under {SEED_DIR}")
@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("model", SEED_MODELS, ids=lambda p: p.parent.name)
def test_seed_models_run_without_allocating(counter, model, batch):
    allocations, arena = count(counter[0], model, batch)
    assert allocations == 0
    assert arena > 0


def test_counter_sees_allocations(counter):
    """The interposition works: when every run re-plans (the batch alternates), allocations are counted."""
    program, build = counter
    result = subprocess.run([program, build / "conv_net.onnx", "1", "10", "1", "replan"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(re.search(r"allocations (\d+)", result.stdout).group(1)) >= 10
