#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// The first `ai.onnx.ml` ops, as scikit-learn exporters (skl2onnx) emit them: Scaler, Normalizer,
/// LinearRegressor, LinearClassifier (int64 labels) and ArrayFeatureExtractor. Inputs may be float32, float64, int64 or int32;
/// they are read as float32, and every float output is float32.
enum MLOps {
    /// The domain of these ops.
    static let domain = "ai.onnx.ml"

    static func register(into registry: OpRegistry) throws {
        func add(_ opType: String, _ make: @escaping @Sendable (NodeContext) throws -> any Kernel) throws {
            try registry.register(OpEntry(domain: domain, opType: opType, since: 1, makeKernel: make))
        }
        try add("Scaler") { try ScalerKernel($0) }
        try add("Normalizer") { try NormalizerKernel($0) }
        try add("LinearRegressor") { try LinearModelKernel($0, classifier: false) }
        try add("LinearClassifier") { try LinearModelKernel($0, classifier: true) }
        try add("ArrayFeatureExtractor") { c in try c.expectInputs(2...2); return ArrayFeatureExtractorKernel() }
    }
}

/// Checks that X is a numeric tensor the ML ops read, of rank 1 or 2.
private func requireFeatures(_ type: TensorType?, maxRank: Int = 2) throws -> TensorType {
    let x = try require(type, "X", .float32, .float64, .int64, .int32)
    try requireRank(x, "X", 1...maxRank)
    return x
}

/// X's elements as float32 (a copy for other dtypes).
private func featureValues(_ x: Tensor) -> [Float] {
    switch x.dtype {
    case .float32: return x.floatArray()
    case .float64: return (0..<x.count).map { Float(x.bytes.assumingMemoryBound(to: Double.self)[$0]) }
    default: return x.intArray().map { Float($0) }
    }
}

/// `post_transform` of the linear models.
enum PostTransform: String, Sendable {
    case none = "NONE"
    case softmax = "SOFTMAX"
    case logistic = "LOGISTIC"
    case softmaxZero = "SOFTMAX_ZERO"

    /// Reads the attribute; PROBIT is refused.
    init(_ c: NodeContext) throws {
        let name = try c.attributes.string("post_transform", "NONE")
        guard let value = PostTransform(rawValue: name) else {
            throw LatheError(name == "PROBIT" ? .unsupportedOp : .invalidArgument,
                             "\(c.label): post_transform '\(name)' is not supported (NONE, SOFTMAX, LOGISTIC or SOFTMAX_ZERO)")
        }
        self = value
    }

    /// Applies the transform to one row of scores in place.
    func apply(_ row: UnsafeMutablePointer<Float>, _ count: Int) {
        switch self {
        case .none: break
        case .logistic:
            for i in 0..<count { row[i] = 1 / (1 + expf(-row[i])) }
        case .softmax, .softmaxZero:
            var largest = -Float.infinity
            for i in 0..<count { largest = max(largest, row[i]) }
            var sum: Float = 0
            for i in 0..<count {
                // SOFTMAX_ZERO leaves exact zeros at zero weight relative to the maximum.
                row[i] = self == .softmaxZero && abs(row[i]) <= 1e-7 ? row[i] * expf(-largest) : expf(row[i] - largest)
                sum += row[i]
            }
            if sum == 0 { for i in 0..<count { row[i] = 0.5 } } else { for i in 0..<count { row[i] /= sum } }
        }
    }
}

/// Scaler: `Y = (X − offset) · scale`, each attribute holding one value or one per feature.
final class ScalerKernel: Kernel {
    let offset: [Float], scale: [Float]

