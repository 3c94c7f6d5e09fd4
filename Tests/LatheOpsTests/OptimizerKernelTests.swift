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
}
