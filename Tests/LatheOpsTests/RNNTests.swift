#if canImport(Glibc)
import Glibc
#endif
import Testing
import LatheCore

/// RNN against a naive per-step loop: `H = f(W·x_t + R·H + Wb + Rb)`, clip before the activation,
/// reverse walking, sequence_lens and initial_h. Tolerance: max|diff| <= 1e-4 × max(1, max|ref|).
@Suite struct RNNTests {
    @Test(arguments: 0..<12) func randomCases(seed: Int) throws {
        var rng = SeededRNG(UInt64(seed) + 4000)
        let direction = ["forward", "reverse", "bidirectional"][seed % 3]
        let nd = direction == "bidirectional" ? 2 : 1
        let seq = Int.random(in: 1...4, using: &rng), batch = Int.random(in: 1...3, using: &rng)
        let size = Int.random(in: 1...4, using: &rng), hidden = Int.random(in: 1...4, using: &rng)
        let optional = seed % 2 == 1, clip: Float? = seed % 4 == 3 ? 0.4 : nil
        let relu = seed % 5 == 2
        let x = rng.floats(seq * batch * size), w = rng.floats(nd * hidden * size), r = rng.floats(nd * hidden * hidden)
        let b = rng.floats(nd * 2 * hidden), h0 = rng.floats(nd * batch * hidden)
        let lengths = (0..<batch).map { _ in Int.random(in: 1...seq, using: &rng) }
        var inputs: [Tensor?] = [try Tensor(shape: [seq, batch, size], floats: x), try Tensor(shape: [nd, hidden, size], floats: w),
                                 try Tensor(shape: [nd, hidden, hidden], floats: r)]
        if optional {
            let lens = try Tensor(.int32, shape: [batch])
            for (i, n) in lengths.enumerated() { lens.bytes.assumingMemoryBound(to: Int32.self)[i] = Int32(n) }
            inputs += [try Tensor(shape: [nd, 2 * hidden], floats: b), lens, try Tensor(shape: [nd, batch, hidden], floats: h0)]
        }
        var attributes: [String: AttributeValue] = ["direction": .string(direction), "hidden_size": .int(hidden)]
        if let clip { attributes["clip"] = .float(clip) }
        if relu { attributes["activations"] = .strings(Array(repeating: "Relu", count: nd)) }
        let got = try runNode("RNN", inputs: inputs, outputCount: 2, opset: 14, attributes: attributes)

        var y = [Float](repeating: 0, count: seq * nd * batch * hidden), yh = [Float](repeating: 0, count: nd * batch * hidden)
        for d in 0..<nd {
            for bi in 0..<batch {
                var h = (0..<hidden).map { optional ? h0[(d * batch + bi) * hidden + $0] : 0 }
                let n = optional ? lengths[bi] : seq
                for s in 0..<n {
                    let t = (direction == "reverse" || d == 1) ? n - 1 - s : s
                    var next = [Float](repeating: 0, count: hidden)
                    for j in 0..<hidden {
                        var v: Float = optional ? b[d * 2 * hidden + j] + b[d * 2 * hidden + hidden + j] : 0
                        for k in 0..<size { v += w[(d * hidden + j) * size + k] * x[(t * batch + bi) * size + k] }
                        for k in 0..<hidden { v += r[(d * hidden + j) * hidden + k] * h[k] }
                        if let clip { v = min(max(v, -clip), clip) }
                        next[j] = relu ? max(v, 0) : tanhf(v)
                    }
                    h = next
                    for j in 0..<hidden { y[((t * nd + d) * batch + bi) * hidden + j] = h[j] }
                }
                for j in 0..<hidden { yh[(d * batch + bi) * hidden + j] = h[j] }
            }
        }
        expectClose(got[0], y, shape: [seq, nd, batch, hidden], "Y seed \(seed)")
        expectClose(got[1], yh, shape: [nd, batch, hidden], "Y_h seed \(seed)")
    }

    @Test func errors() throws {
        let x = try Tensor(shape: [2, 1, 3], floats: .init(repeating: 0.1, count: 6))
        let w = try Tensor(shape: [1, 2, 3], floats: .init(repeating: 0.1, count: 6))
        let r = try Tensor(shape: [1, 2, 2], floats: .init(repeating: 0.1, count: 4))
        #expect(throws: LatheError.self) { _ = try runNode("RNN", inputs: [x, w, r], attributes: ["direction": .string("up")]) }
        #expect(throws: LatheError.self) { _ = try runNode("RNN", inputs: [x, w, try Tensor(shape: [1, 2, 3], floats: .init(repeating: 0, count: 6))]) }
        #expect(throws: LatheError.self) {
            _ = try runNode("RNN", inputs: [x, w, r], attributes: ["activations": .strings(["Tanh", "Relu", "Relu"])])
        }
    }
}
