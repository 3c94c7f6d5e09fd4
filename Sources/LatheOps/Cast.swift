import LatheCore

/// Cast between float32, float64, int32, int64, int8, uint8 and bool (C conversion rules:
/// float → int truncates toward zero, out-of-range values saturate for int64/int32 and wrap for
/// int8/uint8, NaN becomes 0; anything → bool is `!= 0`), and to float16. Lathe carries float16 values
/// in float32 storage (as the importer widens them at load), so Cast to float16 yields float32 holding
/// the value rounded to half precision (IEEE round to nearest even, overflow to ±infinity).
enum CastOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Cast", since: 6) { try CastKernel($0) }
        try registry.add("CastLike", since: 15) { c in try c.expectInputs(2...2); return CastKernel(target: nil) }
    }
}

/// Cast and CastLike; one loop specialised per (source, target) element type pair.
final class CastKernel: Kernel {
    /// The target dtype; nil for CastLike (taken from input 1).
    let target: DType?
    /// Whether values are rounded to float16 (the target is float32 storage for ONNX float16).
    let roundsToHalf: Bool

    init(target: DType?, roundsToHalf: Bool = false) {
        self.target = target
        self.roundsToHalf = roundsToHalf
    }

    /// ONNX's data-type code for float16.
    static let float16Code = 10

    convenience init(_ c: NodeContext) throws {
        try c.expectInputs(1...1)
        guard let code = try c.attributes.int("to") else { throw LatheError.invalid("\(c.label): attribute 'to' is required") }
        if code == Self.float16Code {
            self.init(target: .float32, roundsToHalf: true)
        } else {
            do { self.init(target: try DType(onnxCode: code)) } catch let e as LatheError {
                throw LatheError(e.status, "\(c.label): attribute 'to': \(e.message)")
            }
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "input")
        let to = try target ?? requirePresent(inputs[1], "target_type").dtype
        return [TensorType(to, x.shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        if x.dtype == y.dtype && !roundsToHalf { copyElements(x, to: y); return }
        switch x.dtype {
        case .float32: cast(x, from: Float.self, into: y)
        case .float64: cast(x, from: Double.self, into: y)
        case .int64: cast(x, from: Int64.self, into: y)
        case .int32: cast(x, from: Int32.self, into: y)
        case .int8: cast(x, from: Int8.self, into: y)
        case .uint8: cast(x, from: UInt8.self, into: y)
        case .bool: cast(x, from: BoolElement.self, into: y)
        }
    }

    private func cast<S: CastElement>(_ x: Tensor, from: S.Type, into y: Tensor) {
        if roundsToHalf {
            convert(x, y) { (v: S) -> Float in Float(Float16(S.isFloating ? v.castDouble : Double(v.castInt64))) }
            return
        }
        switch y.dtype {
        case .float32: convert(x, y, S.self, Float.self)
        case .float64: convert(x, y, S.self, Double.self)
        case .int64: convert(x, y, S.self, Int64.self)
        case .int32: convert(x, y, S.self, Int32.self)
        case .int8: convert(x, y, S.self, Int8.self)
        case .uint8: convert(x, y, S.self, UInt8.self)
        case .bool: convert(x, y, S.self, BoolElement.self)
        }
    }

    /// `y[i] = D(x[i])`, through Double for floating sources and Int64 for integer ones (both exact).
    @inline(__always)
    private func convert<S: CastElement, D: CastElement>(_ x: Tensor, _ y: Tensor, _: S.Type, _: D.Type) {
        if S.isFloating {
            convert(x, y) { (v: S) -> D in D(castFrom: v.castDouble) }
        } else {
            convert(x, y) { (v: S) -> D in D(castFrom: v.castInt64) }
        }
    }

    @inline(__always)
    private func convert<S, D>(_ x: Tensor, _ y: Tensor, _ f: (S) -> D) {
        let px = x.bytes.assumingMemoryBound(to: S.self), py = y.bytes.assumingMemoryBound(to: D.self)
        for i in 0..<x.count { py[i] = f(px[i]) }
    }
}

/// An element type Cast reads and writes, with the conversions of ONNX Runtime's Cast.
protocol CastElement {
    /// Whether values are read through `castDouble` (floating types) or `castInt64`.
    static var isFloating: Bool { get }
    /// The value as a Double (floating types).
    var castDouble: Double { get }
    /// The value as an Int64 (integer and bool types).
    var castInt64: Int64 { get }
    /// From a floating value: truncation toward zero, NaN → 0, range handled per type.
    init(castFrom v: Double)
    /// From an integer value: two's-complement wrapping for narrower types.
    init(castFrom v: Int64)
}

extension CastElement where Self: BinaryFloatingPoint {
    static var isFloating: Bool { true }
    var castDouble: Double { Double(self) }
    var castInt64: Int64 { Int64(castDouble) }
    init(castFrom v: Double) { self.init(v) }
    init(castFrom v: Int64) { self.init(v) }
}

extension CastElement where Self: FixedWidthInteger {
    static var isFloating: Bool { false }
    var castDouble: Double { Double(self) }
    var castInt64: Int64 { Int64(truncatingIfNeeded: self) }
    init(castFrom v: Int64) { self.init(truncatingIfNeeded: v) }
}

extension Float: CastElement {}
extension Double: CastElement {}

extension Int64: CastElement {
    init(castFrom v: Double) { self = v.isNaN ? 0 : Int64(Swift.max(Swift.min(v, 9.2e18), -9.2e18)) }
}

extension Int32: CastElement {
    init(castFrom v: Double) { self = v.isNaN ? 0 : Int32(Swift.max(Swift.min(v, Double(Int32.max)), Double(Int32.min))) }
}

extension Int8: CastElement {
    init(castFrom v: Double) { self.init(truncatingIfNeeded: Int64(castFrom: v)) }
}

extension UInt8: CastElement {
    init(castFrom v: Double) { self.init(truncatingIfNeeded: Int64(castFrom: v)) }
}

/// A bool element (one byte, 0 or 1); anything nonzero casts to true.
struct BoolElement: CastElement {
    var byte: UInt8

    static var isFloating: Bool { false }
    var castDouble: Double { Double(byte) }
    var castInt64: Int64 { Int64(byte) }
    init(castFrom v: Double) { byte = v != 0 ? 1 : 0 }
    init(castFrom v: Int64) { byte = v != 0 ? 1 : 0 }
}
