import Testing
import LatheCore
@testable import LatheTrain

/// One finite-difference check per differentiable op (see `checkGradients` for eps and tolerance).
@Suite struct GradientTests {
    var rng = SeededGenerator(seed: 42)

    @Test mutating func gemm() throws {
        for (transA, transB) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let a = try randomTensor(transA == 1 ? [4, 3] : [3, 4], &rng)
            let b = try randomTensor(transB == 1 ? [5, 4] : [4, 5], &rng)
            let c = try randomTensor([5], &rng)
            try checkOp("Gemm", [("A", a), ("B", b), ("C", c)],
                        attributes: ["transA": .int(transA), "transB": .int(transB), "alpha": .float(0.7), "beta": .float(1.3)])
        }
    }

    @Test mutating func matMul() throws {
        try checkOp("MatMul", [("A", try randomTensor([2, 1, 3, 4], &rng)), ("B", try randomTensor([3, 4, 2], &rng))])
        try checkOp("MatMul", [("A", try randomTensor([4], &rng)), ("B", try randomTensor([2, 4, 3], &rng))])
        try checkOp("MatMul", [("A", try randomTensor([3, 4], &rng)), ("B", try randomTensor([4], &rng))])
    }

    @Test mutating func arithmeticWithBroadcasting() throws {
        for op in ["Add", "Sub", "Mul"] {
            try checkOp(op, [("A", try randomTensor([2, 3, 4], &rng)), ("B", try randomTensor([3, 1], &rng))])
            try checkOp(op, [("A", try randomTensor([1, 4], &rng)), ("B", try randomTensor([3, 1], &rng))])
        }
        try checkOp("Div", [("A", try randomTensor([2, 3, 4], &rng)), ("B", try randomTensor([4], &rng, 0.5...2))])
    }

    @Test mutating func sameValueOnBothSides() throws {
        let x = try randomTensor([3, 4], &rng)
        try checkOp("Mul", [("X", x)], order: ["X", "X"])
    }

    /// Inputs kept at least 0.05 away from Relu's kink, farther than eps.
    mutating func awayFromZero(_ shape: [Int]) throws -> Tensor {
        let t = try randomTensor(shape, &rng)
        for i in 0..<t.count where abs(t.floats[i]) < 0.05 { t.floats[i] = t.floats[i] < 0 ? -0.3 : 0.3 }
        return t
    }

    @Test mutating func relu() throws { try checkOp("Relu", [("X", try awayFromZero([3, 5]))]) }
    @Test mutating func leakyRelu() throws {
        try checkOp("LeakyRelu", [("X", try awayFromZero([3, 5]))], attributes: ["alpha": .float(0.2)])
    }
    @Test mutating func sigmoid() throws { try checkOp("Sigmoid", [("X", try randomTensor([3, 5], &rng, -3...3))]) }
    @Test mutating func tanh() throws { try checkOp("Tanh", [("X", try randomTensor([3, 5], &rng, -2...2))]) }

    @Test mutating func softmax() throws {
        try checkOp("Softmax", [("X", try randomTensor([2, 3, 4], &rng, -2...2))], attributes: ["axis": .int(1)])
        try checkOp("Softmax", [("X", try randomTensor([2, 3, 4], &rng, -2...2))], attributes: ["axis": .int(1)], opset: 11)
    }

    @Test mutating func logSoftmax() throws {
        try checkOp("LogSoftmax", [("X", try randomTensor([3, 5], &rng, -2...2))])
        try checkOp("LogSoftmax", [("X", try randomTensor([2, 3, 2], &rng, -2...2))], opset: 12)
    }

    @Test mutating func flatten() throws {
        try checkOp("Flatten", [("X", try randomTensor([2, 3, 2], &rng))], attributes: ["axis": .int(2)])
    }

    @Test mutating func reshape() throws {
        try checkOp("Reshape", [("X", try randomTensor([2, 3, 2], &rng))],
                    constants: [("shape", try Tensor(shape: [2], int64s: [3, -1]))])
    }

    @Test mutating func transpose() throws {
        try checkOp("Transpose", [("X", try randomTensor([2, 3, 4], &rng))], attributes: ["perm": .ints([2, 0, 1])])
        try checkOp("Transpose", [("X", try randomTensor([2, 3], &rng))])
    }

    @Test mutating func concat() throws {
        try checkOp("Concat", [("A", try randomTensor([2, 1, 3], &rng)), ("B", try randomTensor([2, 3, 3], &rng))],
                    attributes: ["axis": .int(-2)])
    }

    @Test mutating func conv2D() throws {
        let cases: [(x: [Int], w: [Int], attrs: [String: AttributeValue])] = [
            ([2, 2, 5, 5], [3, 2, 3, 3], [:]),
            ([1, 2, 6, 5], [2, 2, 2, 3], ["strides": .ints([2, 1]), "pads": .ints([1, 0, 0, 2])]),
            ([1, 4, 7, 7], [4, 2, 3, 2], ["dilations": .ints([2, 1]), "group": .int(2), "pads": .ints([1, 1, 1, 1])]),
            ([1, 3, 5, 5], [3, 1, 3, 3], ["group": .int(3), "auto_pad": .string("SAME_UPPER"), "strides": .ints([2, 2])]),
            ([1, 2, 6, 9], [2, 2, 2, 3], ["strides": .ints([1, 3]), "dilations": .ints([1, 2]), "pads": .ints([2, 0, 0, 3])]),
        ]
        for c in cases {
            try checkOp("Conv", [("X", try randomTensor(c.x, &rng)), ("W", try randomTensor(c.w, &rng)),
                                 ("B", try randomTensor([c.w[0]], &rng))], attributes: c.attrs)
        }
    }

    @Test mutating func conv1D() throws {
        try checkOp("Conv", [("X", try randomTensor([2, 2, 9], &rng)), ("W", try randomTensor([4, 1, 3], &rng)),
                             ("B", try randomTensor([4], &rng))],
                    attributes: ["strides": .ints([2]), "pads": .ints([1, 2]), "dilations": .ints([2]), "group": .int(2)])
    }

    /// Distinct values at least 0.05 apart, so no window's maximum changes under ±eps.
    mutating func distinct(_ shape: [Int]) throws -> Tensor {
        let count = shape.reduce(1, *)
        var values = (0..<count).map { Float($0) * 0.05 - Float(count) * 0.025 }
        values.shuffle(using: &rng)
        return try Tensor(shape: shape, floats: values)
    }

    @Test mutating func maxPool() throws {
        try checkOp("MaxPool", [("X", try distinct([1, 2, 5, 5]))], attributes: ["kernel_shape": .ints([2, 2])])
        try checkOp("MaxPool", [("X", try distinct([2, 1, 6, 5]))],
                    attributes: ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 1]), "pads": .ints([1, 0, 1, 1])])
    }

    @Test mutating func averagePool() throws {
        for include in [0, 1] {
            try checkOp("AveragePool", [("X", try randomTensor([1, 2, 5, 6], &rng))],
                        attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                                     "count_include_pad": .int(include)])
        }
        try checkOp("AveragePool", [("X", try randomTensor([2, 3, 7], &rng))], attributes: ["kernel_shape": .ints([3])])
    }

    @Test mutating func globalAveragePool() throws {
        try checkOp("GlobalAveragePool", [("X", try randomTensor([2, 3, 4, 3], &rng))])
    }

    @Test mutating func dropoutTrainingMode() throws {
        let x = try randomTensor([4, 25], &rng)
        try checkOp("Dropout", [("X", x)], constants: [("ratio", try Tensor(shape: [], floats: [0.3]))], training: true)
        // The mask really drops: about 30% zeros, survivors scaled by 1 / 0.7.
        let graph = singleNodeGraph("Dropout", inputs: [("X", x)], constants: [("ratio", try Tensor(shape: [], floats: [0.3]))])
        let engine = try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: ["X"])
        let y = try engine.forward(["X": x], training: true, seed: 3)[0].floatArray()
        let zeros = y.filter { $0 == 0 }.count
        #expect((15...45).contains(zeros), "\(zeros) of 100 dropped at ratio 0.3")
        for (i, v) in y.enumerated() where v != 0 { #expect(abs(v - x.floats[i] / 0.7) < 1e-6) }
        let inference = try engine.forward(["X": x], training: false)[0].floatArray()
        #expect(inference == x.floatArray())
    }

    @Test mutating func sharedValueAccumulates() throws {
        // y = Relu(X·W) + X·W: the MatMul output feeds two nodes, its gradient must be their sum.
        let x = try randomTensor([3, 4], &rng), w = try randomTensor([4, 2], &rng)
        let graph = Graph(inputs: [ValueInfo(name: "X", dtype: .float32, dims: [.fixed(3), .fixed(4)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: nil)],
                          nodes: [Node(name: "mm", opType: "MatMul", inputs: ["X", "W"], outputs: ["h"]),
                                  Node(name: "act", opType: "Tanh", inputs: ["h"], outputs: ["t"]),
                                  Node(name: "sum", opType: "Add", inputs: ["t", "h"], outputs: ["y"])],
                          initializers: ["W": w])
        try checkGradients(graph, feeds: ["X": x], differentiable: ["X", "W"])
    }

    @Test func missingGradientIsAClearError() throws {
        let graph = singleNodeGraph("Clip", inputs: [("X", try Tensor(shape: [2], floats: [1, 2]))])
        #expect {
            try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: ["X"])
        } throws: { ($0 as? LatheError)?.status == .unsupportedOp && "\($0)".contains("no gradient") }
    }
}
