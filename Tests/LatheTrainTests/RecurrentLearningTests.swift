import Testing
import Foundation
import LatheCore
import LatheOps
import LatheONNX
@testable import LatheTrain

/// Windows of degrading sensor signals `[count, steps, features]` and their remaining useful life in [0, 1].
///
/// Each window sees a machine's health fall linearly from `h − rate·(steps − 1)` to `h` (h uniform in
/// [0.1, 1], rate in [0.01, 0.03] per step); feature f reads `a_f·health² + b_f·health + noise(σ 0.05)` with
/// fixed per-feature `a_f`, `b_f`. The target is the life left at the window's end, `1 − h`.
func degradationWindows(count: Int, steps: Int, features: Int, seed: UInt64) throws -> (x: Tensor, y: Tensor) {
    var rng = SeededGenerator(seed: seed)
    var shapeRng = SeededGenerator(seed: 99)
    let a = (0..<features).map { _ in shapeRng.uniform(-1, 1) }, b = (0..<features).map { _ in shapeRng.uniform(-1, 1) }
    var x = [Float](), y = [Float]()
    for _ in 0..<count {
        let h = rng.uniform(0.1, 1), rate = rng.uniform(0.01, 0.03)
        for t in 0..<steps {
            let health = h - rate * Float(steps - 1 - t)
            for f in 0..<features { x.append(a[f] * health * health + b[f] * health + 0.05 * rng.normal()) }
        }
        y.append(1 - h)
    }
    return (try Tensor(shape: [count, steps, features], floats: x), try Tensor(shape: [count, 1], floats: y))
}

/// Recurrent and sequence layers learning, and their export round trip.
@Suite struct RecurrentLearningTests {
    /// Re-imports `model`'s ONNX export with Lathe's importer: predictions equal `predict` within 1e-5.
    /// Also writes the files `bindings/python/tests/test_training_export_sequences.py` runs onnxruntime on.
    func exportRoundTrip(_ model: Sequential, name: String, x: Tensor) throws {
        let expected = try model.predict(x, batchSize: 16)
        let bytes = try model.onnxBytes()
        let graph = try ONNXImporter.graph(from: bytes)
        #expect(!graph.nodes.contains { $0.opType == "Dropout" })
        let registry = OpRegistry()
        try BuiltinOps.register(into: registry)
        let got = try Session(model: try Model(graph: graph, registry: registry)).run(["input": x])["output"]!
        #expect(got.shape == expected.shape)
        let error = zip(got.floatArray(), expected.floatArray()).map { abs($0 - $1) }.max() ?? .infinity
        #expect(error <= 1e-5, "\(name): max |re-import − predict| = \(error)")
        let dir = ExportTests.exportDirectory
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(bytes).write(to: dir.appendingPathComponent("\(name).onnx"))
        try Data(bytes: x.bytes, count: x.byteCount).write(to: dir.appendingPathComponent("\(name).x.f32"))
        try Data(bytes: expected.bytes, count: expected.byteCount).write(to: dir.appendingPathComponent("\(name).y.f32"))
        try Data("{\"x_shape\": \(x.shape), \"y_shape\": \(expected.shape)}".utf8).write(to: dir.appendingPathComponent("\(name).json"))
    }

    /// Root mean squared error of `model`'s predictions.
    func rmse(_ model: Sequential, _ x: Tensor, _ y: Tensor) throws -> Double {
        let p = try model.predict(x, batchSize: 64).floatArray(), t = y.floatArray()
        return (zip(p, t).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / Double(t.count)).squareRoot()
    }

