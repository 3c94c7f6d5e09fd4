#if canImport(Glibc)
import Glibc
#endif
import CLathe
import Lathe
import LatheTrain

/// What `lathe_sequential*` points at: the model plus the JSON strings handed out, each valid until replaced.
final class SequentialHandle {
    let model: Functional
    let spec: ModelSpec
    /// The spec's JSON text (kept in checkpoints, so lathe_sequential_load can rebuild the model).
    let specText: String
    /// The last compile's arguments as JSON `{"optimizer": ..., "loss": ..., "metrics": [...]}` (kept in checkpoints).
    var compileText: String?
    /// Returned strings by role ("history", "evaluate", "summary"), freed when replaced or with the handle.
    private var strings: [String: UnsafeMutablePointer<CChar>] = [:]

    init(_ specText: String) throws {
        let spec = try ModelSpec(json: specText)
        self.specText = specText
        guard let shape = spec.inputShape else {
            throw LatheError.invalid("spec: the model needs an input shape (\"input_shape\" at the top or on the first layer, or an InputLayer)")
        }
        self.spec = spec
        model = try SequentialHandle.model(spec, spec.layers.count, shape)
        for (index, trainable) in spec.trainable.enumerated() { try model.setTrainable(trainable, layer: index) }
        do {
            try model.build()
        } catch let error as LatheError {
            throw SequentialHandle.locate(error, spec, shape)
        }
    }

    deinit { for p in strings.values { p.deallocate() } }

    /// `error` from building the whole model, prefixed with the first layer whose addition fails.
    private static func locate(_ error: LatheError, _ spec: ModelSpec, _ shape: [Int]) -> LatheError {
        for end in 1...max(spec.layers.count, 1) where end <= spec.layers.count {
            do { try SequentialHandle.model(spec, end, shape).build() } catch let e as LatheError {
                let (_, className, name) = spec.layers[end - 1]
                return LatheError(e.status, "layer \(end - 1) (\(className) '\(name)'): \(e.message)")
            } catch { break }
        }
        return error
    }

    /// The model of the spec's first `count` layers (all for the model itself; fewer to locate an error).
    private static func model(_ spec: ModelSpec, _ count: Int, _ shape: [Int]) throws -> Functional {
        let layers = spec.layers[..<count].map(\.layer)
        if !spec.functional { return Sequential(layers, inputShape: shape, seed: spec.seed) }
        return try Functional(layers: layers, connections: Array(spec.connections[..<count]),
                         outputValue: count == spec.layers.count ? spec.outputValue : count, inputShape: shape, seed: spec.seed)
    }

    /// Keeps `text` as the string for `role`, returning its C pointer.
    func keep(_ text: String, as role: String) -> UnsafePointer<CChar> {
        strings[role]?.deallocate()
        let p = cString(text)
        strings[role] = p
        return UnsafePointer(p)
    }

    /// The input shape without the batch axis.
    var inputShape: [Int] { model.declaredInputShape ?? [] }

    /// The output shape without the batch axis.
    var outputShape: [Int] { (model.graph?.outputs[0].dims ?? []).dropFirst().map { $0.value ?? 0 } }

    /// Throws `.shapeMismatch` unless `x` is `[N] + inputShape`.
    func checkInput(_ x: Tensor, _ role: String) throws {
        guard Array(x.shape.dropFirst()) == inputShape else {
            throw LatheError.shape("\(role) has shape \(x.shape) but the model takes [N] + \(inputShape) (channels-last)")
        }
    }

    static func from(_ pointer: OpaquePointer?) throws -> SequentialHandle {
        Unmanaged<SequentialHandle>.fromOpaque(UnsafeRawPointer(try required(pointer, "model"))).takeUnretainedValue()
    }
}

/// A float32 tensor copied from rows `rows` of a caller's row-major buffer of shape `shape[0..<rank]`.
private func floatTensor(_ data: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?, _ rank: Int, _ name: String,
                         rows: Range<Int>? = nil) throws -> Tensor {
    guard rank >= 1 && rank <= 8 else { throw LatheError.invalid("\(name): rank \(rank) out of range (1...8; the first axis is the samples)") }
    let shapePointer = try required(shape, "\(name)_shape")
    let dims = (0..<rank).map { Int(shapePointer[$0]) }
    guard dims.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) else { throw LatheError.shape("\(name): bad shape \(dims)") }
    let rows = rows ?? 0..<dims[0]
    let rowSize = dims.dropFirst().reduce(1, *)
    let tensor = try Tensor(.float32, shape: [rows.count] + dims.dropFirst())
    if tensor.count > 0 {
        tensor.floats.update(from: try required(data, name) + rows.lowerBound * rowSize, count: tensor.count)
    }
    return tensor
}

