import CLatheShims
#if canImport(Glibc)
import Glibc
#endif
import LatheCore
import LatheONNX

/// Per-epoch results of `fit`: `"loss"`, each metric's name, and `"val_"`-prefixed ones with validation data.
public struct History: Sendable {
    /// One dictionary per epoch.
    public var epochs: [[String: Double]] = []

    /// The values of one key over the epochs (empty for an unknown key).
    public subscript(key: String) -> [Double] { epochs.compactMap { $0[key] } }
}

/// A model trained Keras-style: layers connected as a directed acyclic graph from one input to one
/// output (a chain for `Sequential`; any DAG through `Functional(input:output:)`, see Functional.swift).
/// The model *is* a `Graph` (the IR ONNX models import to), built when the model is compiled; its weights
/// are the graph's initializers.
///
/// Shapes as the user sees them: `x` is `[N, features]` or channels-last `[N, H, W, C]`; `y` is
/// `[N, outputs]` (or `[N]` class indices for sparse categorical cross-entropy).
///
/// Freezing (Keras's `layer.trainable = False`): `setTrainable(_:layer:)` takes effect at the next
/// `compile` (or at `build`), as in Keras. A frozen layer's weights are not updated (the optimizer never
/// sees them) but stay in `parameterWeights` (Keras's `get_weights`); a frozen BatchNormalization runs in
/// inference mode while training, keeping its moving statistics.
public class Functional {
    /// The layers, in the order they are built (topological).
    public private(set) var layers: [any Layer]
    /// Whether each layer (by index in `layers`) is trained.
    public private(set) var layerTrainable: [Bool]
    /// The values each layer reads: `0` is the model's input, `k` the output of `layers[k - 1]`.
    public private(set) var connections: [[Int]]
    /// The value the model outputs (`layers.count` for a chain).
    public private(set) var outputValue: Int
    /// The input shape without the batch axis (channels-last for images); else the first layer's.
    public let declaredInputShape: [Int]?
    /// Seeds the weight initialisation.
    public let seed: UInt64
    /// The graph, once built (by `build()` or `compile`).
    public private(set) var graph: Graph?
    /// Every layer weight (trained or frozen; not constants such as moving statistics), in layer order:
    /// what Keras's `get_weights` returns.
    public private(set) var parameterWeights: [String] = []
    /// The weights the optimizer updates (the parameters of trainable layers), in layer order.
    public private(set) var trainableWeights: [String] = []
    /// The trainable weights of each layer (those a frozen layer would train when unfrozen).
    private var layerWeights: [[String]] = []
    /// L2 factors by weight name (Keras's `kernel_regularizer=l2(x)`): `x · Σ w²` joins the loss.
    public private(set) var regularization: [String: Float] = [:]
    /// Epochs trained so far, over all `fit` calls (saved in checkpoints): epoch `e` draws its shuffling
    /// order and dropout masks from `fit`'s seed and `e` alone, so training resumes exactly.
    public internal(set) var epochsTrained = 0
    /// Set by `compile`.
    public private(set) var optimizer: Optimizer?
    public private(set) var loss: Loss?
    public private(set) var metrics: [Metric] = []
    /// The history key of each metric: its name, with `_1`, `_2`, ... for repeats (as Keras numbers them).
    public var metricKeys: [String] {
        var seen: [String: Int] = [:]
        return metrics.map { metric in
            let n = seen[metric.name, default: 0]
            seen[metric.name] = n + 1
            return n == 0 ? metric.name : "\(metric.name)_\(n)"
        }
    }
    private var engine: GradientEngine?
    /// Where back-propagation starts when the loss is fused with the final activation.
    private var lossInput: String?
    private let registry: OpRegistry
    /// Batch inputs, targets and loss gradients by role, reused so steady-state steps do not allocate them.
    private var scratch: [String: Tensor] = [:]
    /// The engine's feeds and back-propagation seeds, kept so a step does not build new dictionaries.
    private var feeds: [String: Tensor] = [:], lossSeeds: [String: Tensor] = [:]
    /// Copies of the trainable weights taken before each optimizer step (see `parameterBackups`).
    private var backupTensors: [Tensor] = []
    /// The gradients of the trainable weights in the last step (see `trainableGradients`).
    private var gradientTensors: [Tensor] = []
    /// Differentiates the loss with respect to the input (`inputGradient`), built on first use.
    private var inputGradientEngine: GradientEngine?
    /// Steps taken by `trainOnBatch` and `trainOnOutputGradient` (seeds their dropout masks).
    private var batchSteps: UInt64 = 0
    /// The graph's name.
    private let graphName: String

