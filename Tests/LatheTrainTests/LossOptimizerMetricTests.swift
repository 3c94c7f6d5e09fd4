import Testing
import Foundation
import LatheCore
@testable import LatheTrain

/// Losses against finite differences and closed forms; optimizer steps against Keras's formulas
/// written out by hand; metrics on hand-made batches.
@Suite struct LossTests {
    /// dLoss/dPrediction against central differences (float64 loss values, eps 1e-3, tolerance 1e-2 relative).
    func checkLossGradient(_ loss: Loss, prediction: Tensor, target: Tensor) throws {
        let gradient = try Tensor(.float32, shape: prediction.shape)
        _ = try loss.compute(prediction: prediction, target: target, gradient: gradient)
        let eps: Float = 1e-3
        var worst: Float = 0
        for i in 0..<prediction.count {
            let saved = prediction.floats[i]
            prediction.floats[i] = saved + eps
            let plus = try loss.compute(prediction: prediction, target: target)
            prediction.floats[i] = saved - eps
            let minus = try loss.compute(prediction: prediction, target: target)
            prediction.floats[i] = saved
            worst = max(worst, abs(Float((plus - minus) / (2 * Double(eps))) - gradient.floats[i]))
        }
        let scale = max(1, gradient.floatArray().map(abs).max()!)
        #expect(worst <= 1e-2 * scale, "\(loss): max gradient error \(worst)")
    }

    @Test func gradientsMatchFiniteDifferences() throws {
        var rng = SeededGenerator(seed: 5)
        let logits = try randomTensor([4, 3], &rng, -2...2)
        let probabilities = try randomTensor([4, 3], &rng, 0.1...0.9)
        let targets = try randomTensor([4, 3], &rng, 0...1)
        let oneHot = try Tensor(shape: [4, 3], floats: [1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0])
        let labels = try Tensor(shape: [4], int64s: [2, 0, 1, 1])
        try checkLossGradient(.meanSquaredError, prediction: logits, target: targets)
        try checkLossGradient(.meanAbsoluteError, prediction: logits, target: targets)
        try checkLossGradient(.binaryCrossentropy(), prediction: probabilities, target: targets)
        try checkLossGradient(.binaryCrossentropy(fromLogits: true), prediction: logits, target: targets)
        try checkLossGradient(.categoricalCrossentropy(), prediction: probabilities, target: oneHot)
        try checkLossGradient(.categoricalCrossentropy(fromLogits: true), prediction: logits, target: oneHot)
        try checkLossGradient(.sparseCategoricalCrossentropy(), prediction: probabilities, target: labels)
        try checkLossGradient(.sparseCategoricalCrossentropy(fromLogits: true), prediction: logits, target: labels)
    }

    @Test func valuesMatchClosedForms() throws {
        let p = try Tensor(shape: [2, 2], floats: [0.5, 2, -1, 0])
        let t = try Tensor(shape: [2, 2], floats: [1, 1, 0, 0])
        #expect(abs(try Loss.meanSquaredError.compute(prediction: p, target: t) - (0.25 + 1 + 1 + 0) / 4) < 1e-9)
        #expect(abs(try Loss.meanAbsoluteError.compute(prediction: p, target: t) - (0.5 + 1 + 1) / 4) < 1e-9)
        // Logit forms equal the probability forms on sigmoid / softmax outputs.
        let logits = try Tensor(shape: [1, 3], floats: [1, -2, 0.5])
        let e = logits.floatArray().map { exp(Double($0)) }, s = e.reduce(0, +)
        let softmax = try Tensor(shape: [1, 3], floats: e.map { Float($0 / s) })
        let label = try Tensor(shape: [1], int64s: [2])
        let a = try Loss.sparseCategoricalCrossentropy(fromLogits: true).compute(prediction: logits, target: label)
        let b = try Loss.sparseCategoricalCrossentropy().compute(prediction: softmax, target: label)
        #expect(abs(a - (-log(e[2] / s))) < 1e-6 && abs(a - b) < 1e-6)
        let sig = try Tensor(shape: [1, 3], floats: logits.floatArray().map { 1 / (1 + exp(-$0)) })
        let bt = try Tensor(shape: [1, 3], floats: [1, 0, 1])
        let c = try Loss.binaryCrossentropy(fromLogits: true).compute(prediction: logits, target: bt)
        let d = try Loss.binaryCrossentropy().compute(prediction: sig, target: bt)
        #expect(abs(c - d) < 1e-6)
        // Huge logits stay finite.
        let big = try Tensor(shape: [1, 2], floats: [1000, -1000])
        #expect(try Loss.sparseCategoricalCrossentropy(fromLogits: true).compute(prediction: big, target: try Tensor(shape: [1], int64s: [1])).isFinite)
    }

    @Test func labelsOutOfRangeAreNamed() throws {
        let p = try Tensor(shape: [2, 3], floats: [0.2, 0.3, 0.5, 0.1, 0.1, 0.8])
        #expect { try Loss.sparseCategoricalCrossentropy().compute(prediction: p, target: try Tensor(shape: [2], int64s: [1, 3])) }
            throws: { "\($0)".contains("label 3 of sample 1 is out of range for 3 classes") }
        #expect { try Loss.sparseCategoricalCrossentropy().compute(prediction: p, target: try Tensor(shape: [2], floats: [0.5, 1])) }
            throws: { "\($0)".contains("label 0.5 of sample 0") }
        #expect { try Loss.meanSquaredError.compute(prediction: p, target: try Tensor(shape: [2, 2], floats: [0, 0, 0, 0])) }
            throws: { ($0 as? LatheError)?.status == .shapeMismatch }
    }
}

