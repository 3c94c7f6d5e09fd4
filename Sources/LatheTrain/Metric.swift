#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// A quality measure reported per epoch, accumulated over batches (Keras's metrics; not weighted by
/// sample or class weights, as Keras's `metrics=` are not).
///
/// The confusion-based metrics (precision, recall, F1, AUC) follow Keras: every output is a separate
/// binary decision, predicted positive when `prediction > threshold` (after a sigmoid when the loss takes
/// logits) and truly positive when `target > 0.5`. So for one sigmoid output they are the usual binary
/// metrics; for several outputs they are micro-averaged over all outputs (Keras's behaviour with one-hot
/// targets). With class-index targets (sparse categorical cross-entropy) the indices are first expanded
/// to one-hot rows, which gives what Keras gives for the equivalent one-hot targets.
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
    /// `TP / (TP + FP)` (0 when nothing is predicted positive), as Keras's `Precision`.
    case precision(threshold: Float = 0.5)
    /// `TP / (TP + FN)` (0 when nothing is truly positive), as Keras's `Recall`.
    case recall(threshold: Float = 0.5)
    /// F1 = `2·TP / (2·TP + FP + FN)`, Keras's `F1Score(average:threshold:)` reduced to one number: per
    /// output (class) column, averaged over the columns as `average` says. A `threshold` of nil predicts
    /// each row's argmax (one output: `p > 0.5`). For one output every average is the binary F1.
    case f1(threshold: Float? = 0.5, average: Average = .micro)
    /// Area under the ROC curve as Keras's `AUC()` computes it: confusion counts at `thresholds` evenly
    /// spaced thresholds (`0 − 1e-7, 1/(n−1), …, 1 + 1e-7`), summed with the trapezoidal rule. It differs
    /// from the exact (rank) AUC by the discretisation, at most about `1 / (thresholds − 1)`.
    case auc(thresholds: Int = 200)

    /// How F1 combines the per-class counts (Keras's `average`).
    public enum Average: String, Sendable {
        /// From the counts summed over classes.
        case micro
        /// The mean of the per-class F1 scores.
        case macro
        /// The per-class F1 scores weighted by each class's number of true positives + false negatives.
        case weighted
    }

    /// The Keras name: `"accuracy"`/`"acc"`, `"binary_accuracy"`, `"mae"`, `"rmse"`/`"root_mean_squared_error"`,
    /// `"precision"`, `"recall"`, `"f1"`/`"f1_score"`, `"auc"`.
    public init?(kerasName: String) {
        switch kerasName {
        case "accuracy", "acc": self = .accuracy
        case "binary_accuracy": self = .binaryAccuracy
        case "mae", "mean_absolute_error": self = .meanAbsoluteError
        case "rmse", "root_mean_squared_error": self = .rootMeanSquaredError
        case "precision": self = .precision()
        case "recall": self = .recall()
        case "f1", "f1_score": self = .f1()
        case "auc": self = .auc()
        default: return nil
        }
    }

    /// The history key (`"accuracy"`, `"binary_accuracy"`, `"mae"`, `"rmse"`, `"precision"`, `"recall"`,
    /// `"f1_score"`, `"auc"`).
    public var name: String {
        switch self {
        case .accuracy: "accuracy"
        case .binaryAccuracy: "binary_accuracy"
        case .meanAbsoluteError: "mae"
        case .rootMeanSquaredError: "rmse"
        case .precision: "precision"
        case .recall: "recall"
        case .f1: "f1_score"
        case .auc: "auc"
        }
    }

    /// A zeroed accumulator for this metric (its counts or sums).
    func makeTotals() -> [Double] {
        switch self {
        case .auc(let thresholds): [Double](repeating: 0, count: 4 * max(thresholds, 2))
        case .precision, .recall: [0, 0, 0]
        case .f1: []   // [TP, FP, FN] per class, sized at the first batch
        default: [0, 0]
        }
    }

    /// Adds one batch to `total` (from `makeTotals`); targets as for the loss.
    func accumulate(prediction: Tensor, target: Tensor, loss: Loss, into total: inout [Double]) {
        let p = prediction.floats, n = prediction.count
        let classes = prediction.rank >= 2 ? prediction.shape[prediction.rank - 1] : 1
        let binaryLoss = loss == .binaryCrossentropy(fromLogits: false) || loss == .binaryCrossentropy(fromLogits: true)
        let logits = loss == .binaryCrossentropy(fromLogits: true)
        switch self {
        case .accuracy where !binaryLoss && classes > 1:
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
                if best == label { total[0] += 1 }
            }
            total[1] += Double(rows)
        case .accuracy, .binaryAccuracy:
            let threshold: Float = logits ? 0 : 0.5
            for i in 0..<n where (p[i] > threshold) == (target.floats[i] > 0.5) { total[0] += 1 }
            total[1] += Double(n)
        case .meanAbsoluteError:
            for i in 0..<n { total[0] += Double(abs(p[i] - target.floats[i])) }
            total[1] += Double(n)
        case .rootMeanSquaredError:
            for i in 0..<n { let d = Double(p[i] - target.floats[i]); total[0] += d * d }
            total[1] += Double(n)
        case .precision(let threshold), .recall(let threshold):
            // total = [TP, FP, FN]
            for i in 0..<n {
                let predicted = probability(p[i], logits) > threshold, actual = truth(target, i, classes, loss)
                if predicted && actual { total[0] += 1 } else if predicted { total[1] += 1 } else if actual { total[2] += 1 }
            }
        case .f1(let threshold, _):
            // total = [TP, FP, FN] × classes
            if total.count != 3 * classes { total = [Double](repeating: 0, count: 3 * classes) }
            for r in 0..<(n / max(classes, 1)) {
                var best = 0
                for c in 1..<max(classes, 1) where p[r * classes + c] > p[r * classes + best] { best = c }
                for c in 0..<classes {
                    let i = r * classes + c
                    let predicted = threshold.map { probability(p[i], logits) > $0 } ?? (classes == 1 ? probability(p[i], logits) > 0.5 : c == best)
                    let actual = truth(target, i, classes, loss)
                    if predicted && actual { total[3 * c] += 1 } else if predicted { total[3 * c + 1] += 1 } else if actual { total[3 * c + 2] += 1 }
                }
            }
        case .auc(let count):
            // total = [TP, FP, FN, TN] × thresholds, threshold-major.
            let thresholds = max(count, 2)
            for i in 0..<n {
                let q = probability(p[i], logits), actual = truth(target, i, classes, loss)
                for k in 0..<thresholds {
                    let positive = q > aucThreshold(k, thresholds)
                    total[4 * k + (positive ? (actual ? 0 : 1) : (actual ? 2 : 3))] += 1
                }
            }
        }
    }

    /// The metric from its accumulated totals.
    func finish(_ total: [Double]) -> Double {
        func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : 0 }
        switch self {
        case .rootMeanSquaredError: return ratio(total[0], total[1]).squareRoot()
        case .precision: return ratio(total[0], total[0] + total[1])
        case .recall: return ratio(total[0], total[0] + total[2])
        case .f1(_, let average):
            let classes = total.count / 3
            func f1(_ c: Int) -> Double { ratio(2 * total[3 * c], 2 * total[3 * c] + total[3 * c + 1] + total[3 * c + 2]) }
            switch average {
            case .micro:
                let sums = (0..<3).map { k in stride(from: k, to: total.count, by: 3).reduce(0.0) { $0 + total[$1] } }
                return ratio(2 * sums[0], 2 * sums[0] + sums[1] + sums[2])
            case .macro: return ratio((0..<classes).reduce(0.0) { $0 + f1($1) }, Double(classes))
            case .weighted:
                let support = (0..<classes).map { total[3 * $0] + total[3 * $0 + 2] }
                return ratio((0..<classes).reduce(0.0) { $0 + f1($1) * support[$1] }, support.reduce(0, +))
            }
        case .auc(let count):
            let thresholds = max(count, 2)
            var area = 0.0
            for k in 0..<(thresholds - 1) {
                let (tp0, fp0, fn0, tn0) = (total[4 * k], total[4 * k + 1], total[4 * k + 2], total[4 * k + 3])
                let (tp1, fp1, fn1, tn1) = (total[4 * k + 4], total[4 * k + 5], total[4 * k + 6], total[4 * k + 7])
                let (tpr0, fpr0) = (ratio(tp0, tp0 + fn0), ratio(fp0, fp0 + tn0))
                let (tpr1, fpr1) = (ratio(tp1, tp1 + fn1), ratio(fp1, fp1 + tn1))
                area += (fpr0 - fpr1) * (tpr0 + tpr1) / 2
            }
            return area
        default: return ratio(total[0], total[1])
        }
    }

    /// Keras's AUC threshold `k` of `count`: `k / (count − 1)`, the first `−1e-7` and the last `1 + 1e-7`.
    private func aucThreshold(_ k: Int, _ count: Int) -> Float {
        k == 0 ? -1e-7 : (k == count - 1 ? 1 + 1e-7 : Float(k) / Float(count - 1))
    }

    /// A prediction as a probability (a sigmoid of it when the loss takes logits).
    @inline(__always) private func probability(_ value: Float, _ logits: Bool) -> Float {
        logits ? 1 / (1 + expf(-value)) : value
    }

    /// Whether output `i` is truly positive: `target > 0.5`, or, for class-index targets, whether `i` is
    /// its sample's labelled class.
    @inline(__always) private func truth(_ target: Tensor, _ i: Int, _ classes: Int, _ loss: Loss) -> Bool {
        if loss.takesClassIndices { return classIndex(target, i / max(classes, 1)) == i % max(classes, 1) }
        return target.floats[i] > 0.5
    }
}
