import Testing
import Lathe
import LatheONNX

/// Loading ONNX bytes: good models load; bad bytes and unknown ops fail with clear errors.
@Suite struct ONNXImportTests {
    /// A hand-serialized ONNX model: Relu over x:[N, 3] at opset 17 (built byte by byte so the test
    /// needs no generator; field numbers from onnx.proto).
    static let reluModel: [UInt8] = {
        func varint(_ v: Int) -> [UInt8] {
            var v = UInt64(v), out: [UInt8] = []
            repeat { var b = UInt8(v & 0x7f); v >>= 7; if v != 0 { b |= 0x80 }; out.append(b) } while v != 0
            return out
        }
        func field(_ number: Int, _ bytes: [UInt8]) -> [UInt8] { varint(number << 3 | 2) + varint(bytes.count) + bytes }
        func string(_ number: Int, _ s: String) -> [UInt8] { field(number, Array(s.utf8)) }
        func intField(_ number: Int, _ v: Int) -> [UInt8] { varint(number << 3) + varint(v) }
        func valueInfo(_ name: String, _ opType: String = "") -> [UInt8] {
            let dims = field(1, string(2, "N")) + field(1, intField(1, 3))   // Dimension{dim_param}, {dim_value}
            let tensorType = intField(1, 1) + field(2, dims)                 // elem_type FLOAT, shape
            return string(1, name) + field(2, field(1, tensorType))           // name, type{tensor_type}
        }
        func node(_ opType: String) -> [UInt8] { string(1, "x") + string(2, "y") + string(3, "act") + string(4, opType) }
        func model(_ opType: String) -> [UInt8] {
            let graph = field(1, node(opType)) + string(2, "g") + field(11, valueInfo("x")) + field(12, valueInfo("y"))
            return intField(1, 8) + field(7, graph) + field(8, intField(2, 17))  // ir_version, graph, opset_import{version}
        }
        return model("Relu")
    }()

    @Test func loadsAndRuns() throws {
        let model = try Model(onnx: Self.reluModel)
        #expect(model.inputs.map(\.name) == ["x"])
        #expect(model.inputs[0].dims == [.symbolic("N"), .fixed(3)])
        let out = try Session(model: model).run(["x": Tensor(shape: [1, 3], floats: [-1, 0, 2])])
        #expect(out["y"]!.floatArray() == [0, 0, 2])
    }

    @Test func truncatedModelIsAParseError() throws {
        for cut in [1, 7, Self.reluModel.count / 2, Self.reluModel.count - 3] {
            #expect(throws: LatheError.self) { try Model(onnx: Array(Self.reluModel.prefix(cut))) }
            do { _ = try Model(onnx: Array(Self.reluModel.prefix(cut))) } catch let e as LatheError {
                #expect(e.status == .parseError, "cut at \(cut): \(e.message)")
            }
        }
    }

    @Test func randomBytesAreAParseError() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let bytes = (0..<Int.random(in: 1...512, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            do { _ = try Model(onnx: bytes) ; Issue.record("random bytes loaded as a model") } catch let e as LatheError {
                #expect([.parseError, .unsupportedOp].contains(e.status), "\(e.message)")
            }
        }
        do { _ = try Model(onnx: []) } catch let e as LatheError { #expect(e.status == .parseError) }
    }

    @Test func missingFileIsAnIOError() throws {
        do { _ = try Model(contentsOf: "/nonexistent/model.onnx"); Issue.record("loaded a missing file") } catch let e as LatheError {
            #expect(e.status == .io)
            #expect(e.message.contains("/nonexistent/model.onnx"))
        }
    }

    @Test func unknownOpNamesOpDomainOpsetAndNode() throws {
        var bytes = Self.reluModel
        let relu = Array("Relu".utf8)
        let at = (0...(bytes.count - 4)).first { Array(bytes[$0..<$0 + 4]) == relu }!
        bytes.replaceSubrange(at..<at + 4, with: Array("Rolu".utf8))
        do { _ = try Model(onnx: bytes); Issue.record("unknown op loaded") } catch let e as LatheError {
            #expect(e.status == .unsupportedOp)
            #expect(e.message == "unsupported op 'Rolu' (domain '', opset 17) at node 'act'")
        }
    }

    @Test func explicitReshapeResolvesBatchBeforeRun() throws {
        let session = Session(model: try Model(onnx: Self.reluModel))
        try session.reshape(["x": [4, 3]])
        #expect(throws: LatheError.self) { try session.reshape(["x": [4, 2]]) }
        #expect(throws: LatheError.self) { try session.reshape(["y": [4, 3]]) }
    }
}
