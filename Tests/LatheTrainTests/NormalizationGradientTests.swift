import Testing
import LatheCore
import LatheOps
@testable import LatheTrain

/// BatchNormalization in training mode: batch statistics, running-statistic updates, and gradients
/// against central finite differences (eps = 1e-2, max |numeric − analytic| ≤ 1e-2 · max(1, max |analytic|),
/// see `checkGradients`).
@Suite struct NormalizationGradientTests {
    var rng = SeededGenerator(seed: 5)

    mutating func graph(_ shape: [Int], momentum: Float) throws -> (Graph, [String: Tensor]) {
        let c = shape[1]
        let x = try randomTensor(shape, &rng, -2...3)
        let scale = try randomTensor([c], &rng, 0.5...1.5), bias = try randomTensor([c], &rng)
        let mean = try randomTensor([c], &rng), variance = try randomTensor([c], &rng, 0.5...2)
        let g = singleNodeGraph("BatchNormalization", inputs: [("X", x), ("scale", scale), ("B", bias)],
                                constants: [("mean", mean), ("var", variance)],
                                attributes: ["epsilon": .float(1e-3), "momentum": .float(momentum)])
        return (g, ["X": x, "scale": scale, "B": bias])
    }

    @Test mutating func trainingGradients() throws {
        for shape in [[4, 3], [3, 2, 5], [2, 3, 2, 2]] {
            let (g, feeds) = try graph(shape, momentum: 0.9)
            try checkGradients(g, feeds: feeds, differentiable: ["X", "scale", "B"], training: true)
        }
    }

    @Test mutating func inferenceGradients() throws {
        let (g, feeds) = try graph([3, 2, 4], momentum: 0.9)
        try checkGradients(g, feeds: feeds, differentiable: ["X", "scale", "B"], training: false)
    }

    /// Training output is `(x − μ_B)/sqrt(σ²_B + ε)·γ + β`; running statistics move by the momentum rule;
    /// inference then uses the running statistics.
    @Test mutating func statisticsAndRunningUpdate() throws {
        let (g, feeds) = try graph([5, 2, 3], momentum: 0.8)
        let mean0 = g.initializers["mean"]!.floatArray(), var0 = g.initializers["var"]!.floatArray()
        let engine = try GradientEngine(graph: g, registry: trainingRegistry, differentiable: ["X"])
        let y = try engine.forward(feeds, training: true)[0].floatArray()
        let x = feeds["X"]!.floatArray(), scale = feeds["scale"]!.floatArray(), bias = feeds["B"]!.floatArray()
        var expected = [Float](repeating: 0, count: x.count)
        for c in 0..<2 {
            let idx = (0..<5).flatMap { n in (0..<3).map { (n * 2 + c) * 3 + $0 } }
            let mu = idx.map { Double(x[$0]) }.reduce(0, +) / 15
            let v = idx.map { (Double(x[$0]) - mu) * (Double(x[$0]) - mu) }.reduce(0, +) / 15
            for i in idx { expected[i] = Float((Double(x[i]) - mu) / (v + 1e-3).squareRoot()) * scale[c] + bias[c] }
            #expect(abs(g.initializers["mean"]!.floats[c] - (mean0[c] * 0.8 + Float(mu) * 0.2)) <= 1e-5)
            #expect(abs(g.initializers["var"]!.floats[c] - (var0[c] * 0.8 + Float(v) * 0.2)) <= 1e-5)
        }
        let error = zip(y, expected).map { abs($0 - $1) }.max()!
        #expect(error <= 1e-4)
        let inference = try engine.forward(feeds, training: false)[0].floatArray()
        let m = g.initializers["mean"]!.floatArray(), v = g.initializers["var"]!.floatArray()
        let i = 7, c = (i / 3) % 2
        #expect(abs(inference[i] - ((x[i] - m[c]) / (v[c] + 1e-3).squareRoot() * scale[c] + bias[c])) <= 1e-5)
    }
}
