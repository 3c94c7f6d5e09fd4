#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LatheCore
import SwiftProtobuf

/// Reads ONNX models (`ModelProto` bytes) into Lathe's `Graph`.
public enum ONNXImporter {
    /// Parses ONNX model bytes.
    /// - Throws: `.parseError` for bytes that are not a valid ONNX model; `.dtypeMismatch` for
    ///   tensor types Lathe does not support.
    public static func graph(from bytes: [UInt8]) throws -> Graph {
        guard !bytes.isEmpty else { throw LatheError(.parseError, "model is empty (0 bytes)") }
        let proto: Onnx_ModelProto
        do {
            proto = try Onnx_ModelProto(serializedBytes: bytes)
        } catch {
            throw LatheError(.parseError, "not a valid ONNX model (\(bytes.count) bytes): \(error)")
        }
        guard proto.hasGraph, !proto.graph.node.isEmpty || !proto.graph.output.isEmpty else {
            throw LatheError(.parseError, "not a valid ONNX model (\(bytes.count) bytes): no graph")
        }
        var opsets: [String: Int] = [:]
        for o in proto.opsetImport { opsets[OpRegistry.normalize(domain: o.domain)] = Int(o.version) }
        if opsets[""] == nil { opsets[""] = proto.irVersion < 3 ? 1 : 1 }
        return try graph(from: proto.graph, opsets: opsets)
    }

    /// Reads and parses an ONNX file.
    /// - Throws: `.io` when the file cannot be read; otherwise as `graph(from:)`.
    public static func graph(contentsOf path: String) throws -> Graph {
        try graph(from: readFile(path))
    }

    static func graph(from g: Onnx_GraphProto, opsets: [String: Int]) throws -> Graph {
        var initializers: [String: Tensor] = [:]
        for t in g.initializer {
            initializers[t.name] = try tensor(t)
        }
        let inputs = try g.input.filter { initializers[$0.name] == nil }.map(valueInfo)
        let outputs = try g.output.map(valueInfo)
        var nodes: [Node] = []
        for (i, n) in g.node.enumerated() {
            let name = n.name.isEmpty ? "\(n.opType)_\(i)" : n.name
            var attributes: [String: AttributeValue] = [:]
            for a in n.attribute {
                attributes[a.name] = try attribute(a, node: name)
            }
            nodes.append(Node(name: name, opType: n.opType, domain: n.domain,
                              inputs: n.input, outputs: n.output, attributes: attributes))
        }
        return Graph(name: g.name, inputs: inputs, outputs: outputs, nodes: nodes,
                     initializers: initializers, opsets: opsets)
    }

    static func valueInfo(_ v: Onnx_ValueInfoProto) throws -> ValueInfo {
        let t = v.type.tensorType
        let dtype: DType
        do { dtype = try DType(onnxCode: Int(t.elemType)) } catch let e as LatheError {
            throw LatheError(e.status, "value '\(v.name)': \(e.message)")
        }
        let dims: [Dim]? = t.hasShape ? t.shape.dim.map { d in
            switch d.value {
            case .dimValue(let n)?: .fixed(Int(n))
            case .dimParam(let s)?: .symbolic(s)
            case nil: .symbolic("")
            }
        } : nil
        return ValueInfo(name: v.name, dtype: dtype, dims: dims)
    }

    static func attribute(_ a: Onnx_AttributeProto, node: String) throws -> AttributeValue {
        switch a.type {
        case .float: return .float(a.f)
        case .int: return .int(Int(a.i))
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .tensor: return .tensor(try tensor(a.t))
        case .floats: return .floats(a.floats)
        case .ints: return .ints(a.ints.map { Int($0) })
        case .strings: return .strings(a.strings.map { String(decoding: $0, as: UTF8.self) })
        case .undefined:
            // Pre-IR-3 files may omit the type; infer it from which field is set.
            if !a.ints.isEmpty { return .ints(a.ints.map { Int($0) }) }
            if !a.floats.isEmpty { return .floats(a.floats) }
            if a.hasT { return .tensor(try tensor(a.t)) }
            if a.hasS { return .string(String(decoding: a.s, as: UTF8.self)) }
            if a.hasF { return .float(a.f) }
            return .int(Int(a.i))
        default:
            throw LatheError(.unsupportedOp, "node '\(node)': attribute '\(a.name)' of type \(a.type) is not supported")
        }
    }

    /// Parses a serialized `TensorProto` (e.g. the `input_0.pb` files of ONNX test data).
    public static func tensor(fromProto bytes: [UInt8]) throws -> (name: String, tensor: Tensor) {
        let proto: Onnx_TensorProto
        do { proto = try Onnx_TensorProto(serializedBytes: bytes) } catch {
            throw LatheError(.parseError, "not a valid TensorProto (\(bytes.count) bytes): \(error)")
        }
        return (proto.name, try tensor(proto))
    }

    /// Converts a `TensorProto` (inline data only).
    static func tensor(_ t: Onnx_TensorProto) throws -> Tensor {
        if t.dataLocation == .external {
            throw LatheError(.parseError, "tensor '\(t.name)' uses external data, which Lathe does not read yet")
        }
        let dtype: DType
        do { dtype = try DType(onnxCode: Int(t.dataType)) } catch let e as LatheError {
            throw LatheError(e.status, "tensor '\(t.name)': \(e.message)")
        }
        let shape = t.dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw LatheError(.parseError, "tensor '\(t.name)' has negative dims \(shape)") }
        let result = try Tensor(dtype, shape: shape)
        let count = result.count
        func mismatch(_ n: Int) -> LatheError {
            LatheError(.parseError, "tensor '\(t.name)' of shape \(shape) carries \(n) elements")
        }
        if !t.rawData.isEmpty {
            guard t.rawData.count == result.byteCount else { throw mismatch(t.rawData.count / dtype.size) }
            t.rawData.withUnsafeBytes { result.bytes.copyMemory(from: $0.baseAddress!, byteCount: result.byteCount) }
            return result
        }
        switch dtype {
        case .float32:
            guard t.floatData.count == count else { throw mismatch(t.floatData.count) }
            for i in 0..<count { result.floats[i] = t.floatData[i] }
        case .float64:
            guard t.doubleData.count == count else { throw mismatch(t.doubleData.count) }
            let p = result.bytes.assumingMemoryBound(to: Double.self)
            for i in 0..<count { p[i] = t.doubleData[i] }
        case .int64:
            guard t.int64Data.count == count else { throw mismatch(t.int64Data.count) }
            for i in 0..<count { result.int64s[i] = t.int64Data[i] }
        case .int32:
            guard t.int32Data.count == count else { throw mismatch(t.int32Data.count) }
            let p = result.bytes.assumingMemoryBound(to: Int32.self)
            for i in 0..<count { p[i] = t.int32Data[i] }
        case .bool, .uint8, .int8:
            guard t.int32Data.count == count else { throw mismatch(t.int32Data.count) }
            let p = result.bytes.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { p[i] = UInt8(truncatingIfNeeded: t.int32Data[i]) }
        }
        return result
    }

    /// Reads a whole file, with errors naming the path.
    public static func readFile(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else {
            throw LatheError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count {
                if ferror(f) != 0 { throw LatheError(.io, "cannot read '\(path)'") }
                break
            }
        }
        return bytes
    }
}