    /// A model of `layers` wired by `connections` (see the properties), outputting `outputValue`; usually
    /// made by `Sequential` or `Functional(input:output:)` instead.
    /// - Throws: `.invalidArgument` when a layer reads a value that is not the input or an earlier layer's.
    public init(layers: [any Layer], connections: [[Int]], outputValue: Int, inputShape: [Int]?, seed: UInt64 = 0,
                registry: OpRegistry = TrainingOps.sharedRegistry, graphName: String = "functional") throws {
        for (k, inputs) in connections.enumerated() where inputs.isEmpty || inputs.contains(where: { $0 < 0 || $0 > k }) {
            throw LatheError.invalid("layer \(k) reads values \(inputs); a layer reads the input or earlier layers' outputs")
        }
        guard layers.count == connections.count, outputValue >= 0, outputValue <= layers.count else {
            throw LatheError.invalid("model output \(outputValue) is not a value of its \(layers.count) layers")
        }
        self.layers = layers
        self.layerTrainable = layers.map { _ in true }
        self.connections = connections
        self.outputValue = outputValue
        self.declaredInputShape = inputShape
        self.seed = seed
        self.registry = registry
        self.graphName = graphName
    }

    /// Appends a layer reading `inputs`, making its output the model's; the model must not be built yet.
    func append(_ layer: any Layer, inputs: [Int]) throws {
        guard graph == nil else { throw LatheError(.invalidState, "cannot add a layer after the model is built") }
        layers.append(layer)
        layerTrainable.append(true)
        connections.append(inputs)
        outputValue = layers.count
    }

    /// Freezes (`false`) or unfreezes layer `index` (Keras's `layer.trainable`); takes effect at the next
    /// `compile` (or `build`), as in Keras.
    /// - Throws: `.invalidArgument` for an index out of range.
    public func setTrainable(_ trainable: Bool, layer index: Int) throws {
        guard layers.indices.contains(index) else {
            throw LatheError.invalid("setTrainable: layer \(index) is out of range (the model has \(layers.count) layers)")
        }
        layerTrainable[index] = trainable
    }

    /// Sets whether every layer is trained (Keras's `model.trainable`); takes effect at the next `compile`.
    public func setTrainable(_ trainable: Bool) {
        layerTrainable = layers.map { _ in trainable }
    }

    /// The weights by name (live: they change as the model trains).
    public var weights: [String: Tensor] { graph?.initializers ?? [:] }

