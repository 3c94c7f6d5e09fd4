#!/usr/bin/env python3
"""Lathe against ONNX Runtime on the six seed models, interleaved in one run.

    python3 benchmarks/run.py [--quick] [--models NAME ...] [--models-dir DIR]

`make bench` (full: 2,000 timed batch-1 runs per engine and path) and `make bench-quick` build
the release library first and then call this script. See benchmarks/README.md for what each
number means. Results go to benchmarks/results/latest.{md,json,svg} (quick runs: quick.*).
"""

import argparse
import datetime
import gc
import inspect
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY = BENCH_DIR.parent
RELEASE_LIBRARY = REPOSITORY / ".build" / "release" / "liblathe.so"
ENGINE_BENCH = REPOSITORY / ".build" / "engine_bench"
SEED_MODELS = ("cnn_a", "cnn_b", "lstm_3x50", "mlp_8_12_8_1", "mlp_16_32_16_1", "resnet_small")

# The binding under test is the repository's, on the release library.
os.environ.setdefault("LATHE_LIBRARY", str(RELEASE_LIBRARY))
sys.path.insert(0, str(REPOSITORY / "bindings" / "python"))
sys.path.insert(0, str(BENCH_DIR))

import onnx  # noqa: E402
import onnxruntime  # noqa: E402

import lathe  # noqa: E402
from common import make_feeds, ort_session  # noqa: E402
import report  # noqa: E402

#: Run counts: "full" for make bench, "quick" for make bench-quick.
SETTINGS = {
    "full": {"latency_runs": 2000, "warmup": 200, "block": 100, "throughput_rounds": 5,
             "throughput_block_s": 0.3, "load_repeats": 7},
    "quick": {"latency_runs": 300, "warmup": 50, "block": 50, "throughput_rounds": 2,
              "throughput_block_s": 0.15, "load_repeats": 3},
}

#: Batch size of the throughput measurements.
THROUGHPUT_BATCH = 64


class EngineServer:
    """benchmarks/engine_bench.c in --serve mode: Lathe timed through the C ABI, on request."""

    def __init__(self, model_path):
        self.process = subprocess.Popen([str(ENGINE_BENCH), str(model_path), "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.hello = self._reply()

    def _reply(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"engine_bench exited with status {self.process.wait()}")
        return json.loads(line)

    def request(self, command):
        """Sends one command line and returns the JSON reply."""
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self):
        """Asks the server to quit and waits for it."""
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=60)


def python_latency(call, runs):
    """Times `runs` calls one by one: (list of ns, process CPU ns)."""
    times = [0] * runs
    clock = time.perf_counter_ns
    cpu_start = time.process_time_ns()
    for index in range(runs):
        start = clock()
        call()
        times[index] = clock() - start
    return times, time.process_time_ns() - cpu_start


def python_throughput(call, runs):
    """Times `runs` calls in one loop: (wall ns, process CPU ns)."""
    cpu_start = time.process_time_ns()
    start = time.perf_counter_ns()
    for _ in range(runs):
        call()
    return time.perf_counter_ns() - start, time.process_time_ns() - cpu_start


def percentiles(times_ns):
    """p50/p90/p99/max/mean in µs of a list of ns timings, with the run count."""
    values = np.asarray(times_ns, dtype=np.float64) / 1e3
    return {"runs": len(values), "p50_us": float(np.percentile(values, 50)),
            "p90_us": float(np.percentile(values, 90)), "p99_us": float(np.percentile(values, 99)),
            "max_us": float(values.max()), "mean_us": float(values.mean())}


