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
    if m * n * k <= smallProductLimit {
        smallGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: c, ldc: ldc)
        return
    }
    if m == 1 {
        // A single row: a matrix-vector product, which the BLAS runs with far less set-up. With beta 0
        // the row is cleared first, so stale arena bytes (even NaN) cannot leak through `0 · c`.
        let incA = blasint(transA ? lda : 1)
        if beta == 0 { c.update(repeating: 0, count: n) }
        if transB {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(n), blasint(k), alpha, b, blasint(ldb), a, incA, beta, c, 1)
        } else {
            cblas_sgemv(CblasRowMajor, CblasTrans, blasint(k), blasint(n), alpha, b, blasint(ldb), a, incA, beta, c, 1)
        }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
}

/// Products of at most this many multiply-adds run as direct loops: a BLAS call's set-up costs more.
let smallProductLimit = 4096

/// `sgemm` for tiny products (a small MLP's layers at batch 1): with B as stored, vectorised over n in C
/// (`lts_gemm_rows`); against a transposed B, dot products vectorised over k. With beta 0, C is not read.
private func smallGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                       a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if !transB {
        // C = alpha·A·B + beta·C, vectorised over N with the sums in registers (gemm_small.c).
        lts_gemm_rows(m, n, k, alpha, a, transA ? 1 : lda, transA ? lda : 1, b, ldb, beta, c, ldc)
        return
    }
    let width = VectorMath.width
    for i in 0..<m {
        let row = c + i * ldc
        /// Element p of row i of op(A).
        @inline(__always) func aAt(_ p: Int) -> Float { transA ? a[p * lda + i] : a[i * lda + p] }
        // Each output is a dot product of row i of op(A) with row j of B.
        for j in 0..<n {
            let bRow = b + j * ldb
            var acc = VectorMath.V()
            var p = 0
            if !transA {
                let aRow = a + i * lda
                while p + width <= k {
                    acc += VectorMath.load(aRow + p) * VectorMath.load(bRow + p)
                    p += width
                }
            }
            var sum = acc.sum()
            while p < k { sum += aAt(p) * bRow[p]; p += 1 }
            row[j] = beta == 0 ? alpha * sum : alpha * sum + beta * row[j]
        }
    }
}

/// Splits the `m` rows of an `m×n×k` product into contiguous chunks, one per lane of `pool`, when the
/// product is large enough to pay for the hand-off; `body(lo, hi)` computes rows `lo..<hi`.
/// Each row's arithmetic is the same however the rows are split.
@inline(__always)
func forRowChunks(m: Int, n: Int, k: Int, pool: ThreadPool, _ body: (Int, Int) -> Void) {
    let lanes = pool.threadCount
    guard lanes > 1, m >= 2 * lanes, m * n * max(k, 1) >= 1 << 17 else { body(0, m); return }
    let chunk = (m + lanes - 1) / lanes
    pool.parallelFor(lanes) { lane in
        let lo = lane * chunk, hi = min(m, lo + chunk)
        if lo < hi { body(lo, hi) }
    }
}

/// Gemm: `Y = act(alpha · A' · B' + beta · C)`, C broadcast to `[M, N]` (opsets 1–21); the activation
/// is present only after a fusion pass.
final class GemmKernel: Kernel {
    let alpha: Float, beta: Float, transA: Bool, transB: Bool
    /// Applied to every output element (fused Relu, Sigmoid, ...).
    let activation: FusedActivation?
    /// A constant B given transposed (`transB`), stored K×N at plan time when the product is small enough
    /// for `smallGemm`, which then runs vectorised over N instead of as N dot products.
    let transposedB: Tensor?

    init(_ c: NodeContext) throws {
        try c.expectInputs(2...3)
        alpha = try c.attributes.float("alpha", 1)
        beta = try c.attributes.float("beta", 1)
        transA = try c.attributes.int("transA", 0) != 0
        transB = try c.attributes.int("transB", 0) != 0
        activation = nil
        transposedB = nil
    }