    /// Builds the graph and initialises the weights from `seed` (done by `compile` when needed).
    /// - Throws: `.invalidArgument` without an input shape or with a bad layer setting; `.shapeMismatch`
    ///   when a layer cannot take its input(s).
    @discardableResult
    public func build() throws -> Graph {
        if let graph { return graph }
        guard let shape = declaredInputShape ?? layers.first?.inputShape else {
            throw LatheError.invalid("the model needs an input shape: Sequential(inputShape:) or inputShape: on the first layer")
        }
        guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }) else { throw LatheError.invalid("bad input shape \(shape)") }
        var builder = GraphBuilder(seed: seed)
        var values = [LayerValue(name: "input", shape: shape, channelsFirst: false)]
        var perLayer: [[String]] = []
        for (layer, inputs) in zip(layers, connections) {
            let before = builder.trainable.count
            let operands = inputs.map { values[$0] }
            if let merge = layer as? any MergeLayer {
                values.append(try merge.build(&builder, operands))
            } else {
                guard operands.count == 1 else {
                    throw LatheError.invalid("\(type(of: layer)) takes one input, got \(operands.count) (merge them with Add or Concatenate)")
                }
                values.append(try layer.build(&builder, operands[0]))
            }
            perLayer.append(Array(builder.trainable[before...]))
        }
        var value = values[outputValue]
        if value.channelsFirst {   // back to the user's channels-last layout
            value.name = builder.add("Transpose", builder.uniqueName("to_channels_last"), inputs: [value.name],
                                     attributes: ["perm": .ints([0, 2, 3, 1])])
            value.shape = [value.shape[1], value.shape[2], value.shape[0]]
        }
        let output = "output"
        builder.nodes.append(Node(name: output, opType: "Identity", inputs: [value.name], outputs: [output]))
        let graph = Graph(name: graphName,
                          inputs: [ValueInfo(name: "input", dtype: .float32, dims: [.symbolic("N")] + shape.map { .fixed($0) })],
                          outputs: [ValueInfo(name: output, dtype: .float32, dims: [.symbolic("N")] + value.shape.map { .fixed($0) })],
                          nodes: builder.nodes, initializers: builder.initializers, opsets: ["": 17])
        self.layerWeights = perLayer
        self.parameterWeights = builder.parameters
        self.regularization = builder.l2
        self.graph = graph
        try applyTrainable()
        return graph
    }

    /// Makes `trainableWeights` those of the trainable layers, recreating the gradient engine when they changed.
    private func applyTrainable() throws {
        guard let graph else { return }
        let wanted = zip(layerWeights, layerTrainable).flatMap { $0.1 ? $0.0 : [] }
        if engine != nil && wanted == trainableWeights { return }
        engine = try GradientEngine(graph: graph, registry: registry, differentiable: wanted)
        trainableWeights = wanted
    }

    /// Sets the training configuration, building the model first if needed; layers frozen or unfrozen
    /// since the last compile take their new state here.
    public func compile(optimizer: Optimizer, loss: Loss, metrics: [Metric] = []) throws {
        let graph = try build()
        try applyTrainable()
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = metrics
        // The value before the final activation (behind the Identity that names the output), if fusable.
        lossInput = nil
        if let activation = loss.fusableActivation, let last = graph.nodes.last,
           let producer = engine?.producer(of: last.inputs[0]), producer.opType == activation,
           (try? producer.attributes.int("axis", -1)) ?? 0 == -1 {
            lossInput = producer.inputs[0]
        }
    }

    /// `compile` with Keras names: `compile(optimizer: "adam", loss: "sparse_categorical_crossentropy", metrics: ["accuracy"])`.
    /// - Throws: `.invalidArgument` naming an unknown optimizer, loss or metric.
    public func compile(optimizer: String, loss: String, metrics: [String] = []) throws {
        guard let o = Optimizer(kerasName: optimizer) else { throw LatheError.invalid("unknown optimizer '\(optimizer)' (sgd, adam, adamw, rmsprop)") }
        guard let l = Loss(kerasName: loss) else { throw LatheError.invalid("unknown loss '\(loss)'") }
        let m = try metrics.map { name in
            guard let metric = Metric(kerasName: name) else { throw LatheError.invalid("unknown metric '\(name)'") }
            return metric
        }
        try compile(optimizer: o, loss: l, metrics: m)
    }

    /// Trains the model.
    /// - Parameters:
    ///   - validationData: evaluated after every epoch; takes precedence over `validationSplit`.
    ///   - validationSplit: the fraction of samples, taken from the end before shuffling (as Keras),
    ///     held out for validation (with their sample weights).
    ///   - shuffle: reshuffles the training samples every epoch.
    ///   - seed: with the epoch's index over all `fit` calls (`epochsTrained`), fixes that epoch's
    ///     shuffling order and dropout masks.
    ///   - sampleWeight: `[N]` non-negative weights of the samples' losses (Keras's `sample_weight`).
    ///   - classWeight: weights by class (Keras's `class_weight`; classes not listed weigh 1): a sample's
    ///     class is its class index, the argmax of a one-hot row, or its rounded single target.
    /// - Returns: per-epoch loss and metrics.
    /// - Throws: `.invalidState` before `compile`; `.shapeMismatch` when `x`, `y` and `sampleWeight`
    ///   disagree on the number of samples; `.invalidArgument` for both `sampleWeight` and `classWeight`,
    ///   or a negative or non-finite weight; an error naming the epoch and batch for non-finite inputs or
    ///   targets, an out-of-range label or a non-finite loss or gradient — the weights are then those
    ///   after the last good step.
    @discardableResult
    public func fit(x: Tensor, y: Tensor, epochs: Int = 1, batchSize: Int = 32,
                    validationData: (x: Tensor, y: Tensor)? = nil, validationSplit: Double = 0,
                    shuffle: Bool = true, seed: UInt64 = 0,
                    sampleWeight: Tensor? = nil, classWeight: [Int: Float]? = nil) throws -> History {
        guard let engine, let optimizer, let loss else {
            throw LatheError(.invalidState, "call compile(optimizer:loss:metrics:) before fit")
        }
        try checkSamples(x, y)
        guard epochs >= 0, batchSize > 0 else { throw LatheError.invalid("epochs must be >= 0 and batchSize > 0") }
        guard validationSplit >= 0 && validationSplit < 1 else {
            throw LatheError.invalid("validationSplit must be in [0, 1), got \(validationSplit)")
        }
        guard sampleWeight == nil || classWeight == nil else {
            throw LatheError.invalid("give sampleWeight or classWeight, not both (as Keras)")
        }
        var weights = try sampleWeight.map { try checkedWeights($0, samples: x.shape[0]) }
        if let classWeight { weights = try classWeights(classWeight, y, loss) }
        var trainCount = x.shape[0]
        var validation = validationData.map { (x: $0.x, y: $0.y, weight: Tensor?.none) }
        if validation == nil && validationSplit > 0 {
            let held = Int(Double(trainCount) * validationSplit)
            if held > 0 {
                let tail = Array((trainCount - held)..<trainCount)
                validation = (try rows(x, tail), try rows(y, tail), sampleWeight == nil ? nil : try rows(sampleWeight!, tail))
                trainCount -= held
            }
        }
        if let validation { try checkSamples(validation.x, validation.y) }
        guard trainCount > 0 else { throw LatheError.invalid("no training samples") }

        let parameters = trainableWeights.map { graph!.initializers[$0]! }
        let backups = try parameterBackups(parameters)
        var history = History()
        if epochs == 0 { return history }
        for epoch in 1...epochs {
            let epochSeed = mix(seed, UInt64(epochsTrained))
            var rng = SeededGenerator(seed: epochSeed)
            var order = Array(0..<trainCount)
            if shuffle { order.shuffle(using: &rng) }
            var lossSum = 0.0, seen = 0
            var totals = metrics.map { $0.makeTotals() }
            let batches = (trainCount + batchSize - 1) / batchSize
            for batch in 0..<batches {
                func where_() -> String { "epoch \(epoch), batch \(batch + 1) of \(batches)" }
                let indices = order[(batch * batchSize)..<min((batch + 1) * batchSize, trainCount)]
                let xb = try gather(x, indices, role: "x"), yb = try gather(y, indices, role: "y")
                let wb = try weights.map { try gather($0, indices, role: "w") }
                if let bad = firstNonFinite(xb) {
                    throw LatheError.invalid("\(where_()): input of sample \(indices[indices.startIndex + bad / max(xb.count / indices.count, 1)]) is not finite (NaN or infinity); weights kept from the last good step")
                }
                if let bad = firstNonFinite(yb) {
                    throw LatheError.invalid("\(where_()): target of sample \(indices[indices.startIndex + bad / max(yb.count / indices.count, 1)]) is not finite (NaN or infinity); weights kept from the last good step")
                }
                let value: Double
                do {
                    feeds["input"] = xb
                    let output = try engine.forward(feeds, training: true, seed: mix(epochSeed, UInt64(batch + 1)))[0]
                    value = try lossAndBackward(engine, loss, output: output, target: yb, weights: wb) + penalty()
                    for (m, metric) in metrics.enumerated() {
                        metric.accumulate(prediction: output, target: yb, loss: loss, into: &totals[m])
                    }
                } catch let error as LatheError {
                    throw LatheError(error.status, "\(where_()): \(error.message)")
                }
                guard value.isFinite else {
                    throw LatheError.invalid("\(where_()): loss is not finite (\(value)); training stopped, weights kept from the last good step")
                }
                let gradients = trainableGradients(engine)
                for (k, name) in trainableWeights.enumerated() {
                    guard let factor = regularization[name], factor != 0 else { continue }
                    let w = parameters[k], g = gradients[k]
                    for i in 0..<w.count { g.floats[i] += 2 * factor * w.floats[i] }
                }
                if let name = zip(trainableWeights, gradients).first(where: { firstNonFinite($0.1) != nil })?.0 {
                    throw LatheError.invalid("\(where_()): gradient of '\(name)' is not finite; training stopped, weights kept from the last good step")
                }
                for (backup, p) in zip(backups, parameters) { backup.bytes.copyMemory(from: p.bytes, byteCount: p.byteCount) }
                try optimizer.step(parameters: parameters, gradients: gradients)
                if let name = zip(trainableWeights, parameters).first(where: { firstNonFinite($0.1) != nil })?.0 {
                    for (backup, p) in zip(backups, parameters) { p.bytes.copyMemory(from: backup.bytes, byteCount: p.byteCount) }
                    throw LatheError.invalid("\(where_()): the update made '\(name)' non-finite; weights restored to the last good step")
                }
                lossSum += value * Double(indices.count)
                seen += indices.count
            }
            epochsTrained += 1
            var record = ["loss": lossSum / Double(seen)]
            for (m, metric) in metrics.enumerated() { record[metricKeys[m]] = metric.finish(totals[m]) }
            if let validation {
                for (key, v) in try evaluate(x: validation.x, y: validation.y, batchSize: batchSize, sampleWeight: validation.weight) {
                    record["val_" + key] = v
                }
            }
            history.epochs.append(record)
        }
        return history
    }

    /// The loss (with the regularisation penalty, as Keras) and metrics over a data set, in inference mode.
    /// - Parameter sampleWeight: `[N]` weights of the samples' losses, or nil.
    /// - Returns: `"loss"` and each metric's name.
    public func evaluate(x: Tensor, y: Tensor, batchSize: Int = 32, sampleWeight: Tensor? = nil) throws -> [String: Double] {
        guard let engine, let loss else { throw LatheError(.invalidState, "call compile(optimizer:loss:metrics:) before evaluate") }
        try checkSamples(x, y)
        guard batchSize > 0 else { throw LatheError.invalid("batchSize must be > 0") }
        let weights = try sampleWeight.map { try checkedWeights($0, samples: x.shape[0]) }
        let n = x.shape[0]
        var lossSum = 0.0
        var totals = metrics.map { $0.makeTotals() }
        for start in stride(from: 0, to: n, by: batchSize) {
            let indices = Array(start..<min(start + batchSize, n))
            let xb = try gather(x, indices, role: "x"), yb = try gather(y, indices, role: "y")
            let wb = try weights.map { try gather($0, indices, role: "w") }
            let output = try engine.forward(["input": xb], training: false)[0]
            let prediction = lossInput.map { engine.value($0)! } ?? output
            lossSum += try (lossInput == nil ? loss : loss.onLogits).compute(prediction: prediction, target: yb,
                                                                            sampleWeights: wb.map { UnsafePointer($0.floats) }) * Double(indices.count)
            for (m, metric) in metrics.enumerated() { metric.accumulate(prediction: output, target: yb, loss: loss, into: &totals[m]) }
        }
        var result = ["loss": lossSum / Double(max(n, 1)) + penalty()]
        for (m, metric) in metrics.enumerated() { result[metricKeys[m]] = metric.finish(totals[m]) }
        return result
    }

    /// The model's outputs for `x`, computed `batchSize` samples at a time in inference mode.
    public func predict(_ x: Tensor, batchSize: Int = 32) throws -> Tensor {
        try build()
        guard let engine else { throw LatheError(.internal, "model has no engine") }
        guard batchSize > 0, x.rank >= 1 else { throw LatheError.invalid("predict needs batchSize > 0 and a batch axis") }
        let n = x.shape[0]
        var result: Tensor?
        for start in stride(from: 0, to: n, by: batchSize) {
            let indices = Array(start..<min(start + batchSize, n))
            let output = try engine.forward(["input": try gather(x, indices, role: "x")], training: false)[0]
            if result == nil { result = try Tensor(.float32, shape: [n] + output.shape.dropFirst()) }
            let rowSize = output.count / indices.count
            (result!.floats + start * rowSize).update(from: output.floats, count: output.count)
        }
        return try result ?? Tensor(.float32, shape: [0])
    }

    /// The regularisation penalty `Σ l2 · Σ w²` over the regularised weights.
    public func penalty() -> Double {
        var total = 0.0
        for (name, factor) in regularization where factor != 0 {
            guard let w = graph?.initializers[name] else { continue }
            var sum = 0.0
            for i in 0..<w.count { sum += Double(w.floats[i]) * Double(w.floats[i]) }
            total += Double(factor) * sum
        }
        return total
    }

    /// Computes the batch loss and back-propagates it; with a fused loss, from the final activation's input.
    private func lossAndBackward(_ engine: GradientEngine, _ loss: Loss, output: Tensor, target: Tensor, weights: Tensor?) throws -> Double {
        let start = lossInput ?? graph!.outputs[0].name
        let prediction = lossInput.map { engine.value($0)! } ?? output
        let seed = try buffer("seed", .float32, rows: prediction.shape[0], rowShape: prediction.shape.dropFirst())
        let value = try (lossInput == nil ? loss : loss.onLogits).compute(prediction: prediction, target: target, gradient: seed,
                                                                         sampleWeights: weights.map { UnsafePointer($0.floats) })
        lossSeeds.removeAll(keepingCapacity: true)
        lossSeeds[start] = seed
        try engine.backward(seeds: lossSeeds)
        return value
    }

    /// The engine's gradients of the trainable weights (the array is kept while the tensors stay the same).
    private func trainableGradients(_ engine: GradientEngine) -> [Tensor] {
        var same = gradientTensors.count == trainableWeights.count
        for (k, name) in trainableWeights.enumerated() where same { same = engine.gradient(name)!.bytes == gradientTensors[k].bytes }
        if !same { gradientTensors = trainableWeights.map { engine.gradient($0)! } }
        return gradientTensors
    }

    /// Tensors shaped like `parameters` for undoing a bad update, kept across steps (contents left from
    /// their previous use; the caller copies the weights in).
    private func parameterBackups(_ parameters: [Tensor]) throws -> [Tensor] {
        if backupTensors.count != parameters.count || zip(backupTensors, parameters).contains(where: { $0.shape != $1.shape }) {
            backupTensors = try parameters.map { try Tensor(.float32, shape: $0.shape) }
        }
        return backupTensors
    }

    /// The reusable tensor for `role`, of this dtype and shape `[rows] + rowShape`: kept while they repeat
    /// (contents left from its previous use), replaced when they change.
    private func buffer(_ role: String, _ dtype: DType, rows: Int, rowShape: ArraySlice<Int>) throws -> Tensor {
        if let t = scratch[role], t.dtype == dtype, t.shape.first == rows, t.shape.dropFirst().elementsEqual(rowShape) { return t }
        let t = try Tensor(dtype, shape: [rows] + rowShape)
        scratch[role] = t
        return t
    }

    /// The samples `indices` of `t`, copied into the reusable buffer for `role`.
    private func gather<Indices: Collection<Int>>(_ t: Tensor, _ indices: Indices, role: String) throws -> Tensor {
        let out = try buffer(role, t.dtype, rows: indices.count, rowShape: t.shape.dropFirst())
        let rowBytes = t.shape.dropFirst().reduce(1, *) * t.dtype.size
        for (i, r) in indices.enumerated() { (out.bytes + i * rowBytes).copyMemory(from: t.bytes + r * rowBytes, byteCount: rowBytes) }
        return out
    }

    /// `weights` as float32 `[samples]`, checked to be finite and non-negative.
    private func checkedWeights(_ weights: Tensor, samples: Int) throws -> Tensor {
        guard weights.dtype == .float32, weights.count == samples, weights.rank >= 1, weights.shape[0] == samples else {
            throw LatheError.shape("sample weights must be float32 [\(samples)] (one per sample), got \(weights.dtype) \(weights.shape)")
        }
        for i in 0..<samples where !(weights.floats[i] >= 0 && weights.floats[i].isFinite) {
            throw LatheError.invalid("sample weight \(weights.floats[i]) of sample \(i) is negative or not finite")
        }
        return try Tensor(shape: [samples], floats: Array(UnsafeBufferPointer(start: weights.floats, count: samples)))
    }

    /// Keras's `class_weight` as one weight per sample: the weight of each sample's class (1 when unlisted).
    private func classWeights(_ classWeight: [Int: Float], _ y: Tensor, _ loss: Loss) throws -> Tensor {
        for (c, w) in classWeight where !(w >= 0 && w.isFinite) {
            throw LatheError.invalid("class weight \(w) of class \(c) is negative or not finite")
        }
        let n = y.shape[0], width = y.count / max(n, 1)
        var weights = [Float](repeating: 1, count: n)
        for i in 0..<n {
            let label: Int?
            if loss.takesClassIndices || width == 1 {
                label = y.dtype == .float32 ? (y.floats[i].isFinite ? Int(y.floats[i].rounded()) : nil) : classIndex(y, i)
            } else {
                var best = 0
                for c in 1..<width where y.floats[i * width + c] > y.floats[i * width + best] { best = c }
                label = best
            }
            if let label, let w = classWeight[label] { weights[i] = w }
        }
        return try Tensor(shape: [n], floats: weights)
    }

    /// Throws unless `x` and `y` hold the same number of samples.
    private func checkSamples(_ x: Tensor, _ y: Tensor) throws {
        guard x.rank >= 1, y.rank >= 1 else { throw LatheError.shape("x and y need a sample axis, got \(x.shape) and \(y.shape)") }
        guard x.shape[0] == y.shape[0] else {
            throw LatheError.shape("x has \(x.shape[0]) samples but y has \(y.shape[0])")
        }
        guard x.dtype == .float32 else { throw LatheError.dtype("x must be float32, got \(x.dtype)") }
    }
}