/// Samples in a caller's buffer (its first dimension).
private func sampleCount(_ shape: UnsafePointer<Int64>?, _ rank: Int, _ name: String) throws -> Int {
    guard rank >= 1 else { throw LatheError.invalid("\(name): rank \(rank) out of range (1...8; the first axis is the samples)") }
    return Int(try required(shape, "\(name)_shape")[0])
}

/// A history or logs dictionary as a JSON object.
private func jsonObject(_ values: [String: Double]) -> String {
    JSON.object(values.mapValues(JSON.number)).text
}

/// `count` floats of a caller's buffer as a `[count]` tensor, or nil for NULL.
private func optionalFloats(_ data: UnsafePointer<Float>?, _ count: Int, _ name: String) throws -> Tensor? {
    guard let data else { return nil }
    guard count >= 0 && count < 1 << 40 else { throw LatheError.invalid("\(name): bad count \(count)") }
    return try Tensor(shape: [count], floats: Array(UnsafeBufferPointer(start: data, count: count)))
}

@c @implementation
public func lathe_sequential_create(_ spec_json: UnsafePointer<CChar>!, _ out_model: UnsafeMutablePointer<OpaquePointer?>!) -> lathe_status {
    wrap {
        let text = try string(spec_json, "spec_json")
        let out = try required(out_model, "out_model")
        let handle = try SequentialHandle(text)
        out.pointee = OpaquePointer(Unmanaged.passRetained(handle).toOpaque())
    }
}

@c @implementation
public func lathe_sequential_free(_ model: OpaquePointer!) {
    guard let model else { return }
    Unmanaged<SequentialHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

@c @implementation
public func lathe_sequential_compile(_ model: OpaquePointer!, _ optimizer: UnsafePointer<CChar>!, _ loss: UnsafePointer<CChar>!,
                                     _ metrics: UnsafePointer<UnsafePointer<CChar>?>!, _ metric_count: Int) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let optimizerText = try string(optimizer, "optimizer"), lossText = try string(loss, "loss")
        let chosenOptimizer = try makeOptimizer(optimizerText)
        let chosenLoss = try makeLoss(lossText)
        guard metric_count >= 0 && metric_count < 64 else { throw LatheError.invalid("metric_count \(metric_count) out of range") }
        let names = try (0..<metric_count).map { try string(try required(metrics, "metrics")[$0], "metrics[\($0)]") }
        let chosen = try names.map(makeMetric)
        try handle.model.compile(optimizer: chosenOptimizer, loss: chosenLoss, metrics: chosen)
        handle.compileText = JSON.object(["optimizer": .string(optimizerText), "loss": .string(lossText),
                                          "metrics": .array(names.map(JSON.string))]).text
    }
}

@c @implementation
public func lathe_sequential_fit(_ model: OpaquePointer!,
                                 _ x: UnsafePointer<Float>!, _ x_shape: UnsafePointer<Int64>!, _ x_rank: Int,
                                 _ y: UnsafePointer<Float>!, _ y_shape: UnsafePointer<Int64>!, _ y_rank: Int,
                                 _ x_val: UnsafePointer<Float>!, _ x_val_shape: UnsafePointer<Int64>!, _ x_val_rank: Int,
                                 _ y_val: UnsafePointer<Float>!, _ y_val_shape: UnsafePointer<Int64>!, _ y_val_rank: Int,
                                 _ epochs: Int32, _ batch_size: Int32, _ validation_split: Double, _ shuffle: Int32,
                                 _ seed: UInt64, _ on_epoch_end: lathe_epoch_callback!, _ user_data: UnsafeMutableRawPointer!,
                                 _ out_history_json: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    lathe_sequential_fit_weighted(model, x, x_shape, x_rank, y, y_shape, y_rank, x_val, x_val_shape, x_val_rank,
                                  y_val, y_val_shape, y_val_rank, nil, nil, 0, epochs, batch_size, validation_split,
                                  shuffle, seed, on_epoch_end, user_data, out_history_json)
}

