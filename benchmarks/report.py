"""Reports of a benchmark run: the targets of issue 6, markdown tables, and an SVG chart of the ratios."""

import math
from html import escape

#: fp32 sgemm ceiling of one core of this machine (OpenBLAS at 2048², from issue 6), GFLOP/s.
SGEMM_CEILING_GFLOPS = 93.0

MLPS = ("mlp_8_12_8_1", "mlp_16_32_16_1")
CNNS = ("cnn_a", "cnn_b", "resnet_small")

README_START = "<!-- results:start (written by benchmarks/run.py) -->"
README_END = "<!-- results:end -->"


def ratio(numerator, denominator):
    """numerator / denominator, or None when the denominator is not positive."""
    return numerator / denominator if denominator and denominator > 0 else None


def metrics(entry):
    """The derived numbers of one model's result: ratios, tails, GFLOP/s."""
    latency, throughput = entry["latency"], entry["throughput"]
    ort_best_latency = latency[f"ort_{latency['ort_best_path']}"]
    ort_best_throughput = throughput[f"ort_{throughput['ort_best_path']}"]["samples_per_s"]
    lathe_c = latency["lathe_c"]
    # Tails from the consecutive (non-interleaved) runs when the result has them.
    tail = latency.get("steady", {}).get("lathe_c", lathe_c)
    lathe_threads, lathe_single = throughput.get("lathe_c_2t"), throughput["lathe_c"]
    if lathe_threads is None:
        lathe_threads, lathe_single = throughput.get("lathe_py_2t"), throughput["lathe_py"]
    gflops = entry["flops_per_sample"] * throughput["lathe_c"]["samples_per_s"] / 1e9
    return {
        "engine_p50": ratio(lathe_c["p50_us"], latency["ort_engine_estimate"]["p50_us"]),
        "python_p50": ratio(latency["lathe_py"]["p50_us"], ort_best_latency["p50_us"]),
        "p99_over_p50": ratio(tail["p99_us"], tail["p50_us"]),
        "max_over_p50": ratio(tail["max_us"], tail["p50_us"]),
        "interleaved_p99_over_p50": ratio(lathe_c["p99_us"], lathe_c["p50_us"]),
        "interleaved_max_over_p50": ratio(lathe_c["max_us"], lathe_c["p50_us"]),
        "throughput": ratio(throughput["lathe_py"]["samples_per_s"], ort_best_throughput),
        "throughput_engine": ratio(throughput["lathe_c"]["samples_per_s"], ort_best_throughput),
        "gflops": gflops,
        "gflops_ort": entry["flops_per_sample"] * ort_best_throughput / 1e9,
        "ceiling_share": gflops / SGEMM_CEILING_GFLOPS,
        "threads_speedup": (ratio(lathe_threads["samples_per_s"], lathe_single["samples_per_s"])
                            if lathe_threads else None),
        "ort_threads_speedup": ratio(throughput["ort_2t_run"]["samples_per_s"], throughput["ort_run"]["samples_per_s"]),
        "load": ratio(entry["load"]["lathe_ms"], entry["load"]["ort_ms"]),
        "rss": ratio(entry["rss"]["lathe"]["max_rss_kb"], entry["rss"]["onnxruntime"]["max_rss_kb"]),
    }


def engine_target(model):
    """The engine-level p50 ratio target for `model`."""
    return 0.5 if model in MLPS else 0.8


def targets(data):
    """Rows (target text, {model: (shown value, passed or None)}) for issue 6's targets."""
    rows = []

    def row(text, key, limit, higher_is_better=False, models=None, suffix="×"):
        cells = {}
        for entry in data["models"]:
            name = entry["model"]
            if models is not None and name not in models:
                continue
            value = metrics(entry)[key]
            bound = limit(name) if callable(limit) else limit
            if value is None:
                cells[name] = ("n/a", None)
                continue
            passed = value >= bound if higher_is_better else value <= bound
            shown = f"{value * 100:.0f}%" if suffix == "%" else f"{value:.2f}{suffix}"
            cells[name] = (shown, passed)
        rows.append((text, cells))

    row("Engine p50 ≤ 0.8× ORT (≤ 0.5× on the MLPs), ORT estimated", "engine_p50", engine_target)
    row("Python p50 ≤ 1.0× ORT", "python_p50", 1.0)
    row("Engine p99 ≤ 1.25× Lathe's p50 (consecutive runs)", "p99_over_p50", 1.25)
    row("Engine max ≤ 2× Lathe's p50 (consecutive runs)", "max_over_p50", 2.0)
    row("Batch-64 throughput ≥ 1.0× ORT", "throughput", 1.0, higher_is_better=True)
    row("Batch-64 ≥ 85% of the sgemm ceiling (CNNs)", "ceiling_share", 0.85, higher_is_better=True, models=CNNS,
        suffix="%")
    row("2 threads ≥ 1.7× Lathe's 1 thread, batch 64 (CNNs)", "threads_speedup", 1.7, higher_is_better=True,
        models=CNNS)
    row("Load time ≤ ORT's", "load", 1.0)
    row("Peak RSS ≤ 0.5× ORT's", "rss", 0.5)
    return rows


