#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CLathe
import Lathe
import LatheC

/// `lathe-cli`: inspect, list ops, run, benchmark and re-export ONNX models from the shell.
@main
struct LatheCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lathe-cli",
        abstract: "Lathe: inspect, run, benchmark and re-export ONNX models.",
        version: latheVersion,
        subcommands: [Inspect.self, Ops.self, Run.self, Bench.self, Export.self])
}

/// Prints a model's inputs, outputs and op histogram.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a model's inputs, outputs and ops.")
    @Argument(help: "Path to an ONNX model.") var model: String
    @OptionGroup var plugins: PluginOptions

    func run() throws {
        try plugins.load()
        let m = try loadModel(model)
        for (title, infos) in [("inputs", m.inputs), ("outputs", m.outputs)] {
            print("\(title):")
            for i in infos { print("  \(i.name)  \(i.dtype)  \(describe(i.dims))") }
        }
        var counts: [String: Int] = [:]
        for n in m.graph.nodes { counts[(n.domain.isEmpty ? "" : n.domain + ".") + n.opType, default: 0] += 1 }
        print("nodes: \(m.graph.nodes.count)  initializers: \(m.graph.initializers.count)  opsets: \(m.graph.opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key)=\($0.value)" }.joined(separator: ", "))")
        for (op, c) in counts.sorted(by: { $0.key < $1.key }) { print("  \(op) ×\(c)") }
    }
}

/// Loads a model and writes the graph Lathe imported back as ONNX (`Model.save`).
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load an ONNX model and write the graph as Lathe imported it (half precision widened to float32).")
    @Argument(help: "Path to an ONNX model.") var model: String
    @Argument(help: "Path of the ONNX file to write.") var output: String

    func run() throws {
        let m = try loadModel(model)
        do { try m.save(output) } catch let e as LatheError { throw ValidationError(e.message) }
        print("wrote \(output): \(m.graph.nodes.count) nodes, \(m.graph.initializers.count) initializers")
    }
}

/// Lists every entry of the op table.
struct Ops: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the ops this installation supports.")
    @Flag(help: "Print a markdown table.") var markdown = false
    @OptionGroup var plugins: PluginOptions

    func run() throws {
        try plugins.load()
        let entries = defaultRegistry.entries
        if markdown {
            print("| domain | op | opsets | origin |\n| --- | --- | --- | --- |")
        }
        for e in entries {
            let domain = e.domain.isEmpty ? "ai.onnx" : e.domain
            let range = e.untilVersion >= Int(Int32.max) ? "\(e.sinceVersion)+" : "\(e.sinceVersion)–\(e.untilVersion)"
            print(markdown ? "| \(domain) | \(e.opType) | \(range) | \(e.origin) |" : "\(domain)\t\(e.opType)\t\(range)\t\(e.origin)")
        }
    }
}

/// `--plugin PATH` (repeatable): plugin libraries loaded before anything else.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin"), help: ArgumentHelp(
        "A plugin library to load (as lathe_load_plugin does); repeatable.", valueName: "path"))
    var paths: [String] = []

    /// Loads each library in order, or fails naming it with Lathe's message.
    func load() throws {
        for path in paths where lathe_load_plugin(path) != LATHE_OK {
            throw ValidationError(String(cString: lathe_last_error()))
        }
    }
}

/// Options shared by `run` and `bench`.
struct FeedOptions: ParsableArguments {
    @Argument(help: "Path to an ONNX model.") var model: String
    @OptionGroup var plugins: PluginOptions
    @Option(help: "Size given to symbolic dimensions (the batch).") var batch = 1
    @Option(help: "Seed for the random inputs.") var seed: UInt64 = 1
    @Option(help: "Threads a run may use (1: deterministic, on the calling thread).") var threads = 1

    /// Session options from the command line.
    var sessionOptions: SessionOptions { SessionOptions(threads: max(1, threads)) }
}