/// A linear stack of layers (Keras's Sequential): a `Functional` model whose layers form a chain.
public final class Sequential: Functional {
    /// A model of `layers`; `inputShape` (without the batch axis) may instead come from the first layer.
    public init(_ layers: [any Layer] = [], inputShape: [Int]? = nil, seed: UInt64 = 0,
                registry: OpRegistry = TrainingOps.sharedRegistry) {
        // A chain's connections are always valid.
        try! super.init(layers: layers, connections: layers.indices.map { [$0] }, outputValue: layers.count,
                        inputShape: inputShape, seed: seed, registry: registry, graphName: "sequential")
    }

    /// Appends a layer; the model must not be built yet.
    public func add(_ layer: any Layer) throws {
        try append(layer, inputs: [layers.count])
    }
}

/// The samples `indices` of `t` (along axis 0), copied into a new tensor.
func rows(_ t: Tensor, _ indices: [Int]) throws -> Tensor {
    let out = try Tensor(t.dtype, shape: [indices.count] + t.shape.dropFirst())
    let rowBytes = t.shape.dropFirst().reduce(1, *) * t.dtype.size
    for (i, r) in indices.enumerated() { (out.bytes + i * rowBytes).copyMemory(from: t.bytes + r * rowBytes, byteCount: rowBytes) }
    return out
}

