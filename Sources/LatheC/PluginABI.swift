import CLathe
import CLatheShims
import Lathe
import Synchronization

/// A dlopen'ed library (a plugin or a foreign kernel's): closed when the last op using it goes.
final class PluginLibrary: @unchecked Sendable {
    let path: String
    let handle: UnsafeMutableRawPointer
    /// Ops registered by this plugin's init so far, unregistered again if the init fails.
    var registered: [(domain: String, opType: String)] = []

    /// Opens `path` with RTLD_NOW | RTLD_LOCAL, or throws `.io` carrying dlerror().
    init(opening path: String, purpose: String) throws {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw LatheError(.io, "cannot load \(purpose) '\(path)': \(reason)")
        }
        self.path = path
        self.handle = handle
    }

    deinit { dlclose(handle) }

    /// The address of `symbol`, or nil.
    func address(of symbol: String) -> UnsafeMutableRawPointer? {
        _ = dlerror()
        return dlsym(handle, symbol)
    }
}

/// The table C programs register into and list: the process-wide one, with the built-ins.
var cRegistry: OpRegistry { defaultRegistry }

/// The opset range of a C registration as Swift ints, checked.
func opsetRange(_ since: Int32, _ until: Int32, for label: String) throws -> (Int, Int) {
    let upper = until == 0 ? Int(Int32.max) : Int(until)
    guard since >= 1 && Int(since) <= upper else {
        throw LatheError.invalid("\(label): opset range \(since)...\(until) is invalid (since >= 1, until 0 or >= since)")
    }
    return (Int(since), upper)
}

@c @implementation
public func lathe_register_op(_ op: UnsafePointer<lathe_custom_op>!) -> lathe_status {
    wrap {
        let pointer = try required(op, "op")
        let loading = lts_loading_plugin().map { Unmanaged<PluginLibrary>.fromOpaque($0).takeUnretainedValue() }
        let custom: CustomOp
        do {
            custom = try CustomOp(copying: pointer, library: loading)
        } catch let error as LatheError {
            guard let loading else { throw error }
            throw LatheError(error.status, "plugin '\(loading.path)': \(error.message)")
        }
        do {
            let value = pointer.pointee
            let (since, until) = try opsetRange(value.since_version, value.until_version, for: custom.label)
            let origin = value.origin.map { String(cString: $0) } ?? loading?.path ?? "c"
            try cRegistry.register(custom.entry(since: since, until: until, origin: origin))
        } catch {
            custom.release = nil
            throw error
        }
        loading?.registered.append((custom.domain, custom.opType))
    }
}

@c @implementation
public func lathe_unregister_op(_ domain: UnsafePointer<CChar>!, _ op_type: UnsafePointer<CChar>!) -> lathe_status {
    wrap {
        let domain = try string(domain, "domain")
        let opType = try string(op_type, "op_type")
        guard cRegistry.unregister(domain: domain, opType: opType) > 0 else {
            throw LatheError.invalid("no op '\(opType)' (domain '\(domain)') is registered")
        }
    }
}

@c @implementation
public func lathe_plugin_set_error(_ message: UnsafePointer<CChar>!) {
    if let message { lts_set_plugin_error(message) } else { lts_set_plugin_error("(NULL message)") }
}

@c @implementation
public func lathe_load_plugin(_ path: UnsafePointer<CChar>!) -> lathe_status {
    wrap {
        let path = try string(path, "path")
        let library = try PluginLibrary(opening: path, purpose: "plugin")
        let symbol = "lathe_plugin_init"
        guard let address = library.address(of: symbol) else {
            throw LatheError(.pluginFailure, "plugin '\(path)' does not export '\(symbol)'")
        }
        let initialize = unsafeBitCast(address, to: lathe_plugin_init_fn.self)
        let previous = lts_loading_plugin()
        lts_set_loading_plugin(Unmanaged.passUnretained(library).toOpaque())
        lts_set_plugin_error(nil)
        lts_set_last_error(nil)
        let status = initialize(UInt32(LATHE_ABI_VERSION))
        lts_set_loading_plugin(previous)
        guard status == LATHE_OK else {
            let message = lts_plugin_error().map { String(cString: $0) }
                ?? String(cString: lts_last_error())
            lts_set_plugin_error(nil)
            for op in library.registered { cRegistry.unregister(domain: op.domain, opType: op.opType) }
            let name = String(cString: lathe_status_name(status))
            throw LatheError(.pluginFailure,
                             "plugin '\(path)': \(symbol) failed (\(name))\(message.isEmpty ? "" : ": \(message)")")
        }
    }
}

// MARK: - Attribute accessors

@c @implementation
public func lathe_attributes_get_int(_ attributes: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                     _ out_value: UnsafeMutablePointer<Int64>!) -> lathe_status {
    wrap {
        let (handle, name) = try AttributesHandle.lookup(attributes, name)
        let out = try required(out_value, "out_value")
        out.pointee = Int64(try handle.attributes.int(name)!)
    }
}

