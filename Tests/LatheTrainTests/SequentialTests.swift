import Testing
import Foundation
import LatheCore
import LatheONNX
@testable import LatheTrain

/// A labelled data set: `x` `[N, ...]` float32, `y` targets.
struct DataSet {
    let x: Tensor
    let y: Tensor
}

/// Synthetic machine-failure records: 8 standardised sensor readings; a machine fails when a
/// non-linear combination of load, temperature and vibration crosses a threshold (about 30% fail).
func failureData(count: Int, seed: UInt64) throws -> DataSet {
    var rng = SeededGenerator(seed: seed)
    var x: [Float] = [], y: [Float] = []
    for _ in 0..<count {
        let f = (0..<8).map { _ in rng.normal() }
        let risk = f[0] * f[1] + 0.8 * f[2] * f[2] - 0.5 * f[3] + 0.3 * f[4]
        x += f
        y.append(risk > 0.9 ? 1 : 0)
    }
    return DataSet(x: try Tensor(shape: [count, 8], floats: x), y: try Tensor(shape: [count, 1], floats: y))
}

/// Synthetic 8×8 single-channel images, channels-last `[N, 8, 8, 1]`, of three defect shapes at random
/// positions with noise: 0 = horizontal scratch, 1 = vertical scratch, 2 = square blob. Labels `[N]` int64.
func defectImages(count: Int, seed: UInt64) throws -> DataSet {
    var rng = SeededGenerator(seed: seed)
    var x = [Float](repeating: 0, count: count * 64), y: [Int64] = []
    for n in 0..<count {
        let label = Int(rng.next() % 3)
        let r = Int(rng.next() % 5) + 1, c = Int(rng.next() % 5) + 1
        var pixels: [(Int, Int)] = []
        switch label {
        case 0: pixels = (0..<4).map { (r, min(c + $0 - 1, 7)) }
        case 1: pixels = (0..<4).map { (min(r + $0 - 1, 7), c) }
        default: pixels = [(r, c), (r + 1, c), (r, c + 1), (r + 1, c + 1)]
        }
        for i in 0..<64 { x[n * 64 + i] = 0.3 * rng.normal() }
        for (i, j) in pixels { x[n * 64 + i * 8 + j] += 1 }
        y.append(Int64(label))
    }
    return DataSet(x: try Tensor(shape: [count, 8, 8, 1], floats: x), y: try Tensor(shape: [count], int64s: y))
}

/// The small Keras-style CNN of the tests: Conv2D-MaxPool-Flatten-Dropout-Dense-softmax on 8×8×1 inputs.
func smallCNN(seed: UInt64) throws -> Sequential {
    let model = Sequential(seed: seed)
    try model.add(Conv2D(8, kernelSize: (3, 3), padding: "same", activation: .relu, inputShape: [8, 8, 1]))
    try model.add(MaxPooling2D((2, 2)))
    try model.add(Flatten())
    try model.add(Dropout(0.2))
    try model.add(Dense(3, activation: .softmax))
    try model.compile(optimizer: .adam(learningRate: 0.01), loss: .sparseCategoricalCrossentropy(), metrics: [.accuracy])
    return model
}

/// The weights as raw bit patterns, for bit-for-bit comparisons.
func weightBits(_ model: Sequential) -> [String: [UInt32]] {
    model.weights.mapValues { t in t.dtype == .float32 ? t.floatArray().map(\.bitPattern) : [] }
}

@Suite struct SequentialTests {
    @Test func sameSeedGivesIdenticalWeights() throws {
        let data = try defectImages(count: 96, seed: 1)
        var trained: [[String: [UInt32]]] = []
        for _ in 0..<2 {
            let model = try smallCNN(seed: 11)
            try model.fit(x: data.x, y: data.y, epochs: 2, batchSize: 16, seed: 5)
            trained.append(weightBits(model))
        }
        #expect(trained[0] == trained[1])
        #expect(weightBits(try smallCNN(seed: 11)) != weightBits(try smallCNN(seed: 12)))
        let other = try smallCNN(seed: 11)
        try other.fit(x: data.x, y: data.y, epochs: 2, batchSize: 16, seed: 6)   // other shuffle and dropout
        #expect(weightBits(other) != trained[0])
    }

