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
        try checkLossGradient(.huber(delta: 0.7), prediction: logits, target: targets)
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

    @Test func huberAndSampleWeightsMatchKerasFormulas() throws {
        // Keras: mean over the last axis of where(|e| ≤ δ, e²/2, δ|e| − δ²/2), times the sample weight,
        // summed over samples and divided by the number of samples.
        let p = try Tensor(shape: [3, 2], floats: [0.5, 2, -1, 0.2, 3, -3])
        let t = try Tensor(shape: [3, 2], floats: [1, 1, 0, 0, 0, 1])
        let w: [Float] = [2, 0, 0.5]
        func huber(_ e: Double, _ d: Double) -> Double { abs(e) <= d ? 0.5 * e * e : d * abs(e) - 0.5 * d * d }
        let pe = p.floatArray().map(Double.init), te = t.floatArray().map(Double.init)
        var expected = 0.0
        for r in 0..<3 { expected += Double(w[r]) * (huber(pe[2 * r] - te[2 * r], 1.5) + huber(pe[2 * r + 1] - te[2 * r + 1], 1.5)) / 2 }
        expected /= 3
        let gradient = try Tensor(.float32, shape: [3, 2])
        let value = try w.withUnsafeBufferPointer {
            try Loss.huber(delta: 1.5).compute(prediction: p, target: t, gradient: gradient, sampleWeights: $0.baseAddress)
        }
        #expect(abs(value - expected) < 1e-6)
        // Weighted gradients against central differences of the weighted loss.
        for i in 0..<6 {
            let saved = p.floats[i]
            func at(_ v: Float) throws -> Double {
                p.floats[i] = v
                return try w.withUnsafeBufferPointer { try Loss.huber(delta: 1.5).compute(prediction: p, target: t, sampleWeights: $0.baseAddress) }
            }
            let numeric = (try at(saved + 1e-3) - at(saved - 1e-3)) / 2e-3
            p.floats[i] = saved
            #expect(abs(numeric - Double(gradient.floats[i])) < 1e-3)
        }
        // Weighted sparse categorical cross-entropy: Σ w·(−log p_label) / N.
        let probabilities = try Tensor(shape: [2, 3], floats: [0.2, 0.3, 0.5, 0.1, 0.1, 0.8])
        let labels = try Tensor(shape: [2], int64s: [1, 2])
        let weighted = try [Float(3), 1].withUnsafeBufferPointer {
            try Loss.sparseCategoricalCrossentropy().compute(prediction: probabilities, target: labels, sampleWeights: $0.baseAddress)
        }
        #expect(abs(weighted - (3 * -log(0.3) + -log(0.8)) / 2) < 1e-6)
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
        // Keras's centered RMSprop with momentum.
        var v2 = [Double](repeating: 0, count: 3), m = v2, mean = v2
        try twoSteps(Optimizer(.rmsprop(rho: 0.8, epsilon: 1e-7, momentum: 0.5, centered: true), learningRate: 0.01)) { w, g, _ in
            for i in w.indices {
                v2[i] = 0.8 * v2[i] + 0.2 * g[i] * g[i]
                mean[i] = 0.8 * mean[i] + 0.2 * g[i]
                m[i] = 0.5 * m[i] + 0.01 * g[i] / (v2[i] - mean[i] * mean[i] + 1e-7).squareRoot()
                w[i] -= m[i]
            }
        }
    }

    @Test func clipping() throws {
        func clipped(_ clipping: GradientClipping) throws -> [Float] {
            let w = try Tensor(shape: [2, 1], floats: [1, 2]), bias = try Tensor(shape: [1], floats: [1])
            let g = try Tensor(shape: [2, 1], floats: [3, 0]), gb = try Tensor(shape: [1], floats: [4])
            try Optimizer(.sgd(), learningRate: 1, clipping: clipping).step(parameters: [w, bias], gradients: [g, gb])
            return w.floatArray() + bias.floatArray()
        }
        func close(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }
        // Global norm of ([3, 0], [4]) is 5: everything scaled by 1/5.
        #expect(close(try clipped(.globalNorm(1)), [1 - 0.6, 2, 1 - 0.8]))
        // Per tensor: [3, 0] → [1, 0], [4] → [1].
        #expect(close(try clipped(.norm(1)), [0, 2, 0]))
        #expect(close(try clipped(.value(2)), [-1, 2, -1]))
    }

    @Test func schedulesMatchKerasFormulas() throws {
        for step in [0, 1, 7, 50, 99, 100, 101, 250, 1000] {
            let s = Double(step)
            let cases: [(LearningRateSchedule, Double)] = [
                (.exponentialDecay(initial: 0.1, decaySteps: 100, decayRate: 0.5), 0.1 * pow(0.5, s / 100)),
                (.exponentialDecay(initial: 0.1, decaySteps: 100, decayRate: 0.5, staircase: true), 0.1 * pow(0.5, (s / 100).rounded(.down))),
                (.inverseTimeDecay(initial: 0.1, decaySteps: 10, decayRate: 0.5), 0.1 / (1 + 0.5 * s / 10)),
                (.inverseTimeDecay(initial: 0.1, decaySteps: 10, decayRate: 0.5, staircase: true), 0.1 / (1 + 0.5 * (s / 10).rounded(.down))),
                (.piecewiseConstant(boundaries: [7, 100], values: [1, 0.5, 0.1]), s <= 7 ? 1 : (s <= 100 ? 0.5 : 0.1)),
                (.cosineDecay(initial: 0.1, decaySteps: 100, alpha: 0.1),
                 0.1 * (0.9 * 0.5 * (1 + cos(Double.pi * min(s, 100) / 100)) + 0.1)),
                (.cosineDecay(initial: 0, decaySteps: 100, warmupTarget: 0.2, warmupSteps: 50),
                 s < 50 ? 0.2 * s / 50 : 0.2 * 0.5 * (1 + cos(Double.pi * (min(s, 150) - 50) / 100))),
            ]
            for (schedule, expected) in cases {
                #expect(abs(Double(schedule.rate(atStep: step)) - expected) <= 1e-7 * max(1, expected), "\(schedule) at \(step)")
            }
        }
        #expect(throws: LatheError.self) { try LearningRateSchedule.piecewiseConstant(boundaries: [1], values: [1]).validate() }
        // The optimizer evaluates the schedule before counting the step (Keras): SGD steps use 0.1, then 0.05.
        let w = try Tensor(shape: [1], floats: [0])
        let optimizer = Optimizer(.sgd(), learningRate: 1, schedule: .piecewiseConstant(boundaries: [0], values: [0.1, 0.05]))
        for _ in 0..<2 { try optimizer.step(parameters: [w], gradients: [try Tensor(shape: [1], floats: [1])]) }
        #expect(abs(w.floats[0] - -0.15) < 1e-7 && optimizer.currentLearningRate == 0.05)
    }
}

