#if canImport(Glibc)
import Glibc
#endif
import CLathe
import Lathe

@c @implementation
public func lathe_model_load_file(_ path: UnsafePointer<CChar>!, _ out_model: UnsafeMutablePointer<OpaquePointer?>!) -> lathe_status {
    wrap {
        let path = try string(path, "path")
        let out = try required(out_model, "out_model")
        let model = try Model(contentsOf: path)
        out.pointee = OpaquePointer(Unmanaged.passRetained(ModelHandle(model)).toOpaque())
    }
}

@c @implementation
public func lathe_model_load_memory(_ data: UnsafeRawPointer!, _ size: Int, _ out_model: UnsafeMutablePointer<OpaquePointer?>!) -> lathe_status {
    wrap {
        let data = try required(data, "data")
        let out = try required(out_model, "out_model")
        let bytes = Array(UnsafeRawBufferPointer(start: data, count: size))
        let model = try Model(onnx: bytes)
        out.pointee = OpaquePointer(Unmanaged.passRetained(ModelHandle(model)).toOpaque())
    }
}

@c @implementation
public func lathe_model_export_onnx(_ model: OpaquePointer!, _ out_data: UnsafeMutablePointer<UnsafeMutableRawPointer?>!,
                                    _ out_size: UnsafeMutablePointer<Int>!) -> lathe_status {
    wrap {
        let handle = try ModelHandle.from(model)
        try handOver(try handle.model.onnxBytes(), to: out_data, size: out_size)
    }
}

@c @implementation
public func lathe_model_save_onnx(_ model: OpaquePointer!, _ path: UnsafePointer<CChar>!) -> lathe_status {
    wrap {
        let handle = try ModelHandle.from(model)
        try handle.model.save(try string(path, "path"))
    }
}

@c @implementation
public func lathe_model_free(_ model: OpaquePointer!) {
    guard let model else { return }
    Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

/// Which side of the model an introspection call asks about.
private enum Side { case input, output }

private func info(_ model: OpaquePointer?, _ side: Side, _ index: Int) throws -> (ModelHandle, ValueInfo) {
    let handle = try ModelHandle.from(model)
    let infos = side == .input ? handle.model.inputs : handle.model.outputs
    guard index >= 0 && index < infos.count else {
        throw LatheError.invalid("\(side) index \(index) out of range (model has \(infos.count) \(side)s)")
    }
    return (handle, infos[index])
}

private func count(_ model: OpaquePointer?, _ side: Side, _ out: UnsafeMutablePointer<Int>?) -> lathe_status {
    wrap {
        let handle = try ModelHandle.from(model)
        let out = try required(out, "out_count")
        out.pointee = side == .input ? handle.model.inputs.count : handle.model.outputs.count
    }
}

private func name(_ model: OpaquePointer?, _ side: Side, _ index: Int, _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> lathe_status {
    wrap {
        let (handle, _) = try info(model, side, index)
        let out = try required(out, "out_name")
        out.pointee = UnsafePointer(side == .input ? handle.inputNames[index] : handle.outputNames[index])
    }
}

private func dtype(_ model: OpaquePointer?, _ side: Side, _ index: Int, _ out: UnsafeMutablePointer<lathe_dtype>?) -> lathe_status {
    wrap {
        let (_, info) = try info(model, side, index)
        try required(out, "out_dtype").pointee = info.dtype.rawValue
    }
}

private func rank(_ model: OpaquePointer?, _ side: Side, _ index: Int, _ out: UnsafeMutablePointer<Int>?) -> lathe_status {
    wrap {
        let (_, info) = try info(model, side, index)
        let out = try required(out, "out_rank")
        guard let dims = info.dims else { throw LatheError(.invalidState, "\(side) '\(info.name)' has no declared shape") }
        out.pointee = dims.count
    }
}

private func dim(_ model: OpaquePointer?, _ side: Side, _ index: Int, _ axis: Int,
                 _ outDim: UnsafeMutablePointer<Int64>?, _ outSymbol: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> lathe_status {
    wrap {
        let (handle, info) = try info(model, side, index)
        let outDim = try required(outDim, "out_dim")
        guard let dims = info.dims else { throw LatheError(.invalidState, "\(side) '\(info.name)' has no declared shape") }
        guard axis >= 0 && axis < dims.count else {
            throw LatheError.invalid("axis \(axis) out of range for \(side) '\(info.name)' of rank \(dims.count)")
        }
        let symbols = side == .input ? handle.inputSymbols[index] : handle.outputSymbols[index]
        outDim.pointee = Int64(dims[axis].value ?? -1)
        outSymbol?.pointee = symbols[axis].map { UnsafePointer($0) }
    }
}

@c @implementation
public func lathe_model_input_count(_ model: OpaquePointer!, _ out_count: UnsafeMutablePointer<Int>!) -> lathe_status {
    count(model, .input, out_count)
}

@c @implementation
public func lathe_model_output_count(_ model: OpaquePointer!, _ out_count: UnsafeMutablePointer<Int>!) -> lathe_status {
    count(model, .output, out_count)
}

@c @implementation
public func lathe_model_input_name(_ model: OpaquePointer!, _ index: Int, _ out_name: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    name(model, .input, index, out_name)
}

@c @implementation
public func lathe_model_output_name(_ model: OpaquePointer!, _ index: Int, _ out_name: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    name(model, .output, index, out_name)
}

@c @implementation
public func lathe_model_input_dtype(_ model: OpaquePointer!, _ index: Int, _ out_dtype: UnsafeMutablePointer<lathe_dtype>!) -> lathe_status {
    dtype(model, .input, index, out_dtype)
}

@c @implementation
public func lathe_model_output_dtype(_ model: OpaquePointer!, _ index: Int, _ out_dtype: UnsafeMutablePointer<lathe_dtype>!) -> lathe_status {
    dtype(model, .output, index, out_dtype)
}

@c @implementation
public func lathe_model_input_rank(_ model: OpaquePointer!, _ index: Int, _ out_rank: UnsafeMutablePointer<Int>!) -> lathe_status {
    rank(model, .input, index, out_rank)
}

@c @implementation
public func lathe_model_output_rank(_ model: OpaquePointer!, _ index: Int, _ out_rank: UnsafeMutablePointer<Int>!) -> lathe_status {
    rank(model, .output, index, out_rank)
}

@c @implementation
public func lathe_model_input_dim(_ model: OpaquePointer!, _ index: Int, _ axis: Int, _ out_dim: UnsafeMutablePointer<Int64>!,
                                  _ out_symbol: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    dim(model, .input, index, axis, out_dim, out_symbol)
}

@c @implementation
public func lathe_model_output_dim(_ model: OpaquePointer!, _ index: Int, _ axis: Int, _ out_dim: UnsafeMutablePointer<Int64>!,
                                   _ out_symbol: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    dim(model, .output, index, axis, out_dim, out_symbol)
}