/// The index of the first NaN or infinity in a float32 tensor (nil when all finite, or not float32).
func firstNonFinite(_ t: Tensor) -> Int? {
    guard t.dtype == .float32 else { return nil }
    let index = lts_first_non_finite(t.floats, t.count)
    return index < 0 ? nil : index
}

extension Functional {
    /// The trained model as ONNX bytes: the inference graph (Dropout removed), channels-last input.
    public func onnxBytes() throws -> [UInt8] {
        try ONNXExporter.modelBytes(build(), producer: "lathe.train")
    }

    /// Writes `onnxBytes()` to `path`.
    /// - Throws: `.io` when the file cannot be written.
    public func save(_ path: String) throws {
        let bytes = try onnxBytes()
        guard let file = fopen(path, "wb") else { throw LatheError(.io, "cannot open '\(path)' for writing") }
        defer { fclose(file) }
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw LatheError(.io, "cannot write '\(path)'") }
    }
}

// MARK: - Step-by-step training (Keras's train_on_batch; alternating models such as GANs)

extension Functional {
    /// One optimizer step on one batch in training mode (Keras's `train_on_batch`).
    /// - Returns: the batch's loss (before the step, with the L2 penalty) and metrics.
    /// - Throws: `.invalidState` before `compile`; shape errors; `.invalidArgument` for a non-finite input,
    ///   loss or gradient, or an update that makes a weight non-finite — the weights are then unchanged.
    public func trainOnBatch(x: Tensor, y: Tensor) throws -> [String: Double] {
        guard let engine, let optimizer, let loss else {
            throw LatheError(.invalidState, "call compile(optimizer:loss:metrics:) before trainOnBatch")
        }
        try checkSamples(x, y)
        try requireFinite(x, "x")
        batchSteps += 1
        feeds["input"] = x
        let output = try engine.forward(feeds, training: true, seed: mix(seed, batchSteps))[0]
        let value = try lossAndBackward(engine, loss, output: output, target: y, weights: nil) + penalty()
        guard value.isFinite else { throw LatheError.invalid("trainOnBatch: loss is not finite (\(value)); weights unchanged") }
        var logs = ["loss": value]
        for (metric, key) in zip(metrics, metricKeys) {
            var totals = metric.makeTotals()
            metric.accumulate(prediction: output, target: y, loss: loss, into: &totals)
            logs[key] = metric.finish(totals)
        }
        try applyGradients(engine, optimizer)
        return logs
    }

