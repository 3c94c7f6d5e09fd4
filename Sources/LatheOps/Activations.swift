import CLatheShims
import LatheCore

/// Elementwise float32 activations: Relu, LeakyRelu, Sigmoid, Tanh, Clip.
enum ActivationOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Relu") { _ in UnaryKernel(.relu) }
        try registry.add("LeakyRelu") { c in UnaryKernel(.leakyRelu(alpha: try c.attributes.float("alpha", 0.01))) }
        try registry.add("Sigmoid") { _ in UnaryKernel(.sigmoid) }
        try registry.add("Tanh") { _ in UnaryKernel(.tanh) }
        try registry.add("Clip") { try ClipKernel($0) }
    }
}

extension FusedActivation {
    /// `y[i] = f(x[i])` for `count` elements (`x` may equal `y`), vectorised (see `VectorMath`; Sigmoid
    /// and Tanh run the C kernels at the CPU's instruction-set level, `lts_vector_sigmoid`/`_tanh`).
    func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .relu: VectorMath.map(x, y, count: count, VectorMath.relu)
        case .leakyRelu(let alpha): VectorMath.map(x, y, count: count) { VectorMath.leakyRelu($0, alpha) }
        case .clip(let lo, let hi): VectorMath.map(x, y, count: count) { VectorMath.clip($0, lo, hi) }
        case .sigmoid: lts_vector_sigmoid(x, y, count, nil)
        case .tanh: lts_vector_tanh(x, y, count, nil)
        }
    }

    /// Applies the activation in place over `count` elements.
    @inline(__always) func apply(_ p: UnsafeMutablePointer<Float>, count: Int) { apply(p, p, count: count) }
}

/// `y[i] = activation(x[i] + bias)` for `count` elements in one vectorised pass (`x` may equal `y`):
/// a producing kernel's bias and fused activation on its output write.
func addBiasAndActivate(_ activation: FusedActivation?, _ x: UnsafePointer<Float>, bias: Float,
                        _ y: UnsafeMutablePointer<Float>, count: Int) {
    switch activation {
    case nil: VectorMath.map(x, y, count: count) { $0 + bias }
    case .relu: VectorMath.map(x, y, count: count) { VectorMath.relu($0 + bias) }
    case .leakyRelu(let alpha): VectorMath.map(x, y, count: count) { VectorMath.leakyRelu($0 + bias, alpha) }
    case .clip(let lo, let hi): VectorMath.map(x, y, count: count) { VectorMath.clip($0 + bias, lo, hi) }
    case .sigmoid: withUnsafePointer(to: bias) { lts_vector_sigmoid(x, y, count, $0) }
    case .tanh: withUnsafePointer(to: bias) { lts_vector_tanh(x, y, count, $0) }
    }
}

/// Applies `activation` (when set) in place over `count` elements.
@inline(__always) func applyActivation(_ activation: FusedActivation?, _ p: UnsafeMutablePointer<Float>, count: Int) {
    activation?.apply(p, count: count)
}

/// A float32 map `y = f(x)` over one input.
final class UnaryKernel: Kernel {
    /// The map.
    let function: FusedActivation

    init(_ function: FusedActivation) { self.function = function }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        guard inputs.count == 1 else { throw LatheError.invalid("takes 1 input, got \(inputs.count)") }
        return [try require(inputs[0], "X", .float32)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        function.apply(inputs[0]!.floats, outputs[0]!.floats, count: inputs[0]!.count)
    }

    var outputMemory: OutputMemory { .inPlace }
    func activation(constants: [Tensor?]) -> FusedActivation? { function }
}

/// Clip: bounds from attributes (opset < 11) or from optional scalar inputs (opset >= 11).
final class ClipKernel: Kernel {
    /// Bounds from the attributes (opset < 11).
    let attributeBounds: (Float, Float)?
    /// Which input slots are wired.
    let wired: [Bool]

    init(_ c: NodeContext) throws {
        try c.expectInputs(1...3)
        wired = c.inputPresent
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

    /// The bounds, from the attributes or the `min`/`max` tensors (each optional).
    func bounds(_ minimum: Tensor?, _ maximum: Tensor?) -> (Float, Float) {
        var (lo, hi) = attributeBounds ?? (-Float.infinity, Float.infinity)
        if let minimum { lo = minimum.floats[0] }
        if let maximum { hi = maximum.floats[0] }
        return (lo, hi)
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let (lo, hi) = bounds(inputs.count > 1 ? inputs[1] : nil, inputs.count > 2 ? inputs[2] : nil)
        FusedActivation.clip(min: lo, max: hi).apply(inputs[0]!.floats, outputs[0]!.floats, count: inputs[0]!.count)
    }

    var outputMemory: OutputMemory { .inPlace }

    /// A Clip whose wired bounds are all plan-time constants is a fusable activation.
    func activation(constants: [Tensor?]) -> FusedActivation? {
        for slot in 1..<min(3, wired.count) where wired[slot] && (slot >= constants.count || constants[slot] == nil) {
            return nil
        }
        let (lo, hi) = bounds(constants.count > 1 ? constants[1] : nil, constants.count > 2 ? constants[2] : nil)
        return .clip(min: lo, max: hi)
    }
}
