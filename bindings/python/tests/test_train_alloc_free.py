"""Steady-state training steps of an optimized liblathe allocate nothing of Lathe's own.

Tests/c/train_alloc_count.c interposes malloc and friends and counts every call made during training
steps of CNN A (Conv2D 32 3×3 relu, MaxPooling2D, Flatten, Dense 128 relu, Dense 10 softmax; sparse
categorical cross-entropy) and the LSTM stack (LSTM 50 ×3 with Dropout 0.2, Dense 1; MSE), Adam, batch
32, as benchmarks/train_bench.py trains them:

- inside `lathe_sequential_fit`: (count over STEPS batches − count over one batch) / (STEPS − 1) is
  exactly 0 — activations, gradients, saved LSTM states, im2col and pooling tables, optimizer state,
  weight backups and batch slices are all kept from step to step;
- per `lathe_sequential_train_on_batch` call: at most the 18 measured allocations, all the C ABI's own
  per-call work — x and y copied into new tensors (each a shape array, a storage object and its aligned
  block), the logs dictionary and the JSON text kept for the caller.

Not counted as Lathe's: calls made from the BLAS itself. OpenBLAS's small-matrix sgemm kernels on some
CPUs (e.g. its Cooper Lake kernels) allocate a packing buffer per call; the LSTM's backward makes one
such product per time step (150 per step for 3 layers × 50 steps). The program reports them apart
(blas_per_step); they depend on the machine's BLAS, so they are not asserted.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import lathe

REPOSITORY = Path(__file__).resolve().parents[3]
CC = shutil.which(os.environ.get("CC", "cc"))
STEPS = 20


def optimized_library_dir():
    """Where the liblathe under test is: $LATHE_ALLOC_LIBRARY, else this checkout's release build when
    present, else the library the binding loaded (as test_alloc_free.py: only optimized builds are checked)."""
    if "LATHE_ALLOC_LIBRARY" in os.environ:
        return Path(os.environ["LATHE_ALLOC_LIBRARY"]).resolve().parent
    release = REPOSITORY / ".build" / "release" / "liblathe.so"
    if release.exists():
        return release.resolve().parent
    return Path(lathe.library_path).resolve().parent if os.sep in lathe.library_path else None


LIBRARY_DIR = optimized_library_dir()

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler (cc) on PATH"),
    pytest.mark.skipif(LIBRARY_DIR is None, reason="set LATHE_LIBRARY to link the test program against a file"),
    pytest.mark.skipif(LIBRARY_DIR is not None and LIBRARY_DIR.name == "debug",
                       reason="only an optimized liblathe trains allocation-free: swift build -c release --product lathe"),
]


@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    program = tmp_path_factory.mktemp("train_alloc") / "train_alloc_count"
    subprocess.run([CC, "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{REPOSITORY / 'include'}",
                    REPOSITORY / "Tests" / "c" / "train_alloc_count.c", "-o", program,
                    f"-L{LIBRARY_DIR}", f"-Wl,-rpath,{LIBRARY_DIR}", "-llathe", "-ldl"], check=True)
    return program


def count(program, model, mode):
    """Runs the counter; returns Lathe's allocations per step (BLAS-internal ones excluded)."""
    result = subprocess.run([program, model, mode, str(STEPS)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"steps (\d+).* per_step ([0-9.]+) blas_per_step", result.stdout)
    assert match, result.stdout
    assert int(match.group(1)) == STEPS
    return float(match.group(2))


@pytest.mark.parametrize("model", ["cnn_a", "lstm"])
def test_fit_steps_allocate_nothing(counter, model):
    assert count(counter, model, "fit") == 0


@pytest.mark.parametrize("model", ["cnn_a", "lstm"])
def test_train_on_batch_allocates_only_its_copies_and_logs(counter, model):
    """At least one: the counter sees allocations (the ABI always copies x into a new tensor)."""
    assert 1 <= count(counter, model, "batch") <= 18