    /// dLoss/dx for the compiled loss (the batch mean, as training minimises it) with targets `y`, computed
    /// in inference mode; the weights and moving statistics are unchanged. With another model's
    /// `trainOnOutputGradient`, this chains two models: a GAN's generator learns through its discriminator.
    /// - Returns: a tensor shaped like `x`.
    public func inputGradient(x: Tensor, y: Tensor) throws -> Tensor {
        guard let loss, let graph else { throw LatheError(.invalidState, "call compile(optimizer:loss:metrics:) before inputGradient") }
        try checkSamples(x, y)
        try requireFinite(x, "x")
        if inputGradientEngine == nil {
            inputGradientEngine = try GradientEngine(graph: graph, registry: registry, differentiable: ["input"])
        }
        let engine = inputGradientEngine!
        let output = try engine.forward(["input": x], training: false)[0]
        let seed = try Tensor(.float32, shape: output.shape)
        _ = try loss.compute(prediction: output, target: y, gradient: seed)
        try engine.backward(seeds: [graph.outputs[0].name: seed])
        return try engine.gradient("input")!.copy()
    }

    /// One optimizer step in training mode where dLoss/dOutput is given (`outputGradient`, shaped like the
    /// output for `x`) instead of computed from a loss: the model is the first part of a chain whose rest
    /// produced that gradient (see `inputGradient`). The compiled loss is not used.
    /// - Throws: as `trainOnBatch`; `.shapeMismatch` when `outputGradient` does not match the output.
    public func trainOnOutputGradient(x: Tensor, outputGradient: Tensor) throws {
        guard let engine, let optimizer, let graph else {
            throw LatheError(.invalidState, "call compile(optimizer:loss:metrics:) before trainOnOutputGradient")
        }
        guard x.dtype == .float32 else { throw LatheError.dtype("x must be float32, got \(x.dtype)") }
        try requireFinite(x, "x")
        try requireFinite(outputGradient, "outputGradient")
        batchSteps += 1
        let output = try engine.forward(["input": x], training: true, seed: mix(seed, batchSteps))[0]
        guard outputGradient.shape == output.shape, outputGradient.dtype == .float32 else {
            throw LatheError.shape("outputGradient must be float32\(output.shape) (the output for x), got \(outputGradient.type)")
        }
        try engine.backward(seeds: [graph.outputs[0].name: outputGradient])
        try applyGradients(engine, optimizer)
    }