def model_inputs(model):
    """[[name, shape, dtype], ...] of an onnx ModelProto's fed inputs (None for symbolic dims)."""
    weights = {initializer.name for initializer in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in weights:
            continue
        tensor = value.type.tensor_type
        shape = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
        inputs.append([value.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name])
    return inputs


def identity_model(inputs):
    """ONNX bytes of a one-node Identity model over the first input's shape and type (ORT's overhead)."""
    name, shape, dtype = inputs[0]
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    dims = ["N" if dim is None else dim for dim in shape]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", [name], ["identity_out"])], "identity",
        [onnx.helper.make_tensor_value_info(name, elem, dims)],
        [onnx.helper.make_tensor_value_info("identity_out", elem, dims)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    return model.SerializeToString()


def flops_per_sample(model):
    """Multiply-adds × 2 of Conv, Gemm, MatMul, LSTM and GRU nodes at batch 1 (other ops ignored)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    inferred = onnx.shape_inference.infer_shapes(fixed)
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        shapes[value.name] = [dim.dim_value for dim in value.type.tensor_type.shape.dim]
    for initializer in inferred.graph.initializer:
        shapes[initializer.name] = list(initializer.dims)
    total = 0
    for node in inferred.graph.node:
        attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        if node.op_type == "Conv":
            weight, output = shapes[node.input[1]], shapes[node.output[0]]
            total += 2 * int(np.prod(output)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, output = shapes[node.input[0]], shapes[node.output[0]]
            inner = a[-2] if node.op_type == "Gemm" and attributes.get("transA", 0) else a[-1]
            total += 2 * int(np.prod(output)) * inner
        elif node.op_type in ("LSTM", "GRU"):
            x, w, r = shapes[node.input[0]], shapes[node.input[1]], shapes[node.input[2]]
            directions, gates_hidden, input_size = w
            steps, batch = (x[1], x[0]) if attributes.get("layout", 0) else (x[0], x[1])
            total += 2 * steps * batch * directions * gates_hidden * (input_size + r[2])
    return total


def lathe_threads_option():
    """Whether the binding's lathe.Model takes a `threads=` argument."""
    return "threads" in inspect.signature(lathe.Model).parameters


class ModelBench:
    """Every measurement of one model: both engines, both levels, interleaved."""

    def __init__(self, name, path, settings, profile_seconds):
        self.profile_seconds = profile_seconds
        self.name = name
        self.path = path
        self.settings = settings
        self.proto = onnx.load(str(path))
        self.inputs = model_inputs(self.proto)
        rng = np.random.default_rng(1)
        self.feeds = {batch: make_feeds(self.inputs, batch, rng) for batch in (1, THROUGHPUT_BATCH)}
        self.output_names = [value.name for value in self.proto.graph.output]

    def lathe_call(self, model, batch):
        """A no-argument callable running the model on the prepared feeds through the binding's fastest
        path: `Model.bind(feeds).run()` (inputs bound once, output buffers reused), else `predict`."""
        feeds = self.feeds[batch]
        argument = next(iter(feeds.values())) if len(feeds) == 1 else feeds
        if hasattr(model, "bind"):
            return model.bind(argument).run
        return lambda: model.predict(argument)

    def ort_calls(self, session, batch, prefix):
        """{prefix_run: plain run(), prefix_iobinding: run_with_iobinding with input and output pre-bound}."""
        feeds = self.feeds[batch]
        outputs = [output.name for output in session.get_outputs()]
        binding = session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        reference = session.run(outputs, feeds)
        for name, value in zip(outputs, reference):
            binding.bind_ortvalue_output(name, onnxruntime.OrtValue.ortvalue_from_numpy(np.empty_like(value)))
        return {f"{prefix}_run": lambda: session.run(outputs, feeds),
                f"{prefix}_iobinding": lambda: session.run_with_iobinding(binding)}

    def measure_load(self):
        """Median load time (ms) of lathe.Model and ort.InferenceSession from the file, interleaved."""
        lathe_ms, ort_ms = [], []
        for _ in range(self.settings["load_repeats"]):
            start = time.perf_counter()
            model = lathe.Model(str(self.path))
            lathe_ms.append((time.perf_counter() - start) * 1e3)
            model.close()
            start = time.perf_counter()
            ort_session(onnxruntime, str(self.path), threads=1)
            ort_ms.append((time.perf_counter() - start) * 1e3)
        return {"lathe_ms": statistics.median(lathe_ms), "ort_ms": statistics.median(ort_ms)}

    def measure_rss(self):
        """Peak RSS of a fresh process per engine that loads the model and runs it (probe.py)."""
        results = {}
        for engine in ("lathe", "onnxruntime"):
            output = subprocess.run([sys.executable, str(BENCH_DIR / "probe.py"), engine, str(self.path),
                                     json.dumps(self.inputs)], check=True, capture_output=True, text=True,
                                    env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path[:2])))
            results[engine] = json.loads(output.stdout)
        return results

    def check_outputs(self, model, session):
        """Largest |Lathe − ORT| over the outputs at each batch size, relative to max(1, max|ORT|)."""
        errors = {}
        for batch, feeds in self.feeds.items():
            ours = model.predict(feeds)
            ours = ours if isinstance(ours, dict) else {self.output_names[0]: ours}
            theirs = dict(zip(self.output_names, session.run(self.output_names, feeds)))
            errors[str(batch)] = max(float(np.abs(ours[name] - theirs[name]).max() / max(1.0, np.abs(theirs[name]).max()))
                                     for name in self.output_names)
        return errors

    def run(self):
        """All measurements of this model, as a dict for the JSON report."""
        settings = self.settings
        result = {"model": self.name, "path": str(self.path.relative_to(REPOSITORY)) if self.path.is_relative_to(REPOSITORY)
                  else str(self.path), "inputs": self.inputs, "flops_per_sample": flops_per_sample(self.proto)}
        result["load_average_1min_at_start"] = os.getloadavg()[0]
        result["load"] = self.measure_load()
        model = lathe.Model(str(self.path))
        session = ort_session(onnxruntime, str(self.path), threads=1)
        identity = ort_session(onnxruntime, identity_model(self.inputs), threads=1)
        session2 = ort_session(onnxruntime, str(self.path), threads=2)
        model2 = lathe.Model(str(self.path), threads=2) if lathe_threads_option() else None
        server = EngineServer(self.path)
        try:
            result["load"]["lathe_c_ms"] = server.hello["load_ms"]
            result["max_rel_error"] = self.check_outputs(model, session)
            result["latency"] = self.measure_latency(model, session, identity, server)
            result["throughput"] = self.measure_throughput(model, model2, session, session2, server)
            memory = server.request("rss")
            result["lathe_c_max_rss_kb"] = memory["max_rss_kb"]
            result["lathe_arena_bytes"] = {"1": memory.get("arena_bytes_1", -1), "64": memory.get("arena_bytes_64", -1)}
        finally:
            server.close()
            model.close()
            if model2 is not None:
                model2.close()
        result["rss"] = self.measure_rss()
        if self.profile_seconds > 0:
            result["profile"] = {
                "1": perf_profile(self.path, 1, result["latency"]["lathe_c"]["p50_us"], self.profile_seconds),
                "64": perf_profile(self.path, THROUGHPUT_BATCH,
                                   THROUGHPUT_BATCH / result["throughput"]["lathe_c"]["samples_per_s"] * 1e6,
                                   self.profile_seconds),
            }
        return result

    def measure_latency(self, model, session, identity, server):
        """Batch-1 latency of every path, in interleaved blocks of settings['block'] runs."""
        settings = self.settings
        calls = {"lathe_py": self.lathe_call(model, 1)}
        calls.update(self.ort_calls(session, 1, "ort"))
        calls.update(self.ort_calls(identity, 1, "identity"))

        def lathe_c(runs):
            reply = server.request(f"latency {runs}")
            return reply["times_ns"], reply["cpu_ns"]

        blocks = {name: (lambda runs, call=call: python_latency(call, runs)) for name, call in calls.items()}
        blocks["lathe_c"] = lathe_c
        for measure in blocks.values():
            measure(settings["warmup"])
        times = {name: [] for name in blocks}
        cpu = dict.fromkeys(blocks, 0)
        names = list(blocks)
        rounds = settings["latency_runs"] // settings["block"]
        gc.disable()
        try:
            for round_index in range(rounds):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    block_times, block_cpu = blocks[name](settings["block"])
                    times[name].extend(block_times)
                    cpu[name] += block_cpu
                gc.collect()
        finally:
            gc.enable()
        stats = {}
        for name in names:
            stats[name] = percentiles(times[name])
            stats[name]["cpu_per_wall"] = cpu[name] / max(1, sum(times[name]))
            stats[name]["wall_s"] = sum(times[name]) / 1e9
        best = min(("run", "iobinding"), key=lambda path: stats[f"ort_{path}"]["p50_us"])
        overhead = stats[f"identity_{best}"]["p50_us"]
        stats["ort_best_path"] = best
        stats["steady"] = self.measure_steady_tail({"lathe_c": blocks["lathe_c"], f"ort_{best}": blocks[f"ort_{best}"]})
        stats["ort_engine_estimate"] = {
            "p50_us": stats[f"ort_{best}"]["p50_us"] - overhead,
            "p99_us": stats[f"ort_{best}"]["p99_us"] - overhead,
            "overhead_p50_us": overhead,
        }
        return stats

    def measure_steady_tail(self, blocks):
        """Batch-1 latency of each engine alone: `latency_runs` consecutive runs after a warm-up.

        In the interleaved blocks the first run of every block finds caches holding the other engine's
        data; with 2,000 runs in blocks of 100 those 20 cold runs are exactly the p99. A PLC cycle
        repeats one model, so the tail targets are judged on these consecutive runs."""
        settings, steady = self.settings, {}
        gc.disable()
        try:
            for name, measure in blocks.items():
                measure(settings["warmup"])
                block_times, _ = measure(settings["latency_runs"])
                steady[name] = percentiles(block_times)
                gc.collect()
        finally:
            gc.enable()
        return steady

    def measure_throughput(self, model, model2, session, session2, server):
        """Batch-64 samples/s of every path: interleaved timed loops of about throughput_block_s each."""
        settings = self.settings
        calls = {"lathe_py": self.lathe_call(model, THROUGHPUT_BATCH)}
        ort = self.ort_calls(session, THROUGHPUT_BATCH, "ort")
        calls.update(ort)
        calls["ort_2t_run"] = self.ort_calls(session2, THROUGHPUT_BATCH, "ort_2t")["ort_2t_run"]
        if model2 is not None:
            calls["lathe_py_2t"] = self.lathe_call(model2, THROUGHPUT_BATCH)

        def lathe_c(runs):
            reply = server.request(f"throughput {runs}")
            return reply["wall_ns"], reply["cpu_ns"]

        loops = {name: (lambda runs, call=call: python_throughput(call, runs)) for name, call in calls.items()}
        loops["lathe_c"] = lathe_c
        if server.hello.get("threads_option"):
            def lathe_c_2t(runs):
                reply = server.request(f"throughput2 {runs}")
                return reply["wall_ns"], reply["cpu_ns"]

            loops["lathe_c_2t"] = lathe_c_2t
        counts = {}
        for name, loop in loops.items():
            loop(2)
            wall, _ = loop(3)
            counts[name] = max(1, round(settings["throughput_block_s"] / (wall / 3 / 1e9)))
        samples = {name: [] for name in loops}
        cpu_per_wall = {name: [] for name in loops}
        names = list(loops)
        for round_index in range(settings["throughput_rounds"]):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                wall, cpu = loops[name](counts[name])
                samples[name].append(THROUGHPUT_BATCH * counts[name] / (wall / 1e9))
                cpu_per_wall[name].append(cpu / wall)
        stats = {name: {"samples_per_s": statistics.median(samples[name]), "blocks": len(samples[name]),
                        "runs_per_block": counts[name], "cpu_per_wall": statistics.median(cpu_per_wall[name])}
                 for name in names}
        stats["ort_best_path"] = max(("run", "iobinding"), key=lambda path: stats[f"ort_{path}"]["samples_per_s"])
        stats["lathe_threads_option"] = model2 is not None or "lathe_c_2t" in loops
        return stats


