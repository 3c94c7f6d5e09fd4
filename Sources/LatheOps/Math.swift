#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// Elementwise math: float32 maps (Sqrt, Exp, Log, Erf, Gelu, Elu, Mish, ...), the plain libm ones and
/// Abs/Neg/Sign also for float64, Abs/Neg/Sign also for int64/int32, Pow with mixed base/exponent
/// dtypes, and PRelu with a broadcast slope.
enum MathOps {
    /// Adds every op of the family to `registry`.
    static func register(into registry: OpRegistry) throws {
        func unary(_ name: String, since: Int, _ f: @escaping @Sendable (Float) -> Float,
                   double: (@Sendable (Double) -> Double)? = nil) throws {
            try registry.add(name, since: since) { c in try c.expectInputs(1...1); return MapKernel(float: f, double: double) }
        }
        try unary("Sqrt", since: 6, sqrtf, double: sqrt)
        try unary("Exp", since: 6, expf, double: exp)
        try unary("Log", since: 6, logf, double: log)
        try unary("Reciprocal", since: 6, { 1 / $0 }, double: { 1 / $0 })
        try unary("Floor", since: 6, floorf, double: floor)
        try unary("Ceil", since: 6, ceilf, double: ceil)
        try unary("Round", since: 11, { $0.rounded(.toNearestOrEven) }, double: { $0.rounded(.toNearestOrEven) })
        try unary("Erf", since: 9, erff, double: erf)
        try unary("Sin", since: 7, sinf, double: sin)
        try unary("Cos", since: 7, cosf, double: cos)
        try unary("Softplus", since: 1, softplus)
        try unary("Softsign", since: 1) { $0 / (1 + abs($0)) }
        try unary("HardSwish", since: 14) { $0 * min(max($0 / 6 + 0.5, 0), 1) }
        try unary("Mish", since: 18) { $0 * tanhf(softplus($0)) }
        try registry.add("Abs", since: 6) { c in
            try c.expectInputs(1...1)
            return MapKernel(float: { abs($0) }, double: { abs($0) }, int64: { $0 < 0 ? 0 &- $0 : $0 },
                             int32: { $0 < 0 ? 0 &- $0 : $0 })
        }
        try registry.add("Neg", since: 6) { c in
            try c.expectInputs(1...1)
            return MapKernel(float: { -$0 }, double: { -$0 }, int64: { 0 &- $0 }, int32: { 0 &- $0 })
        }
        try registry.add("Sign", since: 9) { c in
            try c.expectInputs(1...1)
            return MapKernel(float: { $0 > 0 ? 1 : ($0 < 0 ? -1 : $0) }, double: { $0 > 0 ? 1 : ($0 < 0 ? -1 : $0) },
                             int64: { $0.signum() }, int32: { $0.signum() })
        }
        try registry.add("Gelu", since: 20) { c in
            try c.expectInputs(1...1)
            switch try c.attributes.string("approximate", "none") {
            case "none": return MapKernel(float: { 0.5 * $0 * (1 + erff($0 * Float(0.5).squareRoot())) })
            case "tanh":
                let k = Float(2 / Double.pi).squareRoot()
                return MapKernel(float: { 0.5 * $0 * (1 + tanhf(k * ($0 + 0.044715 * $0 * $0 * $0))) })
            case let other: throw LatheError.invalid("\(c.label): approximate must be 'none' or 'tanh', got '\(other)'")
            }
        }
        try registry.add("HardSigmoid", since: 6) { c in
            try c.expectInputs(1...1)
            let alpha = try c.attributes.float("alpha", 0.2), beta = try c.attributes.float("beta", 0.5)
            return MapKernel(float: { min(max(alpha * $0 + beta, 0), 1) })
        }
        try registry.add("Elu", since: 6) { c in
            try c.expectInputs(1...1)
            let alpha = try c.attributes.float("alpha", 1)
            return MapKernel(float: { $0 < 0 ? alpha * expm1f($0) : $0 })
        }
        try registry.add("Selu", since: 6) { c in
            try c.expectInputs(1...1)
            let alpha = try c.attributes.float("alpha", 1.67326319217681884765625)
            let gamma = try c.attributes.float("gamma", 1.05070102214813232421875)
            return MapKernel(float: { $0 > 0 ? gamma * $0 : gamma * (alpha * expf($0) - alpha) })
        }
        try registry.add("Celu", since: 12) { c in
            try c.expectInputs(1...1)
            let alpha = try c.attributes.float("alpha", 1)
            guard alpha != 0 else { throw LatheError.invalid("\(c.label): alpha must not be 0") }
            return MapKernel(float: { max(0, $0) + min(0, alpha * expm1f($0 / alpha)) })
        }
        try registry.add("ThresholdedRelu", since: 10) { c in
            try c.expectInputs(1...1)
            let alpha = try c.attributes.float("alpha", 1)
            return MapKernel(float: { $0 > alpha ? $0 : 0 })
        }
        try registry.add("Pow", since: 7) { c in try c.expectInputs(2...2); return PowKernel(opset: c.opset) }
        try registry.add("PRelu", since: 7) { c in try c.expectInputs(2...2); return PReluKernel() }
    }
}

/// The floating-point element types with the libm functions generic kernels need. Float and Double
/// call the matching C function, so a kernel specialised for either runs as if written for it.
protocol LibmFloat: BinaryFloatingPoint {
    /// `e^x`.
    static func libmExp(_ x: Self) -> Self
    /// The natural logarithm.
    static func libmLog(_ x: Self) -> Self
}

