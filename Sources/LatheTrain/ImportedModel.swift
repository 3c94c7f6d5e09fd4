import LatheCore
import LatheONNX

/// An imported ONNX network used as a (first) layer of a `Sequential` model, for fine-tuning and
/// transfer learning: the graph, optionally cut at a named tensor, whose weights are trained or frozen,
/// followed by any Keras layers (a new head).
///
/// - Input: fed exactly as the ONNX model takes it (e.g. `[N, 1, 28, 28]` for a channels-first CNN); the
///   model must have one input whose dimensions other than the first (the batch) are fixed.
/// - Output: the cut tensor (or the model's single output). A per-sample rank-3 value is taken as
///   channels-first `[C, H, W]` (ONNX's layout), so `Flatten`, `Conv2D` or pooling layers appended after it
///   read it correctly; a model whose last value is such an image returns it channels-last, as every
///   `Sequential`.
/// - Weights: the float32 initializers that are parameters of Conv, ConvTranspose, Gemm, MatMul, Add,
///   BatchNormalization (scale and bias) and LSTM/GRU/RNN (W, R, B); every other initializer is a constant.
///   A weight is trained when `trainable` is true and no name in `freeze` covers it, or when a name in
///   `unfreeze` covers it; a name is an initializer's or a node's (covering all of that node's weights).
///   Frozen BatchNormalization nodes (scale and bias both frozen) run in inference mode while training, as
///   Keras's frozen layers do, so their moving statistics stay as imported.
/// - Names: the layer's values, nodes and weights are the imported ones prefixed with `"<name>/"`
///   (`imported`, `imported_1`, ...).
public struct ImportedModel: Layer {
    /// The imported graph (uncut).
    public let graph: Graph
    /// The tensor the graph is cut at (its last kept value), or nil for the graph's output.
    public let cutAt: String?
    /// Whether weights are trained by default.
    public let trainable: Bool
    /// Initializer or node names frozen although `trainable` is true.
    public let freeze: [String]
    /// Initializer or node names trained although `trainable` is false.
    public let unfreeze: [String]
    /// The model's input shape without the batch axis.
    public let inputShape: [Int]?
    /// The shape of the kept output without the batch axis.
    public let outputShape: [Int]
    /// Kept nodes in topological order.
    let kept: [Node]
    /// The value the layer outputs.
    let target: String
    let inputName: String

    /// Per op type, the input slots that hold weights.
    static let weightSlots: [String: Set<Int>] = [
        "Conv": [1, 2], "ConvTranspose": [1, 2], "Gemm": [0, 1, 2], "MatMul": [0, 1], "Add": [0, 1],
        "BatchNormalization": [1, 2], "LSTM": [1, 2, 3], "GRU": [1, 2, 3], "RNN": [1, 2, 3],
    ]