@Suite struct OptimizerTests {
    /// One parameter vector through two steps, compared with the update rule written out here.
    func twoSteps(_ optimizer: Optimizer, _ reference: (inout [Double], [Double], Int) -> Void) throws {
        let w = try Tensor(shape: [1, 3], floats: [0.5, -1, 2])
        var expected = w.floatArray().map(Double.init)
        for step in 1...2 {
            let g = try Tensor(shape: [1, 3], floats: [0.1 * Float(step), -0.3, 0.7])
            let gd = g.floatArray().map(Double.init)
            try optimizer.step(parameters: [w], gradients: [g])
            reference(&expected, gd, step)
        }
        for (a, b) in zip(w.floatArray(), expected) { #expect(abs(Double(a) - b) < 1e-6, "\(optimizer.algorithm)") }
    }

    @Test func sgdMomentumAndNesterov() throws {
        try twoSteps(.sgd(learningRate: 0.1)) { w, g, _ in for i in w.indices { w[i] -= 0.1 * g[i] } }
        for nesterov in [false, true] {
            var v = [Double](repeating: 0, count: 3)
            try twoSteps(.sgd(learningRate: 0.1, momentum: 0.9, nesterov: nesterov)) { w, g, _ in
                for i in w.indices {
                    v[i] = 0.9 * v[i] - 0.1 * g[i]
                    w[i] += nesterov ? 0.9 * v[i] - 0.1 * g[i] : v[i]
                }
            }
        }
    }

    @Test func adamAndAdamW() throws {
        for decay in [0.0, 0.01] {
            var m = [Double](repeating: 0, count: 3), v = m
            let optimizer = decay == 0 ? Optimizer.adam(learningRate: 0.01) : .adamW(learningRate: 0.01, weightDecay: Float(decay))
            try twoSteps(optimizer) { w, g, t in
                let lr = 0.01 * (1 - pow(0.999, Double(t))).squareRoot() / (1 - pow(0.9, Double(t)))
                for i in w.indices {
                    w[i] -= 0.01 * decay * w[i]
                    m[i] = 0.9 * m[i] + 0.1 * g[i]
                    v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                    w[i] -= lr * m[i] / (v[i].squareRoot() + 1e-7)
                }
            }
        }
    }

    @Test func rmsprop() throws {
        var v = [Double](repeating: 0, count: 3)
        try twoSteps(.rmsprop(learningRate: 0.01)) { w, g, _ in
            for i in w.indices {
                v[i] = 0.9 * v[i] + 0.1 * g[i] * g[i]
                w[i] -= 0.01 * g[i] / (v[i] + 1e-7).squareRoot()
            }
        }
    }

    @Test func clippingAndL2() throws {
        let w = try Tensor(shape: [2, 1], floats: [1, 2]), bias = try Tensor(shape: [1], floats: [1])
        let g = try Tensor(shape: [2, 1], floats: [3, 0]), gb = try Tensor(shape: [1], floats: [4])
        let optimizer = Optimizer(.sgd(), learningRate: 1, globalClipNorm: 1, l2: 0.5)
        #expect(abs(optimizer.penalty([w, bias]) - 0.5 * 5) < 1e-9)   // kernels only
        try optimizer.step(parameters: [w, bias], gradients: [g, gb])
        // L2 adds 2·0.5·w = [1, 2] to the kernel's gradient: [4, 2]; with the bias [4] the global norm is 6.
        let expected: [Float] = [1 - 4.0 / 6, 2 - 2.0 / 6]
        #expect(zip(w.floatArray(), expected).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(abs(bias.floats[0] - (1 - 4.0 / 6)) < 1e-6)
    }
}

@Suite struct MetricTests {
    func measure(_ metric: Metric, _ p: Tensor, _ t: Tensor, loss: Loss) -> Double {
        var total = (0.0, 0.0)
        metric.accumulate(prediction: p, target: t, loss: loss, into: &total)
        return metric.finish(total)
    }

    @Test func metricsOnHandMadeBatches() throws {
        let p = try Tensor(shape: [3, 2], floats: [0.9, 0.1, 0.3, 0.7, 0.6, 0.4])
        #expect(measure(.accuracy, p, try Tensor(shape: [3], int64s: [0, 1, 1]), loss: .sparseCategoricalCrossentropy()) == 2.0 / 3)
        #expect(measure(.accuracy, p, try Tensor(shape: [3, 2], floats: [1, 0, 0, 1, 0, 1]), loss: .categoricalCrossentropy()) == 2.0 / 3)
        let b = try Tensor(shape: [4, 1], floats: [0.9, 0.2, 0.6, 0.4]), bt = try Tensor(shape: [4, 1], floats: [1, 0, 0, 0])
        #expect(measure(.accuracy, b, bt, loss: .binaryCrossentropy()) == 0.75)
        #expect(measure(.binaryAccuracy, b, bt, loss: .meanSquaredError) == 0.75)
        #expect(abs(measure(.meanAbsoluteError, b, bt, loss: .meanSquaredError) - 0.325) < 1e-6)
        #expect(abs(measure(.rootMeanSquaredError, b, bt, loss: .meanSquaredError) - ((0.01 + 0.04 + 0.36 + 0.16) / 4).squareRoot()) < 1e-6)
    }
}
