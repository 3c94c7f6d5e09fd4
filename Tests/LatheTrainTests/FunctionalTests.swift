#if canImport(Glibc)
import Glibc
#endif
import Testing
import LatheCore
@testable import LatheTrain

/// Frozen layers and the functional builder, checked against direct float computations.
@Suite struct FunctionalTests {
    /// Deterministic regression data: y = sin(x0) + 0.5·x1·x2.
    func data(_ n: Int = 256) throws -> (Tensor, Tensor) {
        var rng = SeededGenerator(seed: 7)
        let xs = (0..<(n * 4)).map { _ in rng.uniform(-1, 1) }
        var ys = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let a: Float = sinf(xs[i * 4])
            let b: Float = 0.5 * xs[i * 4 + 1] * xs[i * 4 + 2]
            ys[i] = a + b
        }
        return (try Tensor(shape: [n, 4], floats: xs), try Tensor(shape: [n, 1], floats: ys))
    }

    @Test func frozenLayerStaysBitIdentical() throws {
        let (x, y) = try data()
        let model = Sequential([Dense(8, activation: .relu, inputShape: [4]), Dense(8, activation: .tanh), Dense(1)])
        try model.setTrainable(false, layer: 1)
        try model.compile(optimizer: "adam", loss: "mse")
        #expect(model.parameterWeights.count == 6 && model.trainableWeights.count == 4)
        let before = try model.parameterWeights.map { try model.weights[$0]!.copy().floatArray() }
        try model.fit(x: x, y: y, epochs: 2)
        let after = model.parameterWeights.map { model.weights[$0]!.floatArray() }
        #expect(before[2] == after[2] && before[3] == after[3])
        #expect(before[0] != after[0] && before[4] != after[4])
        #expect(throws: LatheError.self) { try model.setTrainable(false, layer: 3) }
    }

    @Test func residualMLPLearnsAndMatchesDirectComputation() throws {
        let (x, y) = try data(512)
        let input = SymbolicValue.input(shape: [4])
        let h = Dense(16, activation: .relu)(input)
        let out = Dense(1)(Add()(h, Dense(16)(h)))
        let model = try Functional(input: input, output: out)
        try model.compile(optimizer: "adam", loss: "mse")
        let w = model.parameterWeights.map { model.weights[$0]!.floatArray() }
        let prediction = try model.predict(x)
        for n in 0..<4 {   // direct float64 computation of the first samples
            var h1 = [Double](repeating: 0, count: 16), h2 = [Double](repeating: 0, count: 16)
            for j in 0..<16 {
                var s = Double(w[1][j])
                for i in 0..<4 { s += Double(x.floats[n * 4 + i]) * Double(w[0][i * 16 + j]) }
                h1[j] = max(0, s)
            }
            for j in 0..<16 {
                var s = Double(w[3][j])
                for i in 0..<16 { s += h1[i] * Double(w[2][i * 16 + j]) }
                h2[j] = h1[j] + s
            }
            var o = Double(w[5][0])
            for i in 0..<16 { o += h2[i] * Double(w[4][i]) }
            #expect(abs(Double(prediction.floats[n]) - o) < 1e-4)
        }
        let base = try model.evaluate(x: x, y: y)["loss"]!
        try model.fit(x: x, y: y, epochs: 40)
        let final = try model.evaluate(x: x, y: y)["loss"]!
        #expect(final < 0.2 * base)   // stated threshold: MSE below 20% of the untrained one
    }

    @Test func badGraphsGiveClearErrors() throws {
        let input = SymbolicValue.input(shape: [4]), other = SymbolicValue.input(shape: [4])
        #expect(throws: LatheError.self) { try Functional(input: input, output: Dense(1)(other)) }
        let mismatch = try Functional(input: input, output: Add()(Dense(3)(input), Dense(5)(input)))
        #expect(throws: LatheError.self) { try mismatch.build() }
        let concat = try Functional(input: input, output: Concatenate()(Dense(3)(input), Dense(5)(input)))
        #expect(try concat.build().outputs[0].dims?.last?.value == 8)
        #expect(throws: LatheError.self) { try Functional(layers: [Dense(1)], connections: [[1]], outputValue: 1, inputShape: [4]) }
    }
}