    init(alpha: Float, beta: Float, transA: Bool, transB: Bool, activation: FusedActivation?,
         transposedB: Tensor? = nil) {
        self.alpha = alpha
        self.beta = beta
        self.transA = transA
        self.transB = transB
        self.activation = activation
        self.transposedB = transposedB
    }

    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel {
        guard transB, transposedB == nil, let a = inputs[0], let b = constants[1], b.dtype == .float32, b.rank == 2
        else { return self }
        let n = b.shape[0], k = b.shape[1], m = a.shape.count == 2 ? (transA ? a.shape[1] : a.shape[0]) : 0
        guard m * n * k <= smallProductLimit else { return self }
        let t = try Tensor(.float32, shape: [k, n])
        for j in 0..<n { for p in 0..<k { t.floats[p * n + j] = b.floats[j * k + p] } }
        return GemmKernel(alpha: alpha, beta: beta, transA: transA, transB: transB, activation: activation,
                          transposedB: t)
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
        try compute(inputs, outputs, context: .serial)
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], context: RunContext) throws {
        // Shapes and pointers are read in place: copying a Tensor retains its storage and shape, which at
        // batch 1 on a small MLP costs more than the product.
        let m = outputs[0].unsafelyUnwrapped.shape[0], n = outputs[0].unsafelyUnwrapped.shape[1]
        let k = inputs[0].unsafelyUnwrapped.shape[transA ? 0 : 1], lda = inputs[0].unsafelyUnwrapped.shape[1]
        let ap = UnsafePointer(inputs[0].unsafelyUnwrapped.floats), y = outputs[0].unsafelyUnwrapped.floats
        // A plan-time transposed constant B replaces B (same product, B' stored K×N).
        let bp: UnsafePointer<Float>, ldb: Int, transB: Bool
        if let t = transposedB {
            (bp, ldb, transB) = (UnsafePointer(t.floats), t.shape[1], false)
        } else {
            (bp, ldb, transB) = (UnsafePointer(inputs[1].unsafelyUnwrapped.floats), inputs[1].unsafelyUnwrapped.shape[1], self.transB)
        }
        // C's pointer and strides when broadcast to [M, N] (0 along broadcast axes).
        var cp: UnsafePointer<Float>? = nil, rowStride = 0, colStride = 0
        if inputs.count > 2, beta != 0, let cShape = inputs[2]?.shape {
            cp = UnsafePointer(inputs[2].unsafelyUnwrapped.floats)
            rowStride = cShape.count == 2 && cShape[0] != 1 ? cShape[1] : 0
            colStride = cShape.count >= 1 && cShape[cShape.count - 1] != 1 ? 1 : 0
        }
        let (alpha, betaC, transA, activation) = (self.alpha, self.beta, self.transA, self.activation)
        forRowChunks(m: m, n: n, k: k, pool: context.pool) { lo, hi in
            let rows = hi - lo
            let yp = y + lo * n
            var beta: Float = 0
            if let cp {
                // Broadcast C into Y, then accumulate the product on top.
                for i in lo..<hi {
                    let row = yp + (i - lo) * n, src = cp + i * rowStride
                    if colStride == 1 { row.update(from: src, count: n) } else { row.update(repeating: src[0], count: n) }
                }
                beta = betaC
            }
            sgemm(transA: transA, transB: transB, m: rows, n: n, k: k, alpha: alpha,
                  a: transA ? ap + lo : ap + lo * lda, lda: lda, b: bp, ldb: ldb,
                  beta: beta, c: yp, ldc: n)
            applyActivation(activation, yp, count: rows * n)
        }
    }

    var outputMemory: OutputMemory { .none }

    func fused(with activation: FusedActivation) -> (any Kernel)? {
        guard self.activation == nil else { return nil }
        return GemmKernel(alpha: alpha, beta: beta, transA: transA, transB: transB, activation: activation,
                          transposedB: transposedB)
    }

    /// Folds a per-column affine into B (scale) and C (`beta·C·scale + shift`), both plan-time constants.
    func absorbing(_ affine: ChannelAffine, _ inputs: [TensorType?], constants: [Tensor?]) throws
        -> (kernel: any Kernel, constants: [Int: Tensor])? {
        guard activation == nil, affine.axis == 1, let a = inputs[0], let bType = inputs[1] else { return nil }
        let m = transA ? a.shape[1] : a.shape[0], n = transB ? bType.shape[0] : bType.shape[1]
        guard affine.shift.count == n, affine.scale.map({ $0.count == n }) ?? true else { return nil }
        let cType = inputs.count > 2 ? inputs[2] : nil
        let cConst = constants.count > 2 ? constants[2] : nil
        if cType != nil && cConst == nil { return nil }
        var replaced: [Int: Tensor] = [:]
        if let scale = affine.scale {
            guard let b = constants[1] else { return nil }
            let scaled = try b.copy()
            let rows = bType.shape[0], cols = bType.shape[1]
            for r in 0..<rows { for col in 0..<cols { scaled.floats[r * cols + col] *= scale[transB ? r : col] } }
            replaced[1] = scaled
        }
        // The new C: per row only when the old C varied along M.
        let perRow = cConst.map { $0.rank == 2 && $0.shape[0] != 1 } ?? false
        let newC = try Tensor(.float32, shape: perRow ? [m, n] : [n])
        for i in 0..<(perRow ? m : 1) {
            for j in 0..<n {
                var v: Float = 0
                if let c = cConst, beta != 0 {
                    let rowStride = c.rank == 2 && c.shape[0] != 1 ? c.shape[1] : 0
                    let colStride = c.rank >= 1 && c.shape[c.rank - 1] != 1 ? 1 : 0
                    v = beta * c.floats[i * rowStride + j * colStride]
                }
                if let scale = affine.scale { v *= scale[j] }
                newC.floats[i * n + j] = v + affine.shift[j]
            }
        }
        replaced[2] = newC
        return (GemmKernel(alpha: alpha, beta: 1, transA: transA, transB: transB, activation: nil), replaced)
    }
}

