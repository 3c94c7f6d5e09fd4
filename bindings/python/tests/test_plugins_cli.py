"""`lathe-cli ... --plugin PATH`: the built CLI binary (next to LATHE_LIBRARY's liblathe.so) loads the
example Sobel plugin and runs, inspects, benchmarks and lists the custom-domain model's op."""

import subprocess

import numpy as np
import pytest

import lathe
from test_plugins import EXAMPLES, LIBRARY_DIR, TESTS_C, compile_c, needs_cc

CLI = LIBRARY_DIR / "lathe-cli" if LIBRARY_DIR is not None else None
MODEL = EXAMPLES / "sobel_cnn.onnx"

pytestmark = [needs_cc, pytest.mark.skipif(CLI is None or not CLI.exists(), reason="needs the built lathe-cli")]


@pytest.fixture(scope="module")
def sobel(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    return compile_c([EXAMPLES / "sobel_plugin.c"], directory / "libsobel_plugin.so", shared=True)


def cli(*args):
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=300)


def cli_random_inputs(shape, seed=1):
    """The CLI's random float32 inputs (randomFeeds in LatheCLI.swift), reproduced."""
    state, values = seed, []
    for _ in range(int(np.prod(shape))):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        values.append(np.float32(state >> 40) / np.float32(1 << 24) * np.float32(2) - np.float32(1))
    return np.array(values, np.float32).reshape(shape)


def test_ops_lists_builtin_and_plugin_ops_with_their_origin(sobel, tmp_path):
    second = compile_c([TESTS_C / "plugin_cases.c"], tmp_path / "libcases.so", shared=True)
    result = cli("ops", "--plugin", sobel, "--plugin", second)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert any(row[:2] == ["ai.onnx", "Gemm"] and row[3] == "builtin" for row in rows)
    assert ["com.acme.vision", "SobelEdges", "1+", str(sobel)] in rows
    assert ["com.test", "Flaky", "1+", str(second)] in rows
    markdown = cli("ops", "--markdown", "--plugin", sobel)
    assert f"| com.acme.vision | SobelEdges | 1+ | {sobel} |" in markdown.stdout


def test_run_with_a_plugin_matches_the_python_binding(sobel):
    result = cli("run", "--plugin", sobel, "--batch", "2", MODEL)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("probs"))
    assert "float32[2, 3]" in line
    printed = [float(v) for v in line.split("first ")[1].split()]
    if not any(op.op_type == "SobelEdges" for op in lathe.registered_ops()):
        lathe.load_plugin(str(sobel))       # the same plugin source, loaded into this process
    expected = lathe.Model(str(MODEL)).predict(cli_random_inputs((2, 1, 16, 16)))
    # The CLI prints %.5g: 5 significant digits.
    np.testing.assert_allclose(printed, expected.ravel()[:6], rtol=1e-4)


def test_inspect_and_bench_accept_plugins(sobel):
    inspect = cli("inspect", "--plugin", sobel, MODEL)
    assert inspect.returncode == 0, inspect.stderr
    assert "com.acme.vision.SobelEdges ×1" in inspect.stdout
    bench = cli("bench", "--plugin", sobel, "--runs", "5", "--warmup", "1", MODEL)
    assert bench.returncode == 0, bench.stderr
    assert "latency µs: p50" in bench.stdout


def test_without_the_plugin_the_missing_op_is_named():
    result = cli("run", MODEL)
    assert result.returncode != 0
    assert "SobelEdges" in result.stderr and "com.acme.vision" in result.stderr


def test_bad_plugin_paths_fail_clearly(tmp_path):
    result = cli("ops", "--plugin", tmp_path / "nothing.so")
    assert result.returncode != 0 and "cannot load plugin" in result.stderr and "nothing.so" in result.stderr
    no_init = compile_c([TESTS_C / "plugin_cases.c"], tmp_path / "libnoinit.so", "-DCASE_NO_INIT", shared=True)
    result = cli("run", "--plugin", no_init, MODEL)
    assert result.returncode != 0 and "does not export 'lathe_plugin_init'" in result.stderr
