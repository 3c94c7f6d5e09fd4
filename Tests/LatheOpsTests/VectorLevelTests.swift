#if canImport(Glibc)
import Glibc
#endif
import CLatheShims
import Testing
@testable import LatheOps

/// The C kernels of every instruction-set level this CPU runs (`lts_vector_kernels_at`): bit for bit
/// the same as Swift's `VectorMath` (so the same error bounds against Glibc hold, checked again here),
/// and the dispatched entry points use the best level. A level the CPU lacks is skipped (trait below).
@Suite struct VectorLevelTests {
    /// Whether this CPU runs `level`.
    static func has(_ level: lts_vector_level) -> Bool { lts_vector_kernels_at(level) != nil }

    @Test func baseline() { Self.check(lts_vector_level_baseline) }

    @Test(.enabled(if: has(lts_vector_level_avx2), "this CPU lacks AVX2 or FMA"))
    func avx2() { Self.check(lts_vector_level_avx2) }

    @Test(.enabled(if: has(lts_vector_level_avx512), "this CPU lacks AVX-512 F/DQ/VL/BW"))
    func avx512() { Self.check(lts_vector_level_avx512) }

    @Test func dispatchedUsesBestLevel() {
        let best = lts_best_vector_level()
        #expect(lts_vector_kernels_active() == lts_vector_kernels_at(best))
        if Self.has(lts_vector_level_avx512) { #expect(best == lts_vector_level_avx512) }
        let xs = SIMDKernelTests.samples
        #expect(Self.bits(Self.run(lts_vector_sigmoid, xs)) == Self.bits(SIMDKernelTests.mapped(xs, VectorMath.sigmoid)))
        #expect(Self.bits(Self.run(lts_vector_tanh, xs)) == Self.bits(SIMDKernelTests.mapped(xs, VectorMath.tanh)))
    }

    typealias Map = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int, UnsafePointer<Float>?) -> Void

    /// `f` over `xs` (into a separate buffer, and again in place, which must agree), with `bias` if given.
    static func run(_ f: Map, _ xs: [Float], bias: Float? = nil) -> [Float] {
        var ys = [Float](repeating: 0, count: xs.count)
        var inPlace = xs
        withUnsafePointer(to: bias ?? 0) { b in
            let biasPointer = bias == nil ? nil : b
            xs.withUnsafeBufferPointer { x in
                ys.withUnsafeMutableBufferPointer { f(x.baseAddress, $0.baseAddress, xs.count, biasPointer) }
            }
            inPlace.withUnsafeMutableBufferPointer { f($0.baseAddress, $0.baseAddress, xs.count, biasPointer) }
        }
        #expect(bits(inPlace) == bits(ys))
        return ys
    }

    /// The bit patterns of `xs`, every NaN as the quiet NaN (the sign of a NaN result is not part of
    /// the contract; Swift's and C's code order differ in which NaN operand propagates).
    static func bits(_ xs: [Float]) -> [UInt32] { xs.map { $0.isNaN ? Float.nan.bitPattern : $0.bitPattern } }

    /// Every check of one level.
    static func check(_ level: lts_vector_level) {
        let k = lts_vector_kernels_at(level)!.pointee
        let xs = SIMDKernelTests.samples  // odd count: the padded tail is exercised
        let exp = run(k.exp, xs), sigmoid = run(k.sigmoid, xs), tanh = run(k.tanh, xs)
        #expect(bits(exp) == bits(SIMDKernelTests.mapped(xs, VectorMath.exp)))
        #expect(bits(sigmoid) == bits(SIMDKernelTests.mapped(xs, VectorMath.sigmoid)))
        #expect(bits(tanh) == bits(SIMDKernelTests.mapped(xs, VectorMath.tanh)))
        // The documented bounds, measured directly on this level's output.
        #expect(SIMDKernelTests.worstError(exp) { Glibc.exp($0) }.ulps <= 1)
        #expect(SIMDKernelTests.worstError(sigmoid) { 1 / (1 + Glibc.exp(-$0)) }.ulps <= 2)
        #expect(SIMDKernelTests.worstError(tanh) { Glibc.tanh($0) }.ulps <= 2)
        // Special values: NaN, ±inf, ±0 (tanh keeps −0), overflow and underflow.
        let special: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 100, -200]
        let e = run(k.exp, special), s = run(k.sigmoid, special), t = run(k.tanh, special)
        #expect(e[0].isNaN && s[0].isNaN && t[0].isNaN)
        #expect(e[1] == .infinity && e[2] == 0 && e[3] == 1 && e[4] == 1 && e[5] == .infinity && e[6] == 0)
        #expect(s[1] == 1 && s[2] == 0 && s[3] == 0.5 && s[5] == 1 && s[6] == 0)
        #expect(t[1] == 1 && t[2] == -1 && t[3] == 0 && t[4].sign == .minus && t[5] == 1 && t[6] == -1)
        // With a bias: f(x + bias), as the Swift map computes it.
        let shortXs = Array(xs.prefix(1001))
        #expect(bits(run(k.sigmoid, shortXs, bias: 0.375))
                == bits(SIMDKernelTests.mapped(shortXs) { VectorMath.sigmoid($0 + 0.375) }))
        #expect(bits(run(k.tanh, shortXs, bias: -1.5))
                == bits(SIMDKernelTests.mapped(shortXs) { VectorMath.tanh($0 + -1.5) }))
        for hidden in [1, 15, 16, 17, 50, 64] { checkLSTMStep(k, hidden: hidden) }
    }

    /// One LSTM cell step against the same arithmetic through `VectorMath`, element by element.
    static func checkLSTMStep(_ k: lts_vector_kernels, hidden: Int) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(hidden)
        func random() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int(state >> 40) - (1 << 23)) / Float(1 << 21)  // about [-4, 4)
        }
        let width = 4 * hidden
        var gate = (0..<width).map { _ in random() }
        let projected = (0..<width).map { _ in random() }, bias = (0..<width).map { _ in random() }
        var h = [Float](repeating: 0, count: hidden), c = (0..<hidden).map { _ in random() }
        // Reference: the general path's steps.
        let pre = (0..<width).map { gate[$0] + (projected[$0] + bias[$0]) }
        let sig = SIMDKernelTests.mapped(pre, VectorMath.sigmoid), th = SIMDKernelTests.mapped(pre, VectorMath.tanh)
        let cExpected = (0..<hidden).map { j in sig[2 * hidden + j] * c[j] + sig[j] * th[3 * hidden + j] }
        let tc = SIMDKernelTests.mapped(cExpected, VectorMath.tanh)
        let hExpected = (0..<hidden).map { j in sig[hidden + j] * tc[j] }
        gate.withUnsafeMutableBufferPointer { g in
            k.lstm_step(g.baseAddress, projected, bias, &h, &c, hidden)
        }
        #expect(bits(c) == bits(cExpected), "hidden \(hidden)")
        #expect(bits(h) == bits(hExpected), "hidden \(hidden)")
    }
}
