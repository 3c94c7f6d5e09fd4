import Testing
import Lathe
@testable import LatheONNX

/// `Model.onnxBytes()`: the imported graph survives export and re-import — nodes, domains, every
/// attribute kind, initializers of every dtype, declared shapes and opset imports.
@Suite struct ONNXExportTests {
    /// A graph using every attribute kind on a custom-domain node (never run) and initializers of every dtype.
    static func graph() throws -> Graph {
        let half = try Tensor(shape: [2], floats: [0.5, -1.25])
        var initializers: [String: Tensor] = ["w": try Tensor(shape: [2, 2], floats: [1, 2, 3, 4])]
        for dtype in DType.allCases {
            let t = try Tensor(dtype, shape: [3])
            for i in 0..<t.byteCount { t.bytes.storeBytes(of: UInt8(truncatingIfNeeded: i % 2 == 0 ? 1 : 0), toByteOffset: i, as: UInt8.self) }
            initializers["c_\(dtype)"] = t
        }
        let attributes: [String: AttributeValue] = [
            "i": .int(-3), "f": .float(0.25), "s": .string("mode"), "ints": .ints([1, -2, 3]), "floats": .floats([1.5, 2]),
            "strings": .strings(["a", "bc"]), "t": .tensor(half), "empty": .ints([]),
        ]
        let nodes = [
            Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"]),
            Node(name: "custom", opType: "Probe", domain: "com.acme.probe", inputs: ["y", "", "c_int8"], outputs: ["z", ""],
                 attributes: attributes),
        ]
        return Graph(name: "export", inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.symbolic("N"), .fixed(2)])],
                     outputs: [ValueInfo(name: "z", dtype: .float32, dims: nil)], nodes: nodes,
                     initializers: initializers, opsets: ["": 13, "com.acme.probe": 4])
    }

    @Test func exportThenImportKeepsTheGraph() throws {
        let original = try Self.graph()
        let bytes = try ONNXExporter.modelBytes(original, forInference: false)
        let again = try ONNXImporter.graph(from: bytes)
        #expect(again.opsets == original.opsets)
        #expect(again.inputs == original.inputs && again.outputs == original.outputs)
        #expect(again.nodes.map(\.opType) == ["MatMul", "Probe"] && again.nodes.map(\.domain) == ["", "com.acme.probe"])
        #expect(again.nodes[1].inputs == ["y", "", "c_int8"] && again.nodes[1].outputs == ["z", ""])
        let a = again.nodes[1].attributes
        #expect(try a.int("i") == -3 && a.float("f") == 0.25 && a.string("s") == "mode")
        #expect(try a.ints("ints") == [1, -2, 3] && a.floats("floats") == [1.5, 2] && a.ints("empty") == [])
        guard case .strings(let strings)? = a.values["strings"], case .tensor(let t)? = a.values["t"] else {
            Issue.record("strings or tensor attribute lost")
            return
        }
        #expect(strings == ["a", "bc"] && t.shape == [2] && t.floatArray() == [0.5, -1.25])
        #expect(Set(again.initializers.keys) == Set(original.initializers.keys))
        for (name, tensor) in original.initializers {
            let copy = again.initializers[name]!
            #expect(copy.dtype == tensor.dtype && copy.shape == tensor.shape)
            #expect(Array(UnsafeRawBufferPointer(start: copy.bytes, count: copy.byteCount))
                    == Array(UnsafeRawBufferPointer(start: tensor.bytes, count: tensor.byteCount)), "initializer \(name)")
        }
        // A second export of the re-imported graph is byte-identical.
        #expect(try ONNXExporter.modelBytes(again, forInference: false) == bytes)
    }

    @Test func modelExportRunsTheSame() throws {
        let model = try Model(onnx: ONNXImportTests.reluModel)
        let copy = try Model(onnx: model.onnxBytes())
        let x = try Tensor(shape: [2, 3], floats: [-1, 0, 2, 3, -4, 0.5])
        let a = try Session(model: model).run(["x": x]), b = try Session(model: copy).run(["x": x])
        #expect(a["y"]!.floatArray() == b["y"]!.floatArray())
        #expect(copy.inputs == model.inputs && copy.outputs == model.outputs)
    }

    @Test func irVersionCoversEveryOpset() {
        #expect(ONNXExporter.irVersion(forOpsets: ["": 7]) == 4)
        #expect(ONNXExporter.irVersion(forOpsets: ["": 17]) == 8)
        #expect(ONNXExporter.irVersion(forOpsets: ["": 21]) == 10)
        #expect(ONNXExporter.irVersion(forOpsets: ["": 13, "ai.onnx.ml": 5]) == 10)
        #expect(ONNXExporter.irVersion(forOpsets: ["": 26]) == 13)
    }

    @Test func saveToAMissingDirectoryIsAnIOError() throws {
        let model = try Model(onnx: ONNXImportTests.reluModel)
        let error = #expect(throws: LatheError.self) { try model.save("/nonexistent-lathe-dir/m.onnx") }
        #expect(error?.status == .io && error?.message.contains("/nonexistent-lathe-dir/m.onnx") == true)
    }
}