    /// The predictive-maintenance stack LSTM(rs) → Dropout → LSTM(rs) → Dropout → LSTM → Dropout → Dense(1),
    /// shrunk to 16 units and windows of 30×8 for debug-build speed, learns remaining useful life with MSE:
    /// held-out RMSE ≤ 0.05 (targets spread uniformly over [0, 0.9], std ≈ 0.26; an untrained model ≈ 0.3+).
    @Test func lstmStackLearnsRemainingUsefulLife() throws {
        let train = try degradationWindows(count: 384, steps: 30, features: 8, seed: 1)
        let test = try degradationWindows(count: 128, steps: 30, features: 8, seed: 2)
        let model = Sequential([LSTM(16, returnSequences: true, inputShape: [30, 8]), Dropout(0.2),
                                LSTM(16, returnSequences: true), Dropout(0.2),
                                LSTM(16), Dropout(0.2), Dense(1)], seed: 7)
        try model.compile(optimizer: .adam(learningRate: 0.01), loss: .meanSquaredError)
        let before = try rmse(model, test.x, test.y)
        let history = try model.fit(x: train.x, y: train.y, epochs: 12, batchSize: 32, seed: 3)
        let after = try rmse(model, test.x, test.y)
        print("LSTM stack RUL: held-out RMSE \(before) → \(after); loss per epoch \(history["loss"])")
        #expect(after <= 0.05, "held-out RMSE \(after) (before training \(before))")
        try exportRoundTrip(model, name: "lstm_stack", x: test.x)
    }

    /// Conv1D → MaxPooling1D → BatchNormalization → GRU(rs) → GRU → Dense trains (loss falls), and its
    /// export (BatchNormalization in inference form with the moving statistics) round-trips within 1e-5.
    @Test func sequenceLayersTrainAndExport() throws {
        let data = try degradationWindows(count: 96, steps: 10, features: 3, seed: 4)
        let model = Sequential([Conv1D(6, kernelSize: 3, padding: "same", activation: .relu, inputShape: [10, 3]),
                                MaxPooling1D(2), BatchNormalization(momentum: 0.9), GRU(8, returnSequences: true),
                                GRU(6), Reshape([3, 2]), Flatten(), BatchNormalization(), Dense(1)], seed: 5)
        try model.compile(optimizer: .adam(learningRate: 0.01), loss: .meanSquaredError)
        let history = try model.fit(x: data.x, y: data.y, epochs: 6, batchSize: 16, seed: 1)
        let loss = history["loss"]
        #expect(loss.last! < loss.first!, "loss \(loss)")
        let moving = try #require(model.build().initializers["batch_normalization/moving_mean"]).floatArray()
        #expect(moving.contains { $0 != 0 }, "moving mean never updated")
        try exportRoundTrip(model, name: "sequence_layers", x: data.x)
    }

    /// Keras's defaults: orthogonal recurrent kernels (columns orthonormal), forget-gate bias 1, zero elsewhere.
    @Test func recurrentInitializers() throws {
        let model = Sequential([LSTM(5, inputShape: [4, 3])], seed: 2)
        let graph = try model.build()
        let r = try #require(graph.initializers["lstm/recurrent_kernel"]).floatArray()   // [1, 20, 5]
        for i in 0..<5 {
            for j in 0..<5 {
                let dot = (0..<20).map { r[$0 * 5 + i] * r[$0 * 5 + j] }.reduce(0, +)
                #expect(abs(dot - (i == j ? 1 : 0)) <= 1e-5)
            }
        }
        let bias = try #require(graph.initializers["lstm/bias"]).floatArray()
        #expect(bias.enumerated().allSatisfy { $0.element == ($0.offset >= 10 && $0.offset < 15 ? 1 : 0) })
        let y = try model.predict(try Tensor(shape: [2, 4, 3], floats: (0..<24).map { Float($0) / 24 }))
        #expect(y.shape == [2, 5])
    }

    @Test func badSequenceInputsAreRefused() throws {
        #expect(throws: LatheError.self) { try Sequential([LSTM(4, inputShape: [8])]).build() }
        #expect(throws: LatheError.self) { try Sequential([Conv1D(4, kernelSize: 9, inputShape: [5, 2])]).build() }
        #expect(throws: LatheError.self) { try Sequential([Reshape([7], inputShape: [2, 3])]).build() }
    }
}
