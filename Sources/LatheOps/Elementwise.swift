import LatheCore

/// Binary arithmetic with numpy broadcasting: Add, Sub, Mul, Div (float32, float64, int64, int32, int8, uint8).
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

    /// Form for the other floating-point types (float64).
    @inline(__always) func apply<T: FloatingPoint>(_ a: T, _ b: T) -> T {
        switch self {
        case .add: a + b
        case .sub: a - b
        case .mul: a * b
        case .div: a / b
        }
    }

    /// Integer form: wrapping like ONNX Runtime; division truncates toward zero, and x/0 is 0 rather than
    /// a trap (as is `min / -1`, which wraps to `min`).
    @inline(__always) func apply<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
        switch self {
        case .add: a &+ b
        case .sub: a &- b
        case .mul: a &* b
        case .div: b == 0 ? 0 : (T.isSigned && b == 0 &- 1 ? 0 &- a : a / b)
        }
    }
}

/// Add, Sub, Mul or Div with numpy broadcasting; optionally a fused activation on float32 results.
final class BinaryKernel: Kernel {
    let op: BinaryOperator
    let label: String
    /// Applied to every float32 output element after the operator.
    let activation: FusedActivation?

    init(_ context: NodeContext, _ op: BinaryOperator) throws {
        try context.expectInputs(2...2)
        if context.opset < 7, context.attributes.has("broadcast") {
            throw LatheError(.unsupportedOp, "\(context.label): legacy 'broadcast' attribute (opset < 7) is not supported")
        }
        self.op = op
        self.label = context.label
        self.activation = nil
    }

    private init(op: BinaryOperator, label: String, activation: FusedActivation?) {
        self.op = op
        self.label = label
        self.activation = activation
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let a = try require(inputs[0], "A", .float32, .float64, .int64, .int32, .int8, .uint8)
        let b = try require(inputs[1], "B", .float32, .float64, .int64, .int32, .int8, .uint8)
        guard a.dtype == b.dtype else { throw LatheError.dtype("inputs have different dtypes \(a.dtype) and \(b.dtype)") }
        return [TensorType(a.dtype, try ShapeMath.broadcast(a.shape, b.shape))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let a = inputs[0]!, b = inputs[1]!, c = outputs[0]!
        switch c.dtype {
        case .float32:
            let op = self.op
            if let activation, a.count == c.count, b.count == c.count {
                // Equal shapes: apply the activation block by block while the results are in cache.
                let pa = a.floats, pb = b.floats, pc = c.floats, n = c.count, block = 1024
                var start = 0
                while start < n {
                    let end = min(n, start + block)
                    for i in start..<end { pc[i] = op.apply(pa[i], pb[i]) }
                    activation.apply(pc + start, count: end - start)
                    start = end
                }
                return
            }
            broadcastApply(a, b, c, as: Float.self) { x, y in op.apply(x, y) }
            applyActivation(activation, c.floats, count: c.count)
        case .int64: broadcastApply(a, b, c, as: Int64.self) { [op] x, y in op.apply(x, y) }
        case .float64: broadcastApply(a, b, c, as: Double.self) { [op] x, y in op.apply(x, y) }
        case .int32: broadcastApply(a, b, c, as: Int32.self) { [op] x, y in op.apply(x, y) }
        case .int8: broadcastApply(a, b, c, as: Int8.self) { [op] x, y in op.apply(x, y) }
        case .uint8: broadcastApply(a, b, c, as: UInt8.self) { [op] x, y in op.apply(x, y) }
        default: throw LatheError.dtype("unsupported dtype \(c.dtype)")
        }
    }

    var outputMemory: OutputMemory { .inPlace }

    func fused(with activation: FusedActivation) -> (any Kernel)? {
        self.activation == nil ? BinaryKernel(op: op, label: label, activation: activation) : nil
    }

    /// `x + c`, `c + x` or `x - c` with a float32 constant `c` that varies along at most one axis of `x`
    /// and does not grow it: a per-channel shift.
    func channelAffine(_ inputs: [TensorType?], constants: [Tensor?]) -> ChannelAffine? {
        guard activation == nil, op == .add || op == .sub, inputs.count == 2,
              let ta = inputs[0], let tb = inputs[1], ta.dtype == .float32, tb.dtype == .float32 else { return nil }
        let xSlot: Int
        if constants[1] != nil && constants[0] == nil { xSlot = 0 } else if op == .add && constants[0] != nil && constants[1] == nil { xSlot = 1 } else { return nil }
        let x = inputs[xSlot]!, c = constants[1 - xSlot]!
        let rank = x.shape.count
        guard rank >= 1, c.rank <= rank, (try? ShapeMath.broadcast(x.shape, c.shape)) == x.shape else { return nil }
        let padded = [Int](repeating: 1, count: rank - c.rank) + c.shape
        let varying = padded.indices.filter { padded[$0] != 1 }
        guard varying.count <= 1 else { return nil }
        let axis = varying.first ?? rank - 1
        let sign: Float = op == .sub ? -1 : 1
        let shift = (0..<x.shape[axis]).map { sign * c.floats[varying.isEmpty ? 0 : $0] }
        return ChannelAffine(input: xSlot, axis: axis, scale: nil, shift: shift)
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
    let rank = c.rank
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * rank) { scratch in
        let sa = scratch.baseAddress!, sb = sa + rank, index = sb + rank
        /// Element strides of `t` broadcast to `c`'s rank: 0 along broadcast axes.
        func broadcastStrides(_ t: Tensor, into strides: UnsafeMutablePointer<Int>) {
            var step = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                let k = d - (rank - t.rank)
                let size = k >= 0 ? t.shape[k] : 1
                strides[d] = size == 1 ? 0 : step
                step *= size
            }
        }
        broadcastStrides(a, into: sa)
        broadcastStrides(b, into: sb)
        for d in 0..<rank { index[d] = 0 }
        let shape = c.shape
        let inner = shape[rank - 1]
        let ia = sa[rank - 1], ib = sb[rank - 1]
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
}
