/// A graph whose nodes are sorted and bound to kernels from the op table. Immutable and shareable
/// across threads; run it through a `Session`.
public final class Model: Sendable {
    /// A node bound to its kernel, with inputs and outputs as value ids (nil for omitted slots).
    struct Step: Sendable {
        let node: Node
        var kernel: any Kernel
        var inputs: [Int?]
        var outputs: [Int?]
    }

    /// The graph this model was built from.
    public let graph: Graph
    /// Value names by id.
    let valueNames: [String]
    /// Value ids by name.
    let valueIDs: [String: Int]
    /// Nodes in execution order.
    let steps: [Step]
    let inputIDs: [Int]
    let outputIDs: [Int]
    /// Indices of graph inputs wired into a slot some kernel lists in `valueDependentInputs`.
    let valueDependentInputIndices: Set<Int>

    /// Sorts the graph, checks every value is defined, and builds each node's kernel from `registry`.
    /// - Throws: `.unsupportedOp` for an op the table does not serve at the model's opset;
    ///   `.parseError` for dangling values or cycles; attribute errors from the kernels.
    public init(graph: Graph, registry: OpRegistry = .shared) throws {
        self.graph = graph
        var names: [String] = []
        var ids: [String: Int] = [:]
        func id(_ name: String) -> Int {
            if let i = ids[name] { return i }
            ids[name] = names.count
            names.append(name)
            return names.count - 1
        }
        var defined = Set<String>()
        for input in graph.inputs {
            guard defined.insert(input.name).inserted else {
                throw LatheError(.parseError, "graph input '\(input.name)' is declared twice")
            }
            _ = id(input.name)
        }
        for name in graph.initializers.keys.sorted() { defined.insert(name); _ = id(name) }

        let order = try graph.topologicalOrder()
        let produced = Set(graph.nodes.flatMap(\.outputs))

        var steps: [Step] = []
        for n in order {
            let node = graph.nodes[n]
            let opset = graph.opsets[node.domain] ?? (node.domain.isEmpty ? 1 : 1)
            guard let entry = registry.lookup(domain: node.domain, opType: node.opType, opset: opset) else {
                throw LatheError(.unsupportedOp,
                                 "unsupported op '\(node.opType)' (domain '\(node.domain)', opset \(opset)) at node '\(node.name)'")
            }
            let context = NodeContext(name: node.name, opType: node.opType, domain: node.domain, opset: opset,
                                      attributes: node.attributes,
                                      inputPresent: node.inputs.map { !$0.isEmpty },
                                      outputPresent: node.outputs.map { !$0.isEmpty },
                                      declaredOutputs: node.outputs.map { name in graph.outputs.first { $0.name == name } })
            let kernel = try entry.makeKernel(context)
            steps.append(Step(node: node, kernel: kernel,
                              inputs: node.inputs.map { $0.isEmpty ? nil : id($0) },
                              outputs: node.outputs.map { $0.isEmpty ? nil : id($0) }))
        }
        for output in graph.outputs {
            guard defined.contains(output.name) || produced.contains(output.name) else {
                throw LatheError(.parseError, "graph output '\(output.name)' is never produced")
            }
            _ = id(output.name)
        }
        self.valueNames = names
        self.valueIDs = ids
        self.steps = steps
        self.inputIDs = graph.inputs.map { ids[$0.name]! }
        self.outputIDs = graph.outputs.map { ids[$0.name]! }
        var valueDependent = Set<Int>()
        for step in steps {
            for slot in step.kernel.valueDependentInputs where slot < step.inputs.count {
                if let id = step.inputs[slot], let index = inputIDs.firstIndex(of: id) { valueDependent.insert(index) }
            }
        }
        self.valueDependentInputIndices = valueDependent
    }

    /// Declared inputs, in order.
    public var inputs: [ValueInfo] { graph.inputs }
    /// Declared outputs, in order.
    public var outputs: [ValueInfo] { graph.outputs }
}
