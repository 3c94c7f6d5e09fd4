#!/usr/bin/env python3
"""Training throughput: one epoch of CNN A, CNN B and the LSTM stack in Lathe, PyTorch and Keras.

Every engine trains the same architecture (the seed workloads' Keras definitions), on the same
synthetic data, with Adam, batch 32, shuffling on, one thread. Each (engine, model) pair runs in a
fresh subprocess so thread settings and imports cannot leak between engines; the driver interleaves
them and repeats each `--repeats` times, keeping the best epoch time (the least disturbed by other
load on the machine). Reported: training samples/s of one epoch after a warm-up epoch, and Lathe's
ratio to the faster of PyTorch and Keras (target >= 1.0).

Usage:  python3 benchmarks/train_bench.py [--models cnn_a lstm_3x50] [--engines lathe torch]
        (or `make bench-train`; writes benchmarks/results/train_latest.{md,json})
A missing engine (torch or tensorflow not installed) is reported as such, not silently dropped.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODELS = ("cnn_a", "cnn_b", "lstm_3x50")
ENGINES = ("lathe", "torch", "keras")
#: Samples per epoch: enough batches that per-epoch fixed costs do not dominate.
SAMPLES = {"cnn_a": 2048, "cnn_b": 2048, "lstm_3x50": 1024}
BATCH = 32


def dataset(name):
    """Synthetic inputs and targets for `name` (seeded, identical for every engine)."""
    import numpy as np
    rng = np.random.default_rng(7)
    n = SAMPLES[name]
    if name == "lstm_3x50":
        x = rng.standard_normal((n, 50, 8)).astype(np.float32)
        y = (x[:, -10:, :2].mean(axis=(1, 2)) + 0.1 * rng.standard_normal(n)).astype(np.float32)[:, None]
        return x, y
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    return x, y


def lathe_model(name):
    """The workload in lathe.keras (the Keras definitions, imports changed only)."""
    from lathe.keras.layers import Conv2D, Dense, Dropout, Flatten, LSTM, MaxPooling2D
    from lathe.keras.models import Sequential
    return keras_like(name, Sequential, Conv2D, Dense, Dropout, Flatten, LSTM, MaxPooling2D)


def keras_model(name):
    """The workload in Keras 3."""
    from keras import Sequential
    from keras.layers import Conv2D, Dense, Dropout, Flatten, LSTM, MaxPooling2D
    return keras_like(name, Sequential, Conv2D, Dense, Dropout, Flatten, LSTM, MaxPooling2D)


def keras_like(name, Sequential, Conv2D, Dense, Dropout, Flatten, LSTM, MaxPooling2D):
    """Builds and compiles `name` with a Keras-compatible API."""
    model = Sequential()
    if name == "cnn_a":
        model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
        model.add(MaxPooling2D((2, 2)))
        model.add(Flatten())
        model.add(Dense(128, activation="relu"))
        model.add(Dense(10, activation="softmax"))
    elif name == "cnn_b":
        model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
        model.add(MaxPooling2D((2, 2)))
        model.add(Conv2D(64, (3, 3), activation="relu"))
        model.add(MaxPooling2D((2, 2)))
        model.add(Conv2D(64, (3, 3), activation="relu"))
        model.add(Flatten())
        model.add(Dense(64, activation="relu"))
        model.add(Dense(10, activation="softmax"))
    else:
        model.add(LSTM(50, return_sequences=True, input_shape=(50, 8)))
        model.add(Dropout(0.2))
        model.add(LSTM(50, return_sequences=True))
        model.add(Dropout(0.2))
        model.add(LSTM(50))
        model.add(Dropout(0.2))
        model.add(Dense(1))
    loss = "mean_squared_error" if name == "lstm_3x50" else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss)
    return model


def torch_model(name):
    """The workload in PyTorch (NCHW inside; inputs are transposed once outside the timed epoch)."""
    import torch
    from torch import nn

    class StackedLSTM(nn.Module):
        """Three LSTM(50) layers with Dropout(0.2) between them, Dense(1) on the last step."""

        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 50, num_layers=3, dropout=0.2, batch_first=True)
            self.drop = nn.Dropout(0.2)
            self.head = nn.Linear(50, 1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(self.drop(out[:, -1]))

    if name == "cnn_a":
        net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(32 * 13 * 13, 128), nn.ReLU(), nn.Linear(128, 10))
    elif name == "cnn_b":
        net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
                            nn.Linear(64 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, 10))
    else:
        net = StackedLSTM()
    return net, torch.optim.Adam(net.parameters(), lr=1e-3)


def run_lathe(name, x, y):
    """Seconds of one timed epoch after a warm-up epoch, Lathe."""
    model = lathe_model(name)
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, shuffle=True)
    start = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, shuffle=True)
    return time.perf_counter() - start


def run_keras(name, x, y):
    """Seconds of one timed epoch after a warm-up epoch, Keras (TensorFlow backend, one thread)."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = keras_model(name)
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, shuffle=True)
    start = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, shuffle=True)
    return time.perf_counter() - start