@c @implementation
public func lathe_sequential_fit_weighted(_ model: OpaquePointer!,
                                          _ x: UnsafePointer<Float>!, _ x_shape: UnsafePointer<Int64>!, _ x_rank: Int,
                                          _ y: UnsafePointer<Float>!, _ y_shape: UnsafePointer<Int64>!, _ y_rank: Int,
                                          _ x_val: UnsafePointer<Float>!, _ x_val_shape: UnsafePointer<Int64>!, _ x_val_rank: Int,
                                          _ y_val: UnsafePointer<Float>!, _ y_val_shape: UnsafePointer<Int64>!, _ y_val_rank: Int,
                                          _ sample_weight: UnsafePointer<Float>!, _ class_weight: UnsafePointer<Float>!, _ class_count: Int,
                                          _ epochs: Int32, _ batch_size: Int32, _ validation_split: Double, _ shuffle: Int32,
                                          _ seed: UInt64, _ on_epoch_end: lathe_epoch_callback!, _ user_data: UnsafeMutableRawPointer!,
                                          _ out_history_json: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        guard handle.model.loss != nil else { throw LatheError(.invalidState, "call lathe_sequential_compile before fit") }
        guard epochs >= 0, batch_size > 0 else { throw LatheError.invalid("epochs must be >= 0 and batch_size > 0, got \(epochs) and \(batch_size)") }
        guard validation_split >= 0 && validation_split < 1 else {
            throw LatheError.invalid("validation_split must be in [0, 1), got \(validation_split)")
        }
        let n = try sampleCount(x_shape, x_rank, "x"), ny = try sampleCount(y_shape, y_rank, "y")
        guard n == ny else { throw LatheError.shape("x has \(n) samples but y has \(ny)") }
        let xAll = try floatTensor(x, x_shape, x_rank, "x"), yAll = try floatTensor(y, y_shape, y_rank, "y")
        try handle.checkInput(xAll, "x")
        let weights = try optionalFloats(sample_weight, n, "sample_weight")
        var classWeights: [Int: Float]?
        if let class_weight {
            guard class_count >= 0 && class_count < 1 << 24 else { throw LatheError.invalid("class_count \(class_count) out of range") }
            classWeights = Dictionary(uniqueKeysWithValues: (0..<class_count).map { ($0, class_weight[$0]) })
        }
        var validation: (x: Tensor, y: Tensor)?
        if x_val != nil || y_val != nil {
            let xv = try floatTensor(x_val, x_val_shape, x_val_rank, "x_val"), yv = try floatTensor(y_val, y_val_shape, y_val_rank, "y_val")
            guard xv.shape[0] == yv.shape[0] else { throw LatheError.shape("x_val has \(xv.shape[0]) samples but y_val has \(yv.shape[0])") }
            try handle.checkInput(xv, "x_val")
            validation = (xv, yv)
        }
        var history: [String: [Double]] = [:]
        for epoch in 0..<Int(epochs) {
            let record: [String: Double]
            do {
                record = try handle.model.fit(x: xAll, y: yAll, epochs: 1, batchSize: Int(batch_size), validationData: validation,
                                              validationSplit: validation == nil ? validation_split : 0, shuffle: shuffle != 0,
                                              seed: seed, sampleWeight: weights, classWeight: classWeights).epochs[0]
            } catch let error as LatheError where error.message.hasPrefix("epoch 1, ") {
                throw LatheError(error.status, "epoch \(epoch + 1)" + error.message.dropFirst("epoch 1".count))
            }
            for (key, value) in record { history[key, default: []].append(value) }
            if let on_epoch_end {
                let logs = jsonObject(record)
                let stop = logs.withCString { on_epoch_end(user_data, Int32(epoch), $0) }
                if stop != 0 { break }
            }
        }
        let text = JSON.object(history.mapValues { .array($0.map(JSON.number)) }).text
        let kept = handle.keep(text, as: "history")
        out_history_json?.pointee = kept
    }
}

@c @implementation
public func lathe_sequential_evaluate(_ model: OpaquePointer!,
                                      _ x: UnsafePointer<Float>!, _ x_shape: UnsafePointer<Int64>!, _ x_rank: Int,
                                      _ y: UnsafePointer<Float>!, _ y_shape: UnsafePointer<Int64>!, _ y_rank: Int,
                                      _ batch_size: Int32, _ out_logs_json: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    lathe_sequential_evaluate_weighted(model, x, x_shape, x_rank, y, y_shape, y_rank, nil, batch_size, out_logs_json)
}

