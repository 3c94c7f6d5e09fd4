#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// A training objective, averaged over the batch (Keras semantics, reduction `sum_over_batch_size`: the
/// per-sample loss — for MSE, MAE, Huber and binary cross-entropy the mean over the sample's outputs — times
/// the sample's weight, summed and divided by the number of samples, not by the sum of the weights).
///
/// Targets: float32 of the prediction's shape (or the same element count), except sparse categorical
/// cross-entropy, whose targets are class indices (int64, int32 or whole float32 numbers), one per sample.
public enum Loss: Sendable, Equatable {
    case meanSquaredError
    case meanAbsoluteError
    /// Keras's Huber: `0.5·e²` where `|e| ≤ delta`, else `delta·|e| − 0.5·delta²`, with `e = prediction − target`.
    case huber(delta: Float = 1)
    /// Binary cross-entropy; from probabilities (clipped to [1e-7, 1 − 1e-7] as Keras does) or from logits.
    case binaryCrossentropy(fromLogits: Bool = false)
    /// Cross-entropy against one-hot (or soft) targets over the last axis.
    case categoricalCrossentropy(fromLogits: Bool = false)
    /// Cross-entropy against class indices over the last axis.
    case sparseCategoricalCrossentropy(fromLogits: Bool = false)

    /// The Keras name: `"mse"`, `"mean_squared_error"`, `"mae"`, `"huber"`, `"binary_crossentropy"`,
    /// `"categorical_crossentropy"`, `"sparse_categorical_crossentropy"`.
    public init?(kerasName: String) {
        switch kerasName {
        case "mse", "mean_squared_error": self = .meanSquaredError
        case "mae", "mean_absolute_error": self = .meanAbsoluteError
        case "huber", "huber_loss": self = .huber()
        case "binary_crossentropy": self = .binaryCrossentropy()
        case "categorical_crossentropy": self = .categoricalCrossentropy()
        case "sparse_categorical_crossentropy": self = .sparseCategoricalCrossentropy()
        default: return nil
        }
    }

    /// The activation this loss fuses with when the model ends in it and the loss takes probabilities:
    /// the loss is then computed from the activation's input (logits), stably.
    public var fusableActivation: String? {
        switch self {
        case .binaryCrossentropy(false): "Sigmoid"
        case .categoricalCrossentropy(false), .sparseCategoricalCrossentropy(false): "Softmax"
        default: nil
        }
    }

    /// The same loss taking logits (what fusing with `fusableActivation` computes).
    public var onLogits: Loss {
        switch self {
        case .binaryCrossentropy: .binaryCrossentropy(fromLogits: true)
        case .categoricalCrossentropy: .categoricalCrossentropy(fromLogits: true)
        case .sparseCategoricalCrossentropy: .sparseCategoricalCrossentropy(fromLogits: true)
        default: self
        }
    }

    /// Whether targets are class indices rather than values shaped like the prediction.
    public var takesClassIndices: Bool {
        if case .sparseCategoricalCrossentropy = self { return true }
        return false
    }

    /// Checks that `target` fits `prediction` (one target per output, or one class index per sample
    /// within the class count), naming the first offending sample.
    /// - Throws: `.shapeMismatch` or `.invalidArgument`.
    public func validate(prediction: [Int], target: Tensor, firstSample: Int = 0) throws {
        let samples = prediction.first ?? 1
        if takesClassIndices {
            let classes = prediction.last ?? 1
            guard target.count == samples else {
                throw LatheError.shape("sparse categorical targets need one class index per sample: \(samples) samples, \(target.count) targets")
            }
            for i in 0..<samples {
                let label = classIndex(target, i)
                guard let label, label >= 0 && label < classes else {
                    throw LatheError.invalid("label \(classLabelText(target, i)) of sample \(firstSample + i) is out of range for \(classes) classes")
                }
            }
        } else {
            guard target.dtype == .float32 else { throw LatheError.dtype("targets for \(self) must be float32, got \(target.dtype)") }
            guard target.count == prediction.reduce(1, *) else {
                throw LatheError.shape("targets of shape \(target.shape) do not match predictions of shape \(prediction)")
            }
        }
    }

