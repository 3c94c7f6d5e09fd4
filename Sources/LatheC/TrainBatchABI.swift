import CLathe
import Lathe
import LatheTrain

// Step-by-step training through the C ABI: lathe_sequential_train_on_batch, lathe_sequential_input_gradient,
// lathe_sequential_train_on_output_gradient (see include/lathe_train.h).

/// A float32 tensor copied from a caller's row-major buffer of shape `shape[0..<rank]` (rank 1...8).
private func batchTensor(_ data: UnsafePointer<Float>?, _ shape: UnsafePointer<Int64>?, _ rank: Int, _ name: String) throws -> Tensor {
    guard rank >= 1 && rank <= 8 else { throw LatheError.invalid("\(name): rank \(rank) out of range (1...8; the first axis is the samples)") }
    let shapePointer = try required(shape, "\(name)_shape")
    let dims = (0..<rank).map { Int(shapePointer[$0]) }
    guard dims.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) else { throw LatheError.shape("\(name): bad shape \(dims)") }
    let tensor = try Tensor(.float32, shape: dims)
    if tensor.count > 0 { tensor.floats.update(from: try required(data, name), count: tensor.count) }
    return tensor
}

@c @implementation
public func lathe_sequential_train_on_batch(_ model: OpaquePointer!,
                                            _ x: UnsafePointer<Float>!, _ x_shape: UnsafePointer<Int64>!, _ x_rank: Int,
                                            _ y: UnsafePointer<Float>!, _ y_shape: UnsafePointer<Int64>!, _ y_rank: Int,
                                            _ out_logs_json: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let xt = try batchTensor(x, x_shape, x_rank, "x")
        try handle.checkInput(xt, "x")
        let logs = try handle.model.trainOnBatch(x: xt, y: try batchTensor(y, y_shape, y_rank, "y"))
        let text = JSON.object(logs.mapValues(JSON.number)).text
        let kept = handle.keep(text, as: "train_on_batch")
        out_logs_json?.pointee = kept
    }
}

@c @implementation
public func lathe_sequential_input_gradient(_ model: OpaquePointer!,
                                            _ x: UnsafePointer<Float>!, _ x_shape: UnsafePointer<Int64>!, _ x_rank: Int,
                                            _ y: UnsafePointer<Float>!, _ y_shape: UnsafePointer<Int64>!, _ y_rank: Int,
                                            _ out: UnsafeMutablePointer<Float>!, _ out_count: Int) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let xt = try batchTensor(x, x_shape, x_rank, "x")
        try handle.checkInput(xt, "x")
        guard out_count == xt.count else { throw LatheError.shape("out_count is \(out_count) but x has \(xt.count) values") }
        let gradient = try handle.model.inputGradient(x: xt, y: try batchTensor(y, y_shape, y_rank, "y"))
        if out_count > 0 { try required(out, "out").update(from: gradient.floats, count: out_count) }
    }
}

@c @implementation
public func lathe_sequential_train_on_output_gradient(_ model: OpaquePointer!,
                                                      _ x: UnsafePointer<Float>!, _ x_shape: UnsafePointer<Int64>!, _ x_rank: Int,
                                                      _ output_gradient: UnsafePointer<Float>!, _ gradient_count: Int) -> lathe_status {
    wrap {
        let handle = try SequentialHandle.from(model)
        let xt = try batchTensor(x, x_shape, x_rank, "x")
        try handle.checkInput(xt, "x")
        let shape = [xt.shape[0]] + handle.outputShape
        guard gradient_count == shape.reduce(1, *) else {
            throw LatheError.shape("gradient_count is \(gradient_count) but the output for x is \(shape) (\(shape.reduce(1, *)) values)")
        }
        let dy = try Tensor(.float32, shape: shape)
        if gradient_count > 0 { dy.floats.update(from: try required(output_gradient, "output_gradient"), count: gradient_count) }
        try handle.model.trainOnOutputGradient(x: xt, outputGradient: dy)
    }
}