@c @implementation
public func lathe_sequential_evaluate_weighted(_ model: OpaquePointer!,
                                               _ x: UnsafePointer<Float>!, _ x_shape: UnsafePointer<Int64>!, _ x_rank: Int,
                                               _ y: UnsafePointer<Float>!, _ y_shape: UnsafePointer<Int64>!, _ y_rank: Int,
                                               _ sample_weight: UnsafePointer<Float>!, _ batch_size: Int32,
                                               _ out_logs_json: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let out = try required(out_logs_json, "out_logs_json")
        let n = try sampleCount(x_shape, x_rank, "x"), ny = try sampleCount(y_shape, y_rank, "y")
        guard n == ny else { throw LatheError.shape("x has \(n) samples but y has \(ny)") }
        let xt = try floatTensor(x, x_shape, x_rank, "x")
        try handle.checkInput(xt, "x")
        let logs = try handle.model.evaluate(x: xt, y: try floatTensor(y, y_shape, y_rank, "y"), batchSize: Int(batch_size),
                                             sampleWeight: try optionalFloats(sample_weight, n, "sample_weight"))
        out.pointee = handle.keep(jsonObject(logs), as: "evaluate")
    }
}

@c @implementation
public func lathe_sequential_predict(_ model: OpaquePointer!, _ x: UnsafePointer<Float>!, _ x_shape: UnsafePointer<Int64>!, _ x_rank: Int,
                                     _ batch_size: Int32, _ out: UnsafeMutablePointer<Float>!, _ out_count: Int) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let xt = try floatTensor(x, x_shape, x_rank, "x")
        try handle.checkInput(xt, "x")
        let expected = xt.shape[0] * handle.outputShape.reduce(1, *)
        guard out_count == expected else {
            throw LatheError.shape("out_count is \(out_count) but \(xt.shape[0]) samples of output shape \(handle.outputShape) need \(expected) floats")
        }
        guard expected > 0 else { return }
        let out = try required(out, "out")
        let result = try handle.model.predict(xt, batchSize: Int(batch_size))
        out.update(from: result.floats, count: expected)
    }
}

@c @implementation
public func lathe_sequential_summary(_ model: OpaquePointer!, _ out_json: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let out = try required(out_json, "out_json")
        func shape(_ dims: [Int]) -> JSON { .array(dims.map { .number(Double($0)) }) }
        let trained = Set(handle.model.trainableWeights)
        let weights = handle.model.parameterWeights.map { name -> JSON in
            .object(["name": .string(name), "shape": shape(handle.model.weights[name]?.shape ?? []),
                     "trainable": .bool(trained.contains(name))])
        }
        let layers = handle.spec.layers.map { JSON.object(["class_name": .string($0.className), "name": .string($0.name)]) }
        let summary = JSON.object(["input_shape": shape(handle.inputShape), "output_shape": shape(handle.outputShape),
                                   "layers": .array(layers), "weights": .array(weights)])
        out.pointee = handle.keep(summary.text, as: "summary")
    }
}

/// The weights of a model (trained or frozen, as Keras's get_weights), in order.
private func parameters(_ handle: SequentialHandle) -> [Tensor] {
    handle.model.parameterWeights.compactMap { handle.model.weights[$0] }
}

@c @implementation
public func lathe_sequential_set_trainable(_ model: OpaquePointer!, _ layer_name: UnsafePointer<CChar>!, _ trainable: Int32) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let name = String(cString: try required(layer_name, "layer_name"))
        guard let index = handle.spec.layers.firstIndex(where: { $0.name == name }) else {
            throw LatheError.invalid("set_trainable: the model has no layer '\(name)' (layers: \(handle.spec.layers.map(\.name).joined(separator: ", ")))")
        }
        try handle.model.setTrainable(trainable != 0, layer: index)
    }
}

@c @implementation
public func lathe_sequential_weight_count(_ model: OpaquePointer!, _ out_count: UnsafeMutablePointer<Int>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        try required(out_count, "out_count").pointee = parameters(handle).reduce(0) { $0 + $1.count }
    }
}

@c @implementation
public func lathe_sequential_get_weights(_ model: OpaquePointer!, _ buffer: UnsafeMutablePointer<Float>!, _ count: Int) -> lathe_status {
    wrap {
        let tensors = parameters(try SequentialHandle.from(model))
        let total = tensors.reduce(0) { $0 + $1.count }
        guard count == total else { throw LatheError.shape("count is \(count) but the model has \(total) weights") }
        var p = try required(buffer, "buffer")
        for t in tensors { p.update(from: t.floats, count: t.count); p += t.count }
    }
}

