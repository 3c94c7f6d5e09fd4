import CLathe
import CLatheShims
import Lathe
import LatheTrain

/// A tensor over a caller's borrowed DLTensor (valid during the call only), checked to be a
/// compact, aligned CPU tensor; `what` names it in messages.
func borrowedTensor(_ dl: DLTensor, _ what: String) throws -> Tensor {
    guard dl.device.device_type == kDLCPU else {
        throw LatheError.invalid("\(what) is on device type \(dl.device.device_type.rawValue); only CPU (1) is supported")
    }
    let dtype = try DLPackBridge.dtype(dl.dtype)
    guard dl.ndim >= 0 && dl.ndim <= 32 else { throw LatheError.invalid("\(what) has ndim \(dl.ndim)") }
    let rank = Int(dl.ndim)
    if rank > 0 && dl.shape == nil { throw LatheError.invalid("\(what) has a NULL shape") }
    let shape = (0..<rank).map { Int(dl.shape[$0]) }
    guard shape.allSatisfy({ $0 >= 0 }) else { throw LatheError.shape("\(what) has negative dims \(shape)") }
    if dl.strides != nil {
        let compact = ShapeMath.strides(shape)
        guard (0..<rank).allSatisfy({ shape[$0] <= 1 || Int(dl.strides[$0]) == compact[$0] }) else {
            throw LatheError.invalid("\(what) is strided; pass a compact row-major tensor")
        }
    }
    let count = shape.reduce(1, *)
    guard count > 0 else { return try Tensor(dtype, shape: shape) }
    guard let data = dl.data else { throw LatheError.invalid("\(what) has NULL data") }
    let base = data + Int(dl.byte_offset)
    guard Int(bitPattern: base) % dtype.size == 0 else { throw LatheError.invalid("\(what) is misaligned") }
    return try Tensor(dtype, shape: shape, storage: Storage(borrowing: base, byteCount: count * dtype.size, release: nil))
}

@c @implementation
public func lathe_model_gradients(_ model: OpaquePointer!,
                                  _ inputs: UnsafePointer<DLTensor>!, _ input_count: Int,
                                  _ output_grads: UnsafePointer<DLTensor>!, _ output_count: Int,
                                  _ names: UnsafePointer<UnsafePointer<CChar>?>!, _ name_count: Int,
                                  _ out_grads: UnsafeMutablePointer<UnsafeMutablePointer<DLManagedTensor>?>!) -> lathe_status {
    wrap {
        let graph = try ModelHandle.from(model).model.graph
        guard input_count == graph.inputs.count else {
            throw LatheError.invalid("the model has \(graph.inputs.count) inputs; \(input_count) tensors were given")
        }
        guard output_count == graph.outputs.count else {
            throw LatheError.invalid("the model has \(graph.outputs.count) outputs; \(output_count) gradients were given")
        }
        if input_count > 0 { _ = try required(inputs, "inputs") }
        if output_count > 0 { _ = try required(output_grads, "output_grads") }
        if name_count > 0 {
            _ = try required(names, "names")
            _ = try required(out_grads, "out_grads")
        }
        let wanted = try (0..<name_count).map { try string(names[$0], "names[\($0)]") }
        var feeds: [String: Tensor] = [:]
        for (i, info) in graph.inputs.enumerated() {
            feeds[info.name] = try borrowedTensor(inputs[i], "input '\(info.name)'")
        }
        let engine = try GradientEngine(graph: graph, registry: TrainingOps.sharedRegistry, differentiable: wanted)
        let outputs = try engine.forward(feeds, training: false)
        var seeds: [String: Tensor] = [:]
        for (k, info) in graph.outputs.enumerated() {
            let seed = try borrowedTensor(output_grads[k], "output gradient '\(info.name)'")
            guard seed.dtype == .float32, seed.shape == outputs[k].shape else {
                throw LatheError(seed.dtype == .float32 ? .shapeMismatch : .dtypeMismatch,
                                 "output gradient '\(info.name)' must be float32\(outputs[k].shape), got \(seed.type)")
            }
            if engine.gradient(info.name) != nil { seeds[info.name] = seed }
        }
        try engine.backward(seeds: seeds)
        let results = try wanted.map { name in
            let gradient = try Tensor(.float32, shape: (graph.initializers[name] ?? feeds[name]!).shape)
            if let g = engine.gradient(name) { gradient.bytes.copyMemory(from: g.bytes, byteCount: g.byteCount) }
            return gradient
        }
        for (i, gradient) in results.enumerated() { out_grads[i] = DLPackBridge.export(gradient) }
    }
}
