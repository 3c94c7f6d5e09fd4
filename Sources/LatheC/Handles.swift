#if canImport(Glibc)
import Glibc
#endif
import CLatheShims
import Lathe

/// Runs the body of a C entry point: a thrown `LatheError` becomes its status plus the thread's
/// last-error message; success clears nothing (the message stays that of the last failure).
@inline(__always)
func wrap(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return Status.ok.rawValue
    } catch let error as LatheError {
        lts_set_last_error(error.message)
        return error.status.rawValue
    } catch {
        lts_set_last_error("\(error)")
        return Status.internal.rawValue
    }
}

/// Unwraps a required pointer argument or throws `.invalidArgument` naming the parameter.
@inline(__always)
func required<T>(_ pointer: T?, _ name: String) throws -> T {
    guard let pointer else { throw LatheError.invalid("\(name) is NULL") }
    return pointer
}

/// A C string argument as a Swift `String`, or `.invalidArgument` naming the parameter.
func string(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    String(cString: try required(pointer, name))
}

/// Heap-allocated, NUL-terminated copy of a string, freed by the owner.
func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
    let utf8 = Array(s.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count)
    p.initialize(from: utf8, count: utf8.count)
    return p
}

/// What `lathe_model*` points at: the model plus C strings that live as long as it.
final class ModelHandle {
    let model: Model
    let inputNames: [UnsafeMutablePointer<CChar>]
    let outputNames: [UnsafeMutablePointer<CChar>]
    /// Symbolic dimension names, per input/output and axis (nil for fixed dims).
    let inputSymbols: [[UnsafeMutablePointer<CChar>?]]
    let outputSymbols: [[UnsafeMutablePointer<CChar>?]]

    init(_ model: Model) {
        self.model = model
        func symbols(_ infos: [ValueInfo]) -> [[UnsafeMutablePointer<CChar>?]] {
            infos.map { info in
                (info.dims ?? []).map { dim in
                    if case .symbolic(let s) = dim { cString(s) } else { nil }
                }
            }
        }
        inputNames = model.inputs.map { cString($0.name) }
        outputNames = model.outputs.map { cString($0.name) }
        inputSymbols = symbols(model.inputs)
        outputSymbols = symbols(model.outputs)
    }

    deinit {
        for p in inputNames + outputNames { p.deallocate() }
        for p in (inputSymbols + outputSymbols).joined() { p?.deallocate() }
    }

    /// The handle behind an opaque pointer (borrowed, not retained).
    static func from(_ pointer: OpaquePointer?) throws -> ModelHandle {
        Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(try required(pointer, "model"))).takeUnretainedValue()
    }
}

/// What `lathe_session*` points at: the session plus the shape buffers handed out by `get_output`.
final class SessionHandle {
    let session: Session
    /// Per output, the int64 dims last returned by `lathe_session_get_output` (valid until the next call).
    private var outputShapes: [UnsafeMutableBufferPointer<Int64>]

    init(_ session: Session) {
        self.session = session
        self.outputShapes = Array(repeating: UnsafeMutableBufferPointer(start: nil, count: 0),
                                  count: session.model.outputs.count)
    }

    deinit { for b in outputShapes { b.deallocate() } }

    /// Writes `shape` into output `index`'s dims buffer (growing it only when the rank grows).
    func shapeBuffer(for index: Int, _ shape: [Int]) -> UnsafePointer<Int64> {
        if outputShapes[index].count < max(shape.count, 1) {
            outputShapes[index].deallocate()
            outputShapes[index] = .allocate(capacity: max(shape.count, 4))
        }
        for (i, d) in shape.enumerated() { outputShapes[index][i] = Int64(d) }
        return UnsafePointer(outputShapes[index].baseAddress!)
    }

    static func from(_ pointer: OpaquePointer?) throws -> SessionHandle {
        Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(try required(pointer, "session"))).takeUnretainedValue()
    }
}

/// Hands the bytes `makeBytes` returns to a C caller (after checking `out_data` and `out_size` are not
/// NULL): a new `malloc` buffer (freed with `lathe_buffer_free`) in `out_data`, its
/// length in `out_size`.
func handOver(_ makeBytes: @autoclosure () throws -> [UInt8], to out_data: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
              size out_size: UnsafeMutablePointer<Int>?) throws {
    let data = try required(out_data, "out_data"), size = try required(out_size, "out_size")
    let bytes = try makeBytes()
    guard let buffer = malloc(max(bytes.count, 1)) else { throw LatheError(.outOfMemory, "cannot allocate \(bytes.count) bytes") }
    buffer.copyMemory(from: bytes, byteCount: bytes.count)
    data.pointee = buffer
    size.pointee = bytes.count
}