def perf_profile(model_path, batch, per_run_us, seconds):
    """Top symbols of Lathe's engine (engine_bench under `perf record`) for ~`seconds` of runs at `batch`.

    Returns [{"percent", "dso", "symbol"}, ...] (symbols of 1% or more, Swift names demangled), or
    None when perf is missing or not permitted.
    """
    perf, swift = shutil.which("perf"), shutil.which("swift")
    if perf is None:
        return None
    runs = max(20, int(seconds * 1e6 / max(per_run_us, 1e-3)))
    data = BENCH_DIR / "results" / f".perf-{os.getpid()}.data"
    data.parent.mkdir(parents=True, exist_ok=True)
    try:
        recorded = subprocess.run([perf, "record", "-q", "-F", "999", "-o", str(data), "--", str(ENGINE_BENCH),
                                   str(model_path), "--runs", str(runs), "--warmup", "5", "--batch", str(batch)],
                                  capture_output=True, text=True)
        if recorded.returncode != 0:
            return None
        listing = subprocess.run([perf, "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,symbol",
                                  "--percent-limit", "1"], capture_output=True, text=True).stdout
    finally:
        data.unlink(missing_ok=True)
    rows = []
    for line in listing.splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and fields[0].endswith("%") and fields[2] in ("[.]", "[k]"):
            symbol = re.split(r"\s{2,}", fields[3].strip())[0]
            rows.append({"percent": float(fields[0].rstrip("%")), "dso": fields[1], "symbol": symbol})
    if swift is not None and rows:
        demangled = subprocess.run([swift, "demangle", "--simplified", "--compact"], capture_output=True, text=True,
                                   input="\n".join(row["symbol"] for row in rows) + "\n").stdout.splitlines()
        if len(demangled) == len(rows):
            for row, name in zip(rows, demangled):
                row["symbol"] = name
    return rows


