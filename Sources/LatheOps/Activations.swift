#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// Elementwise float32 activations: Relu, LeakyRelu, Sigmoid, Tanh, Clip.
enum ActivationOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Relu") { _ in UnaryKernel { max($0, 0) } }
        try registry.add("LeakyRelu") { c in
            let alpha = try c.attributes.float("alpha", 0.01)
            return UnaryKernel { $0 >= 0 ? $0 : alpha * $0 }
        }
        try registry.add("Sigmoid") { _ in UnaryKernel(sigmoid) }
        try registry.add("Tanh") { _ in UnaryKernel(tanhf) }
        try registry.add("Clip") { try ClipKernel($0) }
    }
}

/// Logistic function, stable for large |x|.
@inline(__always) func sigmoid(_ x: Float) -> Float {
    x >= 0 ? 1 / (1 + expf(-x)) : { let e = expf(x); return e / (1 + e) }()
}

/// A float32 map `y = f(x)` over one input.
final class UnaryKernel: Kernel {
    let f: @Sendable (Float) -> Float

    init(_ f: @escaping @Sendable (Float) -> Float) { self.f = f }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        guard inputs.count == 1 else { throw LatheError.invalid("takes 1 input, got \(inputs.count)") }
        return [try require(inputs[0], "X", .float32)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!.floats, y = outputs[0]!.floats
        for i in 0..<inputs[0]!.count { y[i] = f(x[i]) }
    }
}

/// Clip: bounds from attributes (opset < 11) or from optional scalar inputs (opset >= 11).
final class ClipKernel: Kernel {
    let attributeBounds: (Float, Float)?

    init(_ c: NodeContext) throws {
        try c.expectInputs(1...3)
        if c.opset < 11 {
            attributeBounds = (try c.attributes.float("min", -Float.greatestFiniteMagnitude),
                               try c.attributes.float("max", Float.greatestFiniteMagnitude))
        } else {
            attributeBounds = nil
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "input", .float32)
        for i in 1..<inputs.count {
            if let t = inputs[i] {
                _ = try require(t, i == 1 ? "min" : "max", .float32)
                guard t.count == 1 else { throw LatheError.shape("\(i == 1 ? "min" : "max") must be a scalar, got shape \(t.shape)") }
            }
        }
        return [x]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        var (lo, hi) = attributeBounds ?? (-Float.infinity, Float.infinity)
        if inputs.count > 1, let t = inputs[1] { lo = t.floats[0] }
        if inputs.count > 2, let t = inputs[2] { hi = t.floats[0] }
        let x = inputs[0]!.floats, y = outputs[0]!.floats
        for i in 0..<inputs[0]!.count { y[i] = min(max(x[i], lo), hi) }
    }
}