/// MatMul with numpy semantics: 1-D operands promoted and squeezed back, batch dims broadcast.
/// After the fusion passes it may also add a bias (input 2, `[N]`) and apply an activation.
final class MatMulKernel: Kernel {
    /// Applied to every output element.
    let activation: FusedActivation?
    /// The layout for the input shapes of the plan (set by `specialized`).
    let layout: MatMulLayout?

    init(activation: FusedActivation? = nil, layout: MatMulLayout? = nil) {
        self.activation = activation
        self.layout = layout
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let a = try require(inputs[0], "A", .float32), b = try require(inputs[1], "B", .float32)
        guard a.shape.count >= 1, b.shape.count >= 1 else { throw LatheError.shape("MatMul operands must have rank >= 1, got \(a.shape) and \(b.shape)") }
        let layout = try MatMulLayout(a.shape, b.shape)
        return [TensorType(.float32, layout.outputShape)]
    }

    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel {
        guard let a = inputs[0], let b = inputs[1] else { return self }
        return MatMulKernel(activation: activation, layout: try MatMulLayout(a.shape, b.shape))
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        try compute(inputs, outputs, context: .serial)
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], context: RunContext) throws {
        let a = inputs[0]!, b = inputs[1]!, y = outputs[0]!
        let l = try layout ?? MatMulLayout(a.shape, b.shape)
        let batchCount = l.batchCount
        if batchCount == 0 || l.m == 0 || l.n == 0 { return }
        let bias = inputs.count > 2 ? inputs[2] : nil
        let activation = self.activation
        /// Bias and activation over `rows` output rows from `yp`.
        func finish(_ yp: UnsafeMutablePointer<Float>, rows: Int) {
            if let bias {
                for r in 0..<rows { let row = yp + r * l.n; for j in 0..<l.n { row[j] += bias.floats[j] } }
            }
            applyActivation(activation, yp, count: rows * l.n)
        }
        // Batch A folded into M when B is shared: one large GEMM.
        if l.sharedB {
            let m = batchCount * l.m
            forRowChunks(m: m, n: l.n, k: l.k, pool: context.pool) { lo, hi in
                sgemm(transA: false, transB: false, m: hi - lo, n: l.n, k: l.k, alpha: 1,
                      a: a.floats + lo * l.k, lda: l.k, b: b.floats, ldb: l.n, beta: 0, c: y.floats + lo * l.n, ldc: l.n)
                finish(y.floats + lo * l.n, rows: hi - lo)
            }
            return
        }
        for p in 0..<batchCount {
            let (offA, offB) = l.operandOffsets(p)
            sgemm(transA: false, transB: false, m: l.m, n: l.n, k: l.k, alpha: 1,
                  a: a.floats + offA * l.m * l.k, lda: l.k, b: b.floats + offB * l.k * l.n, ldb: l.n,
                  beta: 0, c: y.floats + p * l.m * l.n, ldc: l.n)
            finish(y.floats + p * l.m * l.n, rows: l.m)
        }
    }

    func fused(with activation: FusedActivation) -> (any Kernel)? {
        self.activation == nil ? MatMulKernel(activation: activation, layout: layout) : nil
    }

    /// Folds a shift along the last axis into a bias input, and a scale into a constant 2-D B.
    func absorbing(_ affine: ChannelAffine, _ inputs: [TensorType?], constants: [Tensor?]) throws
        -> (kernel: any Kernel, constants: [Int: Tensor])? {
        guard activation == nil, inputs.count == 2, let a = inputs[0], let bType = inputs[1] else { return nil }
        let l = try MatMulLayout(a.shape, bType.shape)
        guard bType.shape.count >= 2, affine.axis == l.outputShape.count - 1, affine.shift.count == l.n else { return nil }
        var replaced: [Int: Tensor] = [:]
        if let scale = affine.scale {
            guard bType.shape.count == 2, let b = constants[1] else { return nil }
            let scaled = try b.copy()
            for r in 0..<l.k { for j in 0..<l.n { scaled.floats[r * l.n + j] *= scale[j] } }
            replaced[1] = scaled
        }
        replaced[2] = try Tensor(shape: [l.n], floats: affine.shift)
        return (MatMulKernel(activation: nil, layout: layout), replaced)
    }
}

