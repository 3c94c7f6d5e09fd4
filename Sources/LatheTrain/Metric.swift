import LatheCore

/// A quality measure reported per epoch, accumulated over batches.
public enum Metric: Sendable, Equatable {
    /// Fraction of samples whose predicted class (argmax, or p ≥ 0.5 for one output) is the target's.
    /// With a binary cross-entropy loss it means `binaryAccuracy`, as in Keras.
    case accuracy
    /// Fraction of outputs where `(prediction > 0.5) == (target > 0.5)`.
    case binaryAccuracy
    /// Mean absolute error over all outputs.
    case meanAbsoluteError
    /// Root of the mean squared error over all outputs.
    case rootMeanSquaredError

    /// The Keras name: `"accuracy"`/`"acc"`, `"binary_accuracy"`, `"mae"`, `"rmse"`/`"root_mean_squared_error"`.
    public init?(kerasName: String) {
        switch kerasName {
        case "accuracy", "acc": self = .accuracy
        case "binary_accuracy": self = .binaryAccuracy
        case "mae", "mean_absolute_error": self = .meanAbsoluteError
        case "rmse", "root_mean_squared_error": self = .rootMeanSquaredError
        default: return nil
        }
    }

    /// The history key (`"accuracy"`, `"binary_accuracy"`, `"mae"`, `"rmse"`).
    public var name: String {
        switch self {
        case .accuracy: "accuracy"
        case .binaryAccuracy: "binary_accuracy"
        case .meanAbsoluteError: "mae"
        case .rootMeanSquaredError: "rmse"
        }
    }

    /// Sums this metric's numerator and denominator over one batch (targets as for the loss).
    func accumulate(prediction: Tensor, target: Tensor, loss: Loss, into total: inout (Double, Double)) {
        let p = prediction.floats, n = prediction.count
        let classes = prediction.rank >= 2 ? prediction.shape[prediction.rank - 1] : 1
        switch self {
        case .accuracy where !(loss == .binaryCrossentropy(fromLogits: false) || loss == .binaryCrossentropy(fromLogits: true)) && classes > 1:
            let rows = n / classes
            for r in 0..<rows {
                var best = 0
                for c in 1..<classes where p[r * classes + c] > p[r * classes + best] { best = c }
                let label: Int?
                if loss.takesClassIndices || target.count == rows {
                    label = classIndex(target, r)
                } else {
                    var t = 0
                    for c in 1..<classes where target.floats[r * classes + c] > target.floats[r * classes + t] { t = c }
                    label = t
                }
                if best == label { total.0 += 1 }
            }
            total.1 += Double(rows)
        case .accuracy, .binaryAccuracy:
            let threshold: Float = loss == .binaryCrossentropy(fromLogits: true) ? 0 : 0.5
            for i in 0..<n where (p[i] > threshold) == (target.floats[i] > 0.5) { total.0 += 1 }
            total.1 += Double(n)
        case .meanAbsoluteError:
            for i in 0..<n { total.0 += Double(abs(p[i] - target.floats[i])) }
            total.1 += Double(n)
        case .rootMeanSquaredError:
            for i in 0..<n { let d = Double(p[i] - target.floats[i]); total.0 += d * d }
            total.1 += Double(n)
        }
    }

    /// The metric from its accumulated numerator and denominator.
    func finish(_ total: (Double, Double)) -> Double {
        let mean = total.1 > 0 ? total.0 / total.1 : 0
        return self == .rootMeanSquaredError ? mean.squareRoot() : mean
    }
}
