import CLathe
import Lathe

@c @implementation
public func lathe_session_create(_ model: OpaquePointer!, _ out_session: UnsafeMutablePointer<OpaquePointer?>!) -> lathe_status {
    wrap {
        let handle = try ModelHandle.from(model)
        let out = try required(out_session, "out_session")
        let session = SessionHandle(Session(model: handle.model))
        out.pointee = OpaquePointer(Unmanaged.passRetained(session).toOpaque())
    }
}

@c @implementation
public func lathe_session_free(_ session: OpaquePointer!) {
    guard let session else { return }
    Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(session)).release()
}

@c @implementation
public func lathe_session_set_input(_ session: OpaquePointer!, _ name: UnsafePointer<CChar>!, _ dtype: lathe_dtype,
                                    _ shape: UnsafePointer<Int64>!, _ rank: Int,
                                    _ data: UnsafeRawPointer!, _ byte_size: Int) -> lathe_status {
    wrap {
        let handle = try SessionHandle.from(session)
        let name = try string(name, "name")
        guard let type = DType(rawValue: dtype) else { throw LatheError.dtype("unknown dtype code \(dtype)") }
        guard rank >= 0 && rank <= 32 else { throw LatheError.invalid("rank \(rank) out of range (0...32)") }
        if rank > 0 { _ = try required(shape, "shape") }
        let dims = (0..<rank).map { Int(shape[$0]) }
        guard dims.allSatisfy({ $0 >= 0 }) else { throw LatheError.shape("negative dimension in shape \(dims)") }
        let tensorType = TensorType(type, dims)
        try handle.session.checkInput(name, tensorType)
        let expected = tensorType.count * type.size
        guard byte_size == expected else {
            throw LatheError.shape("input '\(name)' of \(type)\(dims) needs \(expected) bytes, got byte_size \(byte_size)")
        }
        if expected > 0 { _ = try required(data, "data") }
        let tensor = try Tensor(type, shape: dims)
        if expected > 0 { tensor.bytes.copyMemory(from: data, byteCount: expected) }
        try handle.session.setInput(name, tensor)
    }
}

@c @implementation
public func lathe_session_set_input_dlpack(_ session: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                           _ tensor: UnsafeMutablePointer<DLManagedTensor>!) -> lathe_status {
    wrap {
        let handle = try SessionHandle.from(session)
        let name = try string(name, "name")
        let managed = try required(tensor, "tensor")
        let input = try DLPackBridge.tensor(adopting: managed) { type in try handle.session.checkInput(name, type) }
        try handle.session.setInput(name, input)
    }
}

@c @implementation
public func lathe_session_run(_ session: OpaquePointer!) -> lathe_status {
    wrap { try SessionHandle.from(session).session.run() }
}

@c @implementation
public func lathe_session_get_output(_ session: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                     _ out_data: UnsafeMutablePointer<UnsafeRawPointer?>!,
                                     _ out_dtype: UnsafeMutablePointer<lathe_dtype>!,
                                     _ out_shape: UnsafeMutablePointer<UnsafePointer<Int64>?>!,
                                     _ out_rank: UnsafeMutablePointer<Int>!) -> lathe_status {
    wrap {
        let handle = try SessionHandle.from(session)
        let name = try string(name, "name")
        let index = try handle.session.outputIndex(name)
        let tensor = try handle.session.borrowOutput(at: index)
        out_data?.pointee = UnsafeRawPointer(tensor.bytes)
        out_dtype?.pointee = tensor.dtype.rawValue
        out_shape?.pointee = handle.shapeBuffer(for: index, tensor.shape)
        out_rank?.pointee = tensor.rank
    }
}

@c @implementation
public func lathe_session_copy_output(_ session: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                      _ buffer: UnsafeMutableRawPointer!, _ byte_size: Int) -> lathe_status {
    wrap {
        let handle = try SessionHandle.from(session)
        let name = try string(name, "name")
        let buffer = try required(buffer, "buffer")
        let tensor = try handle.session.borrowOutput(at: handle.session.outputIndex(name))
        guard byte_size >= tensor.byteCount else {
            throw LatheError.shape("output '\(name)' (\(tensor.type)) needs \(tensor.byteCount) bytes, buffer has \(byte_size)")
        }
        buffer.copyMemory(from: tensor.bytes, byteCount: tensor.byteCount)
    }
}

@c @implementation
public func lathe_session_get_output_dlpack(_ session: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                            _ out_tensor: UnsafeMutablePointer<UnsafeMutablePointer<DLManagedTensor>?>!) -> lathe_status {
    wrap {
        let handle = try SessionHandle.from(session)
        let name = try string(name, "name")
        let out = try required(out_tensor, "out_tensor")
        let tensor = try handle.session.output(name)
        out.pointee = DLPackBridge.export(tensor)
    }
}
