import LatheCore

/// Binary arithmetic with numpy broadcasting: Add, Sub, Mul, Div (float32, int64, int32).
enum ElementwiseOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Add") { try BinaryKernel($0, .add) }
        try registry.add("Sub") { try BinaryKernel($0, .sub) }
        try registry.add("Mul") { try BinaryKernel($0, .mul) }
        try registry.add("Div") { try BinaryKernel($0, .div) }
    }
}

/// The four arithmetic operators.
enum BinaryOperator: Sendable {
    case add, sub, mul, div

    @inline(__always) func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: a + b
        case .sub: a - b
        case .mul: a * b
        case .div: a / b
        }
    }

    /// Integer form; division truncates toward zero like ONNX Runtime, and x/0 is 0 rather than a trap.
    @inline(__always) func apply<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
        switch self {
        case .add: a &+ b
        case .sub: a &- b
        case .mul: a &* b
        case .div: b == 0 ? 0 : (b == -1 ? 0 &- a : a / b)
        }
    }
}

final class BinaryKernel: Kernel {
    let op: BinaryOperator
    let label: String

    init(_ context: NodeContext, _ op: BinaryOperator) throws {
        try context.expectInputs(2...2)
        if context.opset < 7, context.attributes.has("broadcast") {
            throw LatheError(.unsupportedOp, "\(context.label): legacy 'broadcast' attribute (opset < 7) is not supported")
        }
        self.op = op
        self.label = context.label
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let a = try require(inputs[0], "A", .float32, .int64, .int32)
        let b = try require(inputs[1], "B", .float32, .int64, .int32)
        guard a.dtype == b.dtype else { throw LatheError.dtype("inputs have different dtypes \(a.dtype) and \(b.dtype)") }
        return [TensorType(a.dtype, try ShapeMath.broadcast(a.shape, b.shape))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let a = inputs[0]!, b = inputs[1]!, c = outputs[0]!
        switch c.dtype {
        case .float32: broadcastApply(a, b, c, as: Float.self) { [op] x, y in op.apply(x, y) }
        case .int64: broadcastApply(a, b, c, as: Int64.self) { [op] x, y in op.apply(x, y) }
        case .int32: broadcastApply(a, b, c, as: Int32.self) { [op] x, y in op.apply(x, y) }
        default: throw LatheError.dtype("unsupported dtype \(c.dtype)")
        }
    }
}

/// Applies `f` elementwise over `a` and `b` broadcast to `c`'s shape.
/// Fast paths: equal shapes, scalar operand, and any layout where the innermost run is contiguous.
@inline(__always)
func broadcastApply<T>(_ a: Tensor, _ b: Tensor, _ c: Tensor, as: T.Type, _ f: (T, T) -> T) {
    let pa = a.bytes.assumingMemoryBound(to: T.self)
    let pb = b.bytes.assumingMemoryBound(to: T.self)
    let pc = c.bytes.assumingMemoryBound(to: T.self)
    let n = c.count
    if n == 0 { return }
    if a.count == n && b.count == n {
        for i in 0..<n { pc[i] = f(pa[i], pb[i]) }
        return
    }
    if b.count == 1 && a.count == n {
        let y = pb[0]
        for i in 0..<n { pc[i] = f(pa[i], y) }
        return
    }
    if a.count == 1 && b.count == n {
        let x = pa[0]
        for i in 0..<n { pc[i] = f(x, pb[i]) }
        return
    }
    let shape = c.shape
    let rank = shape.count
    func broadcastStrides(_ s: [Int]) -> [Int] {
        let padded = [Int](repeating: 1, count: rank - s.count) + s
        let strides = ShapeMath.strides(padded)
        return (0..<rank).map { padded[$0] == 1 ? 0 : strides[$0] }
    }
    let sa = broadcastStrides(a.shape), sb = broadcastStrides(b.shape)
    let inner = shape[rank - 1]
    let ia = sa[rank - 1], ib = sb[rank - 1]
    var index = [Int](repeating: 0, count: rank)
    var offA = 0, offB = 0, offC = 0
    while offC < n {
        for j in 0..<inner { pc[offC + j] = f(pa[offA + j * ia], pb[offB + j * ib]) }
        offC += inner
        // Advance the outer index (odometer), keeping input offsets in step.
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            offA += sa[d]; offB += sb[d]
            if index[d] < shape[d] { break }
            offA -= sa[d] * shape[d]; offB -= sb[d] * shape[d]
            index[d] = 0
            d -= 1
        }
        if d < 0 { break }
    }
}
