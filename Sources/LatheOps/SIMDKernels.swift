/// Vectorised float32 loops over `SIMD16<Float>`: loads, stores and maps of contiguous buffers, and
/// `exp`, `sigmoid` and `tanh` as polynomials (no libm call per element).
///
/// Accuracy against Glibc's double-precision `exp`/`tanh` rounded to float (`SIMDKernelTests`: every
/// 4099th float bit pattern, a 0.001 grid over [-110, 110], the thresholds): measured `exp` ≤ 1 ulp,
/// `sigmoid` ≤ 2 ulp, `tanh` ≤ 1 ulp (tested bounds 1, 2, 2), including subnormal results; overflow
/// to +inf and flush to 0 where `expf` does; NaN in → NaN out; ±inf give the limits; tanh keeps −0. Every element goes through the same
/// vector arithmetic, tails included, so results do not depend on a buffer's length or alignment.
///
/// Swift code here compiles for baseline x86-64 (four lanes at a time), so the hot array forms of `exp`,
/// `sigmoid`, `tanh` and the LSTM cell step are C copies of this arithmetic, compiled per instruction-set
/// level and picked once per process (`lts_vector_sigmoid` etc. in `CLatheShims/vector_kernels.c`);
/// `VectorLevelTests` holds every level to these functions bit for bit. Change both together.
enum VectorMath {
    /// The vector every kernel here works on.
    typealias V = SIMD16<Float>
    /// Lanes of `V`.
    static let width = 16

    /// Loads 16 floats from `p` (no alignment needed).
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    /// Stores 16 floats to `p` (no alignment needed).
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// Loads the first `count` (< 16) floats of `p`, the other lanes 0.
    @inline(__always) static func loadPartial(_ p: UnsafePointer<Float>, _ count: Int) -> V {
        var v = V()
        withUnsafeMutableBytes(of: &v) { $0.baseAddress!.copyMemory(from: p, byteCount: count * MemoryLayout<Float>.size) }
        return v
    }

