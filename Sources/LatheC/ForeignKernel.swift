import CLathe
import CLatheShims
import Lathe

/// A foreign function's declared prototype, in the signature language of `lathe_register_foreign_op`.
struct ForeignSignature: Sendable {
    /// One parameter of the C function and what the node supplies for it.
    enum Parameter: Sendable, Equatable {
        /// `const T *` data of an input whose element type is `dtype`.
        case input(Int, DType)
        /// `T *` data of an output of element type `dtype`, shaped like input `shapeOf`.
        case output(Int, shapeOf: Int, DType)
        /// `size_t` element count of an input.
        case count(Int)
        /// `int64_t` element count of an input.
        case count64(Int)
        /// `int` attribute.
        case int(String)
        /// `int64_t` attribute.
        case int64(String)
        /// `float` attribute.
        case float(String)
        /// `double` attribute.
        case double(String)
    }

    /// Whether the function returns `int` (nonzero = failure) rather than `void`.
    let returnsInt: Bool
    let parameters: [Parameter]
    /// Inputs the node must have.
    let inputCount: Int
    /// Outputs the node must have; output k is shaped like input `outputShapeOf[k]`.
    let outputShapeOf: [Int]
    /// Element type of each output.
    let outputTypes: [DType]
    /// Element type of each input whose data the function reads (inputs passed only as counts may
    /// have any type).
    let inputTypes: [Int: DType]

    /// The element-type suffixes of `inK:TYPE` / `outK:TYPE`, and the types they name.
    static let elementTypes: [String: DType] = ["f32": .float32, "f64": .float64, "i32": .int32, "i64": .int64,
                                                "u8": .uint8, "i8": .int8]

    /// Parses and checks a declaration such as `"void(in0, out0, count0, float alpha)"`.
    /// - Throws: `.invalidArgument` naming the part that is malformed.
    init(parsing text: String) throws {
        func fail(_ why: String) -> LatheError { LatheError.invalid("foreign signature '\(text)': \(why)") }
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close,
              text[text.index(after: close)...].allSatisfy(\.isWhitespace) else {
            throw fail("expected 'void(...)' or 'int(...)'")
        }
        switch text[..<open].trimmingWhitespace() {
        case "void": returnsInt = false
        case "int": returnsInt = true
        case let other: throw fail("return type '\(other)' is not 'void' or 'int'")
        }
        let body = text[text.index(after: open)..<close]
        let items = body.allSatisfy(\.isWhitespace) ? [] : body.split(separator: ",", omittingEmptySubsequences: false)
        var parameters: [Parameter] = []
        for item in items {
            let words = item.split(whereSeparator: \.isWhitespace)
            if words.count == 2 {
                let name = String(words[1])
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                    throw fail("attribute name '\(name)' has characters other than letters, digits, '_' and '.'")
                }
                switch words[0] {
                case "int": parameters.append(.int(name))
                case "int64": parameters.append(.int64(name))
                case "float": parameters.append(.float(name))
                case "double": parameters.append(.double(name))
                case let type: throw fail("attribute type '\(type)' is not int, int64, float or double")
                }
                continue
            }
            guard words.count == 1 else { throw fail("parameter '\(item.trimmingWhitespace())' is not understood") }
            let word = String(words[0])
            func index(after prefix: String) -> Int? {
                guard word.hasPrefix(prefix) else { return nil }
                let digits = word.dropFirst(prefix.count)
                guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy(\.isASCII), let k = Int(digits) else { return nil }
                return k
            }
            /// `word` split at ':' into its head and an element type and/or a shape source (`inJ`).
            func suffixes(_ allowShape: Bool) throws -> (head: Substring, dtype: DType, shapeOf: Int?) {
                let parts = word.split(separator: ":", omittingEmptySubsequences: false)
                var dtype: DType?, shapeOf: Int?
                for part in parts.dropFirst() {
                    if let t = Self.elementTypes[String(part)], dtype == nil {
                        dtype = t
                    } else if allowShape, part.hasPrefix("in"), shapeOf == nil, let j = Int(part.dropFirst(2)), j >= 0, j < 1000 {
                        shapeOf = j
                    } else {
                        throw fail("'\(part)' in '\(word)' is not an element type (\(Self.elementTypes.keys.sorted().joined(separator: ", ")))\(allowShape ? " or a shape source inJ" : "") given once")
                    }
                }
                return (parts[0], dtype ?? .float32, shapeOf)
            }
            if let k = index(after: "count64") { parameters.append(.count64(k)) }
            else if let k = index(after: "count") { parameters.append(.count(k)) }
            else if word.hasPrefix("in") {
                let (head, dtype, _) = try suffixes(false)
                guard let k = Int(head.dropFirst(2)), k >= 0, k < 1000 else { throw fail("parameter '\(word)' is not understood") }
                parameters.append(.input(k, dtype))
            } else if word.hasPrefix("out") {
                let (head, dtype, shapeOf) = try suffixes(true)
                guard let k = Int(head.dropFirst(3)), k >= 0, k < 1000 else { throw fail("parameter '\(word)' is not understood") }
                parameters.append(.output(k, shapeOf: shapeOf ?? 0, dtype))
            } else {
                throw fail("parameter '\(word)' is not understood (expected inK[:TYPE], outK[:TYPE][:inJ], countK, count64K or '<type> <attribute>')")
            }
        }
        var inputCount = 0
        var outputs: [Int: (shapeOf: Int, dtype: DType)] = [:]
        var inputTypes: [Int: DType] = [:]
        for p in parameters {
            switch p {
            case .count(let k), .count64(let k): inputCount = max(inputCount, k + 1)
            case .input(let k, let dtype):
                inputCount = max(inputCount, k + 1)
                if let previous = inputTypes[k], previous != dtype { throw fail("input \(k) is declared with two element types") }
                inputTypes[k] = dtype
            case .output(let k, let j, let dtype):
                inputCount = max(inputCount, j + 1)
                if let previous = outputs[k], previous != (j, dtype) { throw fail("output \(k) is declared twice, differently") }
                outputs[k] = (j, dtype)
            default: break
            }
        }
        guard !outputs.isEmpty else { throw fail("no output parameter (outK)") }
        let outputCount = outputs.keys.max()! + 1
        if let missing = (0..<outputCount).first(where: { outputs[$0] == nil }) {
            throw fail("output \(missing) is never passed to the function")
        }
        self.parameters = parameters
        self.inputCount = inputCount
        self.outputShapeOf = (0..<outputCount).map { outputs[$0]!.shapeOf }
        self.outputTypes = (0..<outputCount).map { outputs[$0]!.dtype }
        self.inputTypes = inputTypes
    }
}

