import CLatheShims
import Testing

/// `lts_adam_update` (optimizer_kernels.c) at every instruction-set level this CPU runs: bit for bit the
/// scalar Adam loop it replaced in Optimizer.swift, including the ragged end and zero/huge moments.
@Suite struct OptimizerKernelTests {
    @Test(arguments: [1, 15, 16, 17, 100, 1_027])
    func everyLevelEqualsTheScalarLoop(_ n: Int) {
        var rng = SeededRNG(UInt64(n))
        let g0 = rng.floats(n, -3...3), w0 = rng.floats(n)
        var m0 = rng.floats(n, -0.5...0.5), v0 = rng.floats(n, 0...2)
        m0[0] = 0
        v0[0] = 0
        if n > 2 { v0[2] = 1e30 }
        let (step, c1, c2, eps): (Float, Float, Float, Float) = (1e-3 * 0.7, 1 - 0.9, 1 - 0.999, 1e-7)
        var w = w0, m = m0, v = v0
        for i in 0..<n {
            m[i] += (g0[i] - m[i]) * c1
            v[i] += (g0[i] * g0[i] - v[i]) * c2
            w[i] -= step * m[i] / (v[i].squareRoot() + eps)
        }
        let levels = [lts_vector_level_baseline, lts_vector_level_avx2, lts_vector_level_avx512]
        for level in levels {
            guard let update = lts_adam_update_at(level) else { continue }
            var lw = w0, lm = m0, lv = v0
            update(&lw, g0, &lm, &lv, n, step, c1, c2, eps)
            #expect(lw.map(\.bitPattern) == w.map(\.bitPattern), "w at level \(level.rawValue)")
            #expect(lm.map(\.bitPattern) == m.map(\.bitPattern), "m at level \(level.rawValue)")
            #expect(lv.map(\.bitPattern) == v.map(\.bitPattern), "v at level \(level.rawValue)")
        }
    }

    @Test func firstNonFiniteFindsTheFirstNaNOrInfinity() {
        for n in [0, 1, 15, 64, 65, 200] {
            #expect(lts_first_non_finite([Float](repeating: 1, count: n), n) == -1, "all finite, n \(n)")
            for position in Set([0, n / 2, n - 1, max(0, n - 17)]) where position >= 0 && position < n {
                for bad in [Float.nan, .infinity, -.infinity, -.nan] {
                    var x = (0..<n).map { Float($0) * 1e30 }
                    x[position] = bad
                    if position + 3 < n { x[position + 3] = .nan }
                    #expect(lts_first_non_finite(x, n) == position, "n \(n), \(bad) at \(position)")
                }
            }
        }
        // The largest finite float and subnormals are finite.
        let edge: [Float] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, 0, -0.0]
        #expect(lts_first_non_finite(edge, edge.count) == -1)
    }
}