@Suite struct MetricTests {
    func measure(_ metric: Metric, _ p: Tensor, _ t: Tensor, loss: Loss) -> Double {
        var total = metric.makeTotals()
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
        // b = [0.9, 0.2, 0.6, 0.4] against [1, 0, 0, 0]: TP 1, FP 1 (0.6), FN 0.
        #expect(measure(.precision(), b, bt, loss: .binaryCrossentropy()) == 0.5)
        #expect(measure(.recall(), b, bt, loss: .binaryCrossentropy()) == 1)
        #expect(abs(measure(.f1(), b, bt, loss: .binaryCrossentropy()) - 2.0 / 3) < 1e-12)
        #expect(measure(.auc(), b, bt, loss: .binaryCrossentropy()) == 1)
        // Logits: thresholds apply to the sigmoid.
        let logits = try Tensor(shape: [4, 1], floats: [2, -1, 0.5, -0.5])
        #expect(measure(.precision(), logits, bt, loss: .binaryCrossentropy(fromLogits: true)) == 0.5)
        // Multi-class F1 with argmax predictions: rows predict [0, 1, 0] against labels [0, 1, 1].
        let labels = try Tensor(shape: [3], int64s: [0, 1, 1])
        let f1 = { (average: Metric.Average) in self.measure(.f1(threshold: nil, average: average), p, labels, loss: .sparseCategoricalCrossentropy()) }
        // class 0: TP 1, FP 1 → F1 2/3; class 1: TP 1, FN 1 → 2/3. Micro: TP 2, FP 1, FN 1 → 2/3.
        #expect(abs(f1(.micro) - 2.0 / 3) < 1e-12 && abs(f1(.macro) - 2.0 / 3) < 1e-12 && abs(f1(.weighted) - 2.0 / 3) < 1e-12)
    }

