import Testing
import LatheCore

/// InstanceNormalization, LayerNormalization and GroupNormalization against naive references that
/// compute mean and variance per normalised block in double precision.
/// Tolerance: max|diff| <= 1e-4 × max(1, max|ref|).
@Suite struct StatisticsNormalizationTests {
    /// Normalises each block of `size` contiguous values; `affine(block, i)` gives (scale, bias) for element i.
    static func normalize(_ x: [Float], size: Int, epsilon: Double, affine: (Int, Int) -> (Float, Float)) -> ([Float], [Float], [Float]) {
        var y = x, means: [Float] = [], inverses: [Float] = []
        for block in 0..<(x.count / size) {
            let values = x[(block * size)..<((block + 1) * size)].map(Double.init)
            let mean = values.reduce(0, +) / Double(size)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(size)
            let inverse = 1 / (variance + epsilon).squareRoot()
            for i in 0..<size {
                let (s, b) = affine(block, i)
                y[block * size + i] = Float((values[i] - mean) * inverse) * s + b
            }
            means.append(Float(mean)); inverses.append(Float(inverse))
        }
        return (y, means, inverses)
    }

    @Test(arguments: 0..<6) func instanceNormalization(seed: Int) throws {
        var rng = SeededRNG(UInt64(seed) + 900)
        let shape = [Int.random(in: 1...3, using: &rng), Int.random(in: 1...4, using: &rng)] + (0..<(1 + seed % 3)).map { _ in Int.random(in: 1...4, using: &rng) }
        let channels = shape[1], size = shape.dropFirst(2).reduce(1, *)
        let x = rng.floats(shape.reduce(1, *), -3...3), scale = rng.floats(channels), bias = rng.floats(channels)
        let epsilon: Float = seed % 2 == 0 ? 1e-5 : 0.3
        let got = try runNode("InstanceNormalization", inputs: [try Tensor(shape: shape, floats: x), try Tensor(shape: [channels], floats: scale),
                                                                 try Tensor(shape: [channels], floats: bias)], attributes: ["epsilon": .float(epsilon)])[0]
        let ref = Self.normalize(x, size: size, epsilon: Double(epsilon)) { block, _ in (scale[block % channels], bias[block % channels]) }.0
        expectClose(got, ref, shape: shape)
    }

    @Test(arguments: 0..<8) func layerNormalization(seed: Int) throws {
        var rng = SeededRNG(UInt64(seed) + 950)
        let shape = (0..<(1 + seed % 4)).map { _ in Int.random(in: 1...4, using: &rng) }
        let axis = Int.random(in: -shape.count..<shape.count, using: &rng)
        let a = axis < 0 ? axis + shape.count : axis
        let normalized = Array(shape[a...]), size = normalized.reduce(1, *)
        let x = rng.floats(shape.reduce(1, *), -2...2), scale = rng.floats(size), bias = rng.floats(size)
        let withBias = seed % 2 == 0
        var inputs: [Tensor?] = [try Tensor(shape: shape, floats: x), try Tensor(shape: normalized, floats: scale)]
        if withBias { inputs.append(try Tensor(shape: normalized, floats: bias)) }
        let got = try runNode("LayerNormalization", inputs: inputs, outputCount: 3,
                              attributes: ["axis": .int(axis), "epsilon": .float(1e-3)])
        let (y, means, inverses) = Self.normalize(x, size: size, epsilon: 1e-3) { _, i in (scale[i], withBias ? bias[i] : 0) }
        let statistics = Array(shape[..<a]) + Array(repeating: 1, count: shape.count - a)
        expectClose(got[0], y, shape: shape, "Y, seed \(seed)")
        expectClose(got[1], means, shape: statistics, "Mean")
        expectClose(got[2], inverses, shape: statistics, "InvStdDev")
    }

    @Test func layerNormalizationBroadcastScale() throws {
        var rng = SeededRNG(960)
        let x = rng.floats(24), scale = rng.floats(4)
        let got = try runNode("LayerNormalization", inputs: [try Tensor(shape: [2, 3, 4], floats: x), try Tensor(shape: [1, 4], floats: scale)],
                              attributes: ["axis": .int(1)])[0]
        let ref = Self.normalize(x, size: 12, epsilon: 1e-5) { _, i in (scale[i % 4], 0) }.0
        expectClose(got, ref, shape: [2, 3, 4])
    }

    @Test(arguments: [18, 21]) func groupNormalization(opset: Int) throws {
        var rng = SeededRNG(UInt64(opset))
        for (shape, groups) in [([2, 4, 3], 2), ([1, 6, 2, 2], 3), ([2, 3, 5], 1), ([1, 4, 2], 4)] {
            let channels = shape[1], size = shape.dropFirst(2).reduce(1, *), perGroup = channels / groups
            let n = opset == 18 ? groups : channels
            let x = rng.floats(shape.reduce(1, *), -2...2), scale = rng.floats(n), bias = rng.floats(n)
            let got = try runNode("GroupNormalization", inputs: [try Tensor(shape: shape, floats: x), try Tensor(shape: [n], floats: scale),
                                                                  try Tensor(shape: [n], floats: bias)], opset: opset,
                                  attributes: ["num_groups": .int(groups), "epsilon": .float(1e-4)])[0]
            let ref = Self.normalize(x, size: perGroup * size, epsilon: 1e-4) { block, i in
                let g = block % groups, p = opset == 18 ? g : g * perGroup + i / size
                return (scale[p], bias[p])
            }.0
            expectClose(got, ref, shape: shape, "shape \(shape) groups \(groups)")
        }
    }

    @Test func errors() throws {
        let x = try Tensor(shape: [1, 4, 2], floats: .init(repeating: 1, count: 8))
        let four = try Tensor(shape: [4], floats: .init(repeating: 1, count: 4))
        #expect(throws: LatheError.self) { _ = try runNode("InstanceNormalization", inputs: [x, try Tensor(shape: [3], floats: [1, 1, 1]), four]) }
        #expect(throws: LatheError.self) {
            _ = try runNode("GroupNormalization", inputs: [x, four, four], opset: 21, attributes: ["num_groups": .int(3)])
        }
        #expect(throws: LatheError.self) { _ = try runNode("GroupNormalization", inputs: [x, four, four], opset: 21) }
        #expect(throws: LatheError.self) {
            _ = try runNode("LayerNormalization", inputs: [x, four], attributes: ["axis": .int(3)])
        }
        #expect(throws: LatheError.self) {
            _ = try runNode("LayerNormalization", inputs: [x, try Tensor(shape: [3], floats: [1, 1, 1])])
        }
    }
}
