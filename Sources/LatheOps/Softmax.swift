#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// Softmax, LogSoftmax (float32, float64).
enum SoftmaxOps {
    /// Adds Softmax and LogSoftmax to `registry`.
    static func register(into registry: OpRegistry) throws {
        try registry.add("Softmax") { try SoftmaxKernel($0, logarithmic: false) }
        try registry.add("LogSoftmax") { try SoftmaxKernel($0, logarithmic: true) }
    }
}

/// Softmax or LogSoftmax. Before opset 13 the input is coerced to 2-D at `axis` (default 1) and normalised
/// over the flattened trailing dims; from opset 13 it is normalised over the single `axis` (default -1).
final class SoftmaxKernel: Kernel {
    /// The normalised axis (the first flattened one before opset 13), possibly negative.
    let axis: Int
    /// Whether the pre-13 2-D coercion applies.
    let coercesTo2D: Bool
    /// LogSoftmax rather than Softmax.
    let logarithmic: Bool

    init(_ c: NodeContext, logarithmic: Bool) throws {
        try c.expectInputs(1...1)
        coercesTo2D = c.opset < 13
        axis = try c.attributes.int("axis", coercesTo2D ? 1 : -1)
        self.logarithmic = logarithmic
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "input", .float32, .float64)
        guard !x.shape.isEmpty else { throw LatheError.shape("input must have rank >= 1, got a scalar") }
        _ = try ShapeMath.axis(axis, rank: x.shape.count)
        return [x]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let a = axis < 0 ? axis + x.rank : axis
        let outer = x.shape[..<a].reduce(1, *)
        let (n, inner) = coercesTo2D ? (x.shape[a...].reduce(1, *), 1) : (x.shape[a], x.shape[(a + 1)...].reduce(1, *))
        switch x.dtype {
        case .float32: softmax(x.bytes.assumingMemoryBound(to: Float.self), y.bytes.assumingMemoryBound(to: Float.self),
                               outer: outer, n: n, inner: inner, logarithmic: logarithmic)
        case .float64: softmax(x.bytes.assumingMemoryBound(to: Double.self), y.bytes.assumingMemoryBound(to: Double.self),
                               outer: outer, n: n, inner: inner, logarithmic: logarithmic)
        default: throw LatheError.dtype("unsupported dtype \(x.dtype)")
        }
    }
}

/// Normalises `x` viewed as `[outer, n, inner]` over the middle axis, subtracting each slice's max first.
func softmax<T: LibmFloat>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>,
                                outer: Int, n: Int, inner: Int, logarithmic: Bool) {
    if n == 0 { return }
    for o in 0..<outer {
        for j in 0..<inner {
            let base = o * n * inner + j
            var m = -T.infinity
            for k in 0..<n { m = Swift.max(m, x[base + k * inner]) }
            var sum: T = 0
            for k in 0..<n {
                let e = T.libmExp(x[base + k * inner] - m)
                y[base + k * inner] = e
                sum += e
            }
            if logarithmic {
                let logSum = T.libmLog(sum)
                for k in 0..<n { y[base + k * inner] = (x[base + k * inner] - m) - logSum }
            } else {
                let scale = 1 / sum
                for k in 0..<n { y[base + k * inner] *= scale }
            }
        }
    }
}
