import LatheCore

/// Cast between float32, float64, int32, int64, int8, uint8 and bool (C conversion rules:
/// float → int truncates toward zero, out-of-range values saturate; anything → bool is `!= 0`).
enum CastOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Cast", since: 6) { try CastKernel($0) }
        try registry.add("CastLike", since: 15) { c in try c.expectInputs(2...2); return CastKernel(target: nil) }
    }
}

final class CastKernel: Kernel {
    /// The target dtype; nil for CastLike (taken from input 1).
    let target: DType?

    init(target: DType?) { self.target = target }

    convenience init(_ c: NodeContext) throws {
        try c.expectInputs(1...1)
        guard let code = try c.attributes.int("to") else { throw LatheError.invalid("\(c.label): attribute 'to' is required") }
        self.init(target: try DType(onnxCode: code))
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "input")
        let to = try target ?? requirePresent(inputs[1], "target_type").dtype
        return [TensorType(to, x.shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        if x.dtype == y.dtype { copyElements(x, to: y); return }
        let n = x.count
        // Go through Int64 for integer sources (exact), Double for floating sources.
        if x.dtype == .float32 || x.dtype == .float64 {
            let read: (Int) -> Double = x.dtype == .float32
                ? { Double(x.floats[$0]) } : { x.bytes.assumingMemoryBound(to: Double.self)[$0] }
            for i in 0..<n { store(double: read(i), into: y, at: i) }
        } else {
            let values = x.intArray()
            for i in 0..<n { store(int: Int64(values[i]), into: y, at: i) }
        }
    }

    @inline(__always) private func store(double v: Double, into y: Tensor, at i: Int) {
        switch y.dtype {
        case .float32: y.floats[i] = Float(v)
        case .float64: y.bytes.assumingMemoryBound(to: Double.self)[i] = v
        case .bool: y.bytes.assumingMemoryBound(to: UInt8.self)[i] = v != 0 ? 1 : 0
        case .int64: y.int64s[i] = v.isNaN ? 0 : Int64(max(min(v, 9.2e18), -9.2e18))
        case .int32: y.bytes.assumingMemoryBound(to: Int32.self)[i] = v.isNaN ? 0 : Int32(max(min(v, Double(Int32.max)), Double(Int32.min)))
        case .int8: y.bytes.assumingMemoryBound(to: Int8.self)[i] = v.isNaN ? 0 : Int8(truncatingIfNeeded: Int64(max(min(v, 1e18), -1e18)))
        case .uint8: y.bytes.assumingMemoryBound(to: UInt8.self)[i] = v.isNaN ? 0 : UInt8(truncatingIfNeeded: Int64(max(min(v, 1e18), -1e18)))
        }
    }

    @inline(__always) private func store(int v: Int64, into y: Tensor, at i: Int) {
        switch y.dtype {
        case .float32: y.floats[i] = Float(v)
        case .float64: y.bytes.assumingMemoryBound(to: Double.self)[i] = Double(v)
        case .bool: y.bytes.assumingMemoryBound(to: UInt8.self)[i] = v != 0 ? 1 : 0
        case .int64: y.int64s[i] = v
        case .int32: y.bytes.assumingMemoryBound(to: Int32.self)[i] = Int32(truncatingIfNeeded: v)
        case .int8: y.bytes.assumingMemoryBound(to: Int8.self)[i] = Int8(truncatingIfNeeded: v)
        case .uint8: y.bytes.assumingMemoryBound(to: UInt8.self)[i] = UInt8(truncatingIfNeeded: v)
        }
    }
}
