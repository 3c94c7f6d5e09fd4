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
        let index = try handle.session.inputIndex(try string(name, "name"))
        guard let type = DType(rawValue: dtype) else { throw LatheError.dtype("unknown dtype code \(dtype)") }
        guard rank >= 0 && rank <= 32 else { throw LatheError.invalid("rank \(rank) out of range (0...32)") }
        if rank > 0 { _ = try required(shape, "shape") }
        try handle.session.setInput(at: index, dtype: type, shape: UnsafeBufferPointer(start: shape, count: rank),
                                    copying: data, byteCount: byte_size)
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

/// What `lathe_session_options*` points at.
final class SessionOptionsHandle {
    var options = SessionOptions()

    static func from(_ pointer: OpaquePointer?) throws -> SessionOptionsHandle {
        Unmanaged<SessionOptionsHandle>.fromOpaque(UnsafeRawPointer(try required(pointer, "options"))).takeUnretainedValue()
    }
}

@c @implementation
public func lathe_session_options_create(_ out_options: UnsafeMutablePointer<OpaquePointer?>!) -> lathe_status {
    wrap {
        let out = try required(out_options, "out_options")
        out.pointee = OpaquePointer(Unmanaged.passRetained(SessionOptionsHandle()).toOpaque())
    }
}

@c @implementation
public func lathe_session_options_free(_ options: OpaquePointer!) {
    guard let options else { return }
    Unmanaged<SessionOptionsHandle>.fromOpaque(UnsafeRawPointer(options)).release()
}

@c @implementation
public func lathe_session_options_set_threads(_ options: OpaquePointer!, _ threads: Int32) -> lathe_status {
    wrap {
        let handle = try SessionOptionsHandle.from(options)
        guard (1...256).contains(threads) else { throw LatheError.invalid("threads must be 1...256, got \(threads)") }
        handle.options.threads = Int(threads)
    }
}

@c @implementation
public func lathe_session_options_set_optimize(_ options: OpaquePointer!, _ optimize: Int32) -> lathe_status {
    wrap { try SessionOptionsHandle.from(options).options.passes = optimize != 0 ? PlanPass.standard : [] }
}

@c @implementation
public func lathe_session_create_with_options(_ model: OpaquePointer!, _ options: OpaquePointer!,
                                              _ out_session: UnsafeMutablePointer<OpaquePointer?>!) -> lathe_status {
    wrap {
        let handle = try ModelHandle.from(model)
        let out = try required(out_session, "out_session")
        let settings = try options.map { try SessionOptionsHandle.from($0).options } ?? SessionOptions()
        let session = SessionHandle(Session(model: handle.model, options: settings))
        out.pointee = OpaquePointer(Unmanaged.passRetained(session).toOpaque())
    }
}

@c @implementation
public func lathe_session_arena_bytes(_ session: OpaquePointer!, _ out_bytes: UnsafeMutablePointer<Int>!) -> lathe_status {
    wrap { try required(out_bytes, "out_bytes").pointee = try SessionHandle.from(session).session.arenaBytes }
}
