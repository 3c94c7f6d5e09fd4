import CLatheShims
import Testing

/// `lts_gemm_rows` (gemm_small.c), the product behind small Gemm/MatMul layers: every instruction-set
/// level this CPU runs against a float64 reference, and all levels bit for bit equal.
@Suite struct SmallGemmTests {
    /// Levels this CPU runs.
    static var levels: [lts_vector_level] {
        [lts_vector_level_baseline, lts_vector_level_avx2, lts_vector_level_avx512].filter { lts_gemm_rows_at($0) != nil }
    }

    /// C (m×n, leading dimension n + 3) after `f` with the given operands; C starts as `c0`.
    static func product(_ f: lts_gemm_rows_fn, m: Int, n: Int, k: Int, transA: Bool, alpha: Float, beta: Float,
                        a: [Float], b: [Float], c0: [Float]) -> [Float] {
        var c = c0
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    f(m, n, k, alpha, ap.baseAddress, transA ? 1 : k, transA ? m : 1, bp.baseAddress, n + 1, beta,
                      cp.baseAddress, n + 3)
                }
            }
        }
        return c
    }

    @Test(arguments: [(1, 1, 1), (1, 12, 8), (1, 32, 16), (3, 17, 7), (2, 64, 5), (1, 70, 33), (4, 130, 9)])
    func everyLevelMatchesFloat64AndEachOther(_ shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        var rng = SeededRNG(UInt64(m * 10_000 + n * 100 + k))
        let a = rng.floats(m * k), b = rng.floats(k * (n + 1))
        let c0 = rng.floats(m * (n + 3))
        for transA in [false, true] {
            for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1.5)] {
                // With beta 0, C must not be read: NaN there must not leak into the result.
                let start = beta == 0 ? [Float](repeating: .nan, count: c0.count) : c0
                var results: [[Float]] = []
                for level in Self.levels {
                    let c = Self.product(lts_gemm_rows_at(level)!, m: m, n: n, k: k, transA: transA, alpha: alpha,
                                         beta: beta, a: a, b: b, c0: start)
                    var worst = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum = 0.0, magnitude = 0.0
                            for p in 0..<k {
                                let term = Double(a[transA ? p * m + i : i * k + p]) * Double(b[p * (n + 1) + j])
                                sum += term
                                magnitude += abs(term)
                            }
                            let expected = Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(c0[i * (n + 3) + j]))
                            worst = max(worst, abs(Double(c[i * (n + 3) + j]) - expected) / max(1, magnitude))
                        }
                        // Columns past n (the leading-dimension padding) are untouched.
                        for j in n..<(n + 3) { #expect(c[i * (n + 3) + j].bitPattern == start[i * (n + 3) + j].bitPattern) }
                    }
                    #expect(worst < 1e-5, "level \(level.rawValue), transA \(transA): relative error \(worst)")
                    results.append(c)
                }
                for r in results.dropFirst() {
                    #expect(r.map(\.bitPattern) == results[0].map(\.bitPattern), "levels differ for \(shape)")
                }
            }
        }
    }

    @Test func dispatchedUsesBestLevel() {
        let best = lts_best_vector_level()
        let (m, n, k) = (2, 19, 6)
        var rng = SeededRNG(5)
        let a = rng.floats(m * k), b = rng.floats(k * (n + 1)), c0 = rng.floats(m * (n + 3))
        let viaEntry = Self.product({ lts_gemm_rows($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) }, m: m, n: n, k: k,
                                    transA: false, alpha: 1, beta: 1, a: a, b: b, c0: c0)
        let viaBest = Self.product(lts_gemm_rows_at(best)!, m: m, n: n, k: k, transA: false, alpha: 1, beta: 1,
                                   a: a, b: b, c0: c0)
        #expect(viaEntry.map(\.bitPattern) == viaBest.map(\.bitPattern))
    }
}
