import Testing
@testable import LatheOps
import LatheCore

@Suite struct NormalizationTests {
    typealias S = ConvPoolNormSupport

    /// Naive BatchNormalization over axis 1, in double precision.
    static func reference(x: Tensor, scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float) -> [Float] {
        let xs = x.floatArray(), channels = x.shape[1], size = x.shape.dropFirst(2).reduce(1, *)
        return xs.indices.map { i in
            let c = (i / size) % channels
            let normalized = (Double(xs[i]) - Double(mean[c])) / (Double(variance[c]) + Double(epsilon)).squareRoot()
            return Float(normalized * Double(scale[c]) + Double(bias[c]))
        }
    }

    /// The five inputs of a BatchNormalization node over `x`; the statistics are constants when `constant`.
    static func inputs(_ x: Tensor, _ rng: inout SeededRNG, constant: Bool) throws -> [S.Input] {
        let c = x.shape[1]
        let variance = try Tensor(shape: [c], floats: (0..<c).map { _ in Float.random(in: 0...2, using: &rng) })
        return [.init(name: "x", tensor: x),
                .init(name: "scale", tensor: try S.random([c], &rng), constant: constant),
                .init(name: "b", tensor: try S.random([c], &rng), constant: constant),
                .init(name: "mean", tensor: try S.random([c], &rng), constant: constant),
                .init(name: "var", tensor: variance, constant: constant)]
    }

    @Test(arguments: [9, 11, 14, 15, 21]) func randomizedAgainstNaive(opset: Int) throws {
        var rng = SeededRNG(UInt64(opset) * 101)
        for shape in [[3, 4], [2, 3, 5], [1, 4, 3, 3], [2, 2, 2, 3, 2], [1, 1, 6]] {
            let x = try S.random(shape, &rng)
            let epsilon = S.pick([Float(1e-5), 1e-3, 0.5], &rng)
            let ins = try Self.inputs(x, &rng, constant: Bool.random(using: &rng))
            let y = try S.run("BatchNormalization", opset: opset, attributes: ["epsilon": .float(epsilon)], inputs: ins)[0]
            let ref = Self.reference(x: x, scale: ins[1].tensor!.floatArray(), bias: ins[2].tensor!.floatArray(),
                                     mean: ins[3].tensor!.floatArray(), variance: ins[4].tensor!.floatArray(), epsilon: epsilon)
            #expect(y.shape == shape)
            #expect(S.close(y.floatArray(), ref), "shape \(shape), epsilon \(epsilon)")
        }
    }

    @Test func defaultEpsilonAndKnownValues() throws {
        // (x − 1) / sqrt(3 + 1e-5) · 2 + 0.5 on one channel.
        let x = try Tensor(shape: [1, 1, 2], floats: [1, 4])
        let y = try S.run("BatchNormalization", inputs: [
            .init(name: "x", tensor: x), .init(name: "s", tensor: try Tensor(shape: [1], floats: [2])),
            .init(name: "b", tensor: try Tensor(shape: [1], floats: [0.5])),
            .init(name: "m", tensor: try Tensor(shape: [1], floats: [1])),
            .init(name: "v", tensor: try Tensor(shape: [1], floats: [3])),
        ])[0]
        #expect(S.close(y.floatArray(), [0.5, Float(3 / (3 + 1e-5).squareRoot() * 2 + 0.5)]))
    }

    @Test func runningStatisticsPassThroughInInferenceMode() throws {
        var rng = SeededRNG(3)
        let ins = try Self.inputs(try S.random([2, 3, 4], &rng), &rng, constant: false)
        let out = try S.run("BatchNormalization", opset: 15, attributes: ["training_mode": .int(0)], inputs: ins,
                            outputs: ["y", "running_mean", "running_var"])
        #expect(out[1].floatArray() == ins[3].tensor!.floatArray())
        #expect(out[2].floatArray() == ins[4].tensor!.floatArray())
    }

    @Test func errors() throws {
        var rng = SeededRNG(4)
        let x = try S.random([2, 3, 4], &rng)
        let ins = try Self.inputs(x, &rng, constant: true)
        func bn(_ opset: Int = 15, _ attributes: [String: AttributeValue] = [:], inputs: [S.Input]? = nil,
                outputs: [String] = ["y"]) -> Status? {
            S.status { _ = try S.run("BatchNormalization", opset: opset, attributes: attributes, inputs: inputs ?? ins, outputs: outputs) }
        }
        #expect(bn(15, ["training_mode": .int(1)]) == .unsupportedOp)
        #expect(bn(14, ["training_mode": .int(1)], outputs: ["y", "rm", "rv"]) == .unsupportedOp)
        #expect(bn(9, outputs: ["y", "batch_mean", "batch_var", "saved_mean", "saved_var"]) == .unsupportedOp)
        #expect(bn(7, ["spatial": .int(0)]) == .unsupportedOp)
        #expect(bn(15, ["epsilon": .float(-1)]) == .invalidArgument)
        #expect(bn(15, outputs: ["y", "o1", "o2", "o3"]) == .invalidArgument)
        var wrongScale = ins
        wrongScale[1] = .init(name: "scale", tensor: try S.random([4], &rng))
        #expect(bn(inputs: wrongScale) == .shapeMismatch)
        var rankOne = ins
        rankOne[0] = .init(name: "x", tensor: try S.random([3], &rng))
        #expect(bn(inputs: rankOne) == .shapeMismatch)
        #expect(bn(inputs: Array(ins.prefix(4))) == .invalidArgument)
        #expect(bn(9, outputs: ["y", "", "", "", ""]) == nil)
    }
}
