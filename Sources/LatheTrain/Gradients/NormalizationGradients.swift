#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// BatchNormalization in training mode and its gradient.
///
/// The graph keeps BatchNormalization in inference form (running statistics as inputs 3 and 4). In a
/// training pass the node normalises with the batch's own statistics (biased variance, as Keras and the
/// ONNX training-mode reference) and updates the running statistics in place, with ONNX's and Keras's rule
/// `running = running · momentum + batch · (1 − momentum)`; wired outputs 1 and 2 receive the updated values.
/// Inference passes use the running statistics.
enum NormalizationGradients {
    static func register(into registry: OpRegistry) throws {
        try registry.setGradient(opType: "BatchNormalization") { c in
            let epsilon = try c.attributes.float("epsilon", 1e-5)
            let momentum = try c.attributes.float("momentum", 0.9)
            guard momentum >= 0 && momentum <= 1 else {
                throw LatheError.invalid("\(c.label): momentum must be in [0, 1], got \(momentum)")
            }
            return BatchNormalizationGradient(epsilon: epsilon, momentum: momentum)
        }
    }
}

/// Batch statistics forward and `dX`, `dScale`, `dB` of BatchNormalization over channel axis 1.
final class BatchNormalizationGradient: GradientKernel {
    let epsilon: Float, momentum: Float

    init(epsilon: Float, momentum: Float) {
        self.epsilon = epsilon
        self.momentum = momentum
    }

    /// `(batch, channels, size)` of X viewed as `[N, C, rest]`.
    func dims(_ x: Tensor) throws -> (Int, Int, Int) {
        guard x.rank >= 2 else { throw LatheError.shape("BatchNormalization: X must have rank >= 2, got \(x.shape)") }
        return (x.shape[0], x.shape[1], x.shape.dropFirst(2).reduce(1, *))
    }

    /// Normalises with the batch statistics, updates the running ones, and keeps `[mean, 1/sqrt(var + ε)]`.
    func trainingForward(_ inputs: [Tensor?], _ outputs: [Tensor?], seed: UInt64) throws -> [Tensor]? {
        let x = try floatTensor(inputs, 0, "X"), y = try floatTensor(outputs, 0, "Y")
        let scale = try floatTensor(inputs, 1, "scale").floats, bias = try floatTensor(inputs, 2, "B").floats
        let runningMean = try floatTensor(inputs, 3, "input_mean"), runningVar = try floatTensor(inputs, 4, "input_var")
        let (batch, channels, size) = try dims(x)
        let count = batch * size
        guard count > 0 else { return nil }
        let statistics = try Tensor(.float32, shape: [2, channels])
        let mean = statistics.floats, inverseStd = mean + channels
        for c in 0..<channels {
            var sum = 0.0
            for n in 0..<batch {
                let xp = x.floats + (n * channels + c) * size
                for i in 0..<size { sum += Double(xp[i]) }
            }
            let mu = sum / Double(count)
            var squares = 0.0
            for n in 0..<batch {
                let xp = x.floats + (n * channels + c) * size
                for i in 0..<size { let v = Double(xp[i]) - mu; squares += v * v }
            }
            let variance = Float(squares / Double(count))
            mean[c] = Float(mu)
            inverseStd[c] = 1 / sqrtf(variance + epsilon)
            let a = scale[c] * inverseStd[c], b = bias[c] - mean[c] * a
            for n in 0..<batch {
                let offset = (n * channels + c) * size
                let xp = x.floats + offset, yp = y.floats + offset
                for i in 0..<size { yp[i] = xp[i] * a + b }
            }
            runningMean.floats[c] = runningMean.floats[c] * momentum + mean[c] * (1 - momentum)
            runningVar.floats[c] = runningVar.floats[c] * momentum + variance * (1 - momentum)
        }
        for (slotIndex, running) in [(1, runningMean), (2, runningVar)] where slotIndex < outputs.count {
            outputs[slotIndex]?.floats.update(from: running.floats, count: channels)
        }
        return [statistics]
    }

    /// With batch statistics: `dX = scale·σ⁻¹/M · (M·dY − ΣdY − x̂·Σ(dY·x̂))`; with running statistics
    /// (inference-mode forward) `dX = dY · scale · σ⁻¹`. Both: `dScale = Σ dY·x̂`, `dB = Σ dY`.
    func backward(_ p: BackwardPass) throws {
        let x = try floatTensor(p.inputs, 0, "X"), dy = try floatTensor(p.outputGradients, 0, "dY")
        let scale = try floatTensor(p.inputs, 1, "scale").floats
        let (batch, channels, size) = try dims(x)
        let count = batch * size
        let dX = slot(p.inputGradients, 0), dScale = slot(p.inputGradients, 1), dB = slot(p.inputGradients, 2)
        let batchStatistics = p.saved.first
        for c in 0..<channels {
            let mu: Float, inverseStd: Float
            if let s = batchStatistics {
                mu = s.floats[c]
                inverseStd = s.floats[channels + c]
            } else {
                mu = try floatTensor(p.inputs, 3, "input_mean").floats[c]
                inverseStd = 1 / sqrtf(try floatTensor(p.inputs, 4, "input_var").floats[c] + epsilon)
            }
            var sumDy: Float = 0, sumDyXhat: Float = 0
            for n in 0..<batch {
                let offset = (n * channels + c) * size
                let xp = x.floats + offset, g = dy.floats + offset
                for i in 0..<size {
                    sumDy += g[i]
                    sumDyXhat += g[i] * (xp[i] - mu) * inverseStd
                }
            }
            dScale?.floats[c] += sumDyXhat
            dB?.floats[c] += sumDy
            guard let dX else { continue }
            let k = scale[c] * inverseStd
            for n in 0..<batch {
                let offset = (n * channels + c) * size
                let xp = x.floats + offset, g = dy.floats + offset, d = dX.floats + offset
                if batchStatistics != nil {
                    let m = Float(count)
                    for i in 0..<size {
                        let xhat = (xp[i] - mu) * inverseStd
                        d[i] += k / m * (m * g[i] - sumDy - xhat * sumDyXhat)
                    }
                } else {
                    for i in 0..<size { d[i] += k * g[i] }
                }
            }
        }
    }
}