extension Substring {
    /// The text without leading and trailing whitespace.
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

/// A foreign function bound to one op: the library (kept open), the symbol and its signature.
final class ForeignFunction: @unchecked Sendable {
    let library: PluginLibrary
    let symbol: String
    let address: UnsafeMutableRawPointer
    let signature: ForeignSignature

    init(library: PluginLibrary, symbol: String, address: UnsafeMutableRawPointer, signature: ForeignSignature) {
        self.library = library
        self.symbol = symbol
        self.address = address
        self.signature = signature
    }
}

/// A node served by a foreign function: the call interface prepared once, the attribute values
/// resolved at load.
final class ForeignKernel: Kernel, @unchecked Sendable {
    let function: ForeignFunction
    let label: String
    /// The libffi call interface, prepared once for this node.
    private let cif: UnsafeMutablePointer<ffi_cif>
    /// Parameter type descriptors; must outlive `cif`.
    private let argumentTypes: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>
    /// Per parameter, the attribute value's bytes (zero for tensor parameters).
    private let attributeBits: [UInt64]

    init(function: ForeignFunction, context: NodeContext) throws {
        let signature = function.signature
        let label = "\(context.label) (foreign function '\(function.symbol)')"
        self.label = label
        guard context.inputPresent.count == signature.inputCount && context.inputPresent.allSatisfy({ $0 }) else {
            throw LatheError.invalid("\(label): the signature takes \(signature.inputCount) input(s), the node has \(context.inputPresent.filter { $0 }.count)")
        }
        guard context.outputPresent.count == signature.outputShapeOf.count && context.outputPresent.allSatisfy({ $0 }) else {
            throw LatheError.invalid("\(label): the signature writes \(signature.outputShapeOf.count) output(s), the node has \(context.outputPresent.filter { $0 }.count)")
        }
        var bits: [UInt64] = []
        var types: [UnsafeMutablePointer<ffi_type>?] = []
        let attributes = context.attributes
        func present(_ name: String) throws {
            guard attributes.has(name) else { throw LatheError.invalid("\(label): attribute '\(name)' is required by the signature but absent") }
        }
        for parameter in signature.parameters {
            switch parameter {
            case .input, .output:
                bits.append(0); types.append(lts_ffi_type_pointer())
            case .count:
                bits.append(0); types.append(lts_ffi_type_uint64())
            case .count64:
                bits.append(0); types.append(lts_ffi_type_sint64())
            case .int(let name):
                try present(name)
                let value = try attributes.int(name)!
                guard let narrow = Int32(exactly: value) else {
                    throw LatheError.invalid("\(label): attribute '\(name)' = \(value) does not fit a C int")
                }
                bits.append(UInt64(UInt32(bitPattern: narrow))); types.append(lts_ffi_type_sint())
            case .int64(let name):
                try present(name)
                bits.append(UInt64(bitPattern: Int64(try attributes.int(name)!))); types.append(lts_ffi_type_sint64())
            case .float(let name):
                try present(name)
                bits.append(UInt64(try attributes.float(name)!.bitPattern)); types.append(lts_ffi_type_float())
            case .double(let name):
                try present(name)
                bits.append(Double(try attributes.float(name)!).bitPattern); types.append(lts_ffi_type_double())
            }
        }
        attributeBits = bits
        argumentTypes = .allocate(capacity: max(types.count, 1))
        argumentTypes.initialize(from: types, count: types.count)
        cif = .allocate(capacity: 1)
        let returnType = signature.returnsInt ? lts_ffi_type_sint() : lts_ffi_type_void()
        let prepared = ffi_prep_cif(cif, lts_ffi_default_abi(), UInt32(types.count), returnType, argumentTypes)
        guard prepared == FFI_OK else {
            cif.deallocate()
            argumentTypes.deallocate()
            throw LatheError.invalid("\(label): libffi cannot prepare a call with this signature (status \(prepared.rawValue))")
        }
        self.function = function
    }

