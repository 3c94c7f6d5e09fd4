/// Element types. Raw values are ONNX `TensorProto.DataType` codes, which the C ABI reuses.
public enum DType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case float32 = 1
    case uint8 = 2
    case int8 = 3
    case int32 = 6
    case int64 = 7
    case bool = 9
    case float64 = 11

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .float32, .int32: 4
        case .int64, .float64: 8
        }
    }

    /// The ONNX spelling (`"float32"`, `"int64"`, ...).
    public var description: String {
        switch self {
        case .float32: "float32"
        case .uint8: "uint8"
        case .int8: "int8"
        case .int32: "int32"
        case .int64: "int64"
        case .bool: "bool"
        case .float64: "float64"
        }
    }

    /// Maps an ONNX data-type code, naming the type when Lathe does not support it.
    public init(onnxCode code: Int) throws {
        guard let type = DType(rawValue: Int32(truncatingIfNeeded: code)) else {
            let names = [0: "undefined", 4: "uint16", 5: "int16", 8: "string", 10: "float16", 12: "uint32",
                         13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16"]
            throw LatheError.dtype("unsupported dtype '\(names[code] ?? "code \(code)")'")
        }
        self = type
    }
}