/// Runs a model once on random inputs and prints output statistics.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a model once on random inputs.")
    @OptionGroup var options: FeedOptions

    func run() throws {
        try options.plugins.load()
        let m = try loadModel(options.model)
        let session = Session(model: m, options: options.sessionOptions)
        for (name, t) in try randomFeeds(m, batch: options.batch, seed: options.seed) { try session.setInput(name, t) }
        try session.run()
        for info in m.outputs {
            let t = try session.output(info.name)
            var line = "\(info.name)  \(t.dtype)\(t.shape)"
            if t.dtype == .float32, t.count > 0 {
                let v = t.floatArray()
                let mean = Double(v.reduce(0, +)) / Double(v.count)
                line += "  min \(fmt(Double(v.min()!)))  max \(fmt(Double(v.max()!)))  mean \(fmt(mean))"
                line += "  first " + v.prefix(6).map { fmt(Double($0)) }.joined(separator: " ")
            }
            print(line)
        }
    }
}

/// Measures run latency percentiles.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure run latency (p50/p99/max) on random inputs.")
    @OptionGroup var options: FeedOptions
    @Option(help: "Timed runs.") var runs = 2000
    @Option(help: "Untimed warm-up runs.") var warmup = 100

    func run() throws {
        try options.plugins.load()
        let loadStart = now()
        let m = try loadModel(options.model)
        let loadTime = now() - loadStart
        let session = Session(model: m, options: options.sessionOptions)
        for (name, t) in try randomFeeds(m, batch: options.batch, seed: options.seed) { try session.setInput(name, t) }
        for _ in 0..<max(warmup, 1) { try session.run() }
        var times: [Double] = []
        times.reserveCapacity(runs)
        for _ in 0..<max(runs, 1) {
            let t0 = now()
            try session.run()
            times.append(now() - t0)
        }
        times.sort()
        func pct(_ p: Double) -> Double { times[min(times.count - 1, Int(Double(times.count) * p))] * 1e6 }
        let mean = times.reduce(0, +) / Double(times.count)
        print("model \(options.model)  batch \(options.batch)  runs \(times.count)  load \(fmt(loadTime * 1e3, "%.2f")) ms")
        print("latency µs: p50 \(fmt(pct(0.5), "%.1f"))  p90 \(fmt(pct(0.9), "%.1f"))  p99 \(fmt(pct(0.99), "%.1f"))  max \(fmt(times.last! * 1e6, "%.1f"))  mean \(fmt(mean * 1e6, "%.1f"))")
        print("throughput: \(fmt(Double(options.batch) / mean, "%.1f")) samples/s")
    }
}

func loadModel(_ path: String) throws -> Model {
    do { return try Model(contentsOf: path) } catch let e as LatheError { throw ValidationError(e.message) }
}

func describe(_ dims: [Dim]?) -> String {
    dims.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "(unknown shape)"
}

/// Formats a number with a printf conversion (no Foundation needed).
func fmt(_ x: Double, _ spec: String = "%.5g") -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([x]) { vsnprintf(&buffer, buffer.count, spec, $0) }
    return String(cString: buffer)
}

/// Monotonic seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Uniform random inputs in [-1, 1) (float32) or zeros (other dtypes), symbolic dims set to `batch`.
func randomFeeds(_ m: Model, batch: Int, seed: UInt64) throws -> [String: Tensor] {
    var state = seed
    var feeds: [String: Tensor] = [:]
    for info in m.inputs {
        guard let dims = info.dims else { throw ValidationError("input '\(info.name)' has no declared shape") }
        let t = try Tensor(info.dtype, shape: dims.map { $0.value ?? batch })
        if t.dtype == .float32 {
            for i in 0..<t.count {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                t.floats[i] = Float(state >> 40) / Float(1 << 24) * 2 - 1
            }
        }
        feeds[info.name] = t
    }
    return feeds
}
