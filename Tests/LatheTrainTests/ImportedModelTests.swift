#if canImport(Glibc)
import Glibc
#endif
import Testing
import LatheCore
import LatheONNX
@testable import LatheTrain

/// Fine-tuning imported ONNX networks: freezing, cutting, a new head, and frozen BatchNormalization.
@Suite struct ImportedModelTests {
    /// models/defect_cnn.onnx in this checkout (input `image` [N, 1, 28, 28], features `relu_10`).
    static let defectCNN: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)   // Tests/LatheTrainTests/<file>
        return parts.joined(separator: "/") + "/models/defect_cnn.onnx"
    }()

    /// `n` noisy 28×28 images; label 1 (half of them) carries a bright scratch: a random line of 10–18 pixels.
    static func scratches(_ n: Int, seed: UInt64) throws -> (x: Tensor, y: Tensor) {
        var rng = SeededGenerator(seed: seed)
        let x = try Tensor(.float32, shape: [n, 1, 28, 28]), y = try Tensor(.float32, shape: [n, 1])
        for s in 0..<n {
            let image = x.floats + s * 784
            for i in 0..<784 { image[i] = rng.uniform(0, 0.4) }
            let defect = s % 2 == 1
            y.floats[s] = defect ? 1 : 0
            guard defect else { continue }
            let length = 10 + Int(rng.next() % 9)
            var r = Float(4 + rng.next() % 20), c = Float(4 + rng.next() % 20)
            let angle = rng.uniform(0, 2 * .pi)
            let (dr, dc) = (sinf(angle), cosf(angle))
            for _ in 0..<length {
                let (ri, ci) = (Int(r.rounded()), Int(c.rounded()))
                if (0..<28).contains(ri), (0..<28).contains(ci) { image[ri * 28 + ci] = 1 }
                r += dr
                c += dc
            }
        }
        return (x, y)
    }

    @Test func frozenBackboneAndNewHeadLearnScratches() throws {
        let base = try ImportedModel(contentsOf: Self.defectCNN, cutAt: "relu_10")
        #expect(base.inputShape == [1, 28, 28])
        let model = Sequential([base, Dense(1, activation: .sigmoid)], seed: 4)
        try model.compile(optimizer: Optimizer(.adam(), learningRate: 0.01), loss: .binaryCrossentropy(fromLogits: false),
                          metrics: [.binaryAccuracy])
        #expect(model.trainableWeights == ["dense/kernel", "dense/bias"])
        let before = try model.weights.filter { $0.key.hasPrefix("imported/") }.mapValues { try $0.copy() }
        #expect(before.count == 4)   // conv and first fc weights and biases (the cut drops the last Gemm)
        let train = try Self.scratches(300, seed: 1), test = try Self.scratches(200, seed: 2)
        try model.fit(x: train.x, y: train.y, epochs: 30, batchSize: 32, seed: 3)
        for (name, tensor) in before {
            let now = model.weights[name]!
            #expect((0..<tensor.count).allSatisfy { now.floats[$0].bitPattern == tensor.floats[$0].bitPattern },
                    "frozen '\(name)' changed")
        }
        let accuracy = try #require(try model.evaluate(x: test.x, y: test.y)["binary_accuracy"])
        #expect(accuracy >= 0.85, "held-out accuracy \(accuracy)")
    }

    @Test func freezeAndUnfreezeByNodeOrInitializer() throws {
        let graph = try ONNXImporter.graph(contentsOf: Self.defectCNN)
        let all = try ImportedModel(graph, trainable: true, freeze: ["conv_3"])
        let model = Sequential([all], seed: 1)
        try model.build()
        #expect(model.trainableWeights.sorted() == ["imported/fc_b_12", "imported/fc_b_8", "imported/fc_w_11", "imported/fc_w_7"])
        let some = Sequential([try ImportedModel(graph, cutAt: "maxpool_5", unfreeze: ["conv_b_2"]), Flatten(), Dense(2)])
        try some.build()
        #expect(some.trainableWeights == ["imported/conv_b_2", "dense/kernel", "dense/bias"])
        // A rank-3 cut is channels-first inside, so Flatten reorders it to Keras's channels-last order.
        #expect(some.graph!.nodes.contains { $0.opType == "Transpose" && $0.name.hasPrefix("flatten") })
    }

    @Test func badArgumentsAreNamed() throws {
        let graph = try ONNXImporter.graph(contentsOf: Self.defectCNN)
        #expect(throws: LatheError.self) { try ImportedModel(graph, cutAt: "nope") }
        let error = #expect(throws: LatheError.self) { try ImportedModel(graph, freeze: ["conv9"]) }
        #expect(error?.message.contains("'conv9'") == true)
        let model = Sequential([try ImportedModel(graph)], inputShape: [28, 28, 1])
        let shape = #expect(throws: LatheError.self) { try model.build() }
        #expect(shape?.status == .shapeMismatch)
    }

    /// A frozen BatchNormalization runs in inference mode while the rest trains: its moving statistics and
    /// its output for a given input are unchanged by fit.
    @Test func frozenBatchNormalizationKeepsStatistics() throws {
        var rng = SeededGenerator(seed: 6)
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.symbolic("N"), .fixed(3)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: nil)],
                          nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["h"]),
                                  Node(name: "bn", opType: "BatchNormalization", inputs: ["h", "g", "beta", "mean", "var"], outputs: ["y"])],
                          initializers: ["w": try randomTensor([3, 4], &rng), "b": try randomTensor([4], &rng),
                                         "g": try Tensor(shape: [4], floats: [1, 2, 1, 0.5]), "beta": try randomTensor([4], &rng),
                                         "mean": try randomTensor([4], &rng), "var": try Tensor(shape: [4], floats: [1, 2, 3, 4])],
                          opsets: ["": 17])
        let model = Sequential([try ImportedModel(graph, trainable: true, freeze: ["bn"]), Dense(1)], seed: 2)
        try model.compile(optimizer: "adam", loss: "mse")
        #expect(model.trainableWeights == ["imported/w", "imported/b", "dense/kernel", "dense/bias"])
        let x = try randomTensor([64, 3], &rng, -2...2), y = try randomTensor([64, 1], &rng)
        try model.fit(x: x, y: y, epochs: 3, batchSize: 16)
        #expect(model.weights["imported/mean"]!.floatArray() == graph.initializers["mean"]!.floatArray())
        #expect(model.weights["imported/var"]!.floatArray() == [1, 2, 3, 4])
        #expect(model.weights["imported/w"]!.floatArray() != graph.initializers["w"]!.floatArray())
    }
}