def run_torch(name, x, y):
    """Seconds of one timed epoch after a warm-up epoch, PyTorch (one thread)."""
    import numpy as np
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net, optimizer = torch_model(name)
    inputs = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x))
    targets = torch.from_numpy(y)
    loss_fn = nn_loss(name)

    def epoch():
        net.train()
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), BATCH):
            index = order[start:start + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(inputs[index]), targets[index])
            loss.backward()
            optimizer.step()

    epoch()
    start = time.perf_counter()
    epoch()
    return time.perf_counter() - start


def nn_loss(name):
    """MSE for the LSTM regression, cross-entropy on logits for the CNNs (softmax folded in)."""
    from torch import nn
    return nn.MSELoss() if name == "lstm_3x50" else nn.CrossEntropyLoss()


def child(engine, name):
    """Runs one measurement and prints {"seconds": s} or {"error": text} as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        x, y = dataset(name)
        seconds = {"lathe": run_lathe, "torch": run_torch, "keras": run_keras}[engine](name, x, y)
        print(json.dumps({"seconds": seconds}))
    except ImportError as error:
        print(json.dumps({"error": f"not installed: {error.name or error}"}))


def measure(engine, name):
    """Runs `child` in a fresh interpreter; returns its JSON answer."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent / "bindings" / "python"),
                                                       os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, __file__, "--child", engine, name], env=env, capture_output=True,
                          text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]}
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    best = {name: {} for name in args.models}
    errors = {name: {} for name in args.models}
    for repeat in range(args.repeats):
        for name in args.models:
            for engine in args.engines:
                answer = measure(engine, name)
                if "error" in answer:
                    errors[name][engine] = answer["error"]
                    print(f"[{repeat + 1}/{args.repeats}] {name:10s} {engine:6s} error: {answer['error']}", flush=True)
                    continue
                rate = SAMPLES[name] / answer["seconds"]
                best[name][engine] = max(best[name].get(engine, 0.0), rate)
                print(f"[{repeat + 1}/{args.repeats}] {name:10s} {engine:6s} {rate:10.1f} samples/s", flush=True)

    rows = []
    for name in args.models:
        rates = best[name]
        others = [rates[e] for e in ("torch", "keras") if e in rates]
        ratio = rates["lathe"] / max(others) if "lathe" in rates and others else None
        rows.append({"model": name, "samples": SAMPLES[name], "batch": BATCH, "samples_per_s": rates,
                     "errors": errors[name], "lathe_vs_fastest_other": ratio})
    report(rows)


def report(rows):
    """Prints the markdown table and writes benchmarks/results/train_latest.{md,json}."""
    load = os.getloadavg()[0]
    lines = ["# Training throughput: one epoch, batch 32, Adam, 1 thread", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load:.2f}; "
             "best of the repeats; samples/s (higher is better).", "",
             "| model | samples | Lathe | PyTorch | Keras (TF) | Lathe / faster other |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        rates, errors = row["samples_per_s"], row["errors"]

        def cell(engine):
            if engine in rates:
                return f"{rates[engine]:.0f}"
            return "n/a" if engine not in errors else "error"
        ratio = row["lathe_vs_fastest_other"]
        lines.append(f"| {row['model']} | {row['samples']} | {cell('lathe')} | {cell('torch')} | {cell('keras')} | "
                     + (f"{ratio:.2f}×" if ratio is not None else "n/a") + " |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_latest.md").write_text(text)
    (RESULTS / "train_latest.json").write_text(json.dumps({"load_average": load, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