    /// The whole training path — channels-last input Transpose, Conv, pooling, Flatten's transpose, Dense,
    /// and softmax fused with the cross-entropy — against finite differences of the loss computed from
    /// `predict`'s probabilities: one SGD step with learning rate 1 on one full batch moves each weight by
    /// −dLoss/dWeight. Central differences, eps 1e-2; tolerance 1e-2 · max(1, max |gradient|).
    @Test func fusedTrainingGradientMatchesFiniteDifferences() throws {
        let data = try defectImages(count: 6, seed: 12)
        let x = try rows(data.x, [0, 1, 2, 3, 4, 5])
        let model = Sequential([Conv2D(2, kernelSize: (3, 3), padding: "same", activation: .tanh, inputShape: [8, 8, 1]),
                                AveragePooling2D((2, 2), strides: (2, 2)), Conv2D(2, kernelSize: (2, 2), strides: (2, 2)),
                                Flatten(), Dense(3, activation: .softmax)], seed: 6)
        try model.compile(optimizer: .sgd(learningRate: 1), loss: .sparseCategoricalCrossentropy())
        func loss() throws -> Double {
            try Loss.sparseCategoricalCrossentropy().compute(prediction: try model.predict(x), target: data.y)
        }
        // The fused loss (from logits) equals the loss from the probabilities.
        #expect(abs(try model.evaluate(x: x, y: data.y)["loss"]! - (try loss())) < 1e-5)
        let before = model.weights.mapValues { $0.floatArray() }
        var numeric: [String: [Float]] = [:]
        let eps: Float = 1e-2
        for name in model.trainableWeights {
            let w = model.weights[name]!
            numeric[name] = try (0..<w.count).map { i in
                let saved = w.floats[i]
                w.floats[i] = saved + eps
                let plus = try loss()
                w.floats[i] = saved - eps
                let minus = try loss()
                w.floats[i] = saved
                return Float((plus - minus) / (2 * Double(eps)))
            }
        }
        try model.fit(x: x, y: data.y, epochs: 1, batchSize: 6, shuffle: false)
        for name in model.trainableWeights {
            let analytic = zip(before[name]!, model.weights[name]!.floatArray()).map { $0 - $1 }
            let scale = max(1, analytic.map(abs).max()!)
            let error = zip(analytic, numeric[name]!).map { abs($0 - $1) }.max()!
            #expect(error <= 1e-2 * scale, "\(name): max |numeric − analytic| = \(error)")
            #expect(analytic.contains { $0 != 0 }, "\(name) did not move")
        }
    }

