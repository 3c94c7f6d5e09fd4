import Foundation
import Testing
import LatheCore

/// Elementwise math ops against double-precision references; tolerance 1e-4 × max(1, max|ref|).
@Suite struct MathTests {
    /// (op, opset, attributes, reference, input range).
    static let unaryCases: [(String, Int, [String: AttributeValue], @Sendable (Double) -> Double, ClosedRange<Float>)] = [
        ("Sqrt", 13, [:], { sqrt($0) }, 0...4), ("Exp", 13, [:], { exp($0) }, -3...3), ("Log", 13, [:], { log($0) }, 0.1...5),
        ("Abs", 13, [:], { abs($0) }, -2...2), ("Neg", 13, [:], { -$0 }, -2...2), ("Reciprocal", 13, [:], { 1 / $0 }, 0.5...3),
        ("Floor", 13, [:], { floor($0) }, -3...3), ("Ceil", 13, [:], { ceil($0) }, -3...3),
        ("Round", 11, [:], { $0.rounded(.toNearestOrEven) }, -3...3), ("Erf", 13, [:], { erf($0) }, -2...2),
        ("Sin", 7, [:], { sin($0) }, -4...4), ("Cos", 7, [:], { cos($0) }, -4...4),
        ("Sign", 13, [:], { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }, -2...2),
        ("Softplus", 1, [:], { log(1 + exp($0)) }, -5...5), ("Softsign", 1, [:], { $0 / (1 + abs($0)) }, -5...5),
        ("HardSigmoid", 6, ["alpha": .float(0.3), "beta": .float(0.4)], { min(max(0.3 * $0 + 0.4, 0), 1) }, -4...4),
        ("HardSwish", 14, [:], { $0 * min(max($0 / 6 + 0.5, 0), 1) }, -5...5),
        ("Elu", 6, ["alpha": .float(0.7)], { $0 < 0 ? 0.7 * (exp($0) - 1) : $0 }, -3...3),
        ("Selu", 6, [:], { $0 > 0 ? 1.0507009873554805 * $0 : 1.0507009873554805 * 1.6732632423543772 * (exp($0) - 1) }, -3...3),
        ("Celu", 12, ["alpha": .float(2)], { max(0, $0) + min(0, 2 * (exp($0 / 2) - 1)) }, -3...3),
        ("ThresholdedRelu", 10, ["alpha": .float(0.5)], { $0 > 0.5 ? $0 : 0 }, -2...2),
        ("Mish", 18, [:], { $0 * tanh(log(1 + exp($0))) }, -4...4),
        ("Gelu", 20, [:], { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }, -4...4),
        ("Gelu", 20, ["approximate": .string("tanh")],
         { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }, -4...4),
    ]

    @Test func unaryFloatOpsMatchReferences() throws {
        var rng = SeededRNG(11)
        for (op, opset, attributes, f, range) in Self.unaryCases {
            let x = rng.floats(60, range)
            let out = try runNode(op, inputs: [Tensor(shape: [3, 4, 5], floats: x)], opset: opset, attributes: attributes)[0]
            expectClose(out, x.map { Float(f(Double($0))) }, shape: [3, 4, 5], "\(op) \(attributes)")
        }
    }

    @Test func integerAbsNegSign() throws {
        let x = try Tensor(shape: [5], int64s: [-7, 0, 3, Int64.min, 9])
        #expect(try runNode("Abs", inputs: [x])[0].intArray() == [7, 0, 3, Int(Int64.min), 9])
        #expect(try runNode("Neg", inputs: [x])[0].intArray() == [7, 0, -3, Int(Int64.min), -9])
        #expect(try runNode("Sign", inputs: [x])[0].intArray() == [-1, 0, 1, -1, 1])
    }

    @Test func powBroadcastsWithMixedDtypes() throws {
        var rng = SeededRNG(12)
        let base = rng.floats(24, 0.5...2), exponent = rng.floats(4, -2...2)
        let out = try runNode("Pow", inputs: [Tensor(shape: [2, 3, 4], floats: base), Tensor(shape: [4], floats: exponent)])[0]
        expectClose(out, (0..<24).map { Float(pow(Double(base[$0]), Double(exponent[$0 % 4]))) }, shape: [2, 3, 4])
        let intExponent = try runNode("Pow", inputs: [Tensor(shape: [3], floats: [2, -3, 0.5]), Tensor(shape: [], int64s: [3])], opset: 15)[0]
        expectClose(intExponent, [8, -27, 0.125], shape: [3])
        let intBase = try runNode("Pow", inputs: [Tensor(shape: [3], int64s: [2, -3, 5]), Tensor(shape: [3], floats: [3, 3, 0.5])], opset: 15)[0]
        #expect(intBase.dtype == .int64 && intBase.intArray() == [8, -27, 2])
        #expect(throws: LatheError.self) {
            try runNode("Pow", inputs: [Tensor(shape: [1], floats: [2]), Tensor(shape: [1], int64s: [2])], opset: 11)
        }
    }

    @Test func preluBroadcastsSlopeToX() throws {
        var rng = SeededRNG(13)
        let x = rng.floats(2 * 3 * 2 * 2), slope = rng.floats(3, 0...1)
        let out = try runNode("PRelu", inputs: [Tensor(shape: [2, 3, 2, 2], floats: x), Tensor(shape: [3, 1, 1], floats: slope)],
                              constantInputs: [1])[0]
        let ref = (0..<x.count).map { i in x[i] < 0 ? slope[Naive.unravel(i, [2, 3, 2, 2])[1]] * x[i] : x[i] }
        expectClose(out, ref, shape: [2, 3, 2, 2])
        #expect(throws: LatheError.self) {
            try runNode("PRelu", inputs: [Tensor(shape: [2], floats: [1, 2]), Tensor(shape: [3, 2], floats: .init(repeating: 0, count: 6))])
        }
    }

    @Test func badAttributesAndDtypesAreErrors() throws {
        let x = try Tensor(shape: [2], floats: [1, 2])
        #expect(throws: LatheError.self) { try runNode("Gelu", inputs: [x], opset: 20, attributes: ["approximate": .string("fast")]) }
        #expect(throws: LatheError.self) { try runNode("Sqrt", inputs: [Tensor(shape: [1], int64s: [4])]) }
        #expect(throws: LatheError.self) { try runNode("Celu", inputs: [x], attributes: ["alpha": .float(0)]) }
        #expect(throws: LatheError.self) { try runNode("Exp", inputs: [x, x]) }
    }
}
