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
///
/// Half-precision tensors are widened at load: float16 and bfloat16 initializers and tensor attributes
/// become float32 tensors, and graph inputs and outputs declared float16 or bfloat16 are reported as
/// float32, so callers feed and receive float32 for them.
///
/// Tensors stored outside the model (`data_location: EXTERNAL`) are read from files named relative to
/// the model file's directory; absolute names and names that leave that directory (`..`, or symbolic
/// links resolving outside it) are refused.
public enum ONNXImporter {
    /// Parses ONNX model bytes.
    /// - Parameters:
    ///   - baseDirectory: where external tensor data is looked up (the model file's directory);
    ///     nil when the model came from memory, in which case external data is refused.
    /// - Throws: `.parseError` for bytes that are not a valid ONNX model; `.dtypeMismatch` for
    ///   tensor types Lathe does not support; `.io` for external data that cannot be read.
    public static func graph(from bytes: [UInt8], baseDirectory: String? = nil) throws -> Graph {
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
        return try graph(from: proto.graph, opsets: opsets, external: ExternalData(baseDirectory: baseDirectory))
    }

    /// Reads and parses an ONNX file; external tensor data is read relative to its directory.
    /// - Throws: `.io` when the file cannot be read; otherwise as `graph(from:baseDirectory:)`.
    public static func graph(contentsOf path: String) throws -> Graph {
        try graph(from: readFile(path), baseDirectory: directory(of: path))
    }

