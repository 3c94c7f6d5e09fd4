import Testing
import LatheCore

/// Add/Sub/Mul/Div with numpy broadcasting, against a naive index-by-index reference.
@Suite struct ElementwiseTests {
    /// Naive broadcast: for each output index, map back into each operand.
    func reference(_ a: [Float], _ sa: [Int], _ b: [Float], _ sb: [Int], _ f: (Float, Float) -> Float) throws -> ([Float], [Int]) {
        let shape = try ShapeMath.broadcast(sa, sb)
        let rank = shape.count
        let pa = [Int](repeating: 1, count: rank - sa.count) + sa, pb = [Int](repeating: 1, count: rank - sb.count) + sb
        let count = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: count)
        for i in 0..<count {
            var idx = [Int](repeating: 0, count: rank), r = i
            for d in stride(from: rank - 1, through: 0, by: -1) { idx[d] = r % shape[d]; r /= shape[d] }
            var ia = 0, ib = 0
            for d in 0..<rank {
                ia = ia * pa[d] + (pa[d] == 1 ? 0 : idx[d])
                ib = ib * pb[d] + (pb[d] == 1 ? 0 : idx[d])
            }
            out[i] = f(a[ia], b[ib])
        }
        return (out, shape)
    }

    static let shapePairs: [([Int], [Int])] = [
        ([2, 3], [2, 3]), ([2, 3], []), ([], [4]), ([2, 3, 4], [4]), ([2, 3, 4], [3, 1]), ([2, 1, 4], [1, 3, 1]),
        ([5, 1], [1, 6]), ([1], [3, 2]), ([2, 3, 4, 5], [2, 1, 4, 1]), ([0, 3], [3]),
    ]

    @Test(arguments: ["Add", "Sub", "Mul", "Div"])
    func broadcastsLikeNumpy(_ op: String) throws {
        var rng = SeededRNG(7)
        let f: (Float, Float) -> Float = switch op { case "Add": (+); case "Sub": (-); case "Mul": (*); default: (/) }
        for (sa, sb) in Self.shapePairs {
            let a = rng.floats(sa.reduce(1, *)), b = rng.floats(sb.reduce(1, *), 0.5...2)
            let out = try runNode(op, inputs: [Tensor(shape: sa, floats: a), Tensor(shape: sb, floats: b)])[0]
            let (ref, shape) = try reference(a, sa, b, sb, f)
            expectClose(out, ref, shape: shape, "\(op) \(sa) \(sb)")
        }
    }

    @Test func int64ArithmeticForShapes() throws {
        let out = try runNode("Mul", inputs: [Tensor(shape: [3], int64s: [2, 3, 4]), Tensor(shape: [], int64s: [-2])])[0]
        #expect(out.dtype == .int64)
        #expect(out.intArray() == [-4, -6, -8])
        let div = try runNode("Div", inputs: [Tensor(shape: [2], int64s: [7, -7]), Tensor(shape: [2], int64s: [2, 0])])[0]
        #expect(div.intArray() == [3, 0])
    }

    @Test func incompatibleShapesAndMixedDtypesAreErrors() throws {
        #expect(throws: LatheError.self) { try runNode("Add", inputs: [Tensor(shape: [2, 3], floats: .init(repeating: 0, count: 6)), Tensor(shape: [2], floats: [1, 2])]) }
        #expect(throws: LatheError.self) { try runNode("Add", inputs: [Tensor(shape: [1], floats: [0]), Tensor(shape: [1], int64s: [1])]) }
    }
}
