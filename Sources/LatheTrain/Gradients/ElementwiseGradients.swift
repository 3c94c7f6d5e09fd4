import LatheCore

/// Gradients of Add, Sub, Mul and Div with numpy broadcasting: each operand's gradient is summed
/// over the axes along which it was broadcast.
enum ElementwiseGradients {
    static func register(into registry: OpRegistry) throws {
        for (op, kind) in [("Add", BinaryGradient.Kind.add), ("Sub", .sub), ("Mul", .mul), ("Div", .div)] {
            try registry.setGradient(opType: op) { _ in BinaryGradient(kind) }
        }
    }
}

/// `dA`, `dB` of `Y = A ∘ B` for ∘ in + − × ÷.
final class BinaryGradient: GradientKernel {
    /// Which arithmetic op.
    enum Kind: Sendable { case add, sub, mul, div }
    let kind: Kind

    init(_ kind: Kind) { self.kind = kind }

    func backward(_ p: BackwardPass) throws {
        let a = try floatTensor(p.inputs, 0, "A"), b = try floatTensor(p.inputs, 1, "B")
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        let da = slot(p.inputGradients, 0), db = slot(p.inputGradients, 1)
        let g = dy.floats, x = a.floats, y = b.floats
        switch kind {
        case .add, .sub:
            if let da { accumulateReduced(dy, into: da) }
            if let db { accumulateReduced(dy, into: db, scale: kind == .add ? 1 : -1) }
        case .mul:
            if let da { let d = da.floats; walkBroadcast(dy.shape, a.shape, b.shape) { o, i, j in d[i] += g[o] * y[j] } }
            if let db { let d = db.floats; walkBroadcast(dy.shape, a.shape, b.shape) { o, i, j in d[j] += g[o] * x[i] } }
        case .div:
            if let da { let d = da.floats; walkBroadcast(dy.shape, a.shape, b.shape) { o, i, j in d[i] += g[o] / y[j] } }
            if let db {
                let d = db.floats
                walkBroadcast(dy.shape, a.shape, b.shape) { o, i, j in d[j] -= g[o] * x[i] / (y[j] * y[j]) }
            }
        }
    }
}