    @Test func kerasShapesAndLayout() throws {
        let model = try smallCNN(seed: 0)
        let graph = try model.build()
        #expect(graph.inputs[0].dims == [.symbolic("N"), .fixed(8), .fixed(8), .fixed(1)])
        #expect(graph.outputs[0].dims == [.symbolic("N"), .fixed(3)])
        #expect(model.weights["conv2d/kernel"]?.shape == [8, 1, 3, 3])
        #expect(model.weights["dense/kernel"]?.shape == [128, 3])
        // Glorot uniform: within ±sqrt(6 / (fanIn + fanOut)); biases start at zero.
        let limit = (6.0 / Float(128 + 3)).squareRoot()
        #expect(model.weights["dense/kernel"]!.floatArray().allSatisfy { abs($0) <= limit })
        #expect(model.weights["dense/bias"]!.floatArray().allSatisfy { $0 == 0 })
        let prediction = try model.predict(try defectImages(count: 5, seed: 3).x, batchSize: 2)
        #expect(prediction.shape == [5, 3])
        for r in 0..<5 { #expect(abs((0..<3).map { prediction.floats[r * 3 + $0] }.reduce(0, +) - 1) < 1e-5) }
    }

    @Test func kerasNamesCompile() throws {
        let model = Sequential([Dense(4, activation: .relu, inputShape: [3]), Dense(2, activation: .softmax)])
        try model.compile(optimizer: "adam", loss: "sparse_categorical_crossentropy", metrics: ["accuracy"])
        #expect(model.loss == .sparseCategoricalCrossentropy() && model.metrics == [.accuracy])
        #expect(model.optimizer?.algorithm == .adam() && model.optimizer?.learningRate == 0.001)
        #expect { try model.compile(optimizer: "adam", loss: "hinge") } throws: { "\($0)".contains("unknown loss 'hinge'") }
    }

    @Test func mismatchedSampleCountsAreRejected() throws {
        let model = try smallCNN(seed: 0)
        let data = try defectImages(count: 10, seed: 1)
        #expect { try model.fit(x: data.x, y: try Tensor(shape: [9], int64s: Array(repeating: 0, count: 9))) }
            throws: { ($0 as? LatheError)?.status == .shapeMismatch && "\($0)".contains("x has 10 samples but y has 9") }
    }

    @Test func labelOutOfRangeNamesEpochAndBatch() throws {
        let model = try smallCNN(seed: 0)
        let data = try defectImages(count: 32, seed: 1)
        var labels = data.y.intArray().map(Int64.init)
        labels[20] = 7
        let before = weightBits(model)
        #expect { try model.fit(x: data.x, y: try Tensor(shape: [32], int64s: labels), epochs: 1, batchSize: 8, shuffle: false) }
            throws: { "\($0)".contains("epoch 1, batch 3 of 4") && "\($0)".contains("label 7 of sample 4 is out of range for 3 classes") }
        #expect(weightBits(model) != before)   // batches 1 and 2 trained
        #expect(model.weights.values.allSatisfy { $0.floatArray().allSatisfy(\.isFinite) })
    }

    @Test func nanInputStopsWithTheLastGoodWeights() throws {
        let data = try defectImages(count: 32, seed: 1)
        let poisoned = try data.x.copy()
        poisoned.floats[2 * 8 * 64 + 5] = .nan   // sample 16: the first of batch 3
        let model = try smallCNN(seed: 4)
        #expect { try model.fit(x: poisoned, y: data.y, epochs: 1, batchSize: 8, shuffle: false, seed: 9) }
            throws: { "\($0)".contains("epoch 1, batch 3 of 4") && "\($0)".contains("sample 16 is not finite") }
        // The weights are exactly those after the two good batches.
        let reference = try smallCNN(seed: 4)
        try reference.fit(x: try rows(data.x, Array(0..<16)), y: try rows(data.y, Array(0..<16)), epochs: 1,
                          batchSize: 8, shuffle: false, seed: 9)
        #expect(weightBits(model) == weightBits(reference))
    }

    @Test func divergingLossStopsWithFiniteWeights() throws {
        let data = try failureData(count: 64, seed: 2)
        let model = Sequential([Dense(16, activation: .relu, inputShape: [8]), Dense(1)], seed: 1)
        try model.compile(optimizer: .sgd(learningRate: 1e6), loss: .meanSquaredError)
        #expect { try model.fit(x: data.x, y: data.y, epochs: 50, batchSize: 16) }
            throws: { "\($0)".contains("epoch") && "\($0)".contains("not finite") }
        #expect(model.weights.values.allSatisfy { $0.floatArray().allSatisfy(\.isFinite) })
    }

    @Test func validationSplitAndHistory() throws {
        let data = try failureData(count: 100, seed: 3)
        let model = Sequential([Dense(8, activation: .tanh, inputShape: [8]), Dense(1, activation: .sigmoid)], seed: 2)
        try model.compile(optimizer: .rmsprop(learningRate: 0.01), loss: .binaryCrossentropy(), metrics: [.accuracy, .meanAbsoluteError])
        let history = try model.fit(x: data.x, y: data.y, epochs: 3, batchSize: 10, validationSplit: 0.2)
        #expect(history.epochs.count == 3)
        for key in ["loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae"] { #expect(history[key].count == 3, "\(key)") }
        #expect(history["loss"][2] < history["loss"][0])
        // The held-out 20 samples are the last ones: evaluating on them reproduces val_loss.
        let held = try model.evaluate(x: try rows(data.x, Array(80..<100)), y: try rows(data.y, Array(80..<100)))
        #expect(abs(held["loss"]! - history["val_loss"][2]) < 1e-9)
    }

    @Test func mlpLearnsFailureClassification() throws {
        // Threshold: F1 of the failure class ≥ 0.90 on 400 held-out records (the base rate is ~0.3).
        let train = try failureData(count: 1600, seed: 10), test = try failureData(count: 400, seed: 20)
        let model = Sequential([Dense(32, activation: .relu, inputShape: [8]), Dropout(0.1),
                                Dense(16, activation: .relu), Dense(1, activation: .sigmoid)], seed: 3)
        try model.compile(optimizer: .adam(learningRate: 0.01), loss: .binaryCrossentropy(), metrics: [.accuracy])
        try model.fit(x: train.x, y: train.y, epochs: 30, batchSize: 32, seed: 1)
        let p = try model.predict(test.x, batchSize: 128).floatArray(), t = test.y.floatArray()
        var tp = 0.0, fp = 0.0, fn = 0.0
        for (a, b) in zip(p, t) {
            if a >= 0.5 && b == 1 { tp += 1 } else if a >= 0.5 { fp += 1 } else if b == 1 { fn += 1 }
        }
        let f1 = 2 * tp / (2 * tp + fp + fn)
        #expect(f1 >= 0.90, "F1 \(f1)")
    }

    @Test func cnnLearnsDefectShapes() throws {
        // Threshold: accuracy ≥ 0.93 on 300 held-out images (chance is 0.33); fit seeds 1–6 give 0.947–0.973.
        let train = try defectImages(count: 900, seed: 30), test = try defectImages(count: 300, seed: 40)
        let model = try smallCNN(seed: 5)
        let history = try model.fit(x: train.x, y: train.y, epochs: 20, batchSize: 32, validationData: (test.x, test.y), seed: 2)
        let result = try model.evaluate(x: test.x, y: test.y)
        #expect(result["accuracy"]! >= 0.93, "accuracy \(result["accuracy"]!)")
        #expect(abs(result["accuracy"]! - history["val_accuracy"].last!) < 1e-12)
    }
}
