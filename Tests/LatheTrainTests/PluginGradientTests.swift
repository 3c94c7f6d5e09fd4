import Testing
import Foundation
import LatheCore
import LatheOps
@testable import LatheTrain

/// `Y = X³`, a custom-domain op as a plugin would register it.
final class CubeKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] { [inputs[0]] }
    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!.floats, y = outputs[0]!.floats
        for i in 0..<inputs[0]!.count { y[i] = x[i] * x[i] * x[i] }
    }
}

/// `dX += 3X² · dY`.
final class CubeGradient: GradientKernel {
    func backward(_ p: BackwardPass) throws {
        guard let dx = p.inputGradients[0] else { return }
        let x = p.inputs[0]!.floats, dy = p.outputGradients[0]!.floats
        for i in 0..<dx.count { dx.floats[i] += 3 * x[i] * x[i] * dy[i] }
    }
}

/// Gradients go through the op table: a plugin's entry carries its own, and built-ins get theirs attached.
@Suite struct PluginGradientTests {
    @Test func pluginEntryCarriesItsGradient() throws {
        let registry = try TrainingOps.makeRegistry()
        try registry.register(OpEntry(domain: "com.acme", opType: "Cube", origin: "test plugin",
                                      makeKernel: { _ in CubeKernel() }, makeGradient: { _ in CubeGradient() }))
        var rng = SeededGenerator(seed: 3)
        let x = try randomTensor([2, 3], &rng)
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.fixed(2), .fixed(3)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: nil)],
                          nodes: [Node(name: "c", opType: "Cube", domain: "com.acme", inputs: ["x"], outputs: ["h"]),
                                  Node(name: "t", opType: "Tanh", inputs: ["h"], outputs: ["y"])],
                          opsets: ["": 17, "com.acme": 1])
        let engine = try GradientEngine(graph: graph, registry: registry, differentiable: ["x"])
        let y = try engine.forward(["x": x], training: true)[0]
        let ones = try Tensor(shape: y.shape, floats: Array(repeating: 1, count: y.count))
        try engine.backward(seeds: ["y": ones])
        let g = try #require(engine.gradient("x")).floatArray()
        for i in 0..<x.count {
            let v = Double(x.floats[i])
            let t = tanh(v * v * v)
            let expected: Double = 3 * v * v * (1 - t * t)
            #expect(abs(Double(g[i]) - expected) < 1e-5)
        }
    }

    @Test func attachingNeedsARegisteredOp() throws {
        let registry = OpRegistry()
        #expect { try registry.setGradient(opType: "Relu") { _ in CubeGradient() } }
            throws: { ($0 as? LatheError)?.status == .invalidArgument && "\($0)".contains("not registered") }
        try BuiltinOps.register(into: registry)
        #expect(registry.lookup(domain: "", opType: "Conv", opset: 17)?.makeGradient == nil)
        try TrainingOps.register(into: registry)
        for op in ["Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax",
                   "LogSoftmax", "Flatten", "Reshape", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
                   "Dropout", "Transpose", "Concat"] {
            for opset in [11, 13, 17, 21] where registry.lookup(domain: "", opType: op, opset: opset) != nil {
                #expect(registry.lookup(domain: "", opType: op, opset: opset)?.makeGradient != nil, "\(op) opset \(opset)")
            }
        }
    }
}

/// A graph with a custom-domain op trains with the gradient engine and an optimizer, its weights being
/// the graph's initializers (updated in place), as a plugin op's entry carries its own gradient.
@Suite struct PluginTrainingTests {
    @Test func gemmThenCustomOpLearnsATeachersMapping() throws {
        let registry = try TrainingOps.makeRegistry()
        try registry.register(OpEntry(domain: "com.acme", opType: "Cube", origin: "test plugin",
                                      makeKernel: { _ in CubeKernel() }, makeGradient: { _ in CubeGradient() }))
        var rng = SeededGenerator(seed: 9)
        let x = try randomTensor([16, 3], &rng)
        func graph(_ w: Tensor, _ b: Tensor) -> Graph {
            var g = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.fixed(16), .fixed(3)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: nil)],
                          nodes: [Node(name: "gemm", opType: "Gemm", inputs: ["x", "W", "B"], outputs: ["h"]),
                                  Node(name: "cube", opType: "Cube", domain: "com.acme", inputs: ["h"], outputs: ["y"])],
                          opsets: ["": 17, "com.acme": 1])
            g.initializers = ["W": w, "B": b]
            return g
        }
        // Targets from a teacher with the same architecture; the student starts from small weights.
        let teacher = try GradientEngine(graph: graph(try randomTensor([3, 2], &rng), try randomTensor([2], &rng, -0.3...0.3)),
                                         registry: registry, differentiable: [])
        let target = try teacher.forward(["x": x], training: false)[0].floatArray()
        let w = try randomTensor([3, 2], &rng, -0.1...0.1), b = try Tensor(shape: [2], floats: [0, 0])
        let student = try GradientEngine(graph: graph(w, b), registry: registry, differentiable: ["W", "B"])
        let optimizer = Optimizer.adam(learningRate: 0.05)
        var losses: [Double] = []
        for _ in 0..<300 {
            let y = try student.forward(["x": x], training: true)[0]
            var loss = 0.0
            var dy = [Float](repeating: 0, count: y.count)
            for i in 0..<y.count {
                let d = y.floats[i] - target[i]
                loss += Double(d * d) / Double(y.count)
                dy[i] = 2 * d / Float(y.count)
            }
            losses.append(loss)
            try student.backward(seeds: ["y": try Tensor(shape: y.shape, floats: dy)])
            try optimizer.step(parameters: [w, b], gradients: [try #require(student.gradient("W")), try #require(student.gradient("B"))])
        }
        #expect(losses.last! < 0.02 * losses.first!, "MSE \(losses.first!) -> \(losses.last!)")
    }
}