@c @implementation
public func lathe_attributes_get_float(_ attributes: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                       _ out_value: UnsafeMutablePointer<Float>!) -> lathe_status {
    wrap {
        let (handle, name) = try AttributesHandle.lookup(attributes, name)
        let out = try required(out_value, "out_value")
        out.pointee = try handle.attributes.float(name)!
    }
}

@c @implementation
public func lathe_attributes_get_string(_ attributes: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                        _ out_value: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    wrap {
        let (handle, name) = try AttributesHandle.lookup(attributes, name)
        let out = try required(out_value, "out_value")
        out.pointee = handle.keep(Array(try handle.attributes.string(name)!.utf8CString))
    }
}

@c @implementation
public func lathe_attributes_get_ints(_ attributes: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                      _ out_values: UnsafeMutablePointer<UnsafePointer<Int64>?>!,
                                      _ out_count: UnsafeMutablePointer<Int>!) -> lathe_status {
    wrap {
        let (handle, name) = try AttributesHandle.lookup(attributes, name)
        let outValues = try required(out_values, "out_values")
        let outCount = try required(out_count, "out_count")
        let values = try handle.attributes.ints(name)!.map { Int64($0) }
        outValues.pointee = handle.keep(values)
        outCount.pointee = values.count
    }
}

@c @implementation
public func lathe_attributes_get_floats(_ attributes: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                        _ out_values: UnsafeMutablePointer<UnsafePointer<Float>?>!,
                                        _ out_count: UnsafeMutablePointer<Int>!) -> lathe_status {
    wrap {
        let (handle, name) = try AttributesHandle.lookup(attributes, name)
        let outValues = try required(out_values, "out_values")
        let outCount = try required(out_count, "out_count")
        let values = try handle.attributes.floats(name)!
        outValues.pointee = handle.keep(values)
        outCount.pointee = values.count
    }
}

@c @implementation
public func lathe_attributes_get_tensor(_ attributes: OpaquePointer!, _ name: UnsafePointer<CChar>!,
                                        _ out_tensor: UnsafeMutablePointer<UnsafePointer<DLTensor>?>!) -> lathe_status {
    wrap {
        let (handle, name) = try AttributesHandle.lookup(attributes, name)
        let out = try required(out_tensor, "out_tensor")
        out.pointee = handle.keep(try handle.attributes.tensor(name)!)
    }
}

// MARK: - Registry listing

/// The table as C strings, rebuilt when the registry's generation moves on.
final class RegistrySnapshot: @unchecked Sendable {
    /// One row of the listing.
    struct Row {
        let domain: UnsafeMutablePointer<CChar>
        let opType: UnsafeMutablePointer<CChar>
        let since: Int32
        let until: Int32
        let origin: UnsafeMutablePointer<CChar>
    }

    let generation: Int
    let rows: [Row]

    init(_ registry: OpRegistry) {
        generation = registry.generation
        rows = registry.entries.map { e in
            Row(domain: cString(e.domain), opType: cString(e.opType),
                since: Int32(clamping: e.sinceVersion), until: Int32(clamping: e.untilVersion),
                origin: cString(e.origin))
        }
    }

    deinit {
        for row in rows {
            row.domain.deallocate()
            row.opType.deallocate()
            row.origin.deallocate()
        }
    }

    private static let current = Mutex<RegistrySnapshot?>(nil)

    /// The snapshot of the current table, rebuilding it (and freeing the old one) after a change.
    static func latest() -> RegistrySnapshot {
        let registry = cRegistry
        return current.withLock { snapshot in
            if let snapshot, snapshot.generation == registry.generation { return snapshot }
            let fresh = RegistrySnapshot(registry)
            snapshot = fresh
            return fresh
        }
    }
}

@c @implementation
public func lathe_registry_count(_ out_count: UnsafeMutablePointer<Int>!) -> lathe_status {
    wrap {
        let out = try required(out_count, "out_count")
        out.pointee = RegistrySnapshot.latest().rows.count
    }
}

@c @implementation
public func lathe_registry_get(_ index: Int, _ out_domain: UnsafeMutablePointer<UnsafePointer<CChar>?>!,
                               _ out_op_type: UnsafeMutablePointer<UnsafePointer<CChar>?>!,
                               _ out_since: UnsafeMutablePointer<Int32>!, _ out_until: UnsafeMutablePointer<Int32>!,
                               _ out_origin: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> lathe_status {
    wrap {
        let rows = RegistrySnapshot.latest().rows
        guard index >= 0 && index < rows.count else {
            throw LatheError.invalid("registry index \(index) out of range (the table has \(rows.count) entries)")
        }
        let row = rows[index]
        out_domain?.pointee = UnsafePointer(row.domain)
        out_op_type?.pointee = UnsafePointer(row.opType)
        out_since?.pointee = row.since
        out_until?.pointee = row.until
        out_origin?.pointee = UnsafePointer(row.origin)
    }
}