    init(_ c: NodeContext) throws {
        try c.expectInputs(1...1)
        offset = try c.attributes.floats("offset") ?? [0]
        scale = try c.attributes.floats("scale") ?? [1]
        guard !offset.isEmpty, !scale.isEmpty else { throw LatheError.invalid("\(c.label): offset and scale must not be empty") }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requireFeatures(inputs[0])
        let features = x.shape.last!
        for (name, values) in [("offset", offset), ("scale", scale)] where values.count != 1 && values.count != features {
            throw LatheError.shape("\(name) has \(values.count) values for \(features) features of X \(x.shape)")
        }
        return [TensorType(.float32, x.shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = featureValues(inputs[0]!), y = outputs[0]!
        let features = max(1, y.shape.last!)
        for i in 0..<y.count {
            let f = i % features
            y.floats[i] = (x[i] - offset[offset.count == 1 ? 0 : f]) * scale[scale.count == 1 ? 0 : f]
        }
    }
}

/// Normalizer: each row divided by its MAX, L1 or L2 norm.
final class NormalizerKernel: Kernel {
    /// `norm`: MAX, L1 or L2.
    let norm: String

    init(_ c: NodeContext) throws {
        try c.expectInputs(1...1)
        norm = try c.attributes.string("norm", "MAX")
        guard ["MAX", "L1", "L2"].contains(norm) else {
            throw LatheError.invalid("\(c.label): norm must be MAX, L1 or L2, got '\(norm)'")
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        [TensorType(.float32, try requireFeatures(inputs[0]).shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = featureValues(inputs[0]!), y = outputs[0]!
        let features = y.shape.last!
        guard features > 0 else { return }
        for row in 0..<y.count / features {
            let values = x[(row * features)..<((row + 1) * features)]
            let divisor: Float
            switch norm {
            case "MAX": divisor = values.max()!
            case "L1": divisor = values.reduce(0) { $0 + abs($1) }
            default: divisor = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
            }
            for (j, v) in values.enumerated() { y.floats[row * features + j] = divisor == 0 ? v : v / divisor }
        }
    }
}

/// LinearRegressor (`Y[N, targets] = X · coefficientsᵀ + intercepts`, then post_transform) and
/// LinearClassifier (scores likewise; Y the int64 label of the best score, Z the scores). A classifier
/// with one score row `s` and two class labels picks the second label when `s > 0` and reports the
/// scores as onnxruntime does: `[1 − σ(s), σ(s)]` under LOGISTIC, `[1 − s, s]` otherwise.
final class LinearModelKernel: Kernel {
    /// Rows of coefficients (`targets` or classes), each one weight per feature.
    let rows: Int
    /// `coefficients`, `rows × features`, row-major.
    let coefficients: [Float]
    /// `intercepts`, one per row (zeros when absent).
    let intercepts: [Float]
    let postTransform: PostTransform
    /// Classifier only: the int64 class labels.
    let labels: [Int]?

    init(_ c: NodeContext, classifier: Bool) throws {
        try c.expectInputs(1...1)
        guard let coefficients = try c.attributes.floats("coefficients"), !coefficients.isEmpty else {
            throw LatheError.invalid("\(c.label): attribute 'coefficients' is required")
        }
        self.coefficients = coefficients
        postTransform = try PostTransform(c)
        if classifier {
            if c.attributes.has("classlabels_strings") {
                throw LatheError(.unsupportedOp, "\(c.label): string class labels (classlabels_strings) are not supported; Lathe has no string tensors, use classlabels_ints")
            }
            guard let labels = try c.attributes.ints("classlabels_ints"), !labels.isEmpty else {
                throw LatheError.invalid("\(c.label): attribute 'classlabels_ints' is required")
            }
            self.labels = labels
            let intercepts = try c.attributes.floats("intercepts")
            rows = intercepts?.count ?? labels.count
            guard c.outputPresent.count <= 2 else { throw LatheError.invalid("\(c.label): has outputs Y and Z only") }
        } else {
            rows = try c.attributes.int("targets", 1)
            labels = nil
            guard c.outputPresent.count == 1 else { throw LatheError.invalid("\(c.label): has one output Y") }
        }
        guard rows >= 1, coefficients.count % rows == 0 else {
            throw LatheError.invalid("\(c.label): \(coefficients.count) coefficients do not split into \(rows) rows")
        }
        intercepts = try c.attributes.floats("intercepts") ?? Array(repeating: 0, count: rows)
        guard intercepts.count == rows else {
            throw LatheError.invalid("\(c.label): \(intercepts.count) intercepts for \(rows) coefficient rows")
        }
        if let labels, rows != labels.count && !(rows == 1 && labels.count == 2) {
            throw LatheError.invalid("\(c.label): \(rows) score rows for \(labels.count) class labels")
        }
    }

    /// Number of score columns (two for a one-row binary classifier).
    var scoreColumns: Int { labels?.count == 2 && rows == 1 ? 2 : rows }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requireFeatures(inputs[0])
        let batch = x.shape.count == 2 ? x.shape[0] : 1
        let features = x.shape.last!
        guard features * rows == coefficients.count else {
            throw LatheError.shape("X has \(features) features but the coefficients hold \(coefficients.count / rows) per row")
        }
        if labels == nil { return [TensorType(.float32, [batch, rows])] }
        return [TensorType(.int64, [batch]), TensorType(.float32, [batch, scoreColumns])]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = featureValues(inputs[0]!)
        let features = inputs[0]!.shape.last!
        let batch = features == 0 ? 0 : x.count / features
        let columns = scoreColumns
        var scores = [Float](repeating: 0, count: max(1, batch * columns))
        scores.withUnsafeMutableBufferPointer { s in
            x.withUnsafeBufferPointer { xp in
                coefficients.withUnsafeBufferPointer { w in
                    if batch > 0 {
                        // Raw scores go in the last `rows` columns of each row.
                        sgemm(transA: false, transB: true, m: batch, n: rows, k: features, alpha: 1,
                              a: xp.baseAddress!, lda: features, b: w.baseAddress!, ldb: features,
                              beta: 0, c: s.baseAddress! + (columns - rows), ldc: columns)
                    }
                }
            }
            for b in 0..<batch {
                let row = s.baseAddress! + b * columns
                for j in 0..<rows { row[columns - rows + j] += intercepts[j] }
                if columns == rows {
                    postTransform.apply(row, columns)
                } else {
                    // One score s for two classes, as onnxruntime reports it: [1 − σ(s), σ(s)] under
                    // LOGISTIC, else [1 − s, s]; column 0 is kept at −s until the label is chosen.
                    if postTransform == .logistic { postTransform.apply(row + 1, 1) }
                    row[0] = postTransform == .logistic ? 1 - row[1] : -row[1]
                }
            }
        }
        guard let labels else {
            outputs[0]!.floats.update(from: scores, count: outputs[0]!.count)
            return
        }
        if let y = outputs[0] {
            for b in 0..<batch {
                var best = 0
                for j in 1..<columns where scores[b * columns + j] > scores[b * columns + best] { best = j }
                y.int64s[b] = Int64(labels[best])
            }
        }
        if columns != rows, postTransform != .logistic {
            for b in 0..<batch { scores[b * columns] = 1 - scores[b * columns + 1] }
        }
        if outputs.count > 1, let z = outputs[1] { z.floats.update(from: scores, count: z.count) }
    }
}

/// ArrayFeatureExtractor: `Z[..., j] = X[..., Y[j]]` over X's last axis, for any dtype; a 1-D X gives
/// `[1, count(Y)]`.
final class ArrayFeatureExtractorKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        guard let x = inputs[0] else { throw LatheError.invalid("missing required input X") }
        let y = try require(inputs[1], "Y", .int64, .int32)
        guard !x.shape.isEmpty else { throw LatheError.shape("X must have rank >= 1, got a scalar") }
        let leading = x.shape.count == 1 ? [1] : Array(x.shape.dropLast())
        return [TensorType(x.dtype, leading + [y.count])]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, z = outputs[0]!
        let indices = inputs[1]!.intArray()
        let width = x.shape.last!, size = x.dtype.size
        for (j, index) in indices.enumerated() where index < 0 || index >= width {
            throw LatheError.invalid("ArrayFeatureExtractor: index Y[\(j)] = \(index) is outside 0..<\(width)")
        }
        let rows = width == 0 ? 0 : x.count / width
        for row in 0..<rows {
            for (j, index) in indices.enumerated() {
                (z.bytes + (row * indices.count + j) * size).copyMemory(from: x.bytes + (row * width + index) * size, byteCount: size)
            }
        }
    }
}
