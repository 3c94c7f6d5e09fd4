import LatheCore
import LatheOps

/// The float32 tensor in slot `i`, or an error naming the slot (gradients are float32 only).
func floatTensor(_ tensors: [Tensor?], _ i: Int, _ what: String) throws -> Tensor {
    guard i < tensors.count, let t = tensors[i] else { throw LatheError.invalid("gradient needs \(what), which is missing") }
    guard t.dtype == .float32 else { throw LatheError.dtype("gradients are float32 only; \(what) is \(t.dtype)") }
    return t
}

/// The gradient slot `i` of `tensors` if wired, else nil.
func slot(_ tensors: [Tensor?], _ i: Int) -> Tensor? { i < tensors.count ? tensors[i] : nil }

/// Visits every element of a broadcast result of shape `out` with the matching offsets into operands
/// of shapes `a` and `b` (numpy broadcasting): `body(outputOffset, aOffset, bOffset)`.
@inline(__always)
func walkBroadcast(_ out: [Int], _ a: [Int], _ b: [Int], _ body: (Int, Int, Int) -> Void) {
    let rank = out.count
    func strides(_ s: [Int]) -> [Int] {
        let padded = [Int](repeating: 1, count: rank - s.count) + s
        let natural = ShapeMath.strides(padded)
        return (0..<rank).map { padded[$0] == 1 ? 0 : natural[$0] }
    }
    let sa = strides(a), sb = strides(b)
    let count = out.reduce(1, *)
    if count == 0 { return }
    if rank == 0 { body(0, 0, 0); return }
    let inner = out[rank - 1], ia = sa[rank - 1], ib = sb[rank - 1]
    var index = [Int](repeating: 0, count: rank)
    var o = 0
    while o < count {
        var offA = 0, offB = 0
        for d in 0..<(rank - 1) { offA += index[d] * sa[d]; offB += index[d] * sb[d] }
        for j in 0..<inner { body(o + j, offA + j * ia, offB + j * ib) }
        o += inner
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            if index[d] < out[d] { break }
            index[d] = 0
            d -= 1
        }
    }
}

/// `target += source`, where `source` has the broadcast shape of `target`: sums over broadcast axes.
func accumulateReduced(_ source: Tensor, into target: Tensor, scale: Float = 1) {
    let t = target.floats, s = source.floats
    if source.shape == target.shape {
        for i in 0..<source.count { t[i] += scale * s[i] }
        return
    }
    if target.rank == 1, source.rank >= 1, source.shape[source.rank - 1] == target.count {   // a bias: sum the rows
        let n = target.count, rows = n == 0 ? 0 : source.count / n
        for r in 0..<rows { for j in 0..<n { t[j] += scale * s[r * n + j] } }
        return
    }
    walkBroadcast(source.shape, target.shape, target.shape) { o, i, _ in t[i] += scale * s[o] }
}

/// `C += alpha · op(A) · op(B)` through the GEMM seam (row-major, beta 1).
@inline(__always)
func gemmAccumulate(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                    c: UnsafeMutablePointer<Float>, ldc: Int) {
    if k == 0 { return }
    packageSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                 beta: 1, c: c, ldc: ldc)
}

/// Tensors a gradient kernel keeps from one step to the next (saved activations, scratch), so a
/// steady-state training step does not allocate them: slot `i` is allocated again only when its element
/// count changes (the kernel reads them as flat float arrays). A kernel object belongs to one engine,
/// which runs one pass at a time (hence unchecked Sendable).
final class ReusedTensors: @unchecked Sendable {
    private var tensors: [Tensor?] = []
    private var list: [Tensor] = []

    /// Slot `i`: `count` floats (allocated as `shape` when new), filled with zeros as a new tensor is.
    func zeroed(_ i: Int, count: Int, shape: @autoclosure () -> [Int]) throws -> Tensor {
        let t = try tensor(i, count: count, shape: shape())
        t.bytes.initializeMemory(as: UInt8.self, repeating: 0, count: t.byteCount)
        return t
    }

    /// Slot `i`: `count` floats (allocated as `shape` when new); contents left from the previous use.
    func tensor(_ i: Int, count: Int, shape: @autoclosure () -> [Int]) throws -> Tensor {
        if i < tensors.count, let t = tensors[i], t.count == count { return t }
        while tensors.count <= i { tensors.append(nil) }
        let t = try Tensor(.float32, shape: shape())
        tensors[i] = t
        return t
    }