    /// The directory part of a file path (`.` for a bare file name).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func graph(from g: Onnx_GraphProto, opsets: [String: Int], external: ExternalData) throws -> Graph {
        var initializers: [String: Tensor] = [:]
        for t in g.initializer {
            initializers[t.name] = try tensor(t, external: external)
        }
        let inputs = try g.input.filter { initializers[$0.name] == nil }.map(valueInfo)
        let outputs = try g.output.map(valueInfo)
        var nodes: [Node] = []
        for (i, n) in g.node.enumerated() {
            let name = n.name.isEmpty ? "\(n.opType)_\(i)" : n.name
            var attributes: [String: AttributeValue] = [:]
            for a in n.attribute {
                attributes[a.name] = try attribute(a, node: name, external: external)
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
        do { dtype = try DType(onnxCode: HalfPrecision(onnxCode: Int(t.elemType)) == nil ? Int(t.elemType) : 1) } catch let e as LatheError {
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

    static func attribute(_ a: Onnx_AttributeProto, node: String, external: ExternalData = ExternalData(baseDirectory: nil)) throws -> AttributeValue {
        switch a.type {
        case .float: return .float(a.f)
        case .int: return .int(Int(a.i))
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .tensor: return .tensor(try tensor(a.t, external: external))
        case .floats: return .floats(a.floats)
        case .ints: return .ints(a.ints.map { Int($0) })
        case .strings: return .strings(a.strings.map { String(decoding: $0, as: UTF8.self) })
        case .undefined:
            // Pre-IR-3 files may omit the type; infer it from which field is set.
            if !a.ints.isEmpty { return .ints(a.ints.map { Int($0) }) }
            if !a.floats.isEmpty { return .floats(a.floats) }
            if a.hasT { return .tensor(try tensor(a.t, external: external)) }
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

    /// Converts a `TensorProto`, reading external data through `external` and widening half precision.
    static func tensor(_ t: Onnx_TensorProto, external: ExternalData = ExternalData(baseDirectory: nil)) throws -> Tensor {
        if let half = HalfPrecision(onnxCode: Int(t.dataType)) { return try widened(t, half, external: external) }
        if t.dataLocation == .external {
            let dtype = try DType(onnxCode: Int(t.dataType))
            let shape = try dims(t)
            let result = try Tensor(dtype, shape: shape)
            let bytes = try external.read(t, expectedBytes: result.byteCount)
            bytes.withUnsafeBytes { result.bytes.copyMemory(from: $0.baseAddress!, byteCount: result.byteCount) }
            return result
        }
        let dtype: DType
        do { dtype = try DType(onnxCode: Int(t.dataType)) } catch let e as LatheError {
            throw LatheError(e.status, "tensor '\(t.name)': \(e.message)")
        }
        let shape = try dims(t)
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

    /// A tensor's shape, refusing negative dimensions.
    static func dims(_ t: Onnx_TensorProto) throws -> [Int] {
        let shape = t.dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw LatheError(.parseError, "tensor '\(t.name)' has negative dims \(shape)") }
        return shape
    }

    /// A float16 or bfloat16 tensor converted to float32.
    static func widened(_ t: Onnx_TensorProto, _ half: HalfPrecision, external: ExternalData) throws -> Tensor {
        let result = try Tensor(.float32, shape: try dims(t))
        let count = result.count
        var bits = [UInt16](repeating: 0, count: count)
        if t.dataLocation == .external || !t.rawData.isEmpty {
            let raw = t.dataLocation == .external ? try external.read(t, expectedBytes: 2 * count) : [UInt8](t.rawData)
            guard raw.count == 2 * count else {
                throw LatheError(.parseError, "tensor '\(t.name)' of shape \(result.shape) carries \(raw.count) bytes, expected \(2 * count)")
            }
            for i in 0..<count { bits[i] = UInt16(raw[2 * i]) | UInt16(raw[2 * i + 1]) << 8 }
        } else {
            guard t.int32Data.count == count else {
                throw LatheError(.parseError, "tensor '\(t.name)' of shape \(result.shape) carries \(t.int32Data.count) elements")
            }
            for i in 0..<count { bits[i] = UInt16(truncatingIfNeeded: t.int32Data[i]) }
        }
        for i in 0..<count { result.floats[i] = half.float(bits[i]) }
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

/// The 16-bit float formats widened to float32 at load.
enum HalfPrecision {
    case float16, bfloat16

    /// The format of an ONNX data-type code (10: float16, 16: bfloat16), or nil for another type.
    init?(onnxCode code: Int) {
        switch code {
        case 10: self = .float16
        case 16: self = .bfloat16
        default: return nil
        }
    }

    /// The float32 value of a 16-bit pattern (exact: both formats widen without rounding).
    func float(_ bits: UInt16) -> Float {
        if self == .bfloat16 { return Float(bitPattern: UInt32(bits) << 16) }
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int(bits >> 10) & 0x1F, mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
        if exponent == 0 {
            // Zero or subnormal: mantissa · 2^-24.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
    }
}

/// Where a model's external tensor data lives, and the safe reading of it.
struct ExternalData {
    /// The model file's directory; nil for a model loaded from memory.
    let baseDirectory: String?

    /// The bytes of a tensor stored externally (`location`, `offset`, `length` keys).
    /// - Throws: `.io` when no directory is known, the name is absolute or leaves the model's directory,
    ///   or the file cannot be read; `.parseError` for malformed keys or a size that does not match.
    func read(_ t: Onnx_TensorProto, expectedBytes: Int) throws -> [UInt8] {
        var keys: [String: String] = [:]
        for entry in t.externalData { keys[entry.key] = entry.value }
        guard let location = keys["location"], !location.isEmpty else {
            throw LatheError(.parseError, "tensor '\(t.name)' is stored externally but has no 'location'")
        }
        guard let baseDirectory else {
            throw LatheError(.io, "tensor '\(t.name)' is stored in external file '\(location)', which needs the model's directory: load the model from its file, or give the directory its external data lives in")
        }
        guard !location.hasPrefix("/") else {
            throw LatheError(.io, "tensor '\(t.name)': external data location '\(location)' is an absolute path; only paths relative to the model's directory are read")
        }
        guard !location.split(separator: "/").contains("..") else {
            throw LatheError(.io, "tensor '\(t.name)': external data location '\(location)' leaves the model's directory ('..')")
        }
        let offset = try number(keys["offset"], "offset", t) ?? 0
        let length = try number(keys["length"], "length", t)
        let path = baseDirectory + "/" + location
        guard let resolvedBase = realpath(baseDirectory, nil) else {
            throw LatheError(.io, "tensor '\(t.name)': model directory '\(baseDirectory)' cannot be resolved: \(String(cString: strerror(errno)))")
        }
        defer { free(resolvedBase) }
        guard let resolved = realpath(path, nil) else {
            throw LatheError(.io, "tensor '\(t.name)': cannot open external data file '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { free(resolved) }
        let root = String(cString: resolvedBase), file = String(cString: resolved)
        guard file.hasPrefix(root == "/" ? "/" : root + "/") else {
            throw LatheError(.io, "tensor '\(t.name)': external data file '\(location)' resolves to '\(file)', outside the model's directory '\(root)'")
        }
        guard let f = fopen(file, "rb") else {
            throw LatheError(.io, "tensor '\(t.name)': cannot open external data file '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        fseek(f, 0, SEEK_END)
        let size = ftell(f)
        let count = length ?? max(0, size - offset)
        guard count == expectedBytes else {
            throw LatheError(.parseError, "tensor '\(t.name)': external data in '\(location)' holds \(count) bytes, expected \(expectedBytes) for its shape and type")
        }
        guard offset <= size, count <= size - offset else {
            throw LatheError(.parseError, "tensor '\(t.name)': bytes \(offset)..<\(offset + count) lie beyond the end of '\(location)' (\(size) bytes)")
        }
        var bytes = [UInt8](repeating: 0, count: count)
        fseek(f, offset, SEEK_SET)
        let read = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, count, f) }
        guard read == count else {
            throw LatheError(.io, "tensor '\(t.name)': cannot read \(count) bytes from '\(path)'")
        }
        return bytes
    }

    /// A non-negative integer key value, or nil when absent.
    private func number(_ text: String?, _ key: String, _ t: Onnx_TensorProto) throws -> Int? {
        guard let text else { return nil }
        guard let value = Int(text), value >= 0 else {
            throw LatheError(.parseError, "tensor '\(t.name)': external data '\(key)' must be a non-negative integer, got '\(text)'")
        }
        return value
    }
}
