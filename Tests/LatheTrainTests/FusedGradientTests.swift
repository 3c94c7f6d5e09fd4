import Testing
import LatheCore
@testable import LatheTrain

/// The engine's fused paths (Conv with the Relu after it; the 2×2/2 MaxPool backward) against finite
/// differences and against the unfused pair, which keeps the Conv's value as a second graph output.
@Suite struct FusedGradientTests {
    var rng = SeededGenerator(seed: 5)

    /// X → Conv(W, B) → h → Relu → y; with `keepConvOutput`, `h` is also a graph output (so never fused).
    func convRelu(w: Tensor, b: Tensor, xShape: [Int], keepConvOutput: Bool,
                  attributes: [String: AttributeValue] = [:]) -> Graph {
        var outputs = [ValueInfo(name: "y", dtype: .float32, dims: nil)]
        if keepConvOutput { outputs.append(ValueInfo(name: "h", dtype: .float32, dims: nil)) }
        return Graph(inputs: [ValueInfo(name: "X", dtype: .float32, dims: xShape.map { .fixed($0) })], outputs: outputs,
                     nodes: [Node(name: "conv", opType: "Conv", inputs: ["X", "W", "B"], outputs: ["h"], attributes: attributes),
                             Node(name: "relu", opType: "Relu", inputs: ["h"], outputs: ["y"])],
                     initializers: ["W": w, "B": b], opsets: ["": 17])
    }

    @Test mutating func convReluMatchesFiniteDifferences() throws {
        let attributes: [String: AttributeValue] = ["pads": .ints([1, 0, 1, 1])]
        // Nudges of ±1e-3 move a pre-activation by at most 3e-3 here: draw data until none sits within
        // 1e-2 of zero (a Relu kink), with both signs present.
        var draw: (x: Tensor, w: Tensor, b: Tensor)?
        for _ in 0..<50 where draw == nil {
            let x = try randomTensor([2, 3, 5, 5], &rng), w = try randomTensor([4, 3, 3, 3], &rng), b = try randomTensor([4], &rng)
            let unfused = try GradientEngine(graph: convRelu(w: w, b: b, xShape: x.shape, keepConvOutput: true, attributes: attributes),
                                             registry: trainingRegistry, differentiable: ["X"])
            let h = try unfused.forward(["X": x], training: false)[1].floatArray()
            if h.allSatisfy({ abs($0) > 1e-2 }) && h.contains(where: { $0 < 0 }) && h.contains(where: { $0 > 0 }) { draw = (x, w, b) }
        }
        let (x, w, b) = try #require(draw)
        let graph = convRelu(w: w, b: b, xShape: x.shape, keepConvOutput: false, attributes: attributes)
        let engine = try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: ["X"])
        _ = try engine.forward(["X": x], training: false)
        #expect(engine.value("h") == nil, "the Conv's value is not kept when fused")
        #expect(engine.producer(of: "y")?.opType == "Relu")
        try checkGradients(graph, feeds: ["X": x], differentiable: ["X", "W", "B"], eps: 1e-3)
    }

    @Test mutating func convReluEqualsTheUnfusedPair() throws {
        for (xShape, wShape, attributes) in [([3, 2, 7, 6], [4, 2, 3, 3], [String: AttributeValue]()),
                                             ([2, 4, 6, 6], [6, 2, 2, 2], ["group": .int(2), "strides": .ints([2, 1])])] {
            let x = try randomTensor(xShape, &rng), w = try randomTensor(wShape, &rng), b = try randomTensor([wShape[0]], &rng)
            var results: [[[Float]]] = []
            var seed: Tensor?
            for keep in [false, true] {
                let engine = try GradientEngine(graph: convRelu(w: w, b: b, xShape: xShape, keepConvOutput: keep, attributes: attributes),
                                                registry: trainingRegistry, differentiable: ["X", "W", "B"])
                let y = try engine.forward(["X": x], training: true)[0]
                if seed == nil { seed = try randomTensor(y.shape, &rng) }
                try engine.backward(seeds: ["y": seed!])
                results.append([y.floatArray()] + (try ["X", "W", "B"].map { try #require(engine.gradient($0)).floatArray() }))
            }
            for (k, what) in ["Y", "dX", "dW", "dB"].enumerated() {
                #expect(results[0][k] == results[1][k], "fused and unfused Conv+Relu differ in \(what) for X\(xShape), W\(wShape)")
            }
            #expect(results[1][1].contains { $0 != 0 } && results[1][2].contains { $0 != 0 })
        }
    }

    @Test mutating func maxPool2x2MatchesFiniteDifferences() throws {
        for shape in [[2, 3, 6, 8], [1, 2, 7, 5], [1, 2, 4, 23]] {   // 23 wide: 8 windows at once, then 3 alone
            let count = shape.reduce(1, *)
            var values = (0..<count).map { Float($0) * 0.05 - Float(count) * 0.025 }
            values.shuffle(using: &rng)
            try checkOp("MaxPool", [("X", try Tensor(shape: shape, floats: values))],
                        attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        }
    }

    @Test mutating func maxPool2x2SendsTiesToTheFirstTap() throws {
        // Values from {0, 1, 2} tie often; the gradient goes to the first maximal tap in row-major order.
        // 21 wide: a row's first 8 windows at once, the other 2 (and the odd last column) alone.
        let (height, width) = (4, 21)
        let values = (0..<(height * width)).map { _ in Float(Int.random(in: 0...2, using: &rng)) }
        let x = try Tensor(shape: [1, 1, height, width], floats: values)
        let graph = singleNodeGraph("MaxPool", inputs: [("X", x)],
                                    attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        let engine = try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: ["X"])
        let y = try engine.forward(["X": x], training: false)[0]
        let dy = try randomTensor(y.shape, &rng)
        try engine.backward(seeds: ["y0": dy])
        var expected = [Float](repeating: 0, count: values.count)
        for oh in 0..<(height / 2) {
            for ow in 0..<(width / 2) {
                let taps = [(0, 0), (0, 1), (1, 0), (1, 1)].map { (2 * oh + $0.0) * width + 2 * ow + $0.1 }
                let best = taps.map { values[$0] }.max()!
                expected[taps.first { values[$0] == best }!] += dy.floats[oh * (width / 2) + ow]
            }
        }
        #expect(try #require(engine.gradient("X")).floatArray() == expected)
    }
}
