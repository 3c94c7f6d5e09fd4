import Testing
import LatheCore

/// ConvTranspose against a naive scatter: every input element times every tap, added at
/// `i·stride + k·dilation − padBegin`. Tolerance: max|diff| <= 1e-4 × max(1, max|ref|).
@Suite struct ConvTransposeTests {
    /// The naive transposed convolution of `x` [N, C, D...] with `w` [C, M/g, k...].
    static func reference(_ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], bias: [Float]?, group: Int,
                          strides: [Int], dilations: [Int], padsBegin: [Int], output: [Int]) -> [Float] {
        let r = xs.count - 2, channels = xs[1], perGroupOut = ws[1], filters = perGroupOut * group
        let inSpatial = Array(xs[2...]), kernel = Array(ws[2...])
        let inCount = inSpatial.reduce(1, *), kCount = kernel.reduce(1, *), outCount = output.reduce(1, *)
        var y = [Float](repeating: 0, count: xs[0] * filters * outCount)
        func unravel(_ i: Int, _ dims: [Int]) -> [Int] {
            var rest = i, index = [Int](repeating: 0, count: dims.count)
            for d in stride(from: dims.count - 1, through: 0, by: -1) { index[d] = rest % dims[d]; rest /= dims[d] }
            return index
        }
        for n in 0..<xs[0] {
            for c in 0..<channels {
                let g = c / (channels / group)
                for m in 0..<perGroupOut {
                    for p in 0..<inCount {
                        let pi = unravel(p, inSpatial)
                        for k in 0..<kCount {
                            let ki = unravel(k, kernel)
                            var offset = 0, inside = true
                            for a in 0..<r {
                                let o = pi[a] * strides[a] + ki[a] * dilations[a] - padsBegin[a]
                                if o < 0 || o >= output[a] { inside = false; break }
                                offset = offset * output[a] + o
                            }
                            if !inside { continue }
                            let xv = x[(n * channels + c) * inCount + p]
                            let wv = w[(c * perGroupOut + m) * kCount + k]
                            y[(n * filters + g * perGroupOut + m) * outCount + offset] += xv * wv
                        }
                    }
                }
            }
            if let bias {
                for f in 0..<filters { for o in 0..<outCount { y[(n * filters + f) * outCount + o] += bias[f] } }
            }
        }
        return y
    }

    @Test(arguments: 0..<24) func randomConfigurations(seed: Int) throws {
        var rng = SeededRNG(UInt64(seed) + 500)
        let r = [1, 2, 3][seed % 3]
        let group = seed % 4 == 3 ? 2 : 1
        let channels = group * Int.random(in: 1...2, using: &rng), perGroupOut = Int.random(in: 1...3, using: &rng)
        let spatial = (0..<r).map { _ in Int.random(in: 1...4, using: &rng) }
        let kernel = (0..<r).map { _ in Int.random(in: 1...3, using: &rng) }
        let strides = (0..<r).map { _ in Int.random(in: 1...3, using: &rng) }
        let dilations = (0..<r).map { _ in Int.random(in: 1...2, using: &rng) }
        let padsBegin = (0..<r).map { a in Int.random(in: 0...(kernel[a] - 1) * dilations[a], using: &rng) }
        let padsEnd = (0..<r).map { a in Int.random(in: 0...(kernel[a] - 1) * dilations[a], using: &rng) }
        let extra = (0..<r).map { a in seed % 2 == 0 ? 0 : Int.random(in: 0..<strides[a], using: &rng) }
        let xs = [2, channels] + spatial, ws = [channels, perGroupOut] + kernel
        let x = rng.floats(xs.reduce(1, *)), w = rng.floats(ws.reduce(1, *))
        let bias = seed % 3 == 1 ? rng.floats(perGroupOut * group) : nil
        var output: [Int] = []
        for a in 0..<r {
            let full: Int = strides[a] * (spatial[a] - 1) + extra[a] + (kernel[a] - 1) * dilations[a] + 1
            output.append(full - padsBegin[a] - padsEnd[a])
        }
        var attributes: [String: AttributeValue] = ["strides": .ints(strides), "dilations": .ints(dilations),
                                                     "pads": .ints(padsBegin + padsEnd), "group": .int(group)]
        if seed % 2 == 1 { attributes["output_padding"] = .ints(extra) }
        var inputs: [Tensor?] = [try Tensor(shape: xs, floats: x), try Tensor(shape: ws, floats: w)]
        if let bias { inputs.append(try Tensor(shape: [perGroupOut * group], floats: bias)) }
        let got = try runNode("ConvTranspose", inputs: inputs, attributes: attributes)[0]
        let ref = Self.reference(x, xs, w, ws, bias: bias, group: group, strides: strides, dilations: dilations,
                                 padsBegin: padsBegin, output: output)
        expectClose(got, ref, shape: [2, perGroupOut * group] + output, "seed \(seed)")
    }

    @Test(arguments: ["SAME_UPPER", "SAME_LOWER"]) func autoPadSame(mode: String) throws {
        var rng = SeededRNG(77)
        let xs = [1, 2, 3, 4], ws = [2, 3, 3, 2]
        let x = rng.floats(24), w = rng.floats(36)
        let got = try runNode("ConvTranspose", inputs: [try Tensor(shape: xs, floats: x), try Tensor(shape: ws, floats: w)],
                              attributes: ["auto_pad": .string(mode), "strides": .ints([2, 2])])[0]
        // Output = input · stride; total padding (full − output) split with the odd one at the end (UPPER) or start.
        let output = [6, 8], full = [2 * 2 + 3, 2 * 3 + 2]
        var begin: [Int] = []
        for a in 0..<2 {
            let total = full[a] - output[a]
            begin.append(mode == "SAME_UPPER" ? total / 2 : total - total / 2)
        }
        let ref = Self.reference(x, xs, w, ws, bias: nil, group: 1, strides: [2, 2], dilations: [1, 1], padsBegin: begin, output: output)
        expectClose(got, ref, shape: [1, 3] + output)
    }

    @Test func outputShapeAttribute() throws {
        var rng = SeededRNG(78)
        let xs = [1, 1, 3, 3], ws = [1, 2, 3, 3]
        let x = rng.floats(9), w = rng.floats(18)
        let got = try runNode("ConvTranspose", inputs: [try Tensor(shape: xs, floats: x), try Tensor(shape: ws, floats: w)],
                              attributes: ["strides": .ints([3, 2]), "output_shape": .ints([10, 8])])[0]
        // Full size 9×7 is smaller than 10×8: nothing is cropped, the extra row and column stay zero.
        let ref = Self.reference(x, xs, w, ws, bias: nil, group: 1, strides: [3, 2], dilations: [1, 1], padsBegin: [0, 0], output: [10, 8])
        expectClose(got, ref, shape: [1, 2, 10, 8])
    }

    @Test func errors() throws {
        let x = try Tensor(shape: [1, 2, 3], floats: .init(repeating: 1, count: 6))
        #expect(throws: LatheError.self) {
            _ = try runNode("ConvTranspose", inputs: [x, try Tensor(shape: [3, 1, 2], floats: .init(repeating: 1, count: 6))])
        }
        #expect(throws: LatheError.self) {
            _ = try runNode("ConvTranspose", inputs: [x, try Tensor(shape: [2, 1, 2], floats: .init(repeating: 1, count: 4))],
                            attributes: ["group": .int(0)])
        }
        #expect(throws: LatheError.self) {
            _ = try runNode("ConvTranspose", inputs: [try Tensor(shape: [2, 3], floats: .init(repeating: 1, count: 6)),
                                                      try Tensor(shape: [2, 1, 2], floats: .init(repeating: 1, count: 4))])
        }
        #expect(throws: LatheError.self) {
            _ = try runNode("ConvTranspose", inputs: [x, try Tensor(shape: [2, 1, 2], floats: .init(repeating: 1, count: 4))],
                            attributes: ["strides": .ints([1, 1])])
        }
    }
}
