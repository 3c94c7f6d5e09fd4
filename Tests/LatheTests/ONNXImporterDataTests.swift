#if canImport(Glibc)
import Glibc
#endif
import Testing
import Lathe

/// Tensor data at load: float16/bfloat16 widened to float32, and external data read relative to the
/// model file, with absolute, escaping (`..`, symbolic link) and missing locations refused by name.
@Suite struct ONNXImporterDataTests {
    // MARK: - Hand serialization (field numbers from onnx.proto)

    static func varint(_ v: Int) -> [UInt8] {
        var v = UInt64(v), out: [UInt8] = []
        repeat { var b = UInt8(v & 0x7f); v >>= 7; if v != 0 { b |= 0x80 }; out.append(b) } while v != 0
        return out
    }
    static func field(_ number: Int, _ bytes: [UInt8]) -> [UInt8] { varint(number << 3 | 2) + varint(bytes.count) + bytes }
    static func string(_ number: Int, _ s: String) -> [UInt8] { field(number, Array(s.utf8)) }
    static func intField(_ number: Int, _ v: Int) -> [UInt8] { varint(number << 3) + varint(v) }

    /// A tensor-typed ValueInfoProto of element type `code` and fixed shape.
    static func valueInfo(_ name: String, code: Int, shape: [Int]) -> [UInt8] {
        let dims = shape.flatMap { field(1, intField(1, $0)) }
        return string(1, name) + field(2, field(1, intField(1, code) + field(2, dims)))
    }

    /// A TensorProto named `name`: inline raw bytes, or external keys.
    static func tensor(_ name: String, code: Int, shape: [Int], raw: [UInt8]? = nil, external: [(String, String)] = []) -> [UInt8] {
        var bytes = shape.flatMap { intField(1, $0) } + intField(2, code) + string(8, name)
        if let raw { bytes += field(9, raw) }
        for (key, value) in external { bytes += field(13, string(1, key) + string(2, value)) }
        if !external.isEmpty { bytes += intField(14, 1) }
        return bytes
    }

    /// `y = x + w` over shape [4]: x a graph input of type `inputCode`, w the given initializer.
    static func addModel(initializer: [UInt8], inputCode: Int = 1) -> [UInt8] {
        let node = string(1, "x") + string(1, "w") + string(2, "y") + string(3, "add") + string(4, "Add")
        let graph = field(1, node) + string(2, "g") + field(5, initializer)
            + field(11, valueInfo("x", code: inputCode, shape: [4])) + field(12, valueInfo("y", code: inputCode, shape: [4]))
        return intField(1, 8) + field(7, graph) + field(8, intField(2, 17))
    }

    static func littleEndian(_ values: [UInt16]) -> [UInt8] { values.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] } }
    static func floatBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * $0)) } }
    }

    /// Runs a model on x = [1, 2, 3, 4].
    static func run(_ model: Model) throws -> [Float] {
        try Session(model: model).run(["x": Tensor(shape: [4], floats: [1, 2, 3, 4])])["y"]!.floatArray()
    }

    // MARK: - Half precision

    @Test func float16InitializerIsWidenedExactly() throws {
        // 1.5, -2, 2^-24 (smallest subnormal), 65504 (largest finite).
        let bits: [UInt16] = [0x3E00, 0xC000, 0x0001, 0x7BFF]
        let model = try Model(onnx: Self.addModel(initializer: Self.tensor("w", code: 10, shape: [4], raw: Self.littleEndian(bits))))
        let expected: [Float] = [2.5, 0, 3 + 0x1p-24, 65508]
        #expect(try Self.run(model) == expected)
    }

    @Test func bfloat16InitializerIsWidenedExactly() throws {
        let values: [Float] = [1.5, -2.25, 3, 0.0078125]
        let bits = values.map { UInt16($0.bitPattern >> 16) }
        let model = try Model(onnx: Self.addModel(initializer: Self.tensor("w", code: 16, shape: [4], raw: Self.littleEndian(bits))))
        #expect(try Self.run(model) == [2.5, -0.25, 6, 4.0078125])
    }

    @Test func float16GraphInputsAreReportedAsFloat32() throws {
        let bits: [UInt16] = [0x3C00, 0x3C00, 0x3C00, 0x3C00]
        let model = try Model(onnx: Self.addModel(initializer: Self.tensor("w", code: 10, shape: [4], raw: Self.littleEndian(bits)), inputCode: 10))
        #expect(model.inputs[0].dtype == .float32)
        #expect(model.outputs[0].dtype == .float32)
        #expect(try Self.run(model) == [2, 3, 4, 5])
    }

    // MARK: - External data

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/lathe-external-XXXXXX".utf8CString)
        guard let path = mkdtemp(&template) else { throw LatheError(.io, "mkdtemp failed") }
        return String(cString: path)
    }

    static func write(_ bytes: [UInt8], to path: String) {
        let f = fopen(path, "wb")!
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }

    /// Writes a model whose weight lives at `location` (offset 8 into its file) into `directory`.
    static func externalModel(in directory: String, location: String) -> [UInt8] {
        let model = addModel(initializer: tensor("w", code: 1, shape: [4],
                                                 external: [("location", location), ("offset", "8"), ("length", "16")]))
        write(model, to: directory + "/model.onnx")
        return model
    }

    static let weights: [Float] = [10, 20, 30, 40]

    @Test func externalDataReadsRelativeToTheModelFile() throws {
        let dir = try Self.temporaryDirectory()
        mkdir(dir + "/data", 0o755)
        Self.write([UInt8](repeating: 0xAB, count: 8) + Self.floatBytes(Self.weights), to: dir + "/data/weights.bin")
        let bytes = Self.externalModel(in: dir, location: "data/weights.bin")
        #expect(try Self.run(Model(contentsOf: dir + "/model.onnx")) == [11, 22, 33, 44])
        #expect(try Self.run(Model(onnx: bytes, baseDirectory: dir)) == [11, 22, 33, 44])
        do {
            _ = try Model(onnx: bytes)
            Issue.record("loading external data from memory without a directory must fail")
        } catch let error as LatheError {
            #expect(error.status == .io)
            #expect(error.message.contains("directory") && error.message.contains("'w'"))
        }
    }

    @Test(arguments: ["../outside.bin", "data/../../outside.bin", "/tmp/outside.bin", "link.bin", "missing.bin"])
    func unsafeOrMissingLocationsAreRefused(location: String) throws {
        let root = try Self.temporaryDirectory()
        let dir = root + "/model"
        mkdir(dir, 0o755)
        Self.write([UInt8](repeating: 0, count: 8) + Self.floatBytes(Self.weights), to: root + "/outside.bin")
        symlink(root + "/outside.bin", dir + "/link.bin")
        _ = Self.externalModel(in: dir, location: location)
        do {
            _ = try Model(contentsOf: dir + "/model.onnx")
            Issue.record("location '\(location)' must be refused")
        } catch let error as LatheError {
            #expect(error.status == .io, "\(error.message)")
            #expect(error.message.contains("'w'") && error.message.contains(location.split(separator: "/").last.map(String.init)!))
        }
    }

    @Test func wrongLengthIsAParseError() throws {
        let dir = try Self.temporaryDirectory()
        Self.write([UInt8](repeating: 0, count: 12), to: dir + "/short.bin")
        _ = Self.externalModel(in: dir, location: "short.bin")
        do {
            _ = try Model(contentsOf: dir + "/model.onnx")
            Issue.record("a file too short for the tensor must be refused")
        } catch let error as LatheError {
            #expect(error.status == .parseError)
            #expect(error.message.contains("short.bin"))
        }
    }
}
