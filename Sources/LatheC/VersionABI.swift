import CLathe
import CLatheShims
import Lathe

@c @implementation
public func lathe_version() -> UnsafePointer<CChar>! {
    UnsafeRawPointer(("0.1.0" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
}

@c @implementation
public func lathe_abi_version() -> UInt32 { 1 }

@c @implementation
public func lathe_last_error() -> UnsafePointer<CChar>! { lts_last_error() }

@c @implementation
public func lathe_status_name(_ status: lathe_status) -> UnsafePointer<CChar>! {
    let name: StaticString = switch Status(rawValue: status) {
    case .ok?: "LATHE_OK"
    case .invalidArgument?: "LATHE_ERROR_INVALID_ARGUMENT"
    case .parseError?: "LATHE_ERROR_PARSE"
    case .unsupportedOp?: "LATHE_ERROR_UNSUPPORTED_OP"
    case .shapeMismatch?: "LATHE_ERROR_SHAPE_MISMATCH"
    case .dtypeMismatch?: "LATHE_ERROR_DTYPE_MISMATCH"
    case .outOfMemory?: "LATHE_ERROR_OUT_OF_MEMORY"
    case .pluginFailure?: "LATHE_ERROR_PLUGIN"
    case .io?: "LATHE_ERROR_IO"
    case .invalidState?: "LATHE_ERROR_INVALID_STATE"
    case .internal?: "LATHE_ERROR_INTERNAL"
    case nil: "LATHE_ERROR_UNKNOWN"
    }
    return UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)
}