    /// Wraps `graph`; see the type's documentation for the arguments.
    /// - Throws: `.invalidArgument` for a graph without exactly one input (or output, when not cut), a
    ///   non-fixed input shape, an opset this layer cannot carry (13 to 17), or an unknown `cutAt`, `freeze`
    ///   or `unfreeze` name; errors of running the kept graph once on zeros to learn its output shape.
    public init(_ graph: Graph, cutAt: String? = nil, trainable: Bool = false, freeze: [String] = [],
                unfreeze: [String] = []) throws {
        let opset = graph.opsets[""] ?? 1
        guard (13...17).contains(opset) else {
            throw LatheError(.unsupportedOp, "imported model: default-domain opset \(opset) is not supported for fine-tuning (13 to 17)")
        }
        let inputs = graph.inputs.filter { graph.initializers[$0.name] == nil }
        guard inputs.count == 1, let input = inputs.first else {
            throw LatheError.invalid("imported model: needs exactly one input, has \(inputs.map(\.name))")
        }
        guard input.dtype == .float32, let dims = input.dims, dims.count >= 2,
              case let shape = dims.dropFirst().compactMap(\.value), shape.count == dims.count - 1, shape.allSatisfy({ $0 > 0 }) else {
            throw LatheError.shape("imported model: input '\(input.name)' must be float32 [N, fixed sizes...], got \(input.dtype)\(input.dims.map { "\($0)" } ?? "[?]")")
        }
        let target: String
        if let cutAt {
            guard graph.nodes.contains(where: { $0.outputs.contains(cutAt) }) else {
                throw LatheError.invalid("imported model: cut_at '\(cutAt)' is not a tensor computed by the graph")
            }
            target = cutAt
        } else {
            guard graph.outputs.count == 1 else {
                throw LatheError.invalid("imported model: has \(graph.outputs.count) outputs; choose one with cut_at")
            }
            target = graph.outputs[0].name
        }
        let names = Set(graph.nodes.map(\.name)).union(graph.initializers.keys)
        for name in freeze + unfreeze where !names.contains(name) {
            throw LatheError.invalid("imported model: '\(name)' (to freeze or unfreeze) is neither a node nor an initializer")
        }
        // Keep the nodes `target` depends on.
        var needed: Set<String> = [target]
        var keep = [Bool](repeating: false, count: graph.nodes.count)
        let order = try graph.topologicalOrder()
        for n in order.reversed() where graph.nodes[n].outputs.contains(where: needed.contains) {
            keep[n] = true
            for name in graph.nodes[n].inputs where !name.isEmpty { needed.insert(name) }
        }
        self.graph = graph
        self.cutAt = cutAt
        self.trainable = trainable
        self.freeze = freeze
        self.unfreeze = unfreeze
        self.inputShape = shape
        self.kept = order.filter { keep[$0] }.map { graph.nodes[$0] }
        self.target = target
        self.inputName = input.name
        // The output shape, from one forward pass on zeros.
        let probe = Graph(inputs: [ValueInfo(name: input.name, dtype: .float32, dims: dims)],
                          outputs: [ValueInfo(name: target, dtype: .float32, dims: nil)], nodes: kept,
                          initializers: graph.initializers.filter { needed.contains($0.key) }, opsets: graph.opsets)
        let engine = try GradientEngine(graph: probe, registry: TrainingOps.sharedRegistry, differentiable: [])
        let y = try engine.forward([input.name: try Tensor(.float32, shape: [1] + shape)], training: false)[0]
        guard y.dtype == .float32, y.rank >= 1 else {
            throw LatheError.dtype("imported model: '\(target)' must be a float32 tensor with a batch axis, got \(y.type)")
        }
        outputShape = Array(y.shape.dropFirst())
    }

    /// Reads an ONNX file and wraps it (see `init(_:cutAt:trainable:freeze:unfreeze:)`).
    public init(contentsOf path: String, cutAt: String? = nil, trainable: Bool = false, freeze: [String] = [],
                unfreeze: [String] = []) throws {
        try self.init(try ONNXImporter.graph(contentsOf: path), cutAt: cutAt, trainable: trainable, freeze: freeze,
                      unfreeze: unfreeze)
    }

    /// Whether the initializer `name`, a weight of node `node`, is trained.
    func isTrained(_ name: String, of node: Node) -> Bool {
        let covers = { (list: [String]) in list.contains(name) || list.contains(node.name) }
        return (trainable && !covers(freeze)) || covers(unfreeze)
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard input.shape == inputShape else {
            throw LatheError.shape("imported model takes [N] + \(inputShape ?? []) (as the ONNX model declares it), got [N] + \(input.shape)")
        }
        let prefix = b.uniqueName("imported")
        func renamed(_ name: String) -> String {
            name.isEmpty ? "" : name == inputName ? input.name : "\(prefix)/\(name)"
        }
        var added: Set<String> = []
        for (index, node) in kept.enumerated() {
            for (slot, name) in node.inputs.enumerated() where !name.isEmpty && !added.contains(name) {
                guard let tensor = graph.initializers[name] else { continue }
                added.insert(name)
                let isWeight = tensor.dtype == .float32 && Self.weightSlots[node.opType]?.contains(slot) == true
                _ = b.weight(renamed(name), try tensor.copy(), trainable: isWeight, frozen: !isTrained(name, of: node))
            }
            b.nodes.append(Node(name: "\(prefix)/\(node.name.isEmpty ? "\(node.opType)_\(index)" : node.name)",
                                opType: node.opType, domain: node.domain, inputs: node.inputs.map(renamed),
                                outputs: node.outputs.map(renamed), attributes: node.attributes.values))
        }
        return LayerValue(name: renamed(target), shape: outputShape, channelsFirst: outputShape.count == 3)
    }
}