@c @implementation
public func lathe_sequential_set_weights(_ model: OpaquePointer!, _ buffer: UnsafePointer<Float>!, _ count: Int) -> lathe_status {
    wrap {
        let tensors = parameters(try SequentialHandle.from(model))
        let total = tensors.reduce(0) { $0 + $1.count }
        guard count == total else { throw LatheError.shape("count is \(count) but the model has \(total) weights") }
        var p = try required(buffer, "buffer")
        for t in tensors { t.floats.update(from: p, count: t.count); p += t.count }
    }
}

@c @implementation
public func lathe_sequential_set_learning_rate(_ model: OpaquePointer!, _ learning_rate: Double) -> lathe_status {
    wrap {
        guard let optimizer = try SequentialHandle.from(model).model.optimizer else {
            throw LatheError(.invalidState, "call lathe_sequential_compile before setting the learning rate")
        }
        guard learning_rate > 0 && learning_rate.isFinite else { throw LatheError.invalid("learning_rate must be positive, got \(learning_rate)") }
        guard optimizer.schedule == nil else {
            throw LatheError(.invalidState, "the optimizer follows a learning-rate schedule; its rate cannot be set")
        }
        optimizer.learningRate = Float(learning_rate)
    }
}

@c @implementation
public func lathe_sequential_learning_rate(_ model: OpaquePointer!, _ out_learning_rate: UnsafeMutablePointer<Double>!) -> lathe_status {
    wrap {
        guard let optimizer = try SequentialHandle.from(model).model.optimizer else {
            throw LatheError(.invalidState, "call lathe_sequential_compile before reading the learning rate")
        }
        try required(out_learning_rate, "out_learning_rate").pointee = Double(optimizer.currentLearningRate)
    }
}

@c @implementation
public func lathe_sequential_save_onnx(_ model: OpaquePointer!, _ path: UnsafePointer<CChar>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        try handle.model.save(try string(path, "path"))
    }
}

@c @implementation
public func lathe_sequential_export_onnx(_ model: OpaquePointer!, _ out_data: UnsafeMutablePointer<UnsafeMutableRawPointer?>!,
                                         _ out_size: UnsafeMutablePointer<Int>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        try handOver(try handle.model.onnxBytes(), to: out_data, size: out_size)
    }
}

@c @implementation
public func lathe_buffer_free(_ data: UnsafeMutableRawPointer!) {
    free(data)
}

@c @implementation
public func lathe_sequential_save_checkpoint(_ model: OpaquePointer!, _ path: UnsafePointer<CChar>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let path = try string(path, "path")
        var texts = ["model/spec": handle.specText]
        if let compile = handle.compileText { texts["model/compile"] = compile }
        try handle.model.checkpoint(texts: texts).write(to: path)
    }
}

@c @implementation
public func lathe_sequential_load_checkpoint(_ model: OpaquePointer!, _ path: UnsafePointer<CChar>!,
                                             _ out_optimizer_restored: UnsafeMutablePointer<Int32>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let restored = try handle.model.restore(try Checkpoint(contentsOf: try string(path, "path")))
        out_optimizer_restored?.pointee = restored ? 1 : 0
    }
}

@c @implementation
public func lathe_sequential_load(_ path: UnsafePointer<CChar>!, _ out_model: UnsafeMutablePointer<OpaquePointer?>!) -> lathe_status {
    wrap {
        let path = try string(path, "path")
        let out = try required(out_model, "out_model")
        let checkpoint = try Checkpoint(contentsOf: path)
        guard let spec = checkpoint.texts["model/spec"] else {
            throw LatheError.invalid("checkpoint '\(path)' has no model spec (written by lathe_sequential_save_checkpoint?)")
        }
        let handle = try SequentialHandle(spec)
        if let compile = checkpoint.texts["model/compile"] {
            let json = try JSON.parse(compile)
            guard case .string(let optimizer)? = json["optimizer"], case .string(let loss)? = json["loss"],
                  case .array(let metrics)? = json["metrics"] else { throw LatheError(.parseError, "checkpoint: bad model/compile entry") }
            let names = metrics.compactMap { if case .string(let s) = $0 { s } else { nil } }
            try handle.model.compile(optimizer: try makeOptimizer(optimizer), loss: try makeLoss(loss), metrics: try names.map(makeMetric))
            handle.compileText = compile
        }
        try handle.model.restore(checkpoint)
        out.pointee = OpaquePointer(Unmanaged.passRetained(handle).toOpaque())
    }
}
