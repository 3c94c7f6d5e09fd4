import Testing
import Foundation
import LatheCore
import LatheOps
import LatheONNX
@testable import LatheTrain

/// Exported models against Lathe's own importer, and files for the onnxruntime check in
/// `bindings/python/tests/test_training_export.py`.
@Suite struct ExportTests {
    /// `.build/train-export/` of this checkout.
    static let exportDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/train-export")

    /// Trains briefly, exports, re-imports with `ONNXImporter`, runs through `Session`, and compares with
    /// `predict` (max |diff| ≤ 1e-5). Writes `<name>.onnx`, `<name>.x.f32`, `<name>.y.f32` (raw little-endian
    /// float32) and `<name>.json` (shapes) for the onnxruntime test.
    func roundTrip(_ model: Sequential, name: String, x: Tensor, y: Tensor) throws {
        try model.fit(x: x, y: y, epochs: 2, batchSize: 16, seed: 1)
        let expected = try model.predict(x, batchSize: 7)
        let bytes = try model.onnxBytes()
        let graph = try ONNXImporter.graph(from: bytes)
        #expect(!graph.nodes.contains { $0.opType == "Dropout" })
        #expect(graph.initializers.keys.allSatisfy { !$0.contains("ratio") })
        let registry = OpRegistry()
        try BuiltinOps.register(into: registry)
        let session = Session(model: try Model(graph: graph, registry: registry))
        let got = try session.run(["input": x])["output"]!
        #expect(got.shape == expected.shape)
        let error = zip(got.floatArray(), expected.floatArray()).map { abs($0 - $1) }.max() ?? .infinity
        #expect(error <= 1e-5, "\(name): max |Lathe re-import − predict| = \(error)")

        let dir = Self.exportDirectory
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(bytes).write(to: dir.appendingPathComponent("\(name).onnx"))
        try Data(bytes: x.bytes, count: x.byteCount).write(to: dir.appendingPathComponent("\(name).x.f32"))
        try Data(bytes: expected.bytes, count: expected.byteCount).write(to: dir.appendingPathComponent("\(name).y.f32"))
        let meta = "{\"x_shape\": \(x.shape), \"y_shape\": \(expected.shape)}"
        try Data(meta.utf8).write(to: dir.appendingPathComponent("\(name).json"))
    }

    @Test func cnnRoundTrip() throws {
        let data = try defectImages(count: 48, seed: 8)
        let model = Sequential(seed: 3)
        try model.add(Conv2D(4, kernelSize: (3, 3), strides: (2, 1), padding: "same", activation: .relu, inputShape: [8, 8, 1]))
        try model.add(AveragePooling2D((2, 2), strides: (1, 2)))
        try model.add(Conv2D(6, kernelSize: (2, 2), activation: .tanh))
        try model.add(MaxPooling2D((2, 2), padding: "same"))
        try model.add(Flatten())
        try model.add(Dropout(0.3))
        try model.add(Dense(3, activation: .softmax))
        try model.compile(optimizer: .sgd(learningRate: 0.05, momentum: 0.9, nesterov: true),
                          loss: .sparseCategoricalCrossentropy(), metrics: [.accuracy])
        try roundTrip(model, name: "cnn", x: data.x, y: data.y)
    }

    @Test func globalPoolingRoundTrip() throws {
        let data = try defectImages(count: 32, seed: 9)
        let model = Sequential([Conv2D(5, kernelSize: (3, 3), activation: .leakyRelu(alpha: 0.1), inputShape: [8, 8, 1]),
                                GlobalAveragePooling2D(), Dense(3), Activation(.softmax)], seed: 4)
        try model.compile(optimizer: .adamW(learningRate: 0.01), loss: .sparseCategoricalCrossentropy())
        try roundTrip(model, name: "gap", x: data.x, y: data.y)
    }

    @Test func mlpRoundTrip() throws {
        let data = try failureData(count: 40, seed: 6)
        let model = Sequential([KernelRegularized(Dense(12, activation: .relu, kernelInitializer: .heNormal, inputShape: [8]), l2: 1e-4),
                                Dropout(0.5), Dense(1, activation: .sigmoid)], seed: 5)
        try model.compile(optimizer: Optimizer(.adam(), learningRate: 0.01, clipping: .globalNorm(1)),
                          loss: .binaryCrossentropy())
        try roundTrip(model, name: "mlp", x: data.x, y: data.y)
    }

    @Test func dropoutFeedingTheOutputBecomesIdentity() throws {
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.fixed(2)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: [.fixed(2)])],
                          nodes: [Node(name: "d", opType: "Dropout", inputs: ["x", "r"], outputs: ["y"])],
                          initializers: ["r": try Tensor(shape: [], floats: [0.5])])
        let exported = try ONNXImporter.graph(from: try ONNXExporter.modelBytes(graph))
        #expect(exported.nodes.map(\.opType) == ["Identity"])
        #expect(exported.initializers.isEmpty)
    }
}