def sgemm_ceiling():
    """GFLOP/s of numpy's float32 matmul at 2048² on one thread (best of 3), in a subprocess."""
    code = ("import time, numpy as np\n"
            "a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32); b = a.copy(); a @ b\n"
            "best = min(__import__('timeit').repeat(lambda: a @ b, number=1, repeat=3))\n"
            "print(2 * 2048 ** 3 / best / 1e9)\n")
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=environment)
    return float(output.stdout.strip())


def machine():
    """CPU model, core count, memory, load and OS of this machine."""
    fields = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    cpu = fields.get("model name", platform.processor())
    if "cpu family" in fields and "model" in fields:
        cpu += f" (family {fields['cpu family']}, model {fields['model']})"
    flags = fields.get("flags", "").split()
    memory_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "avx512f": "avx512f" in flags, "memory_gib": round(memory_kb / 2**20, 1),
            "os": platform.platform(), "python": platform.python_version()}


def uptime():
    """The output of `uptime`, for the load of the shared machine."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def git_revision():
    """The repository's HEAD commit, with '+dirty' when the worktree has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPOSITORY,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_engine_bench():
    """Compiles benchmarks/engine_bench.c against the release liblathe.so.

    When include/lathe.h declares session options (threads) and the arena size, they are compiled
    in; if that build fails, engine_bench is built without them. Returns whether they are in.
    """
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise SystemExit("no C compiler (cc) on PATH; engine_bench.c cannot be built")
    command = [compiler, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{REPOSITORY / 'include'}",
               str(BENCH_DIR / "engine_bench.c"), f"-L{RELEASE_LIBRARY.parent}", "-llathe",
               f"-Wl,-rpath,{RELEASE_LIBRARY.parent}", "-o", str(ENGINE_BENCH)]
    header = (REPOSITORY / "include" / "lathe.h").read_text()
    if "lathe_session_options_set_threads" in header and "lathe_session_arena_bytes" in header:
        built = subprocess.run(command + ["-DLATHE_BENCH_SESSION_OPTIONS"], capture_output=True, text=True)
        if built.returncode == 0:
            return True
        print("engine_bench: lathe.h declares session options but using them failed; building without:\n"
              + built.stderr, file=sys.stderr)
    subprocess.run(command, check=True)
    return False


