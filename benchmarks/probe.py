#!/usr/bin/env python3
"""Peak RSS of a fresh process that loads one model with one engine and runs it.

    python3 benchmarks/probe.py {lathe|onnxruntime} MODEL.onnx INPUTS_JSON

INPUTS_JSON lists the model's inputs as [[name, shape, dtype], ...], None for the batch
dimension (run.py passes it, so this process never imports onnx).

Imports numpy, notes the resident set size, imports the engine, loads the model (timed: the
cold load of a fresh process), runs 10 batch-1 and 3 batch-64 inferences on random inputs, and
prints one JSON object: max_rss_kb (the whole process's peak: VmHWM of /proc/self/status;
getrusage's ru_maxrss is not used because on Linux it keeps the forking parent's peak across
exec, so every probe would report the driver's memory), ru_maxrss_kb for reference,
baseline_rss_kb (Python + numpy before the engine was imported), import_ms and cold_load_ms.
benchmarks/run.py starts one probe per engine and model so the engines never share a process.
"""

import json
import resource
import sys
import time

import numpy as np

from common import make_feeds, ort_session, resident_kb


def main():
    engine, path, inputs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    baseline = resident_kb()
    start = time.perf_counter()
    if engine == "lathe":
        import lathe
        imported = time.perf_counter()
        model = lathe.Model(path)
        loaded = time.perf_counter()

        def run(feeds):
            return model.predict(feeds)
    elif engine == "onnxruntime":
        import onnxruntime
        imported = time.perf_counter()
        session = ort_session(onnxruntime, path, threads=1)
        loaded = time.perf_counter()
        outputs = [output.name for output in session.get_outputs()]

        def run(feeds):
            return session.run(outputs, feeds)
    else:
        raise SystemExit(f"unknown engine {engine!r}: use lathe or onnxruntime")
    rng = np.random.default_rng(0)
    for batch, runs in ((1, 10), (64, 3)):
        feeds = make_feeds(inputs, batch, rng)
        for _ in range(runs):
            run(feeds)
    print(json.dumps({
        "engine": engine,
        "max_rss_kb": resident_kb("VmHWM"),
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "baseline_rss_kb": baseline,
        "import_ms": (imported - start) * 1e3,
        "cold_load_ms": (loaded - imported) * 1e3,
    }))


if __name__ == "__main__":
    main()
