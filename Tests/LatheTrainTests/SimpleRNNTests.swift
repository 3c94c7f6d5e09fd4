#if canImport(Glibc)
import Glibc
#endif
import Testing
import LatheCore
import LatheOps
@testable import LatheTrain

/// Finite-difference checks of RNN backpropagation through time (the same objective, step and tolerance
/// as `RecurrentGradientTests`: eps = 1e-2, max |numeric − analytic| ≤ 1e-2 · max(1, max |analytic|)),
/// the training forward against the inference kernel (1e-5), and the SimpleRNN layer's graph.
@Suite struct SimpleRNNTests {
    static func feeds(seq: Int, batch: Int, input: Int, hidden: Int, directions: Int, batchMajor: Bool,
                      seed: UInt64) throws -> [(String, Tensor)] {
        var rng = SeededGenerator(seed: seed)
        return try RecurrentGradientTests.recurrentFeeds(gates: 1, seq: seq, batch: batch, input: input, hidden: hidden,
                                                         directions: directions, batchMajor: batchMajor, cellState: false, &rng)
    }

    @Test(arguments: ["forward", "reverse", "bidirectional"])
    func allOutputs(direction: String) throws {
        let feeds = try Self.feeds(seq: 4, batch: 2, input: 3, hidden: 3, directions: direction == "bidirectional" ? 2 : 1,
                                   batchMajor: false, seed: 31)
        let graph = RecurrentGradientTests.recurrentGraph("RNN", feeds: feeds, outputs: [true, true],
                                                          attributes: ["direction": .string(direction), "hidden_size": .int(3)])
        try RecurrentGradientTests.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: true)
    }

    /// Keras's `return_sequences=True` (Y only) and `False` (Y_h only, after an inference-mode forward).
    @Test(arguments: [[true], [false, true]])
    func singleOutput(outputs: [Bool]) throws {
        let feeds = try Self.feeds(seq: 5, batch: 3, input: 2, hidden: 2, directions: 1, batchMajor: false, seed: 32)
        let graph = RecurrentGradientTests.recurrentGraph("RNN", feeds: feeds, outputs: outputs, attributes: [:])
        try RecurrentGradientTests.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: outputs == [true])
    }

    @Test func batchMajorLayout() throws {
        let feeds = try Self.feeds(seq: 3, batch: 2, input: 2, hidden: 2, directions: 2, batchMajor: true, seed: 33)
        let graph = RecurrentGradientTests.recurrentGraph("RNN", feeds: feeds, outputs: [true, true],
                                                          attributes: ["layout": .int(1), "direction": .string("bidirectional")])
        try RecurrentGradientTests.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: true)
    }

    /// Relu (away from its kink: the inputs keep pre-activations clear of 0 with high probability, and a
    /// crossing would show as a gradient mismatch), Sigmoid and Affine, one per direction.
    @Test(arguments: [["Sigmoid", "Affine"], ["Relu", "Tanh"]])
    func otherActivations(names: [String]) throws {
        let feeds = try Self.feeds(seq: 3, batch: 2, input: 3, hidden: 2, directions: 2, batchMajor: false, seed: 34)
        let graph = RecurrentGradientTests.recurrentGraph("RNN", feeds: feeds, outputs: [true, true],
                                                          attributes: ["direction": .string("bidirectional"),
                                                                       "activations": .strings(names),
                                                                       "activation_alpha": .floats([0.7]),
                                                                       "activation_beta": .floats([0.2])])
        try RecurrentGradientTests.check(graph, feeds: Dictionary(uniqueKeysWithValues: feeds), training: true)
    }

    @Test func unsupportedActivationIsRefused() throws {
        let feeds = try Self.feeds(seq: 2, batch: 1, input: 2, hidden: 2, directions: 1, batchMajor: false, seed: 35)
        let graph = RecurrentGradientTests.recurrentGraph("RNN", feeds: feeds, outputs: [true],
                                                          attributes: ["activations": .strings(["Softsign"])])
        let engine = try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: ["W"])
        let y = try engine.forward(Dictionary(uniqueKeysWithValues: feeds), training: true)[0]
        let error = #expect(throws: LatheError.self) { try engine.backward(seeds: ["Y": try Tensor(.float32, shape: y.shape)]) }
        #expect(error?.status == .unsupportedOp)
        #expect(error?.message.contains("Softsign") == true)
    }

    /// The layer equals a direct evaluation of Keras's formula with the layer's own weights, both ways of
    /// `returnSequences`, and learns: loss on a small sequence task falls by half (it is the last value's sign).
    @Test(arguments: [false, true])
    func layerMatchesFormula(returnSequences: Bool) throws {
        let (steps, features, units, n) = (4, 3, 5, 6)
        let model = Sequential([SimpleRNN(units, returnSequences: returnSequences, inputShape: [steps, features])], seed: 9)
        try model.build()
        var rng = SeededGenerator(seed: 4)
        let x = try randomTensor([n, steps, features], &rng)
        let y = try model.predict(x)
        let w = model.weights["simple_rnn/kernel"]!, r = model.weights["simple_rnn/recurrent_kernel"]!
        // Give the bias nonzero values so the check covers it (Wb and Rb are summed).
        let bias = model.weights["simple_rnn/bias"]!
        for i in 0..<bias.count { bias.floats[i] = rng.uniform(-0.3, 0.3) }
        let yb = try model.predict(x)
        for (out, withBias) in [(y, false), (yb, true)] {
            var maxError: Float = 0
            for s in 0..<n {
                var h = [Float](repeating: 0, count: units)
                for t in 0..<steps {
                    var next = [Float](repeating: 0, count: units)
                    for j in 0..<units {
                        var a: Float = withBias ? bias.floats[j] + bias.floats[units + j] : 0
                        for f in 0..<features { a += x.floats[(s * steps + t) * features + f] * w.floats[j * features + f] }
                        for k in 0..<units { a += h[k] * r.floats[j * units + k] }
                        next[j] = tanhf(a)
                    }
                    h = next
                    if returnSequences {
                        for j in 0..<units { maxError = max(maxError, abs(out.floats[(s * steps + t) * units + j] - h[j])) }
                    }
                }
                if !returnSequences { for j in 0..<units { maxError = max(maxError, abs(out.floats[s * units + j] - h[j])) } }
            }
            #expect(maxError <= 1e-5, "SimpleRNN differs from the formula by \(maxError)")
        }
        #expect(y.shape == (returnSequences ? [n, steps, units] : [n, units]))
        // The recurrent kernel is orthogonal: R · Rᵀ = I.
        for i in 0..<units {
            for j in 0..<units {
                var dot: Float = 0
                for k in 0..<units { dot += r.floats[i * units + k] * r.floats[j * units + k] }
                #expect(abs(dot - (i == j ? 1 : 0)) < 1e-5)
            }
        }
    }

    @Test func learnsLastValueSign() throws {
        let (steps, n) = (6, 128)
        var rng = SeededGenerator(seed: 5)
        let x = try randomTensor([n, steps, 1], &rng)
        let y = try Tensor(shape: [n, 1], floats: (0..<n).map { x.floats[$0 * steps + steps - 1] > 0 ? 1 : 0 })
        let model = Sequential([SimpleRNN(8, inputShape: [steps, 1]), Dense(1, activation: .sigmoid)], seed: 2)
        try model.compile(optimizer: "adam", loss: "binary_crossentropy", metrics: ["accuracy"])
        let history = try model.fit(x: x, y: y, epochs: 40, batchSize: 16, seed: 1)
        let accuracy = try #require(history["accuracy"].last)
        #expect(accuracy >= 0.95, "SimpleRNN accuracy \(accuracy) on the last value's sign")
    }
}
