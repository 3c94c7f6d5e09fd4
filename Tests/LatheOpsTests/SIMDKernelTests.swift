#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import LatheOps

/// `VectorMath.exp`, `sigmoid` and `tanh` against Glibc's double-precision functions rounded to float,
/// in ulps, on a dense sample of every float plus the special values; and the elementwise helpers
/// against their scalar definitions.
@Suite struct SIMDKernelTests {
    /// Distance in representable floats between `a` and `b` (both finite).
    static func ulps(_ a: Float, _ b: Float) -> Int {
        func ordered(_ x: Float) -> Int {
            let i = Int(Int32(bitPattern: x.bitPattern))
            return i < 0 ? Int(Int32.min) - i : i
        }
        return abs(ordered(a) - ordered(b))
    }

    /// Every 4099th float bit pattern (both signs, all exponents), a dense grid over [-110, 110],
    /// the thresholds of `exp` and the special values.
    static let samples: [Float] = {
        var xs: [Float] = []
        var bits: UInt32 = 0
        while true {
            let x = Float(bitPattern: bits)
            if x.isFinite { xs.append(x) }
            let (next, overflow) = bits.addingReportingOverflow(4099)
            if overflow { break }
            bits = next
        }
        for i in 0...220_000 { xs.append(-110 + Float(i) * 0.001) }
        for edge in [VectorMath.expOverflow, VectorMath.expUnderflow, -87.33655, 0.625, -0.625, 9, -9] {
            var v = edge
            for _ in 0..<40 { xs.append(v); v = v.nextUp }
            v = edge
            for _ in 0..<40 { xs.append(v); v = v.nextDown }
        }
        return xs + [0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .greatestFiniteMagnitude,
                     -.greatestFiniteMagnitude, .infinity, -.infinity, .nan]
    }()

    /// Applies `f` through `VectorMath.map` (odd length, so the padded tail is exercised too).
    static func mapped(_ xs: [Float], _ f: (VectorMath.V) -> VectorMath.V) -> [Float] {
        var ys = [Float](repeating: 0, count: xs.count)
        xs.withUnsafeBufferPointer { x in
            ys.withUnsafeMutableBufferPointer { y in VectorMath.map(x.baseAddress!, y.baseAddress!, count: xs.count, f) }
        }
        return ys
    }

    /// The largest ulp error of `f` against `reference` over the samples; NaN and infinities must match exactly.
    static func worstError(_ f: (VectorMath.V) -> VectorMath.V, _ reference: (Double) -> Double) -> (ulps: Int, at: Float) {
        worstError(mapped(samples, f), reference)
    }

    /// The largest ulp error of `ys` (computed from `samples`) against `reference`, as above.
    static func worstError(_ ys: [Float], _ reference: (Double) -> Double) -> (ulps: Int, at: Float) {
        let xs = samples
        var worst = (ulps: 0, at: Float(0))
        for (x, y) in zip(xs, ys) {
            let r = Float(reference(Double(x)))
            if r.isNaN || !r.isFinite || y.isNaN || !y.isFinite {
                let same = (r.isNaN && y.isNaN) || r == y
                if !same { return (Int.max, x) }
                continue
            }
            let e = ulps(y, r)
            if e > worst.ulps { worst = (e, x) }
        }
        return worst
    }

    @Test func expWithinOneUlp() {
        let worst = Self.worstError(VectorMath.exp) { Glibc.exp($0) }
        #expect(worst.ulps <= 1, "exp: \(worst.ulps) ulps at x = \(worst.at)")
    }

    @Test func sigmoidWithinTwoUlps() {
        let worst = Self.worstError(VectorMath.sigmoid) { 1 / (1 + Glibc.exp(-$0)) }
        #expect(worst.ulps <= 2, "sigmoid: \(worst.ulps) ulps at x = \(worst.at)")
    }

    @Test func tanhWithinTwoUlps() {
        let worst = Self.worstError(VectorMath.tanh) { Glibc.tanh($0) }
        #expect(worst.ulps <= 2, "tanh: \(worst.ulps) ulps at x = \(worst.at)")
    }

    @Test func specialValues() {
        let xs: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 100, -200]
        let e = Self.mapped(xs, VectorMath.exp), s = Self.mapped(xs, VectorMath.sigmoid)
        let t = Self.mapped(xs, VectorMath.tanh)
        #expect(e[0].isNaN && s[0].isNaN && t[0].isNaN)
        #expect(e[1] == .infinity && e[2] == 0 && e[3] == 1 && e[4] == 1 && e[5] == .infinity && e[6] == 0)
        #expect(s[1] == 1 && s[2] == 0 && s[3] == 0.5 && s[5] == 1 && s[6] == 0)
        #expect(t[1] == 1 && t[2] == -1 && t[3] == 0 && t[4] == 0 && t[4].sign == .minus && t[5] == 1 && t[6] == -1)
    }

    @Test func piecewiseMapsMatchScalarRules() {
        let xs: [Float] = [-3, -0.0, 0, 0.5, 7, .nan, -.infinity, .infinity, 2, -1e-30, 1e30, -5, 3, 0.25, -0.25, 9, 11]
        let relu = Self.mapped(xs, VectorMath.relu)
        let leaky = Self.mapped(xs) { VectorMath.leakyRelu($0, 0.1) }
        let clip = Self.mapped(xs) { VectorMath.clip($0, -1, 2) }
        for (i, x) in xs.enumerated() {
            let r = max(x, 0), l = x >= 0 ? x : 0.1 * x, c = min(max(x, -1), 2)
            #expect(relu[i].bitPattern == r.bitPattern || (r.isNaN && relu[i].isNaN), "relu(\(x))")
            #expect(leaky[i].bitPattern == l.bitPattern || (l.isNaN && leaky[i].isNaN), "leakyRelu(\(x))")
            #expect(clip[i].bitPattern == c.bitPattern || (c.isNaN && clip[i].isNaN), "clip(\(x))")
        }
    }

    @Test func binaryHelpers() {
        var rng = SeededRNG(11)
        for n in [0, 1, 15, 16, 17, 100] {
            let a = rng.floats(n, -5...5), b = rng.floats(n, -5...5)
            var sum = [Float](repeating: 0, count: n), product = sum, shifted = sum
            vectorAdd(a, b, &sum, count: n)
            vectorMultiply(a, b, &product, count: n)
            vectorAddScalar(a, 1.5, &shifted, count: n)
            #expect(sum == zip(a, b).map { $0 + $1 })
            #expect(product == zip(a, b).map { $0 * $1 })
            #expect(shifted == a.map { $0 + 1.5 })
        }
    }
}