/// Shapes of a numpy-style matrix product.
struct MatMulLayout: Sendable {
    let m: Int, n: Int, k: Int
    /// Broadcast batch shape and each operand's batch shape padded to its rank.
    let batch: [Int], batchA: [Int], batchB: [Int]
    let outputShape: [Int]
    /// Number of matrix products.
    let batchCount: Int
    /// Whether B is one matrix shared by the whole batch of A (then one GEMM does it all).
    let sharedB: Bool
    /// Per product, the A and B matrix indices, interleaved.
    private let offsets: [Int]

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
        batchCount = batch.reduce(1, *)
        sharedB = batchB.allSatisfy { $0 == 1 } && batchA == batch
        let aStrides = ShapeMath.strides(batchA), bStrides = ShapeMath.strides(batchB)
        var offsets: [Int] = []
        if !sharedB {
            var index = [Int](repeating: 0, count: batch.count)
            for p in 0..<batchCount {
                var r = p
                for d in stride(from: batch.count - 1, through: 0, by: -1) { index[d] = r % batch[d]; r /= batch[d] }
                var offA = 0, offB = 0
                for d in 0..<batch.count {
                    if batchA[d] != 1 { offA += index[d] * aStrides[d] }
                    if batchB[d] != 1 { offB += index[d] * bStrides[d] }
                }
                offsets += [offA, offB]
            }
        }
        self.offsets = offsets
    }

    /// Which A and B matrices (counted in matrices) product `p` of the batch multiplies.
    @inline(__always) func operandOffsets(_ p: Int) -> (Int, Int) { (offsets[2 * p], offsets[2 * p + 1]) }
}