    /// Stores the first `count` (< 16) lanes of `v` to `p`.
    @inline(__always) static func storePartial(_ v: V, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        withUnsafeBytes(of: v) { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: count * MemoryLayout<Float>.size) }
    }

    /// `y[i] = f(x[i])` for `count` floats, 16 at a time; the tail goes through one padded vector.
    /// `x` may equal `y`.
    @inline(__always) static func map(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                      _ f: (V) -> V) {
        var i = 0
        while i + width <= count {
            store(f(load(x + i)), y + i)
            i += width
        }
        if i < count { storePartial(f(loadPartial(x + i, count - i)), y + i, count - i) }
    }

    /// `c[i] = f(a[i], b[i])` for `count` floats (`c` may equal `a` or `b`).
    @inline(__always) static func zip(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                      _ c: UnsafeMutablePointer<Float>, count: Int, _ f: (V, V) -> V) {
        var i = 0
        while i + width <= count {
            store(f(load(a + i), load(b + i)), c + i)
            i += width
        }
        if i < count {
            let n = count - i
            storePartial(f(loadPartial(a + i, n), loadPartial(b + i, n)), c + i, n)
        }
    }

    /// The integer bits of `v`.
    @inline(__always) static func bits(_ v: V) -> SIMD16<UInt32> { unsafeBitCast(v, to: SIMD16<UInt32>.self) }
    /// The float with bits `b`.
    @inline(__always) static func float(_ b: SIMD16<UInt32>) -> V { unsafeBitCast(b, to: V.self) }

    /// `|v|` (clears the sign bit; NaN stays NaN).
    @inline(__always) static func abs(_ v: V) -> V { float(bits(v) & 0x7FFF_FFFF) }

    /// Above this, `expf` overflows to +inf.
    static let expOverflow: Float = 88.72283935546875
    /// Below this, `expf` is 0 (e^x under half the smallest subnormal).
    static let expUnderflow: Float = -103.97208

    /// `e^x` lane by lane: `x = n·ln2 + r` with |r| ≤ ln2/2 (ln2 in two parts), a degree-6 polynomial
    /// for `e^r` (the Cephes `expf` coefficients) and `2^n` built in the exponent bits in two halves,
    /// so subnormal results are exact to one rounding.
    @inline(__always) static func exp(_ x: V) -> V {
        let clamped = x.replacing(with: expOverflow, where: x .> expOverflow)
            .replacing(with: expUnderflow, where: x .< expUnderflow)
        // Round to nearest by the 1.5·2^23 trick: the low bits of `t` then hold n.
        let magic: Float = 12_582_912
        let t = clamped * 1.442_695_04 + magic
        let n = t - magic
        let r = (clamped - n * 0.693_359_375) - n * -2.121_944_4e-4
        let r2 = r * r
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let er = p * r2 + r + 1
        let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let half = ni &>> 1
        let scale1 = unsafeBitCast((half &+ 127) &<< 23, to: V.self)
        let scale2 = unsafeBitCast((ni &- half &+ 127) &<< 23, to: V.self)
        return (er * scale1 * scale2)
            .replacing(with: .infinity, where: x .> expOverflow)
            .replacing(with: 0, where: x .< expUnderflow)
    }

    /// The logistic function `1 / (1 + e^-x)`, as `e^-|x|` based fractions so it is accurate on both
    /// sides (tiny, even subnormal, results for very negative x).
    @inline(__always) static func sigmoid(_ x: V) -> V {
        let e = exp(-abs(x))
        return V(repeating: 1).replacing(with: e, where: x .< 0) / (1 + e)
    }

    /// `tanh(x)`: an odd polynomial for |x| < 0.625 (Cephes `tanhf`), `1 − 2 / (e^{2|x|} + 1)` with
    /// the sign of x above.
    @inline(__always) static func tanh(_ x: V) -> V {
        let a = abs(x)
        let z = x * x
        var p = V(repeating: -5.704_988_727_45e-3)
        p = p * z + 2.063_908_879_54e-2
        p = p * z - 5.373_971_555_31e-2
        p = p * z + 1.333_144_220_36e-1
        p = p * z - 3.333_328_194_22e-1
        let small = p * z * x + x
        let large = 1 - 2 / (exp(a + a) + 1)
        let magnitude = abs(large.replacing(with: small, where: a .< 0.625))
        return float(bits(magnitude) | (bits(x) & 0x8000_0000))
    }

    /// `max(x, 0)` with `Swift.max`'s rules: NaN stays NaN, −0 becomes +0.
    @inline(__always) static func relu(_ x: V) -> V { x.replacing(with: 0, where: x .<= 0) }

    /// `x >= 0 ? x : alpha·x`.
    @inline(__always) static func leakyRelu(_ x: V, _ alpha: Float) -> V {
        x.replacing(with: x * alpha, where: x .< 0)
    }

    /// `min(max(x, lo), hi)` with `Swift.min`/`Swift.max`'s rules (NaN stays NaN).
    @inline(__always) static func clip(_ x: V, _ lo: Float, _ hi: Float) -> V {
        let a = x.replacing(with: lo, where: x .<= lo)
        return a.replacing(with: hi, where: a .> hi)
    }
}

/// `c = a + b` over `count` floats, vectorised; for elementwise kernels with equal-shaped operands.
func vectorAdd(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, count: Int) {
    VectorMath.zip(a, b, c, count: count) { $0 + $1 }
}

/// `c = a · b` over `count` floats, vectorised; for elementwise kernels with equal-shaped operands.
func vectorMultiply(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, count: Int) {
    VectorMath.zip(a, b, c, count: count) { $0 * $1 }
}

/// `y = x + value` over `count` floats (`x` may equal `y`).
func vectorAddScalar(_ x: UnsafePointer<Float>, _ value: Float, _ y: UnsafeMutablePointer<Float>, count: Int) {
    VectorMath.map(x, y, count: count) { $0 + value }
}
