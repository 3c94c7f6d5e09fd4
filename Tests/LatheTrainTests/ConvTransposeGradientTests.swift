import Testing
import LatheCore
import LatheOps
@testable import LatheTrain

/// ConvTranspose gradients against central finite differences (eps = 1e-2 on float32 forwards, max
/// |numeric − analytic| ≤ 1e-2 · max(1, max |analytic|)), and the Conv2DTranspose layer's output sizes
/// against Keras's rule.
@Suite struct ConvTransposeGradientTests {
    struct Case: Sendable, CustomStringConvertible {
        let x: [Int], w: [Int], group: Int
        let attributes: [String: AttributeValue]
        var description: String { "X\(x) W\(w) group \(group) \(attributes.keys.sorted())" }
    }

    static let cases: [Case] = [
        Case(x: [2, 2, 3, 3], w: [2, 3, 2, 2], group: 1, attributes: [:]),
        Case(x: [1, 2, 3, 2], w: [2, 2, 3, 3], group: 1,
             attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1]), "output_padding": .ints([1, 1])]),
        Case(x: [2, 4, 3, 3], w: [4, 1, 2, 3], group: 2,
             attributes: ["strides": .ints([2, 1]), "dilations": .ints([2, 1]), "pads": .ints([0, 1, 1, 0])]),
        Case(x: [1, 2, 3, 3], w: [2, 2, 3, 3], group: 1, attributes: ["strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")]),
        Case(x: [1, 2, 3, 3], w: [2, 2, 2, 2], group: 1, attributes: ["strides": .ints([2, 2]), "auto_pad": .string("SAME_LOWER")]),
        Case(x: [1, 2, 3, 3], w: [2, 1, 3, 3], group: 1, attributes: ["strides": .ints([2, 2]), "output_shape": .ints([6, 7])]),
        Case(x: [2, 3, 5], w: [3, 2, 3], group: 1, attributes: ["strides": .ints([3]), "pads": .ints([2, 1]), "dilations": .ints([2])]),
    ]

    @Test(arguments: cases)
    func gradients(_ c: Case) throws {
        var rng = SeededGenerator(seed: 41)
        var attributes = c.attributes
        attributes["group"] = .int(c.group)
        try checkOp("ConvTranspose", [("X", try randomTensor(c.x, &rng)), ("W", try randomTensor(c.w, &rng)),
                                      ("B", try randomTensor([c.w[1] * c.group], &rng))], attributes: attributes)
    }

    /// Without a bias input, only X and W are differentiated.
    @Test func withoutBias() throws {
        var rng = SeededGenerator(seed: 42)
        try checkOp("ConvTranspose", [("X", try randomTensor([1, 3, 2, 2], &rng)), ("W", try randomTensor([3, 2, 3, 3], &rng))],
                    attributes: ["strides": .ints([3, 2])])
    }

    /// Keras's output length: valid `in·s + max(k − s, 0)`, same `in·s`, and with output_padding
    /// `(in − 1)·s + k − 2·pad + op`; the layer's graph produces that shape.
    @Test(arguments: [("valid", 3, 1, nil), ("valid", 3, 2, nil), ("valid", 1, 2, nil), ("same", 3, 2, nil), ("same", 1, 3, nil),
                      ("same", 4, 2, nil), ("same", 3, 2, 1), ("valid", 3, 3, 2)] as [(String, Int, Int, Int?)])
    func layerOutputSize(padding: String, kernel: Int, stride: Int, outputPadding: Int?) throws {
        let input = 5
        let expected: Int
        if let outputPadding {
            expected = (input - 1) * stride + kernel - 2 * (padding == "same" ? kernel / 2 : 0) + outputPadding
        } else {
            expected = padding == "same" ? input * stride : input * stride + max(kernel - stride, 0)
        }
        let layer = Conv2DTranspose(3, kernelSize: (kernel, kernel), strides: (stride, stride), padding: padding,
                                    outputPadding: outputPadding.map { ($0, $0) }, inputShape: [input, input, 2])
        let model = Sequential([layer], seed: 1)
        try model.build()
        var rng = SeededGenerator(seed: 3)
        let y = try model.predict(try randomTensor([2, input, input, 2], &rng))
        #expect(y.shape == [2, expected, expected, 3])
    }

    @Test func badOutputPaddingIsRefused() throws {
        let model = Sequential([Conv2DTranspose(2, kernelSize: (3, 3), strides: (2, 2), outputPadding: (2, 2), inputShape: [4, 4, 1])])
        let error = #expect(throws: LatheError.self) { try model.build() }
        #expect(error?.message.contains("output_padding") == true)
    }

    /// A decoder learns: Dense → Reshape → Conv2DTranspose reconstructs 8×8 bar images from their code.
    @Test func decoderLearns() throws {
        let n = 64
        var rng = SeededGenerator(seed: 8)
        var codes = [Float](), images = [Float]()
        for _ in 0..<n {
            let row = Int(rng.next() % 8)
            codes += (0..<8).map { $0 == row ? 1 : 0 }
            images += (0..<64).map { $0 / 8 == row ? 1 : 0 }
        }
        let model = Sequential([Dense(16, activation: .relu, inputShape: [8]), Reshape([2, 2, 4]),
                                Conv2DTranspose(4, kernelSize: (3, 3), strides: (2, 2), padding: "same", activation: .relu),
                                Conv2DTranspose(1, kernelSize: (3, 3), strides: (2, 2), padding: "same", activation: .sigmoid)], seed: 3)
        try model.compile(optimizer: Optimizer(.adam(), learningRate: 0.02), loss: .binaryCrossentropy(fromLogits: false))
        let x = try Tensor(shape: [n, 8], floats: codes), y = try Tensor(shape: [n, 8, 8, 1], floats: images)
        let history = try model.fit(x: x, y: y, epochs: 60, batchSize: 16, seed: 2)
        let first = try #require(history["loss"].first), last = try #require(history["loss"].last)
        #expect(last < first * 0.25, "decoder loss went from \(first) to \(last)")
    }
}
