import LatheCore

/// Comparisons (Equal, Greater, Less, GreaterOrEqual, LessOrEqual → bool), boolean logic (Not, And, Or, Xor)
/// and Where, all with multidirectional broadcasting.
enum LogicOps {
    /// Adds every op of the family to `registry`.
    static func register(into registry: OpRegistry) throws {
        try registry.add("Equal", since: 7) { c in try c.expectInputs(2...2); return CompareKernel(.equal) }
        try registry.add("Greater", since: 7) { c in try c.expectInputs(2...2); return CompareKernel(.greater) }
        try registry.add("Less", since: 7) { c in try c.expectInputs(2...2); return CompareKernel(.less) }
        try registry.add("GreaterOrEqual", since: 12) { c in try c.expectInputs(2...2); return CompareKernel(.greaterOrEqual) }
        try registry.add("LessOrEqual", since: 12) { c in try c.expectInputs(2...2); return CompareKernel(.lessOrEqual) }
        try registry.add("And", since: 7) { c in try c.expectInputs(2...2); return BooleanKernel(.and) }
        try registry.add("Or", since: 7) { c in try c.expectInputs(2...2); return BooleanKernel(.or) }
        try registry.add("Xor", since: 7) { c in try c.expectInputs(2...2); return BooleanKernel(.xor) }
        try registry.add("Not") { c in try c.expectInputs(1...1); return NotKernel() }
        try registry.add("Where", since: 9) { c in try c.expectInputs(3...3); return WhereKernel() }
    }
}

/// `C = A op B` as bool for operands of one dtype (float32, float64, int64, int32, int8, uint8 or bool).
final class CompareKernel: Kernel {
    enum Comparison: Sendable { case equal, greater, less, greaterOrEqual, lessOrEqual }
    let comparison: Comparison

    init(_ comparison: Comparison) { self.comparison = comparison }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let a = try require(inputs[0], "A", .float32, .float64, .int64, .int32, .int8, .uint8, .bool)
        let b = try require(inputs[1], "B", a.dtype)
        return [TensorType(.bool, try ShapeMath.broadcast(a.shape, b.shape))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let a = inputs[0]!, b = inputs[1]!, c = outputs[0]!
        func run<T: Comparable>(_: T.Type) {
            switch comparison {
            case .equal: broadcastMap(a, b, c) { (x: T, y: T) -> UInt8 in x == y ? 1 : 0 }
            case .greater: broadcastMap(a, b, c) { (x: T, y: T) -> UInt8 in x > y ? 1 : 0 }
            case .less: broadcastMap(a, b, c) { (x: T, y: T) -> UInt8 in x < y ? 1 : 0 }
            case .greaterOrEqual: broadcastMap(a, b, c) { (x: T, y: T) -> UInt8 in x >= y ? 1 : 0 }
            case .lessOrEqual: broadcastMap(a, b, c) { (x: T, y: T) -> UInt8 in x <= y ? 1 : 0 }
            }
        }
        switch a.dtype {
        case .float32: run(Float.self)
        case .float64: run(Double.self)
        case .int64: run(Int64.self)
        case .int32: run(Int32.self)
        case .int8: run(Int8.self)
        default: run(UInt8.self)
        }
    }
}

/// And, Or, Xor over bool tensors.
final class BooleanKernel: Kernel {
    enum Connective: Sendable { case and, or, xor }
    let connective: Connective

    init(_ connective: Connective) { self.connective = connective }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let a = try require(inputs[0], "A", .bool), b = try require(inputs[1], "B", .bool)
        return [TensorType(.bool, try ShapeMath.broadcast(a.shape, b.shape))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let a = inputs[0]!, b = inputs[1]!, c = outputs[0]!
        switch connective {
        case .and: broadcastMap(a, b, c) { (x: UInt8, y: UInt8) -> UInt8 in (x != 0 && y != 0) ? 1 : 0 }
        case .or: broadcastMap(a, b, c) { (x: UInt8, y: UInt8) -> UInt8 in (x != 0 || y != 0) ? 1 : 0 }
        case .xor: broadcastMap(a, b, c) { (x: UInt8, y: UInt8) -> UInt8 in (x != 0) != (y != 0) ? 1 : 0 }
        }
    }
}

/// Not over a bool tensor.
final class NotKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        [try require(inputs[0], "X", .bool)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!.bytes.assumingMemoryBound(to: UInt8.self), y = outputs[0]!.bytes.assumingMemoryBound(to: UInt8.self)
        for i in 0..<inputs[0]!.count { y[i] = x[i] == 0 ? 1 : 0 }
    }
}

/// Where: `condition ? X : Y` elementwise, the three broadcast together; X and Y of any one dtype.
final class WhereKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let condition = try require(inputs[0], "condition", .bool)
        let x = try requirePresent(inputs[1], "X")
        let y = try require(inputs[2], "Y", x.dtype)
        let shape = try ShapeMath.broadcast(try ShapeMath.broadcast(condition.shape, x.shape), y.shape)
        return [TensorType(x.dtype, shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let c = inputs[0]!, x = inputs[1]!, y = inputs[2]!, z = outputs[0]!
        func run<T>(_: T.Type) { broadcastMap3(c, x, y, z) { (k: UInt8, a: T, b: T) -> T in k != 0 ? a : b } }
        switch x.dtype.size {
        case 1: run(UInt8.self)
        case 4: run(UInt32.self)
        default: run(UInt64.self)
        }
    }
}
