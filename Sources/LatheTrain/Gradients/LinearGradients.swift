import LatheCore

/// Gradients of Gemm and MatMul, through the GEMM seam.
enum LinearGradients {
    static func register(into registry: OpRegistry) throws {
        try registry.setGradient(opType: "Gemm") { try GemmGradient($0) }
        try registry.setGradient(opType: "MatMul") { _ in MatMulGradient() }
    }
}

/// `Y = alpha · A' · B' + beta · C`: `dA' = alpha · dY · B'ᵀ`, `dB' = alpha · A'ᵀ · dY`, `dC = beta · dY`
/// summed over C's broadcast axes.
final class GemmGradient: GradientKernel {
    let alpha: Float, beta: Float, transA: Bool, transB: Bool

    init(_ c: NodeContext) throws {
        alpha = try c.attributes.float("alpha", 1)
        beta = try c.attributes.float("beta", 1)
        transA = try c.attributes.int("transA", 0) != 0
        transB = try c.attributes.int("transB", 0) != 0
    }

    func backward(_ p: BackwardPass) throws {
        let a = try floatTensor(p.inputs, 0, "A"), b = try floatTensor(p.inputs, 1, "B")
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        let m = dy.shape[0], n = dy.shape[1], k = transA ? a.shape[0] : a.shape[1]
        let lda = a.shape[1], ldb = b.shape[1]
        if let da = slot(p.inputGradients, 0) {
            if transA {   // dA (k×m) = alpha · op(B) · dYᵀ
                gemmAccumulate(transA: transB, transB: true, m: k, n: m, k: n, alpha: alpha,
                               a: b.floats, lda: ldb, b: dy.floats, ldb: n, c: da.floats, ldc: m)
            } else {      // dA (m×k) = alpha · dY · op(B)ᵀ
                gemmAccumulate(transA: false, transB: !transB, m: m, n: k, k: n, alpha: alpha,
                               a: dy.floats, lda: n, b: b.floats, ldb: ldb, c: da.floats, ldc: k)
            }
        }
        if let db = slot(p.inputGradients, 1) {
            if transB {   // dB (n×k) = alpha · dYᵀ · op(A)
                gemmAccumulate(transA: true, transB: transA, m: n, n: k, k: m, alpha: alpha,
                               a: dy.floats, lda: n, b: a.floats, ldb: lda, c: db.floats, ldc: k)
            } else {      // dB (k×n) = alpha · op(A)ᵀ · dY
                gemmAccumulate(transA: !transA, transB: false, m: k, n: n, k: m, alpha: alpha,
                               a: a.floats, lda: lda, b: dy.floats, ldb: n, c: db.floats, ldc: n)
            }
        }
        if let dc = slot(p.inputGradients, 2), beta != 0 {
            accumulateReduced(dy, into: dc, scale: beta)
        }
    }
}

/// numpy-style MatMul: per broadcast batch, `dA += dY · Bᵀ`, `dB += Aᵀ · dY`, accumulating into the
/// operand's own batch slice (so broadcast batches sum). 1-D operands are promoted as in the forward.
final class MatMulGradient: GradientKernel {
    func backward(_ p: BackwardPass) throws {
        let a = try floatTensor(p.inputs, 0, "A"), b = try floatTensor(p.inputs, 1, "B")
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        let da = slot(p.inputGradients, 0), db = slot(p.inputGradients, 1)
        let a2 = a.rank == 1 ? [1, a.shape[0]] : a.shape
        let b2 = b.rank == 1 ? [b.shape[0], 1] : b.shape
        let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
        let batchA = Array(a2.dropLast(2)), batchB = Array(b2.dropLast(2))
        let batch = try ShapeMath.broadcast(batchA, batchB)
        let count = batch.reduce(1, *)
        if count == 0 || m == 0 || n == 0 { return }
        var offsets: [(Int, Int)] = []
        offsets.reserveCapacity(count)
        walkBroadcast(batch, batchA, batchB) { _, i, j in offsets.append((i, j)) }
        for (p, (i, j)) in offsets.enumerated() {
            let g = dy.floats + p * m * n
            if let da {
                gemmAccumulate(transA: false, transB: true, m: m, n: k, k: n, a: g, lda: n,
                               b: b.floats + j * k * n, ldb: n, c: da.floats + i * m * k, ldc: k)
            }
            if let db {
                gemmAccumulate(transA: true, transB: false, m: k, n: n, k: m, a: a.floats + i * m * k, lda: k,
                               b: g, ldb: n, c: db.floats + j * k * n, ldc: n)
            }
        }
    }
}
