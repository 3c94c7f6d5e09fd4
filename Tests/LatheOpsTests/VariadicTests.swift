import Testing
import LatheCore

/// Sum/Mean/Max/Min over several broadcast inputs, against a naive per-index fold; tolerance 1e-4 × max(1, max|ref|).
@Suite struct VariadicTests {
    static let shapeSets: [[[Int]]] = [[[2, 3, 4], [3, 1], [4]], [[5]], [[1, 3], [2, 1], []], [[2, 2], [2, 2]], [[0, 3], [3]]]

    @Test(arguments: ["Sum", "Mean", "Max", "Min"])
    func foldsBroadcastInputs(_ op: String) throws {
        var rng = SeededRNG(21)
        for shapes in Self.shapeSets {
            let values = shapes.map { rng.floats($0.reduce(1, *)) }
            let out = try runNode(op, inputs: try zip(shapes, values).map { try Tensor(shape: $0, floats: $1) })[0]
            let shape = try Naive.broadcast(shapes)
            let ref = (0..<shape.reduce(1, *)).map { i -> Float in
                let idx = Naive.unravel(i, shape)
                let xs = zip(shapes, values).map { $1[Naive.broadcastPosition(idx, $0)] }
                switch op {
                case "Sum": return xs.reduce(0, +)
                case "Mean": return xs.reduce(0, +) / Float(xs.count)
                case "Max": return xs.max()!
                default: return xs.min()!
                }
            }
            expectClose(out, ref, shape: shape, "\(op) \(shapes)")
        }
    }

    @Test func integerMaxMinFromOpset12() throws {
        let a = try Tensor(shape: [3], int64s: [1, 5, -2]), b = try Tensor(shape: [1], int64s: [2])
        #expect(try runNode("Max", inputs: [a, b], opset: 13)[0].intArray() == [2, 5, 2])
        #expect(try runNode("Min", inputs: [a, b], opset: 13)[0].intArray() == [1, 2, -2])
        #expect(throws: LatheError.self) { try runNode("Max", inputs: [a, b], opset: 8) }
        #expect(throws: LatheError.self) { try runNode("Sum", inputs: [a, b]) }
    }

    @Test func mismatchedShapesAndDtypesAreErrors() throws {
        let f = try Tensor(shape: [2], floats: [1, 2])
        #expect(throws: LatheError.self) { try runNode("Sum", inputs: [f, Tensor(shape: [3], floats: [1, 2, 3])]) }
        #expect(throws: LatheError.self) { try runNode("Mean", inputs: [f, Tensor(shape: [2], int64s: [1, 2])]) }
    }
}
