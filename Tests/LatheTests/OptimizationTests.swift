import Testing
@testable import Lathe
@testable import LatheCore
import LatheOps

/// Plan-time passes, the arena memory plan, threads and determinism, checked end to end.
@Suite struct OptimizationTests {
    /// A seeded generator (splitmix64) for weights and inputs.
    struct RNG {
        var state: UInt64
        mutating func next() -> Float {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Float(z >> 40) / Float(1 << 24) * 2 - 1
        }
        mutating func tensor(_ shape: [Int], scale: Float = 1, offset: Float = 0) throws -> Tensor {
            let t = try Tensor(.float32, shape: shape)
            for i in 0..<t.count { t.floats[i] = next() * scale + offset }
            return t
        }
    }

    /// A registry with the built-ins plus `test.Twice` (`y = 2x`), a kernel that overrides nothing
    /// beyond `infer` and `compute`, as a plugin's would.
    func registry() throws -> OpRegistry {
        let r = OpRegistry()
        try registerBuiltinOps(into: r)
        try r.register(OpEntry(domain: "test", opType: "Twice", origin: "test") { _ in TwiceKernel() })
        return r
    }

    final class TwiceKernel: Kernel {
        func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] { [inputs[0]] }
        func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
            for i in 0..<inputs[0]!.count { outputs[0]!.floats[i] = 2 * inputs[0]!.floats[i] }
        }
    }

    /// Conv+BN+Relu, a residual Conv+BN+Add+Relu, MaxPool, Flatten, Identity, a custom op, Gemm+Add+Sigmoid,
    /// Dropout, MatMul+Add+Clip, LeakyRelu and Tanh: every pass has something to do.
    func network() throws -> Model {
        var rng = RNG(state: 7)
        func bn(_ prefix: String, _ channels: Int) throws -> [String: Tensor] {
            [prefix + "s": try rng.tensor([channels], scale: 0.5, offset: 1), prefix + "b": try rng.tensor([channels]),
             prefix + "m": try rng.tensor([channels]), prefix + "v": try rng.tensor([channels], scale: 0.4, offset: 0.6)]
        }
        var initializers: [String: Tensor] = [
            "W1": try rng.tensor([4, 3, 3, 3]), "B1": try rng.tensor([4]),
            "W2": try rng.tensor([4, 4, 3, 3]),
            "W3": try rng.tensor([64, 10], scale: 0.3), "bias3": try rng.tensor([10]),
            "W4": try rng.tensor([10, 6]), "bias4": try rng.tensor([1, 6]),
            "lo": try Tensor(shape: [], floats: [-0.5]), "hi": try Tensor(shape: [], floats: [0.75]),
        ]
        initializers.merge(try bn("n1", 4)) { $1 }
        initializers.merge(try bn("n2", 4)) { $1 }
        let nodes = [
            Node(name: "conv1", opType: "Conv", inputs: ["x", "W1", "B1"], outputs: ["c1"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "bn1", opType: "BatchNormalization", inputs: ["c1", "n1s", "n1b", "n1m", "n1v"], outputs: ["b1"]),
            Node(name: "relu1", opType: "Relu", inputs: ["b1"], outputs: ["r1"]),
            Node(name: "conv2", opType: "Conv", inputs: ["r1", "W2"], outputs: ["c2"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "bn2", opType: "BatchNormalization", inputs: ["c2", "n2s", "n2b", "n2m", "n2v"], outputs: ["b2"]),
            Node(name: "add", opType: "Add", inputs: ["b2", "r1"], outputs: ["a2"]),
            Node(name: "relu2", opType: "Relu", inputs: ["a2"], outputs: ["r2"]),
            Node(name: "pool", opType: "MaxPool", inputs: ["r2"], outputs: ["p"], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
            Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
            Node(name: "id", opType: "Identity", inputs: ["f"], outputs: ["f2"]),
            Node(name: "twice", opType: "Twice", domain: "test", inputs: ["f2"], outputs: ["f3"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f3", "W3"], outputs: ["g"]),
            Node(name: "fcbias", opType: "Add", inputs: ["bias3", "g"], outputs: ["gb"]),
            Node(name: "sig", opType: "Sigmoid", inputs: ["gb"], outputs: ["s"]),
            Node(name: "drop", opType: "Dropout", inputs: ["s"], outputs: ["d"]),
            Node(name: "mm", opType: "MatMul", inputs: ["d", "W4"], outputs: ["m"]),
            Node(name: "mmbias", opType: "Add", inputs: ["m", "bias4"], outputs: ["mb"]),
            Node(name: "clip", opType: "Clip", inputs: ["mb", "lo", "hi"], outputs: ["cl"]),
            Node(name: "leaky", opType: "LeakyRelu", inputs: ["cl"], outputs: ["y"], attributes: ["alpha": .float(0.2)]),
            Node(name: "tanh", opType: "Tanh", inputs: ["m"], outputs: ["z"]),
        ]
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.symbolic("N"), .fixed(3), .fixed(8), .fixed(8)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dims: [.symbolic("N"), .fixed(6)]),
                      ValueInfo(name: "z", dtype: .float32, dims: [.symbolic("N"), .fixed(6)])],
            nodes: nodes, initializers: initializers, opsets: ["": 17, "test": 1])
        return try Model(graph: graph, registry: registry())
    }

    /// Outputs y and z for a batch, with the given options.
    func outputs(_ model: Model, batch: Int, options: SessionOptions, seed: UInt64 = 3) throws -> [[Float]] {
        var rng = RNG(state: seed)
        let session = Session(model: model, options: options)
        let result = try session.run(["x": try rng.tensor([batch, 3, 8, 8])])
        return [result["y"]!.floatArray(), result["z"]!.floatArray()]
    }

    /// max |a - b| <= 1e-5 × max(1, max |b|).
    func expectClose(_ a: [Float], _ b: [Float]) {
        #expect(a.count == b.count)
        let scale = max(1, b.map { abs($0) }.max() ?? 0)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-5 * scale, "max diff \(worst) at scale \(scale)")
    }

    @Test(arguments: [1, 5])
    func passesKeepResults(batch: Int) throws {
        let model = try network()
        let plain = try outputs(model, batch: batch, options: SessionOptions(passes: []))
        let optimized = try outputs(model, batch: batch, options: SessionOptions())
        for (a, b) in zip(optimized, plain) { expectClose(a, b) }
    }

    @Test func eachPassAloneKeepsResults() throws {
        let model = try network()
        let plain = try outputs(model, batch: 2, options: SessionOptions(passes: []))
        for pass in PlanPass.allCases {
            let one = try outputs(model, batch: 2, options: SessionOptions(passes: [pass]))
            for (a, b) in zip(one, plain) { expectClose(a, b) }
        }
    }

    @Test func passesRemoveTheFusedSteps() throws {
        let model = try network()
        let type = TensorType(.float32, [2, 3, 8, 8])
        let plain = try Plan(model: model, inputTypes: [type], passes: [])
        let optimized = try Plan(model: model, inputTypes: [type])
        #expect(plain.steps.count == 20)
        let remaining = optimized.steps.map(\.node.opType)
        // BN → conv weights, Relu → Conv/Add, Identity and Dropout gone, bias Adds → Gemm/MatMul,
        // Sigmoid → Gemm; m feeds both Add and Tanh, so the MatMul keeps it: Clip fuses into that Add,
        // and LeakyRelu stays (an Add takes one activation).
        #expect(remaining == ["Conv", "Conv", "Add", "MaxPool", "Flatten", "Twice", "Gemm", "MatMul", "Add", "Tanh",
                              "LeakyRelu"])
        let removeOnly = try Plan(model: model, inputTypes: [type], passes: [.removeIdentities])
        #expect(!removeOnly.steps.contains { $0.node.opType == "Identity" || $0.node.opType == "Dropout" })
        #expect(removeOnly.steps.count == 18)
    }

    @Test func arenaReusesMemoryAndViewsSkipCopies() throws {
        let model = try network()
        let type = TensorType(.float32, [4, 3, 8, 8])
        let plan = try Plan(model: model, inputTypes: [type], passes: [])
        let layout = MemoryPlan(plan: plan, inputs: model.inputIDs, outputs: model.outputIDs, lanes: 1)
        // Without reuse the arena would hold every intermediate and every workspace side by side.
        var total = plan.workspaceBytes.reduce(0, +)
        for step in plan.steps { for case let id? in step.outputs { total += plan.types[id]!.count * 4 } }
        #expect(layout.arenaBytes < total * 3 / 4)
        #expect(layout.arenaBytes % MemoryPlan.alignment == 0)
        let skipped = zip(plan.steps, layout.skipped).filter { $0.1 }.map { $0.0.node.opType }
        #expect(skipped == ["Flatten", "Identity", "Dropout"])
        // Buffers whose lifetimes overlap never share bytes.
        let session = Session(model: model, options: SessionOptions(passes: []))
        try session.reshape(["x": [4, 3, 8, 8]])
        #expect(session.arenaBytes == layout.arenaBytes)
    }

    @Test func keptOutputsSurviveLaterRunsAndBorrowedOnesAreReused() throws {
        let model = try network()
        let session = Session(model: model)
        var rng = RNG(state: 11)
        try session.setInput("x", try rng.tensor([1, 3, 8, 8]))
        try session.run()
        let kept = try session.output("y")
        let borrowed = try session.borrowOutput(at: 0)
        let first = kept.floatArray()
        #expect(borrowed.floatArray() == first)
        try session.setInput("x", try rng.tensor([1, 3, 8, 8]))
        try session.run()
        #expect(kept.floatArray() == first)
        #expect(borrowed.floatArray() == (try session.borrowOutput(at: 0)).floatArray())
        #expect(borrowed.floatArray() != first)
    }

    @Test func singleThreadedRunsAreBitForBitDeterministic() throws {
        let model = try network()
        let a = try outputs(model, batch: 7, options: SessionOptions())
        let b = try outputs(model, batch: 7, options: SessionOptions())
        #expect(a.map { $0.map(\.bitPattern) } == b.map { $0.map(\.bitPattern) })
    }

    @Test(arguments: [2, 3])
    func threadsGiveTheSameResults(threads: Int) throws {
        let model = try network()
        let serial = try outputs(model, batch: 9, options: SessionOptions())
        let threaded = try outputs(model, batch: 9, options: SessionOptions(threads: threads))
        for (a, b) in zip(threaded, serial) { expectClose(a, b) }
        let again = try outputs(model, batch: 9, options: SessionOptions(threads: threads))
        #expect(again.map { $0.map(\.bitPattern) } == threaded.map { $0.map(\.bitPattern) })
    }

    @Test func threadPoolCoversEveryItemOnce() {
        let pool = ThreadPool(threads: 3)
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: 100)
        defer { hits.deallocate() }
        hits.initialize(repeating: 0, count: 100)
        for _ in 0..<50 { pool.parallelFor(100) { hits[$0] += 1 } }
        #expect((0..<100).allSatisfy { hits[$0] == 50 })
    }

    @Test func graphInputViewedAsOutputIsNotAliased() throws {
        // y = Reshape(x): the output must not change when the caller refills the input tensor.
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.fixed(2), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dims: [.fixed(6)]),
                      ValueInfo(name: "z", dtype: .float32, dims: [.fixed(3), .fixed(2)])],
            nodes: [Node(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"]),
                    Node(name: "r2", opType: "Reshape", inputs: ["x", "s2"], outputs: ["t"]),
                    Node(name: "relu", opType: "Relu", inputs: ["t"], outputs: ["z"])],
            initializers: ["s": try Tensor(shape: [1], int64s: [6]), "s2": try Tensor(shape: [2], int64s: [3, 2])])
        let session = Session(model: try Model(graph: graph, registry: registry()))
        let x = try Tensor(shape: [2, 3], floats: [1, -2, 3, -4, 5, -6])
        try session.setInput("x", x)
        try session.run()
        let y = try session.borrowOutput(at: 0)
        x.floats[0] = 100
        #expect(y.floatArray() == [1, -2, 3, -4, 5, -6])
        #expect(try session.borrowOutput(at: 1).floatArray() == [1, 0, 3, 0, 5, 0])
        try session.run()
        #expect(try session.borrowOutput(at: 1).floatArray() == [100, 0, 3, 0, 5, 0])
    }
}
