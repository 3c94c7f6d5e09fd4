import Testing
import LatheCore
@testable import LatheTrain

/// The engine's fused and batched paths against finite differences and against simpler paths: Conv with
/// the Relu after it (against the unfused pair, which keeps the Conv's value as a second graph output),
/// the Conv backward over chunks of samples (against one sample at a time), the 2×2/2 MaxPool backward.
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

    @Test mutating func convBackwardOverChunksEqualsOneSampleAtATime() throws {
        // 67 samples of 3×3 positions: two chunks (34 and 33 samples) in one pass, one sample per pass below.
        let (batch, xShape, wShape) = (67, [2, 5, 5], [3, 2, 3, 3])
        let x = try randomTensor([batch] + xShape, &rng), w = try randomTensor(wShape, &rng), b = try randomTensor([3], &rng)
        #expect(ConvGradient.chunkSamples(batch: batch, positions: 9, rows: 18) == 34)
        func gradients(_ input: Tensor, _ seed: Tensor) throws -> [[Float]] {
            let graph = singleNodeGraph("Conv", inputs: [("X", input)], constants: [("W", w), ("B", b)])
            let engine = try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: ["X", "W", "B"])
            _ = try engine.forward(["X": input], training: true)
            try engine.backward(seeds: ["y0": seed])
            return try ["X", "W", "B"].map { try #require(engine.gradient($0)).floatArray() }
        }
        let seed = try randomTensor([batch, 3, 3, 3], &rng)
        let whole = try gradients(x, seed)
        var dx: [Float] = [], dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: 3)
        let (inCount, outCount) = (x.count / batch, seed.count / batch)
        for n in 0..<batch {
            let one = try gradients(try Tensor(shape: [1] + xShape, floats: Array(x.floatArray()[n * inCount..<(n + 1) * inCount])),
                                    try Tensor(shape: [1, 3, 3, 3], floats: Array(seed.floatArray()[n * outCount..<(n + 1) * outCount])))
            dx += one[0]
            for i in dw.indices { dw[i] += one[1][i] }
            for i in db.indices { db[i] += one[2][i] }
        }
        for (name, (chunked, reference)) in zip(["dX", "dW", "dB"], zip(whole, [dx, dw, db])) {
            let scale = max(1, reference.map(abs).max()!)
            let error = zip(chunked, reference).map { abs($0 - $1) }.max()!
            #expect(error <= 1e-5 * scale, "\(name): max |chunked − per sample| = \(error)")
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
