#if canImport(Glibc)
import Glibc
#endif
import CLatheShims
import Testing

/// The LSTM step kernels of every instruction-set level this CPU runs (`lts_recurrent_kernels_at`) against
/// a double-precision reference of the same step, over the tile shapes (1–9 batch rows; hidden sizes that
/// are whole chunks of 16, end in a partial chunk, or end in 1–4 units of the squeezed panel), strided rows
/// and the in-place uses (gates over the pre-activations, one cell-state array). Tolerance: 2e-5 absolute (values are O(1); float32 rounding of a 70-term product).
@Suite struct RecurrentKernelTests {
    static let levels = [lts_vector_level_baseline, lts_vector_level_avx2, lts_vector_level_avx512]
        .filter { lts_recurrent_kernels_at($0) != nil }
    static let tolerance = 2e-5

    /// A deterministic value in about [-1, 1).
    struct Numbers {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int(state >> 40) - (1 << 23)) / Float(1 << 23)
        }
        mutating func array(_ count: Int, scale: Float = 1) -> [Float] { (0..<count).map { _ in scale * next() } }
    }

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + Glibc.exp(-x)) }

    static func worst(_ a: [Float], _ b: [Double]) -> Double {
        zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
    }

    @Test func activeIsBestLevel() {
        #expect(lts_recurrent_kernels_active() == lts_recurrent_kernels_at(lts_best_vector_level()))
    }

    @Test(arguments: [1, 4, 15, 16, 17, 20, 50, 64, 70])
    func forwardMatchesReference(hidden: Int) {
        for level in Self.levels {
            for batch in [1, 2, 3, 4, 5, 6, 7, 9] { Self.checkForward(level, batch: batch, hidden: hidden) }
        }
    }

    @Test(arguments: [1, 15, 16, 17, 50])
    func backwardMatchesReference(hidden: Int) {
        for level in Self.levels {
            for batch in [1, 3] { Self.checkBackward(level, batch: batch, hidden: hidden) }
        }
    }

    /// One forward step with strided h rows, a bias, gates written over the pre-activations and c in place.
    static func checkForward(_ level: lts_vector_level, batch: Int, hidden: Int) {
        var numbers = Numbers(state: UInt64(batch * 1000 + hidden))
        let width = 4 * hidden, hStride = hidden + 3, preStride = width + 5
        let r = numbers.array(width * hidden, scale: 0.5), bias = numbers.array(width)
        let hPrev = numbers.array(batch * hStride), cStart = numbers.array(batch * hidden)
        var pre = numbers.array(batch * preStride)
        var packed = [Float](repeating: .nan, count: lts_lstm_packed_count(hidden))
        lts_lstm_pack_recurrence(r, hidden, &packed)
        // Reference.
        var gatesRef = [Double](repeating: 0, count: batch * width), cRef = [Double](repeating: 0, count: batch * hidden)
        var hRef = cRef, tanhRef = cRef
        for b in 0..<batch {
            var a = [Double](repeating: 0, count: width)
            for j in 0..<width {
                var sum = Double(pre[b * preStride + j]) + Double(bias[j])
                for k in 0..<hidden { sum += Double(r[j * hidden + k]) * Double(hPrev[b * hStride + k]) }
                a[j] = j < 3 * hidden ? sigmoid(sum) : Glibc.tanh(sum)
            }
            for j in 0..<hidden {
                let c = a[2 * hidden + j] * Double(cStart[b * hidden + j]) + a[j] * a[3 * hidden + j]
                cRef[b * hidden + j] = c
                tanhRef[b * hidden + j] = Glibc.tanh(c)
                hRef[b * hidden + j] = a[hidden + j] * Glibc.tanh(c)
            }
            for j in 0..<width { gatesRef[b * width + j] = a[j] }
        }
        var c = cStart, hNext = [Float](repeating: .nan, count: batch * hStride), tanhC = [Float](repeating: .nan, count: batch * hidden)
        let unwritten = pre   // the padding columns of `pre` past 4·hidden must stay as they were
        packed.withUnsafeBufferPointer { p in
            hPrev.withUnsafeBufferPointer { h in
                bias.withUnsafeBufferPointer { bi in
                    pre.withUnsafeMutableBufferPointer { pr in
                        c.withUnsafeMutableBufferPointer { cs in
                            hNext.withUnsafeMutableBufferPointer { hn in
                                tanhC.withUnsafeMutableBufferPointer { tc in
                                    var step = lts_lstm_forward_step(
                                        batch: batch, hidden: hidden, packed_r: p.baseAddress, h_prev: h.baseAddress,
                                        h_prev_stride: hStride, pre: pr.baseAddress, pre_stride: preStride,
                                        bias: bi.baseAddress, c_prev: cs.baseAddress, c_next: cs.baseAddress,
                                        h_next: hn.baseAddress, h_next_stride: hStride, gates: pr.baseAddress,
                                        gates_stride: preStride, tanh_c: tc.baseAddress)
                                    lts_recurrent_kernels_at(level)!.pointee.lstm_forward(&step)
                                }
                            }
                        }
                    }
                }
            }
        }
        let gates = (0..<batch).flatMap { b in pre[b * preStride..<b * preStride + width] }
        let h = (0..<batch).flatMap { b in hNext[b * hStride..<b * hStride + hidden] }
        let where_ = "level \(level.rawValue), batch \(batch), hidden \(hidden)"
        #expect(worst(gates, gatesRef) <= tolerance, "gates, \(where_)")
        #expect(worst(c, cRef) <= tolerance, "c, \(where_)")
        #expect(worst(h, hRef) <= tolerance, "h, \(where_)")
        #expect(worst(tanhC, tanhRef) <= tolerance, "tanh(c), \(where_)")
        for b in 0..<batch {
            #expect(pre[b * preStride + width..<(b + 1) * preStride] == unwritten[b * preStride + width..<(b + 1) * preStride])
            #expect(hNext[b * hStride + hidden..<(b + 1) * hStride].allSatisfy { $0.isNaN }, "h padding, \(where_)")
        }
    }

    /// One backward step against the chain rule written out in double precision.
    static func checkBackward(_ level: lts_vector_level, batch: Int, hidden: Int) {
        var numbers = Numbers(state: UInt64(batch * 77 + hidden))
        let width = 4 * hidden
        let gates = numbers.array(batch * width).map { 0.5 + 0.45 * $0 }   // activated values
        let cPrev = numbers.array(batch * hidden), tanhC = numbers.array(batch * hidden).map { 0.9 * $0 }
        let dh = numbers.array(batch * hidden), dcStart = numbers.array(batch * hidden)
        var dPreRef = [Double](repeating: 0, count: batch * width), dcRef = [Double](repeating: 0, count: batch * hidden)
        for b in 0..<batch {
            for j in 0..<hidden {
                let a = { (g: Int) in Double(gates[b * width + g * hidden + j]) }
                let (i, o, f, cand) = (a(0), a(1), a(2), a(3))
                let t = Double(tanhC[b * hidden + j]), dhv = Double(dh[b * hidden + j])
                let dct = Double(dcStart[b * hidden + j]) + dhv * o * (1 - t * t)
                dPreRef[b * width + j] = dct * cand * i * (1 - i)
                dPreRef[b * width + hidden + j] = dhv * t * o * (1 - o)
                dPreRef[b * width + 2 * hidden + j] = dct * Double(cPrev[b * hidden + j]) * f * (1 - f)
                dPreRef[b * width + 3 * hidden + j] = dct * i * (1 - cand * cand)
                dcRef[b * hidden + j] = dct * f
            }
        }
        var dc = dcStart, dPre = [Float](repeating: .nan, count: batch * width)
        // One buffer holding the four read-only arrays, so every pointer outlives the call.
        let inputs = gates + tanhC + cPrev + dh
        inputs.withUnsafeBufferPointer { input in
            dc.withUnsafeMutableBufferPointer { dcs in
                dPre.withUnsafeMutableBufferPointer { dp in
                    let g = input.baseAddress!, t = g + batch * width, c = t + batch * hidden, d = c + batch * hidden
                    var step = lts_lstm_backward_step(batch: batch, hidden: hidden, gates: g, tanh_c: t, c_prev: c,
                                                      dh: d, dc: dcs.baseAddress, d_pre: dp.baseAddress)
                    lts_recurrent_kernels_at(level)!.pointee.lstm_backward(&step)
                }
            }
        }
        let where_ = "level \(level.rawValue), batch \(batch), hidden \(hidden)"
        #expect(worst(dPre, dPreRef) <= tolerance, "d_pre, \(where_)")
        #expect(worst(dc, dcRef) <= tolerance, "dc, \(where_)")
    }
}
