@_exported import LatheCore
import LatheONNX
import LatheOps

/// Lathe's version, semantic versioning.
public let latheVersion = "0.1.0"

extension Model {
    /// Loads an ONNX model file, resolving its ops against `registry` (built-ins included).
    /// - Throws: `.io`, `.parseError`, `.unsupportedOp` or an attribute error naming the node.
    public convenience init(contentsOf path: String, registry: OpRegistry = defaultRegistry) throws {
        try self.init(graph: ONNXImporter.graph(contentsOf: path), registry: registry)
    }

    /// Loads an ONNX model from its serialized bytes.
    /// - Parameters:
    ///   - baseDirectory: the directory external tensor data (`data_location: EXTERNAL`) is read from,
    ///     relative to which its file names resolve; without it such a model is refused with `.io`.
    public convenience init(onnx bytes: [UInt8], baseDirectory: String? = nil, registry: OpRegistry = defaultRegistry) throws {
        try self.init(graph: ONNXImporter.graph(from: bytes, baseDirectory: baseDirectory), registry: registry)
    }

    /// The model's graph as imported (not the optimised plan), serialized as ONNX model bytes: nodes,
    /// domains, attributes, initializers and opset imports are kept; half-precision tensors, widened
    /// at load, come back as float32.
    /// - Throws: `.invalidArgument` for a value ONNX cannot hold; `.internal` if serialization fails.
    public func onnxBytes() throws -> [UInt8] {
        try ONNXExporter.modelBytes(graph, forInference: false)
    }

    /// Writes `onnxBytes()` to the file at `path`, replacing it.
    /// - Throws: `.io` when the file cannot be written; otherwise as `onnxBytes()`.
    public func save(_ path: String) throws {
        try ONNXExporter.write(onnxBytes(), to: path)
    }
}

/// The process-wide op table (`OpRegistry.shared`) with the built-in ops registered: what models
/// load against unless given another table. Plugins registered here serve every later load.
public var defaultRegistry: OpRegistry {
    BuiltinOps.ensureRegistered()
    return .shared
}

/// Registers the built-in ops into `registry` (already done for `OpRegistry.shared` on first load).
public func registerBuiltinOps(into registry: OpRegistry) throws {
    try BuiltinOps.register(into: registry)
}
