import CLatheShims
import LatheCore

/// Gemm and MatMul (float32), computed by the BLAS `sgemm`.
enum LinearOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Gemm") { try GemmKernel($0) }
        try registry.add("MatMul") { c in try c.expectInputs(2...2); return MatMulKernel() }
    }
}

/// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, row-major, with leading dimensions.
/// The one seam through which every matrix product in Lathe goes.
func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
}

/// Gemm: `Y = alpha · A' · B' + beta · C`, C broadcast to `[M, N]` (opsets 1–21).
final class GemmKernel: Kernel {
    let alpha: Float, beta: Float, transA: Bool, transB: Bool

    init(_ c: NodeContext) throws {
        try c.expectInputs(2...3)
        alpha = try c.attributes.float("alpha", 1)
        beta = try c.attributes.float("beta", 1)
        transA = try c.attributes.int("transA", 0) != 0
        transB = try c.attributes.int("transB", 0) != 0
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let a = try require(inputs[0], "A", .float32), b = try require(inputs[1], "B", .float32)
        try requireRank(a, "A", 2...2)
        try requireRank(b, "B", 2...2)
        let (m, ka) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard ka == kb else { throw LatheError.shape("A' is \(m)×\(ka) but B' is \(kb)×\(n): inner dimensions differ") }
        if inputs.count > 2, let c = inputs[2] {
            _ = try require(c, "C", .float32)
            let bc = try ShapeMath.broadcast(c.shape, [m, n])
            guard bc == [m, n] else { throw LatheError.shape("C of shape \(c.shape) does not broadcast to [\(m), \(n)]") }
        }
        return [TensorType(.float32, [m, n])]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let a = inputs[0]!, b = inputs[1]!, y = outputs[0]!
        let m = y.shape[0], n = y.shape[1]
        let k = transA ? a.shape[0] : a.shape[1]
        var beta: Float = 0
        if inputs.count > 2, let c = inputs[2], self.beta != 0 {
            // Broadcast C into Y, then accumulate the product on top.
            let cs = [Int](repeating: 1, count: 2 - c.rank) + c.shape
            let rowStride = cs[0] == 1 ? 0 : cs[1]
            let colStride = cs[1] == 1 ? 0 : 1
            for i in 0..<m { for j in 0..<n { y.floats[i * n + j] = c.floats[i * rowStride + j * colStride] } }
            beta = self.beta
        }
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
              a: a.floats, lda: a.shape[1], b: b.floats, ldb: b.shape[1], beta: beta, c: y.floats, ldc: n)
    }
}

/// MatMul with numpy semantics: 1-D operands promoted and squeezed back, batch dims broadcast.
final class MatMulKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let a = try require(inputs[0], "A", .float32), b = try require(inputs[1], "B", .float32)
        guard a.shape.count >= 1, b.shape.count >= 1 else { throw LatheError.shape("MatMul operands must have rank >= 1, got \(a.shape) and \(b.shape)") }
        let layout = try MatMulLayout(a.shape, b.shape)
        return [TensorType(.float32, layout.outputShape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let a = inputs[0]!, b = inputs[1]!, y = outputs[0]!
        let l = try MatMulLayout(a.shape, b.shape)
        let aStrides = ShapeMath.strides(l.batchA), bStrides = ShapeMath.strides(l.batchB)
        let batchCount = l.batch.reduce(1, *)
        if batchCount == 0 || l.m == 0 || l.n == 0 { return }
        // Batch A folded into M when B is shared: one large GEMM.
        if l.batchB.allSatisfy({ $0 == 1 }) && l.batchA == l.batch {
            sgemm(transA: false, transB: false, m: batchCount * l.m, n: l.n, k: l.k, alpha: 1,
                  a: a.floats, lda: l.k, b: b.floats, ldb: l.n, beta: 0, c: y.floats, ldc: l.n)
            return
        }
        var index = [Int](repeating: 0, count: l.batch.count)
        for p in 0..<batchCount {
            var r = p
            for d in stride(from: l.batch.count - 1, through: 0, by: -1) { index[d] = r % l.batch[d]; r /= l.batch[d] }
            var offA = 0, offB = 0
            for d in 0..<l.batch.count {
                if l.batchA[d] != 1 { offA += index[d] * aStrides[d] }
                if l.batchB[d] != 1 { offB += index[d] * bStrides[d] }
            }
            sgemm(transA: false, transB: false, m: l.m, n: l.n, k: l.k, alpha: 1,
                  a: a.floats + offA * l.m * l.k, lda: l.k, b: b.floats + offB * l.k * l.n, ldb: l.n,
                  beta: 0, c: y.floats + p * l.m * l.n, ldc: l.n)
        }
    }
}

/// Shapes of a numpy-style matrix product.
struct MatMulLayout {
    let m: Int, n: Int, k: Int
    /// Broadcast batch shape and each operand's batch shape padded to its rank.
    let batch: [Int], batchA: [Int], batchB: [Int]
    let outputShape: [Int]

    init(_ sa: [Int], _ sb: [Int]) throws {
        let a2 = sa.count == 1 ? [1, sa[0]] : sa
        let b2 = sb.count == 1 ? [sb[0], 1] : sb
        m = a2[a2.count - 2]; k = a2[a2.count - 1]
        n = b2[b2.count - 1]
        guard b2[b2.count - 2] == k else {
            throw LatheError.shape("MatMul inner dimensions differ: \(sa) × \(sb)")
        }
        let ba = Array(a2.dropLast(2)), bb = Array(b2.dropLast(2))
        batch = try ShapeMath.broadcast(ba, bb)
        batchA = [Int](repeating: 1, count: batch.count - ba.count) + ba
        batchB = [Int](repeating: 1, count: batch.count - bb.count) + bb
        var out = batch
        if sa.count > 1 { out.append(m) }
        if sb.count > 1 { out.append(n) }
        outputShape = out
    }
}