    @Test func aucIsKerasTrapezoidOverThresholds() throws {
        // Exact rank AUC of scores against labels, and Keras's 200-threshold trapezoid which approaches it.
        var rng = SeededGenerator(seed: 11)
        let n = 500
        var scores: [Float] = [], labels: [Float] = []
        for _ in 0..<n {
            let positive = rng.nextUnitFloat() < 0.3
            labels.append(positive ? 1 : 0)
            scores.append(min(max(0.5 + (positive ? 0.15 : -0.1) + 0.25 * rng.normal(), 0), 1))
        }
        var wins = 0.0, pairs = 0.0
        for i in 0..<n where labels[i] == 1 { for j in 0..<n where labels[j] == 0 {
            pairs += 1
            wins += scores[i] > scores[j] ? 1 : (scores[i] == scores[j] ? 0.5 : 0)
        } }
        let p = try Tensor(shape: [n, 1], floats: scores), t = try Tensor(shape: [n, 1], floats: labels)
        // Two batches accumulate to the same counts as one.
        var total = Metric.auc().makeTotals()
        let half = n / 2
        Metric.auc().accumulate(prediction: try Tensor(shape: [half, 1], floats: Array(scores[..<half])),
                                target: try Tensor(shape: [half, 1], floats: Array(labels[..<half])), loss: .binaryCrossentropy(), into: &total)
        Metric.auc().accumulate(prediction: try Tensor(shape: [n - half, 1], floats: Array(scores[half...])),
                                target: try Tensor(shape: [n - half, 1], floats: Array(labels[half...])), loss: .binaryCrossentropy(), into: &total)
        #expect(Metric.auc().finish(total) == measure(.auc(), p, t, loss: .binaryCrossentropy()))
        #expect(abs(measure(.auc(), p, t, loss: .binaryCrossentropy()) - wins / pairs) < 5e-3)
        #expect(abs(measure(.auc(thresholds: 20_000), p, t, loss: .binaryCrossentropy()) - wins / pairs) < 1e-4)
    }
}

@Suite struct CheckpointTests {
    /// A model with dropout, batch statistics and Adam state: every part of the training state matters.
    func model() throws -> Sequential {
        let model = Sequential([KernelRegularized(Dense(12, activation: .relu, inputShape: [8]), l2: 1e-3), Dropout(0.3),
                                BatchNormalization(), Dense(1, activation: .sigmoid)], seed: 3)
        try model.compile(optimizer: Optimizer(.adam(), learningRate: 0.01, schedule: .exponentialDecay(initial: 0.01, decaySteps: 5, decayRate: 0.7)),
                          loss: .binaryCrossentropy(), metrics: [.auc(), .f1()])
        return model
    }

    @Test func resumingFromACheckpointIsBitForBit() throws {
        let data = try failureData(count: 70, seed: 2)
        let straight = try model()
        let twice = try straight.fit(x: data.x, y: data.y, epochs: 2, batchSize: 16, seed: 9)
        let first = try model()
        try first.fit(x: data.x, y: data.y, epochs: 1, batchSize: 16, seed: 9)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-ckpt-\(getpid()).ckpt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try first.checkpoint().write(to: path)
        let resumed = try model()
        #expect(try resumed.restore(try Checkpoint(contentsOf: path)))
        let second = try resumed.fit(x: data.x, y: data.y, epochs: 1, batchSize: 16, seed: 9)
        #expect(second.epochs[0] == twice.epochs[1])
        for (name, w) in straight.weights where w.dtype == .float32 {
            #expect(w.floatArray().map(\.bitPattern) == resumed.weights[name]!.floatArray().map(\.bitPattern), "\(name)")
        }
        #expect(resumed.optimizer!.iterations == straight.optimizer!.iterations && resumed.epochsTrained == 2)
        // Restoring into another architecture names the weight.
        let other = Sequential([Dense(3, inputShape: [8]), Dense(1)], seed: 3)
        #expect { try other.restore(try Checkpoint(contentsOf: path)) } throws: { "\($0)".contains("dense") }
        // Corrupt bytes are a parse error, not a crash.
        var bytes = try Checkpoint(contentsOf: path).bytes()
        bytes.removeLast(7)
        #expect { try Checkpoint(bytes: bytes) } throws: { ($0 as? LatheError)?.status == .parseError }
    }
}