def mark(passed):
    """✅, ❌ or nothing for an unmeasured target."""
    return "" if passed is None else (" ✅" if passed else " ❌")


def targets_table(data):
    """The targets as a markdown table: one row per target, one column per model."""
    names = [entry["model"] for entry in data["models"]]
    lines = ["| target | " + " | ".join(names) + " | met |", "|---" * (len(names) + 2) + "|"]
    for text, cells in targets(data):
        measured = [passed for _, passed in cells.values() if passed is not None]
        values = [f"{cells[name][0]}{mark(cells[name][1])}" if name in cells else "—" for name in names]
        met = f"{sum(measured)}/{len(measured)}" if measured else "n/a"
        lines.append(f"| {text} | " + " | ".join(values) + f" | {met} |")
    if not data["lathe_threads_option"]:
        lines.append("")
        lines.append("2-thread Lathe: n/a (no threads option yet: neither `lathe.Model(..., threads=)` nor "
                     "`lathe_session_options_set_threads` in lathe.h).")
    return "\n".join(lines)


def us(value):
    """A duration in µs with sensible precision."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def times(value):
    """A ratio as '0.63×', or 'n/a'."""
    return "n/a" if value is None else f"{value:.2f}×"


def header(data):
    """The run's context: date, machine, load, versions."""
    machine, versions = data["machine"], data["versions"]
    settings = data["settings"]
    return "\n".join([
        f"- Date: {data['date']} ({data['mode']} run, {data.get('duration_s', 0):.0f} s)",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores"
        f"{', AVX-512' if machine['avx512f'] else ''}, {machine['memory_gib']} GiB; {machine['os']}",
        f"- Load (shared machine), before: `{data['load_before']}`; after: `{data.get('load_after', '')}`",
        f"- Versions: lathe {versions['lathe']} (commit {versions['lathe_commit']}, binding {versions['lathe_binding']}), "
        f"onnxruntime {versions['onnxruntime']}, numpy {versions['numpy']}, onnx {versions['onnx']}, "
        f"Python {machine['python']}",
        f"- Runs: batch 1: {settings['latency_runs']} timed runs per engine and path after {settings['warmup']} "
        f"warm-up runs, interleaved in blocks of {settings['block']}; batch {64}: median of "
        f"{settings['throughput_rounds']} interleaved timed loops of ~{settings['throughput_block_s']} s; "
        f"1 thread unless stated (ORT: intra_op 1, inter_op 1, sequential)",
        f"- sgemm ceiling: {SGEMM_CEILING_GFLOPS:.0f} GFLOP/s per core (issue 6, OpenBLAS 2048²); numpy's matmul "
        f"measured now on 1 thread: {data['sgemm_measured_gflops']:.0f} GFLOP/s",
    ])


def arena(entry):
    """Lathe's arena sizes at batch 1 and 64 in KiB, or n/a when the library does not report them."""
    sizes = entry.get("lathe_arena_bytes", {})
    if any(sizes.get(batch, -1) < 0 for batch in ("1", "64")):
        return "n/a"
    return f"{sizes['1'] / 1024:,.0f} / {sizes['64'] / 1024:,.0f}"


def short_symbol(symbol):
    """A symbol cut to 70 characters, with markdown table pipes escaped."""
    symbol = symbol if len(symbol) <= 70 else symbol[:69] + "…"
    return symbol.replace("|", "\\|")


def short_dso(dso):
    """liblathe.so, openblas, libc, kernel, ... from a perf DSO name."""
    for stem, short in (("openblas", "openblas"), ("kernel", "kernel"), ("libc.so", "libc"), ("ld-linux", "ld.so")):
        if stem in dso:
            return short
    return dso


