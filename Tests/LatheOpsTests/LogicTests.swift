import Testing
import LatheCore

/// Comparisons, boolean logic and Where against naive per-index references (exact).
@Suite struct LogicTests {
    static let shapePairs: [([Int], [Int])] = [([2, 3], [2, 3]), ([2, 3, 4], [4]), ([2, 1, 4], [3, 1]), ([], [5]), ([0, 2], [2])]

    @Test(arguments: ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"])
    func comparisonsBroadcast(_ op: String) throws {
        var rng = SeededRNG(31)
        let f: (Int64, Int64) -> Bool = switch op {
            case "Equal": (==); case "Greater": (>); case "Less": (<); case "GreaterOrEqual": (>=); default: (<=)
        }
        for (sa, sb) in Self.shapePairs {
            // Small integers, so equal values occur; the float form uses the same values.
            let a = (0..<sa.reduce(1, *)).map { _ in Int64.random(in: -2...2, using: &rng) }
            let b = (0..<sb.reduce(1, *)).map { _ in Int64.random(in: -2...2, using: &rng) }
            let shape = try ShapeMath.broadcast(sa, sb)
            let ref = (0..<shape.reduce(1, *)).map { i -> Int in
                let idx = Naive.unravel(i, shape)
                return f(a[Naive.broadcastPosition(idx, sa)], b[Naive.broadcastPosition(idx, sb)]) ? 1 : 0
            }
            let ints = try runNode(op, inputs: [Tensor(shape: sa, int64s: a), Tensor(shape: sb, int64s: b)], opset: 13)[0]
            let floats = try runNode(op, inputs: [Tensor(shape: sa, floats: a.map(Float.init)), Tensor(shape: sb, floats: b.map(Float.init))], opset: 13)[0]
            #expect(ints.dtype == .bool && ints.shape == shape && ints.intArray() == ref, "\(op) int64 \(sa) \(sb)")
            #expect(floats.dtype == .bool && floats.intArray() == ref, "\(op) float32 \(sa) \(sb)")
        }
    }

    @Test func booleanConnectivesAndNot() throws {
        let a = try Tensor(shape: [2, 2], bools: [true, true, false, false]), b = try Tensor(shape: [2], bools: [true, false])
        #expect(try runNode("And", inputs: [a, b])[0].intArray() == [1, 0, 0, 0])
        #expect(try runNode("Or", inputs: [a, b])[0].intArray() == [1, 1, 1, 0])
        #expect(try runNode("Xor", inputs: [a, b])[0].intArray() == [0, 1, 1, 0])
        #expect(try runNode("Not", inputs: [a])[0].intArray() == [0, 0, 1, 1])
        #expect(try runNode("Equal", inputs: [a, b])[0].intArray() == [1, 0, 0, 1])
        #expect(throws: LatheError.self) { try runNode("And", inputs: [Tensor(shape: [1], floats: [1]), b]) }
    }

    @Test func whereSelectsWithBroadcasting() throws {
        var rng = SeededRNG(32)
        let condition = (0..<6).map { _ in Bool.random(using: &rng) }
        let x = rng.floats(4), y = rng.floats(3)
        let out = try runNode("Where", inputs: [Tensor(shape: [2, 3, 1], bools: condition), Tensor(shape: [4], floats: x),
                                                Tensor(shape: [1, 3, 1], floats: y)])[0]
        let ref = (0..<24).map { i -> Float in
            let idx = Naive.unravel(i, [2, 3, 4])
            return condition[idx[0] * 3 + idx[1]] ? x[idx[2]] : y[idx[1]]
        }
        expectClose(out, ref, shape: [2, 3, 4])
        let ints = try runNode("Where", inputs: [Tensor(shape: [3], bools: [true, false, true]), Tensor(shape: [3], int64s: [1, 2, 3]),
                                                 Tensor(shape: [], int64s: [-1])])[0]
        #expect(ints.dtype == .int64 && ints.intArray() == [1, -1, 3])
    }

    @Test func dtypeMismatchesAreErrors() throws {
        #expect(throws: LatheError.self) { try runNode("Equal", inputs: [Tensor(shape: [1], floats: [1]), Tensor(shape: [1], int64s: [1])]) }
        #expect(throws: LatheError.self) {
            try runNode("Where", inputs: [Tensor(shape: [1], floats: [1]), Tensor(shape: [1], floats: [1]), Tensor(shape: [1], floats: [2])])
        }
        #expect(throws: LatheError.self) {
            try runNode("Where", inputs: [Tensor(shape: [1], bools: [true]), Tensor(shape: [1], floats: [1]), Tensor(shape: [1], int64s: [2])])
        }
    }
}