def find_models(models_dir, names):
    """(name, path) of each requested seed model; exits naming the missing files."""
    found, missing = [], []
    for name in names:
        path = models_dir / name / "model.onnx"
        (found if path.is_file() else missing).append((name, path))
    if missing:
        raise SystemExit("missing seed models: " + ", ".join(str(path) for _, path in missing)
                         + "\n(generate them with: python3 scripts/make_seed_models.py)")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test; writes results/quick.*)")
    parser.add_argument("--models", nargs="+", default=list(SEED_MODELS), help="seed model names to run")
    parser.add_argument("--models-dir", type=Path, default=REPOSITORY / "models" / "seed",
                        help="directory holding <name>/model.onnx")
    parser.add_argument("--profile-seconds", type=float, default=None,
                        help="seconds of `perf record` of Lathe's engine per model and batch size "
                             "(default 2, quick 0.5; 0 skips the profiles)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="directory for the reports")
    args = parser.parse_args()
    if not RELEASE_LIBRARY.is_file():
        raise SystemExit(f"{RELEASE_LIBRARY} is missing: run `make bench` (it builds the release library)")
    models = find_models(args.models_dir.resolve(), args.models)
    mode = "quick" if args.quick else "full"
    settings = SETTINGS[mode]
    if args.profile_seconds is None:
        args.profile_seconds = 0.5 if args.quick else 2.0
    session_options = build_engine_bench()
    started = time.time()
    report_data = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode,
        "settings": settings,
        "machine": machine(),
        "load_before": uptime(),
        "versions": {"lathe": lathe.version(), "lathe_binding": lathe.__version__, "lathe_commit": git_revision(),
                     "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "onnx": onnx.__version__},
        "lathe_library": str(lathe.library_path),
        "lathe_threads_option": lathe_threads_option() or session_options,
        "lathe_python_threads_option": lathe_threads_option(),
        "lathe_c_session_options": session_options,
        "sgemm_ceiling_reference_gflops": report.SGEMM_CEILING_GFLOPS,
        "models": [],
        "failed": [],
    }
    print(f"lathe {lathe.version()} ({report_data['versions']['lathe_commit']}) vs onnxruntime "
          f"{onnxruntime.__version__}, {mode} run; {report_data['load_before']}", flush=True)
    report_data["sgemm_measured_gflops"] = sgemm_ceiling()
    for name, path in models:
        model_started = time.time()
        print(f"  {name} ...", end="", flush=True)
        load_average = os.getloadavg()[0]
        try:
            report_data["models"].append(ModelBench(name, path, settings, args.profile_seconds).run())
        except (lathe.LatheError, RuntimeError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", None) or ""
            report_data["failed"].append({"model": name, "error": f"{type(error).__name__}: {error} {detail}".strip()})
            print(f" failed: {report_data['failed'][-1]['error']}", flush=True)
            continue
        print(f" {time.time() - model_started:.0f} s (load average at start {load_average:.2f})", flush=True)
    report_data["load_after"] = uptime()
    report_data["duration_s"] = round(time.time() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "latest" if mode == "full" else "quick"
    markdown = report.markdown(report_data)
    (args.out / f"{stem}.json").write_text(json.dumps(report_data, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown)
    (args.out / f"{stem}.svg").write_text(report.svg(report_data))
    if mode == "full" and args.models == list(SEED_MODELS):
        report.update_readme(BENCH_DIR / "README.md", report_data)
    print()
    print(markdown)
    print(f"written: {args.out / stem}.md, .json, .svg")


if __name__ == "__main__":
    main()