    /// Slots `0..<count` as one array (kept while they hold the same tensors): a kernel's saved tensors.
    func first(_ count: Int) -> [Tensor] {
        if list.count != count || zip(list, tensors).contains(where: { $0.bytes != $1?.bytes }) {
            list = tensors[0..<count].map { $0! }
        }
        return list
    }
}

/// What a gradient kernel derives from its input shape (window geometry, tap tables), kept while the
/// shape repeats so a steady-state step does not rebuild it. Used by one engine, one pass at a time
/// (hence unchecked Sendable).
final class ShapeCache<Value>: @unchecked Sendable {
    private var shape: [Int]?
    private var value: Value?

    /// The value for `shape`: the kept one when `shape` is the last one asked for, else `make()` (kept).
    func value(for shape: [Int], _ make: () throws -> Value) rethrows -> Value {
        if let value, self.shape == shape { return value }
        let made = try make()
        self.shape = shape
        value = made
        return made
    }
}

/// A gradient that can also run as the backward of its op fused with a following Relu (the engine's
/// `fusingRelus`): it then reads the Relu's output gradient masked by the Relu's output being positive.
protocol ReluMaskableGradient: GradientKernel {
    /// The backward pass given the Relu's output as the op's output (`pass.outputs[0]`) and the Relu
    /// output's gradient as the op's output gradient.
    func backward(_ pass: BackwardPass, reluOutput: Tensor?) throws
    /// This gradient wrapped to take the fused Relu's output and output gradient.
    func readingThroughRelu() -> any GradientKernel
}

/// The backward of an op fused with the Relu after it: `pass.outputs[0]` is the Relu's output and
/// `pass.outputGradients[0]` its gradient, which the op's gradient masks by `output > 0` as it reads it.
final class ReluMaskedGradient: GradientKernel {
    let inner: any ReluMaskableGradient

    init(_ inner: any ReluMaskableGradient) { self.inner = inner }

    func trainingForward(_ inputs: [Tensor?], _ outputs: [Tensor?], seed: UInt64) throws -> [Tensor]? {
        try inner.trainingForward(inputs, outputs, seed: seed)
    }

    func backward(_ pass: BackwardPass) throws {
        try inner.backward(pass, reluOutput: try floatTensor(pass.outputs, 0, "the fused Relu's output Y"))
    }
}

/// `out[i] = y[i] > 0 ? dy[i] : 0` (dY through a Relu whose output is `y`) for `count` floats; returns
/// Σ out, summed in 16 lanes and then across them (a fixed order, so repeatable).
func maskByPositive(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                    count: Int) -> Float {
    var lanes = SIMD16<Float>(), i = 0
    while i + 16 <= count {
        let d: SIMD16<Float> = loadVector(dy + i), v: SIMD16<Float> = loadVector(y + i)
        let masked = SIMD16<Float>().replacing(with: d, where: v .> 0)
        storeVector(masked, out + i)
        lanes += masked
        i += 16
    }
    var sum = lanes.sum()
    while i < count {
        let masked = y[i] > 0 ? dy[i] : 0
        out[i] = masked
        sum += masked
        i += 1
    }
    return sum
}

/// Σ x[i] for `count` floats, in 16 lanes and then across them (a fixed order, so repeatable).
func lanewiseSum(_ x: UnsafePointer<Float>, count: Int) -> Float {
    var lanes = SIMD16<Float>(), i = 0
    while i + 16 <= count {
        let v: SIMD16<Float> = loadVector(x + i)
        lanes += v
        i += 16
    }
    var sum = lanes.sum()
    while i < count { sum += x[i]; i += 1 }
    return sum
}

/// `dst[i] += src[i]` for `count` floats, in vectors of 16, 8 and 4 lanes, then one at a time.
@inline(__always)
func addRow(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        let sum: SIMD16<Float> = loadVector(dst + i) + loadVector(src + i)
        storeVector(sum, dst + i)
        i += 16
    }
    if i + 8 <= count {
        storeVector(loadVector(dst + i) + loadVector(src + i) as SIMD8<Float>, dst + i)
        i += 8
    }
    if i + 4 <= count {
        storeVector(loadVector(dst + i) + loadVector(src + i) as SIMD4<Float>, dst + i)
        i += 4
    }
    while i < count { dst[i] += src[i]; i += 1 }
}

/// A vector of floats loaded from `p` (no alignment needed).
@inline(__always) func loadVector<V: SIMD>(_ p: UnsafePointer<Float>) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

/// Stores a vector of floats at `p` (no alignment needed).
@inline(__always) func storeVector<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}
