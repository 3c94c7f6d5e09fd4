import Testing
import LatheCore
import LatheOps

/// A small seeded generator (SplitMix64) so randomized op tests are reproducible.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// `count` floats uniform in `range`.
    mutating func floats(_ count: Int, _ range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &self) }
    }
}

/// A fresh registry with every built-in op.
func builtinRegistry() throws -> OpRegistry {
    let r = OpRegistry()
    try BuiltinOps.register(into: r)
    return r
}

/// Runs one node over the given inputs (graph inputs named `in0`, `in1`, ...; `nil` = omitted optional input)
/// and returns its outputs.
func runNode(_ opType: String, inputs: [Tensor?], outputCount: Int = 1, opset: Int = 17,
             attributes: [String: AttributeValue] = [:], constantInputs: Set<Int> = []) throws -> [Tensor] {
    var graphInputs: [ValueInfo] = [], feeds: [String: Tensor] = [:], initializers: [String: Tensor] = [:]
    var names: [String] = []
    for (i, t) in inputs.enumerated() {
        guard let t else { names.append(""); continue }
        let name = "in\(i)"
        names.append(name)
        if constantInputs.contains(i) { initializers[name] = t; continue }
        graphInputs.append(ValueInfo(name: name, dtype: t.dtype, dims: t.shape.map { .fixed($0) }))
        feeds[name] = t
    }
    let outs = (0..<outputCount).map { "out\($0)" }
    let graph = Graph(inputs: graphInputs, outputs: outs.map { ValueInfo(name: $0, dtype: .float32, dims: nil) },
                      nodes: [Node(name: "node", opType: opType, inputs: names, outputs: outs, attributes: attributes)],
                      initializers: initializers, opsets: ["": opset])
    let session = Session(model: try Model(graph: graph, registry: builtinRegistry()))
    let result = try session.run(feeds)
    return outs.map { result[$0]! }
}

/// Expects `got` to match `reference` within 1e-4 × max(1, max|reference|), with equal shapes.
func expectClose(_ got: Tensor, _ reference: [Float], shape: [Int], _ comment: Comment? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.shape == shape, comment, sourceLocation: sourceLocation)
    guard got.shape == shape else { return }
    let out = got.floatArray()
    let scale = max(1, reference.map(abs).max() ?? 0)
    let err = zip(out, reference).map { abs($0 - $1) }.max() ?? 0
    #expect(err <= 1e-4 * scale, "max abs error \(err) \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
}