def markdown(data):
    """The full markdown report."""
    lines = ["# Lathe vs ONNX Runtime on the seed models", "", header(data), ""]
    for failure in data.get("failed", []):
        lines.append(f"- **Not measured: {failure['model']}**: {failure['error']}")
    lines += ["", "## Targets (issue 6)", "", targets_table(data), ""]

    lines += ["## Engine level, batch 1 (µs)", "",
              "Lathe: `lathe_session_run` timed in C (benchmarks/engine_bench.c). ONNX Runtime: **estimate** = "
              "its fastest Python path's time minus that path's time on a one-node Identity model of the same "
              "input (its binding overhead).", "",
              "| model | Lathe p50 | Lathe p99 | Lathe max | p99/p50 | max/p50 | ORT est. p50 | ORT est. p99 "
              "| ORT overhead | Lathe/ORT p50 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in data["models"]:
        latency, derived = entry["latency"], metrics(entry)
        c, estimate = latency["lathe_c"], latency["ort_engine_estimate"]
        lines.append(f"| {entry['model']} | {us(c['p50_us'])} | {us(c['p99_us'])} | {us(c['max_us'])} "
                     f"| {times(derived['interleaved_p99_over_p50'])} | {times(derived['interleaved_max_over_p50'])} "
                     f"| {us(estimate['p50_us'])} "
                     f"| {us(estimate['p99_us'])} | {us(estimate['overhead_p50_us'])} "
                     f"| **{times(derived['engine_p50'])}** |")

    if any("steady" in entry["latency"] for entry in data["models"]):
        lines += ["", "## Batch-1 tail, consecutive runs (µs)", "",
                  "Each engine alone after the interleaved blocks: a warm-up, then the same number of runs back to "
                  "back (Lathe in C, ORT on its faster Python path, binding overhead included). In the interleaved "
                  "blocks above, the first run of each block meets caches filled by the other engine; those cold "
                  "runs (one per block) make up the interleaved p99. The tail targets use these runs.", "",
                  "| model | Lathe p50 | Lathe p99 | Lathe max | p99/p50 | max/p50 | ORT p50 | ORT p99 | ORT max "
                  "| ORT p99/p50 | ORT max/p50 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for entry in data["models"]:
            steady = entry["latency"].get("steady")
            if not steady:
                continue
            ours = steady["lathe_c"]
            theirs = steady[f"ort_{entry['latency']['ort_best_path']}"]
            lines.append(f"| {entry['model']} | {us(ours['p50_us'])} | {us(ours['p99_us'])} | {us(ours['max_us'])} "
                         f"| {times(ratio(ours['p99_us'], ours['p50_us']))} | {times(ratio(ours['max_us'], ours['p50_us']))} "
                         f"| {us(theirs['p50_us'])} | {us(theirs['p99_us'])} | {us(theirs['max_us'])} "
                         f"| {times(ratio(theirs['p99_us'], theirs['p50_us']))} "
                         f"| {times(ratio(theirs['max_us'], theirs['p50_us']))} |")

    lines += ["", "## Python level, batch 1 (µs)", "",
              "`lathe.Model.bind(x).run()` (input bound once, output buffer reused; `predict` before the binding had `bind`) against `InferenceSession.run` and IOBinding (input and output pre-bound); "
              "the faster ORT path by p50 is compared.", "",
              "| model | Lathe p50 | Lathe p99 | Lathe max | ORT path | ORT p50 | ORT p99 | ORT max "
              "| ORT run p50 | ORT IOBinding p50 | Lathe/ORT p50 |",
              "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for entry in data["models"]:
        latency = entry["latency"]
        ours, path = latency["lathe_py"], latency["ort_best_path"]
        theirs = latency[f"ort_{path}"]
        lines.append(f"| {entry['model']} | {us(ours['p50_us'])} | {us(ours['p99_us'])} | {us(ours['max_us'])} | {path} "
                     f"| {us(theirs['p50_us'])} | {us(theirs['p99_us'])} | {us(theirs['max_us'])} "
                     f"| {us(latency['ort_run']['p50_us'])} | {us(latency['ort_iobinding']['p50_us'])} "
                     f"| **{times(metrics(entry)['python_p50'])}** |")

    lines += ["", "## Batch 64 throughput (samples/s)", "",
              "Lathe through Python (`bind(x).run()`) and through C; ORT's faster Python path. GFLOP/s counts Conv, "
              f"Gemm and LSTM multiply-adds ×2 at Lathe's C throughput; the ceiling is {SGEMM_CEILING_GFLOPS:.0f} GFLOP/s.",
              "",
              "| model | Lathe (Python) | Lathe (C) | ORT 1 thread | Lathe/ORT | Lathe GFLOP/s | ORT GFLOP/s "
              "| % of ceiling | Lathe 2 threads | Lathe 2t/1t | ORT 2 threads | ORT 2t/1t |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in data["models"]:
        throughput, derived = entry["throughput"], metrics(entry)
        ort = throughput[f"ort_{throughput['ort_best_path']}"]["samples_per_s"]
        threaded = [f"{throughput[key]['samples_per_s']:,.0f} ({level})"
                    for key, level in (("lathe_c_2t", "C"), ("lathe_py_2t", "Python")) if key in throughput]
        lathe_2t = ", ".join(threaded) or "n/a (no threads option yet)"
        lines.append(f"| {entry['model']} | {throughput['lathe_py']['samples_per_s']:,.0f} "
                     f"| {throughput['lathe_c']['samples_per_s']:,.0f} | {ort:,.0f} ({throughput['ort_best_path']}) "
                     f"| **{times(derived['throughput'])}** | {derived['gflops']:.1f} | {derived['gflops_ort']:.1f} "
                     f"| {derived['ceiling_share'] * 100:.0f}% | {lathe_2t} | {times(derived['threads_speedup'])} "
                     f"| {throughput['ort_2t_run']['samples_per_s']:,.0f} | {times(derived['ort_threads_speedup'])} |")

    lines += ["", "## Load time and peak memory", "",
              "Load: median of interleaved `lathe.Model(path)` and `InferenceSession(path)` in this process (both "
              "parse the file and prepare a session). Peak RSS: VmHWM (peak resident set) of a fresh Python process per engine "
              "that imports numpy and the engine, loads the model and runs it at batch 1 and 64 (benchmarks/probe.py); "
              "the part above Python + numpy alone is shown too. Lathe C: the engine_bench process.", "",
              "| model | Lathe load ms | ORT load ms | Lathe/ORT | Lathe peak RSS MiB | ORT peak RSS MiB | Lathe/ORT "
              "| above Python+numpy: Lathe / ORT MiB | Lathe C load ms | Lathe C peak RSS MiB | Lathe arena KiB, batch 1 / 64 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in data["models"]:
        load, rss, derived = entry["load"], entry["rss"], metrics(entry)
        ours, theirs = rss["lathe"], rss["onnxruntime"]
        lines.append(f"| {entry['model']} | {load['lathe_ms']:.2f} | {load['ort_ms']:.2f} | **{times(derived['load'])}** "
                     f"| {ours['max_rss_kb'] / 1024:.1f} | {theirs['max_rss_kb'] / 1024:.1f} | **{times(derived['rss'])}** "
                     f"| {(ours['max_rss_kb'] - ours['baseline_rss_kb']) / 1024:.1f} / "
                     f"{(theirs['max_rss_kb'] - theirs['baseline_rss_kb']) / 1024:.1f} "
                     f"| {load['lathe_c_ms']:.2f} | {entry['lathe_c_max_rss_kb'] / 1024:.1f} | {arena(entry)} |")

    profiled = [entry for entry in data["models"] if entry.get("profile")]
    if profiled:
        lines += ["", "## Where Lathe's engine spends its time (perf)", "",
                  "`perf record` of `engine_bench` at batch 1 and 64 (including its load); symbols with ≥ 1% of the "
                  "samples, top 8.", "",
                  "| model | batch 1 | batch 64 |", "|---|---|---|"]
        for entry in profiled:
            cells = []
            for batch in ("1", "64"):
                rows = entry["profile"].get(batch)
                cells.append("perf unavailable" if rows is None else "<br>".join(
                    f"{row['percent']:.0f}% {escape(short_symbol(row['symbol']))} ({escape(short_dso(row['dso']))})"
                    for row in rows[:8]))
            lines.append(f"| {entry['model']} | " + " | ".join(cells) + " |")

    lines += ["", "## Checks", ""]
    for entry in data["models"]:
        errors = entry["max_rel_error"]
        busy = [f"{level} {name} {stats['cpu_per_wall']:.2f}"
                for level, group in (("batch-1", entry["latency"]), ("batch-64", entry["throughput"]))
                for name, stats in group.items()
                if isinstance(stats, dict) and "cpu_per_wall" in stats and "2t" not in name
                and stats.get("wall_s", 1.0) >= 0.05 and stats["cpu_per_wall"] > 1.15]
        lines.append(f"- {entry['model']}: 1-minute load average at its start {entry['load_average_1min_at_start']:.2f}; "
                     f"max |Lathe − ORT| / max(1, max|ORT|) = {errors['1']:.1e} (batch 1), "
                     f"{errors['64']:.1e} (batch 64); "
                     + ("single-thread paths using more than one core (CPU time / wall): " + ", ".join(busy)
                        if busy else "every single-thread path used at most one core (CPU time / wall ≤ 1.15 where ≥ 50 ms was timed)"))
    lines.append("")
    return "\n".join(lines)


def svg(data):
    """A hand-written SVG: one panel per ratio, one bar per model on a log scale, centred at 1×."""
    panels = [
        ("Engine batch-1 p50, Lathe / ORT (est.) — lower is better", "engine_p50", engine_target, False),
        ("Python batch-1 p50, Lathe / ORT — lower is better", "python_p50", lambda _: 1.0, False),
        ("Batch-64 throughput, Lathe / ORT — higher is better", "throughput", lambda _: 1.0, True),
        ("Load time, Lathe / ORT — lower is better", "load", lambda _: 1.0, False),
        ("Peak RSS, Lathe / ORT — lower is better", "rss", lambda _: 0.5, False),
    ]
    entries = data["models"]
    values = [metrics(entry)[key] for entry in entries for _, key, _, _ in panels]
    finite = [value for value in values if value]
    low = min([0.1] + [value / 1.5 for value in finite])
    high = max([10.0] + [value * 1.5 for value in finite])
    left, width, row, top_gap = 150, 560, 18, 28
    panel_height = top_gap + row * len(entries) + 26
    total_height = 50 + panel_height * len(panels)

    def x(value):
        return left + width * (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low))

    ticks = [tick for tick in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
             if low <= tick <= high]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{total_height}" '
             'font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="10" y="20" font-size="15" font-weight="bold">Lathe / ONNX Runtime, 1 thread, per seed model</text>',
             f'<text x="10" y="36" fill="#555">{escape(data["date"])}, lathe {escape(data["versions"]["lathe_commit"])}; '
             'log scale; blue dashes: target; green: met, red: missed</text>']
    for index, (title, key, target, higher_is_better) in enumerate(panels):
        top = 50 + index * panel_height
        parts.append(f'<text x="10" y="{top + 16}" font-weight="bold">{escape(title)}</text>')
        axis_bottom = top + top_gap + row * len(entries)
        for tick in ticks:
            parts.append(f'<line x1="{x(tick):.1f}" y1="{top + top_gap - 4}" x2="{x(tick):.1f}" y2="{axis_bottom}" '
                         f'stroke="{"#444" if tick == 1 else "#ddd"}"/>')
            parts.append(f'<text x="{x(tick):.1f}" y="{axis_bottom + 14}" text-anchor="middle" fill="#555">'
                         f'{tick:g}×</text>')
        for position, entry in enumerate(entries):
            y = top + top_gap + position * row
            value, bound = metrics(entry)[key], target(entry["model"])
            parts.append(f'<text x="{left - 8}" y="{y + 12}" text-anchor="end">{escape(entry["model"])}</text>')
            target_line = (f'<line x1="{x(bound):.1f}" y1="{y}" x2="{x(bound):.1f}" y2="{y + row - 2}" '
                           'stroke="#1f5fbf" stroke-width="2" stroke-dasharray="3,2"/>')
            if not value:
                parts += [target_line, f'<text x="{x(1) + 4:.1f}" y="{y + 12}" fill="#555">n/a</text>']
                continue
            passed = value >= bound if higher_is_better else value <= bound
            start, end = sorted((x(1), x(value)))
            parts.append(f'<rect x="{start:.1f}" y="{y + 2}" width="{max(end - start, 1):.1f}" height="{row - 5}" '
                         f'fill="{"#2e9e4f" if passed else "#d0493a"}"/>')
            parts.append(target_line)
            parts.append(f'<text x="{max(end, x(bound)) + 5:.1f}" y="{y + 12}">{value:.2f}×</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def update_readme(path, data):
    """Replaces the results section of benchmarks/README.md with this run's targets table."""
    text = path.read_text()
    if README_START not in text or README_END not in text:
        return
    before, rest = text.split(README_START, 1)
    _, after = rest.split(README_END, 1)
    section = (f"{README_START}\nLast full run: {data['date']}, lathe commit {data['versions']['lathe_commit']}, "
               f"{data['machine']['cpu']} ({data['machine']['cores']} cores), load before: "
               f"`{data['load_before']}`. Full tables: [results/latest.md](results/latest.md).\n\n"
               f"{targets_table(data)}\n{README_END}")
    path.write_text(before + section + after)
