import Testing
import LatheCore
import LatheOps
@testable import LatheTrain

/// The op table every training test uses: built-ins plus their gradients.
let trainingRegistry: OpRegistry = {
    do { return try TrainingOps.makeRegistry() } catch { fatalError("registry: \(error)") }
}()

/// A float32 tensor of `shape` with values uniform in `range`.
func randomTensor(_ shape: [Int], _ rng: inout SeededGenerator, _ range: ClosedRange<Float> = -1...1) throws -> Tensor {
    try Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.uniform(range.lowerBound, range.upperBound) })
}

/// Checks a graph's gradients against central finite differences.
///
/// The scalar checked is `f = Σ R ⊙ Y` over the graph's first output `Y` with a fixed random `R`, so
/// `dF/dY = R` seeds the backward pass. Each element `v` of every differentiable value is nudged by
/// ±`eps` and `(f(v + eps) − f(v − eps)) / 2eps` (accumulated in float64 over float32 forwards) is
/// compared with the analytic gradient: max |numeric − analytic| ≤ `tolerance` · max(1, max |analytic|).
/// Defaults: eps = 1e-2, tolerance = 1e-2 (float32 forward passes).
func checkGradients(_ graph: Graph, feeds: [String: Tensor], differentiable: [String], seed: UInt64 = 1,
                    eps: Float = 1e-2, tolerance: Float = 1e-2, training: Bool = false,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
    let engine = try GradientEngine(graph: graph, registry: trainingRegistry, differentiable: differentiable)
    var rng = SeededGenerator(seed: seed)
    let y = try engine.forward(feeds, training: training, seed: 7)[0]
    let r = try randomTensor(y.shape, &rng)
    func objective() throws -> Double {
        let out = try engine.forward(feeds, training: training, seed: 7)[0]
        var sum = 0.0
        for i in 0..<out.count { sum += Double(out.floats[i]) * Double(r.floats[i]) }
        return sum
    }
    _ = try engine.forward(feeds, training: training, seed: 7)
    try engine.backward(seeds: [graph.outputs[0].name: r])
    var tensors: [String: Tensor] = [:]
    for name in differentiable { tensors[name] = try #require(feeds[name] ?? graph.initializers[name]) }
    try expectFiniteDifferences(engine, tensors: tensors, order: differentiable, eps: eps, tolerance: tolerance,
                                objective: objective, sourceLocation: sourceLocation)
}

/// Compares the engine's gradient of each tensor in `order` (from the backward pass just run) with
/// central finite differences of `objective`: each element is nudged by ±`eps` in place (and restored),
/// `(f(v + eps) − f(v − eps)) / 2eps` is accumulated in float64, and the check is
/// max |numeric − analytic| ≤ `tolerance` · max(1, max |analytic|), with a non-zero analytic gradient.
func expectFiniteDifferences(_ engine: GradientEngine, tensors: [String: Tensor], order: [String], eps: Float,
                             tolerance: Float, objective: () throws -> Double,
                             sourceLocation: SourceLocation) throws {
    var analytic: [String: [Float]] = [:]
    for name in order { analytic[name] = try #require(engine.gradient(name)).floatArray() }
    for name in order {
        let tensor = tensors[name]!, a = analytic[name]!
        var numeric = [Float](repeating: 0, count: tensor.count)
        for i in 0..<tensor.count {
            let saved = tensor.floats[i]
            tensor.floats[i] = saved + eps
            let plus = try objective()
            tensor.floats[i] = saved - eps
            let minus = try objective()
            tensor.floats[i] = saved
            numeric[i] = Float((plus - minus) / (2 * Double(eps)))
        }
        let scale = max(1, a.map(abs).max() ?? 0)
        let error = zip(a, numeric).map { abs($0 - $1) }.max() ?? 0
        #expect(error <= tolerance * scale, "d/d\(name): max |numeric − analytic| = \(error), scale \(scale)",
                sourceLocation: sourceLocation)
        #expect(a.contains { $0 != 0 }, "d/d\(name) is all zero", sourceLocation: sourceLocation)
    }
}

/// A graph of one node; `inputs` become graph inputs, `constants` initializers (name → tensor).
func singleNodeGraph(_ opType: String, inputs: [(String, Tensor)], constants: [(String, Tensor)] = [],
                     order: [String]? = nil, attributes: [String: AttributeValue] = [:], opset: Int = 17,
                     outputCount: Int = 1) -> Graph {
    let names = order ?? (inputs.map(\.0) + constants.map(\.0))
    let outputs = (0..<outputCount).map { "y\($0)" }
    return Graph(inputs: inputs.map { ValueInfo(name: $0.0, dtype: $0.1.dtype, dims: $0.1.shape.map { .fixed($0) }) },
                 outputs: outputs.map { ValueInfo(name: $0, dtype: .float32, dims: nil) },
                 nodes: [Node(name: "n", opType: opType, inputs: names, outputs: outputs, attributes: attributes)],
                 initializers: Dictionary(uniqueKeysWithValues: constants), opsets: ["": opset])
}

/// Checks the gradients of every input of a one-node graph whose inputs are all differentiable.
func checkOp(_ opType: String, _ inputs: [(String, Tensor)], constants: [(String, Tensor)] = [],
             order: [String]? = nil, attributes: [String: AttributeValue] = [:], opset: Int = 17,
             training: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let graph = singleNodeGraph(opType, inputs: inputs, constants: constants, order: order,
                                attributes: attributes, opset: opset)
    try checkGradients(graph, feeds: Dictionary(uniqueKeysWithValues: inputs), differentiable: inputs.map(\.0),
                       training: training, sourceLocation: sourceLocation)
}