    /// The mean loss of a batch, writing dLoss/dPrediction into `gradient` when given.
    /// - Parameters:
    ///   - prediction: the model output `[N, ...]` (logits for the `fromLogits` forms).
    ///   - target: see the type's documentation; validated first.
    ///   - sampleWeights: one weight per sample (Keras's `sample_weight`), or nil for all ones.
    /// - Returns: the batch's mean loss, in float64.
    public func compute(prediction: Tensor, target: Tensor, gradient: Tensor? = nil,
                        sampleWeights: UnsafePointer<Float>? = nil) throws -> Double {
        try validate(prediction: prediction.shape, target: target)
        let p = prediction.floats, g = gradient?.floats
        let count = prediction.count
        var total = 0.0
        switch self {
        case .meanSquaredError, .meanAbsoluteError, .huber, .binaryCrossentropy:
            let t = target.floats, scale = 1 / Float(max(count, 1))
            let samples = max(prediction.shape.first ?? 1, 1), perSample = count / samples
            for i in 0..<count {
                let weight = sampleWeights.map { $0[i / max(perSample, 1)] } ?? 1
                let (loss, slope) = elementLoss(p[i], t[i])
                total += Double(loss * weight)
                g?[i] = slope * scale * weight
            }
            return total / Double(max(count, 1))
        case .categoricalCrossentropy(let logits), .sparseCategoricalCrossentropy(let logits):
            let classes = prediction.shape.last ?? 1, rows = count / max(classes, 1)
            // One row's target distribution, on the stack (no allocation per batch).
            return withUnsafeTemporaryAllocation(of: Float.self, capacity: classes) { oneHot in
                oneHot.initialize(repeating: 0)
                for r in 0..<rows {
                    let weight = sampleWeights.map { $0[r] } ?? 1
                    let scale = weight / Float(rows)
                    let row = p + r * classes
                    if takesClassIndices {
                        for c in 0..<classes { oneHot[c] = 0 }
                        oneHot[classIndex(target, r)!] = 1
                    } else {
                        for c in 0..<classes { oneHot[c] = target.floats[r * classes + c] }
                    }
                    let targetSum = oneHot.reduce(0, +)
                    if logits {
                        var maximum = -Float.infinity
                        for c in 0..<classes { maximum = max(maximum, row[c]) }
                        var sum: Float = 0
                        for c in 0..<classes { sum += expf(row[c] - maximum) }
                        let logSum = maximum + logf(sum)
                        for c in 0..<classes {
                            total -= Double(weight * oneHot[c] * (row[c] - logSum))
                            g?[r * classes + c] = (expf(row[c] - logSum) * targetSum - oneHot[c]) * scale
                        }
                    } else {
                        // Keras: probabilities renormalised per row, clipped to [1e-7, 1 − 1e-7].
                        var sum: Float = 0
                        for c in 0..<classes { sum += row[c] }
                        for c in 0..<classes {
                            let q = min(max(row[c] / sum, 1e-7), 1 - 1e-7)
                            total -= Double(weight * oneHot[c] * logf(q))
                            g?[r * classes + c] = -oneHot[c] / (q * sum) * scale + targetSum / sum * scale
                        }
                    }
                }
                return total / Double(rows)
            }
        }
    }

    /// Per-element loss and its derivative for MSE, MAE, Huber and binary cross-entropy.
    @inline(__always) private func elementLoss(_ p: Float, _ t: Float) -> (Float, Float) {
        switch self {
        case .meanSquaredError: return ((p - t) * (p - t), 2 * (p - t))
        case .meanAbsoluteError: return (abs(p - t), p > t ? 1 : (p < t ? -1 : 0))
        case .huber(let delta):
            let e = p - t
            return abs(e) <= delta ? (0.5 * e * e, e) : (delta * abs(e) - 0.5 * delta * delta, e > 0 ? delta : -delta)
        case .binaryCrossentropy(fromLogits: true):
            // log(1 + e^-|x|) + max(x, 0) − x·t, stable for any x.
            let loss = max(p, 0) - p * t + log1pf(expf(-abs(p)))
            return (loss, 1 / (1 + expf(-p)) - t)
        case .binaryCrossentropy(fromLogits: false):
            let q = min(max(p, 1e-7), 1 - 1e-7)
            let loss = -(t * logf(q) + (1 - t) * logf(1 - q))
            let slope: Float = (p <= 1e-7 || p >= 1 - 1e-7) ? 0 : (q - t) / (q * (1 - q))
            return (loss, slope)
        default: return (0, 0)
        }
    }
}

/// The class index of sample `i` (int64, int32 or a whole float32), or nil when it is not a whole number.
func classIndex(_ target: Tensor, _ i: Int) -> Int? {
    switch target.dtype {
    case .int64: return Int(target.int64s[i])
    case .int32: return Int(target.bytes.assumingMemoryBound(to: Int32.self)[i])
    case .float32:
        let v = target.floats[i]
        return v.isFinite && v == v.rounded() && abs(v) < 1e9 ? Int(v) : nil
    default: return nil
    }
}

/// How sample `i`'s label reads in a message.
func classLabelText(_ target: Tensor, _ i: Int) -> String {
    target.dtype == .float32 ? "\(target.floats[i])" : classIndex(target, i).map { "\($0)" } ?? "?"
}