extension Float: LibmFloat {
    @inline(__always) static func libmExp(_ x: Float) -> Float { expf(x) }
    @inline(__always) static func libmLog(_ x: Float) -> Float { logf(x) }
}

extension Double: LibmFloat {
    @inline(__always) static func libmExp(_ x: Double) -> Double { exp(x) }
    @inline(__always) static func libmLog(_ x: Double) -> Double { log(x) }
}

/// `log(1 + exp(x))` without overflow for large |x|.
@inline(__always) func softplus(_ x: Float) -> Float {
    x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x))
}

/// `y = f(x)` elementwise over float32, and over float64, int64 and int32 when the op defines those forms.
final class MapKernel: Kernel {
    let float: @Sendable (Float) -> Float
    let double: (@Sendable (Double) -> Double)?
    let int64: (@Sendable (Int64) -> Int64)?
    let int32: (@Sendable (Int32) -> Int32)?

    init(float: @escaping @Sendable (Float) -> Float, double: (@Sendable (Double) -> Double)? = nil,
         int64: (@Sendable (Int64) -> Int64)? = nil, int32: (@Sendable (Int32) -> Int32)? = nil) {
        self.float = float
        self.double = double
        self.int64 = int64
        self.int32 = int32
    }

    /// The element types this map has a form for.
    var dtypes: [DType] {
        [.float32] + (double == nil ? [] : [.float64]) + (int64 == nil ? [] : [.int64]) + (int32 == nil ? [] : [.int32])
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "X")
        guard dtypes.contains(x.dtype) else {
            throw LatheError.dtype("X must be \(dtypes.map(\.description).joined(separator: " or ")), got \(x.dtype)")
        }
        return [x]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        func run<T>(_ f: ((T) -> T)?) throws {
            guard let f else { throw LatheError.dtype("unsupported dtype \(x.dtype)") }
            let px = x.bytes.assumingMemoryBound(to: T.self), py = y.bytes.assumingMemoryBound(to: T.self)
            for i in 0..<x.count { py[i] = f(px[i]) }
        }
        switch x.dtype {
        case .float32:
            let px = x.floats, py = y.floats, f = float
            for i in 0..<x.count { py[i] = f(px[i]) }
        case .float64: try run(double)
        case .int64: try run(int64)
        case .int32: try run(int32)
        default: throw LatheError.dtype("unsupported dtype \(x.dtype)")
        }
    }
}

/// Pow: `base ^ exponent` broadcast; the output has the base's dtype. From opset 12 base and exponent
/// may each be float32, int64 or int32; before, both are float32.
final class PowKernel: Kernel {
    let opset: Int

    init(opset: Int) { self.opset = opset }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x: TensorType, y: TensorType
        if opset < 12 {
            x = try require(inputs[0], "X", .float32)
            y = try require(inputs[1], "Y", .float32)
        } else {
            x = try require(inputs[0], "X", .float32, .int64, .int32)
            y = try require(inputs[1], "Y", .float32, .int64, .int32)
        }
        return [TensorType(x.dtype, try ShapeMath.broadcast(x.shape, y.shape))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = inputs[1]!, z = outputs[0]!
        func run<E>(_: E.Type, _ toDouble: @escaping (E) -> Double) {
            switch x.dtype {
            case .float32:
                if y.dtype == .float32 { broadcastMap(x, y, z) { (a: Float, b: Float) -> Float in powf(a, b) } }
                else { broadcastMap(x, y, z) { (a: Float, b: E) -> Float in Float(pow(Double(a), toDouble(b))) } }
            case .int64: broadcastMap(x, y, z) { (a: Int64, b: E) -> Int64 in integerPower(Double(a), toDouble(b)) }
            default: broadcastMap(x, y, z) { (a: Int32, b: E) -> Int32 in integerPower(Double(a), toDouble(b)) }
            }
        }
        switch y.dtype {
        case .float32: run(Float.self) { Double($0) }
        case .int64: run(Int64.self) { Double($0) }
        default: run(Int32.self) { Double($0) }
        }
    }
}

/// An integer power computed in double precision and truncated like ONNX Runtime; out-of-range results saturate.
@inline(__always) func integerPower<I: FixedWidthInteger>(_ base: Double, _ exponent: Double) -> I {
    let p = pow(base, exponent)
    guard p.isFinite else { return p > 0 ? I.max : (p < 0 ? I.min : 0) }
    return I(exactly: p.rounded(.towardZero)) ?? (p > 0 ? I.max : I.min)
}

/// PRelu: `x < 0 ? slope * x : x`, with `slope` broadcast to X's shape (float32, and int64/int32 from opset 16).
final class PReluKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32, .int64, .int32)
        let slope = try require(inputs[1], "slope", x.dtype)
        guard try ShapeMath.broadcast(x.shape, slope.shape) == x.shape else {
            throw LatheError.shape("slope of shape \(slope.shape) does not broadcast to X's shape \(x.shape)")
        }
        return [x]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, s = inputs[1]!, y = outputs[0]!
        switch x.dtype {
        case .float32: broadcastApply(x, s, y, as: Float.self) { $0 < 0 ? $0 * $1 : $0 }
        case .int64: broadcastApply(x, s, y, as: Int64.self) { $0 < 0 ? $0 &* $1 : $0 }
        default: broadcastApply(x, s, y, as: Int32.self) { $0 < 0 ? $0 &* $1 : $0 }
        }
    }
}
