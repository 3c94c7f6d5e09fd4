import Testing
import LatheCore
import LatheOps
@testable import LatheTrain

/// Finite-difference checks of LSTM and GRU backpropagation through time, and the training forward
/// against the inference kernel.
///
/// Every input (X, W, R, B, initial_h, initial_c) is differentiated; the objective is `Σₖ Rₖ ⊙ Yₖ` over
/// every wired output with fixed random `Rₖ`. Central differences with eps = 1e-2 on float32 forwards
/// (sums in float64); max |numeric − analytic| ≤ 1e-2 · max(1, max |analytic|).
@Suite struct RecurrentGradientTests {
    /// A one-node LSTM/GRU graph whose inputs are all graph inputs; `outputs` marks the wired output slots.
    static func recurrentGraph(_ op: String, feeds: [(String, Tensor)], outputs: [Bool],
                               attributes: [String: AttributeValue]) -> Graph {
        let slots = op == "LSTM" ? ["X", "W", "R", "B", "", "initial_h", "initial_c"] : ["X", "W", "R", "B", "", "initial_h"]
        let names = ["Y", "Y_h", "Y_c"]
        let outs = outputs.enumerated().map { $0.element ? names[$0.offset] : "" }
        return Graph(inputs: feeds.map { ValueInfo(name: $0.0, dtype: .float32, dims: $0.1.shape.map { .fixed($0) }) },
                     outputs: outs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, dtype: .float32, dims: nil) },
                     nodes: [Node(name: "rnn", opType: op, inputs: slots, outputs: outs, attributes: attributes)],
                     initializers: [:], opsets: ["": 17])
    }

    /// Random inputs for an LSTM (gates 4) or GRU (gates 3).
    static func recurrentFeeds(gates: Int, seq: Int, batch: Int, input: Int, hidden: Int, directions: Int,
                               batchMajor: Bool, cellState: Bool, _ rng: inout SeededGenerator) throws -> [(String, Tensor)] {
        let state = batchMajor ? [batch, directions, hidden] : [directions, batch, hidden]
        var feeds = [("X", try randomTensor(batchMajor ? [batch, seq, input] : [seq, batch, input], &rng)),
                     ("W", try randomTensor([directions, gates * hidden, input], &rng, -0.8...0.8)),
                     ("R", try randomTensor([directions, gates * hidden, hidden], &rng, -0.8...0.8)),
                     ("B", try randomTensor([directions, 2 * gates * hidden], &rng, -0.5...0.5)),
                     ("initial_h", try randomTensor(state, &rng))]
        if cellState { feeds.append(("initial_c", try randomTensor(state, &rng))) }
        return feeds
    }

    /// Checks all inputs' gradients over every wired output (see the suite comment), and that the training
    /// forward equals the inference kernel within 1e-5.
    static func check(_ graph: Graph, feeds: [String: Tensor], training: Bool, seed: UInt64 = 3,
                      sourceLocation: SourceLocation = #_sourceLocation) throws {
        let names = graph.inputs.map(\.name)
        let engine = try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: names)
        let reference = try engine.forward(feeds, training: false).map { $0.floatArray() }
        let trained = try engine.forward(feeds, training: true).map { $0.floatArray() }
        for (a, b) in zip(reference, trained) {
            let error = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            #expect(error <= 1e-5, "training forward differs from the kernel by \(error)", sourceLocation: sourceLocation)
        }
        var rng = SeededGenerator(seed: seed)
        let weights = try reference.indices.map { try randomTensor(engine.value(graph.outputs[$0].name)!.shape, &rng) }
        func objective() throws -> Double {
            let outs = try engine.forward(feeds, training: training)
            var sum = 0.0
            for (out, r) in zip(outs, weights) { for i in 0..<out.count { sum += Double(out.floats[i]) * Double(r.floats[i]) } }
            return sum
        }
        _ = try engine.forward(feeds, training: training)
        try engine.backward(seeds: Dictionary(uniqueKeysWithValues: zip(graph.outputs.map(\.name), weights)))
        try expectFiniteDifferences(engine, tensors: feeds, order: names, eps: 1e-2, tolerance: 1e-2,
                                    objective: objective, sourceLocation: sourceLocation)
    }

    @Test(arguments: ["forward", "reverse", "bidirectional"])
    func lstmAllOutputs(direction: String) throws {
        var rng = SeededGenerator(seed: 11)
        let nd = direction == "bidirectional" ? 2 : 1
        let feeds = try Self.recurrentFeeds(gates: 4, seq: 3, batch: 2, input: 3, hidden: 2, directions: nd,
                                            batchMajor: false, cellState: true, &rng)
        let graph = Self.recurrentGraph("LSTM", feeds: feeds, outputs: [true, true, true],
                                        attributes: ["direction": .string(direction), "hidden_size": .int(2)])
        try Self.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: true)
    }

    @Test func lstmSequenceOutputOnly() throws {
        var rng = SeededGenerator(seed: 12)
        let feeds = try Self.recurrentFeeds(gates: 4, seq: 4, batch: 2, input: 2, hidden: 3, directions: 1,
                                            batchMajor: false, cellState: true, &rng)
        let graph = Self.recurrentGraph("LSTM", feeds: feeds, outputs: [true], attributes: ["hidden_size": .int(3)])
        try Self.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: true)
    }

    /// Keras's `return_sequences=False`: only Y_h is wired; inference-mode forward (the backward recomputes).
    @Test func lstmLastStateOnlyAfterInferenceForward() throws {
        var rng = SeededGenerator(seed: 13)
        let feeds = try Self.recurrentFeeds(gates: 4, seq: 4, batch: 3, input: 2, hidden: 2, directions: 2,
                                            batchMajor: false, cellState: true, &rng)
        let graph = Self.recurrentGraph("LSTM", feeds: feeds, outputs: [false, true],
                                        attributes: ["hidden_size": .int(2), "direction": .string("bidirectional")])
        try Self.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: false)
    }

    @Test func lstmBatchMajorLayout() throws {
        var rng = SeededGenerator(seed: 14)
        let feeds = try Self.recurrentFeeds(gates: 4, seq: 3, batch: 2, input: 2, hidden: 2, directions: 2,
                                            batchMajor: true, cellState: true, &rng)
        let graph = Self.recurrentGraph("LSTM", feeds: feeds, outputs: [true, true, true],
                                        attributes: ["layout": .int(1), "direction": .string("bidirectional")])
        try Self.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: true)
    }

    @Test(arguments: [("forward", 0), ("reverse", 0), ("bidirectional", 0), ("forward", 1), ("reverse", 1), ("bidirectional", 1)])
    func gru(direction: String, linearBeforeReset: Int) throws {
        var rng = SeededGenerator(seed: 21)
        let nd = direction == "bidirectional" ? 2 : 1
        let feeds = try Self.recurrentFeeds(gates: 3, seq: 3, batch: 2, input: 3, hidden: 2, directions: nd,
                                            batchMajor: false, cellState: false, &rng)
        let graph = Self.recurrentGraph("GRU", feeds: feeds, outputs: [true, true],
                                        attributes: ["direction": .string(direction), "hidden_size": .int(2),
                                                     "linear_before_reset": .int(linearBeforeReset)])
        try Self.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: true)
    }

    @Test(arguments: [0, 1])
    func gruLastStateOnly(linearBeforeReset: Int) throws {
        var rng = SeededGenerator(seed: 22)
        let feeds = try Self.recurrentFeeds(gates: 3, seq: 4, batch: 2, input: 2, hidden: 3, directions: 1,
                                            batchMajor: true, cellState: false, &rng)
        let graph = Self.recurrentGraph("GRU", feeds: feeds, outputs: [false, true],
                                        attributes: ["layout": .int(1), "linear_before_reset": .int(linearBeforeReset)])
        try Self.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: linearBeforeReset == 1)
    }

    /// Features the backward does not cover fail with a clear error instead of a wrong gradient.
    @Test func unsupportedFeaturesAreRefused() throws {
        var rng = SeededGenerator(seed: 23)
        let feeds = try Self.recurrentFeeds(gates: 4, seq: 2, batch: 1, input: 2, hidden: 2, directions: 1,
                                            batchMajor: false, cellState: true, &rng)
        let graph = Self.recurrentGraph("LSTM", feeds: feeds, outputs: [true], attributes: ["clip": .float(0.5)])
        let engine = try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: ["W"])
        let y = try engine.forward(Dictionary(uniqueKeysWithValues: feeds), training: true)[0]
        let error = #expect(throws: LatheError.self) {
            try engine.backward(seeds: ["Y": try Tensor(.float32, shape: y.shape)])
        }
        #expect(error?.status == .unsupportedOp)
        #expect(error?.message.contains("clip") == true)
    }
}
