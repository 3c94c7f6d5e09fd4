import Testing
@testable import Lathe
import LatheOps

/// End-to-end through the planner and session on a graph built in code.
@Suite struct PipelineTests {
    func registry() throws -> OpRegistry {
        let r = OpRegistry()
        try registerBuiltinOps(into: r)
        return r
    }

    @Test func gemmReluRuns() throws {
        let w = try Tensor(shape: [3, 2], floats: [1, -1, 2, 0, 0, 3])
        let bias = try Tensor(shape: [2], floats: [0.5, -10])
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.symbolic("N"), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dims: [.symbolic("N"), .fixed(2)])],
            nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["h"]),
                    Node(name: "act", opType: "Relu", inputs: ["h"], outputs: ["y"])],
            initializers: ["w": w, "b": bias])
        let session = Session(model: try Model(graph: graph, registry: registry()))
        let out = try session.run(["x": try Tensor(shape: [2, 3], floats: [1, 2, 3, -1, 0, 1])])
        // Row 0: [1+4+0, -1+0+9] + b = [5.5, -2] → relu [5.5, 0]; row 1: [-1+0+0, 1+0+3] + b = [-0.5, -6] → [0, 0]
        #expect(out["y"]!.floatArray() == [5.5, 0, 0, 0])
        #expect(out["y"]!.shape == [2, 2])
    }

    @Test func unknownOpFailsAtLoad() throws {
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.fixed(1)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: [.fixed(1)])],
                          nodes: [Node(name: "n0", opType: "Frobnicate", domain: "com.acme", inputs: ["x"], outputs: ["y"])],
                          opsets: ["": 17, "com.acme": 2])
        #expect {
            try Model(graph: graph, registry: registry())
        } throws: { error in
            let e = error as! LatheError
            return e.status == .unsupportedOp && e.message == "unsupported op 'Frobnicate' (domain 'com.acme', opset 2) at node 'n0'"
        }
    }

    @Test func runBeforeInputsIsAnError() throws {
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.fixed(1)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: [.fixed(1)])],
                          nodes: [Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"])])
        let session = Session(model: try Model(graph: graph, registry: registry()))
        #expect(throws: LatheError.self) { try session.run() }
        #expect(throws: LatheError.self) { try session.setInput("x", try Tensor(shape: [2], floats: [1, 2])) }
        #expect(throws: LatheError.self) { try session.setInput("nope", try Tensor(shape: [1], floats: [1])) }
    }

    @Test func shapeInputsFedAtRunTimeSpecialiseThePlan() throws {
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.fixed(2), .fixed(6)]),
                                   ValueInfo(name: "shape", dtype: .int64, dims: [.symbolic("R")])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: nil)],
                          nodes: [Node(name: "r", opType: "Reshape", inputs: ["x", "shape"], outputs: ["y"])])
        let session = Session(model: try Model(graph: graph, registry: registry()))
        let x = try Tensor(shape: [2, 6], floats: (0..<12).map(Float.init))
        for target in [[3, 4], [4, -1], [12], [2, 3, 2]] {
            let out = try session.run(["x": x, "shape": Tensor(shape: [target.count], int64s: target.map(Int64.init))])
            #expect(out["y"]!.count == 12 && out["y"]!.floatArray() == (0..<12).map(Float.init))
            #expect(out["y"]!.shape == (target == [4, -1] ? [4, 3] : target))
        }
    }
}
