import LatheCore

/// Sum, Mean, Max, Min over any number of inputs with multidirectional broadcasting
/// (float32 and float64; Max and Min also int64, int32, int8 and uint8 from opset 12).
enum VariadicOps {
    /// Adds every op of the family to `registry`.
    static func register(into registry: OpRegistry) throws {
        try registry.add("Sum", since: 6) { try VariadicKernel($0, .sum) }
        try registry.add("Mean", since: 6) { try VariadicKernel($0, .mean) }
        try registry.add("Max", since: 6) { try VariadicKernel($0, .max) }
        try registry.add("Min", since: 6) { try VariadicKernel($0, .min) }
    }
}

/// Folds the inputs pairwise into the output, broadcasting each one to the output's shape.
final class VariadicKernel: Kernel {
    enum Fold: Sendable { case sum, mean, max, min }
    let fold: Fold
    let allowsIntegers: Bool

    init(_ c: NodeContext, _ fold: Fold) throws {
        guard !c.inputPresent.isEmpty, c.inputPresent.allSatisfy({ $0 }) else {
            throw LatheError.invalid("\(c.label) takes one or more wired inputs")
        }
        self.fold = fold
        allowsIntegers = (fold == .max || fold == .min) && c.opset >= 12
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let first = allowsIntegers ? try require(inputs[0], "data_0", .float32, .float64, .int64, .int32, .int8, .uint8)
                                   : try require(inputs[0], "data_0", .float32, .float64)
        var shape = first.shape
        for (i, input) in inputs.enumerated().dropFirst() {
            let t = try require(input, "data_\(i)", first.dtype)
            shape = try ShapeMath.broadcast(shape, t.shape)
        }
        return [TensorType(first.dtype, shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let y = outputs[0]!
        broadcastCopy(inputs[0]!, into: y)
        func combine<T: Comparable & NaNTestable>(_: T.Type, _ add: (T, T) -> T) {
            for x in inputs.dropFirst() {
                switch fold {
                case .sum, .mean: broadcastApply(y, x!, y, as: T.self, add)
                case .max: broadcastApply(y, x!, y, as: T.self) { a, b in a.isNaNValue ? a : (b.isNaNValue || b > a ? b : a) }
                case .min: broadcastApply(y, x!, y, as: T.self) { a, b in a.isNaNValue ? a : (b.isNaNValue || b < a ? b : a) }
                }
            }
        }
        switch y.dtype {
        case .float32:
            combine(Float.self, +)
            if fold == .mean {
                let p = y.floats, scale = 1 / Float(inputs.count)
                for i in 0..<y.count { p[i] *= scale }
            }
        case .float64:
            combine(Double.self, +)
            if fold == .mean {
                let p = y.bytes.assumingMemoryBound(to: Double.self), scale = 1 / Double(inputs.count)
                for i in 0..<y.count { p[i] *= scale }
            }
        case .int64: combine(Int64.self, &+)
        case .int32: combine(Int32.self, &+)
        case .int8: combine(Int8.self, &+)
        default: combine(UInt8.self, &+)
        }
    }
}

/// NaN test usable in generic comparisons (always false for integers), so Max/Min propagate NaN like ONNX Runtime.
protocol NaNTestable { var isNaNValue: Bool { get } }
extension Float: NaNTestable { var isNaNValue: Bool { isNaN } }
extension Int64: NaNTestable { var isNaNValue: Bool { false } }
extension Double: NaNTestable { var isNaNValue: Bool { isNaN } }
extension Int32: NaNTestable { var isNaNValue: Bool { false } }
extension Int8: NaNTestable { var isNaNValue: Bool { false } }
extension UInt8: NaNTestable { var isNaNValue: Bool { false } }