    deinit {
        cif.deallocate()
        argumentTypes.deallocate()
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let signature = function.signature
        for (k, input) in inputs.enumerated() {
            guard let input else { throw LatheError(.internal, "\(label): input \(k) has no type") }
            if let declared = signature.inputTypes[k], input.dtype != declared {
                throw LatheError.dtype("\(label): input \(k) must be \(declared) as the signature declares, got \(input.dtype)")
            }
        }
        return zip(signature.outputShapeOf, signature.outputTypes).map { j, dtype in TensorType(dtype, inputs[j]!.shape) }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let parameters = function.signature.parameters
        let count = parameters.count
        var result: UInt64 = 0
        try withUnsafeTemporaryAllocation(of: UInt64.self, capacity: max(count, 1)) { slots in
            try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(count, 1)) { values in
                for (i, parameter) in parameters.enumerated() {
                    let slot = UnsafeMutableRawPointer(slots.baseAddress! + i)
                    slot.storeBytes(of: attributeBits[i], as: UInt64.self)
                    switch parameter {
                    case .input(let k, _):
                        guard let t = inputs[k] else { throw LatheError(.internal, "\(label): input \(k) is absent") }
                        slot.storeBytes(of: t.bytes, as: UnsafeMutableRawPointer.self)
                    case .output(let k, _, _):
                        guard let t = outputs[k] else { throw LatheError(.internal, "\(label): output \(k) is absent") }
                        slot.storeBytes(of: t.bytes, as: UnsafeMutableRawPointer.self)
                    case .count(let k), .count64(let k):
                        slot.storeBytes(of: UInt64(inputs[k]?.count ?? 0), as: UInt64.self)
                    case .int, .int64, .float, .double:
                        break
                    }
                    values[i] = slot
                }
                let entry = unsafeBitCast(function.address, to: (@convention(c) () -> Void).self)
                ffi_call(cif, entry, &result, values.baseAddress)
            }
        }
        if function.signature.returnsInt {
            let code = Int32(truncatingIfNeeded: result)
            if code != 0 {
                throw LatheError(.pluginFailure, "\(label) returned \(code)")
            }
        }
    }
}

@c @implementation
public func lathe_register_foreign_op(_ domain: UnsafePointer<CChar>!, _ op_type: UnsafePointer<CChar>!,
                                      _ since_version: Int32, _ until_version: Int32,
                                      _ library_path: UnsafePointer<CChar>!, _ symbol: UnsafePointer<CChar>!,
                                      _ signature: UnsafePointer<CChar>!) -> lathe_status {
    wrap {
        let domain = try string(domain, "domain")
        let opType = try string(op_type, "op_type")
        guard !opType.isEmpty else { throw LatheError.invalid("op_type is empty") }
        let path = try string(library_path, "library_path")
        let symbolName = try string(symbol, "symbol")
        let declaration = try ForeignSignature(parsing: try string(signature, "signature"))
        let (since, until) = try opsetRange(since_version, until_version, for: "foreign op '\(opType)'")
        let library = try PluginLibrary(opening: path, purpose: "foreign-kernel library")
        guard let address = library.address(of: symbolName) else {
            throw LatheError.invalid("symbol '\(symbolName)' not found in '\(path)'")
        }
        let function = ForeignFunction(library: library, symbol: symbolName, address: address, signature: declaration)
        try cRegistry.register(OpEntry(domain: domain, opType: opType, since: since, until: until,
                                       origin: "ffi:\(path):\(symbolName)") { context in
            try ForeignKernel(function: function, context: context)
        })
    }
}