    /// Throws `.invalidArgument` naming `what` when `t` holds a NaN or infinity.
    private func requireFinite(_ t: Tensor, _ what: String) throws {
        if let bad = firstNonFinite(t) { throw LatheError.invalid("\(what) holds a non-finite value (NaN or infinity) at element \(bad)") }
    }

    /// Steps the optimizer with the engine's gradients of the trainable weights, after checking them; an
    /// update that makes a weight non-finite is undone.
    private func applyGradients(_ engine: GradientEngine, _ optimizer: Optimizer) throws {
        let parameters = trainableWeights.map { graph!.initializers[$0]! }
        let gradients = trainableGradients(engine)
        if let name = zip(trainableWeights, gradients).first(where: { firstNonFinite($0.1) != nil })?.0 {
            throw LatheError.invalid("gradient of '\(name)' is not finite; weights unchanged")
        }
        let backups = try parameterBackups(parameters)
        for (backup, p) in zip(backups, parameters) { backup.bytes.copyMemory(from: p.bytes, byteCount: p.byteCount) }
        try optimizer.step(parameters: parameters, gradients: gradients)
        if let name = zip(trainableWeights, parameters).first(where: { firstNonFinite($0.1) != nil })?.0 {
            for (backup, p) in zip(backups, parameters) { p.bytes.copyMemory(from: backup.bytes, byteCount: p.byteCount) }
            throw LatheError.invalid("the update made '\(name)' non-finite; weights restored")
        }
    }
}
