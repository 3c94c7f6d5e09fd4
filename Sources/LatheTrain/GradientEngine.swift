import CLatheShims
import LatheCore

/// Keeps OpenBLAS on the calling thread, once per process, as sessions do: the engine is single-threaded,
/// and OpenBLAS's threaded products allocate their job lists on every call.
private let blasSingleThreaded: Void = openblas_set_num_threads(1)

/// Runs a graph forward while keeping every intermediate value, then backward through the gradients
/// registered in the op table, giving dLoss/dValue for the chosen `differentiable` values (trainable
/// initializers, or graph inputs).
///
/// Buffers (inputs, values, gradients, each node's argument lists, kernels specialised for the shapes and
/// their scratch) are made once per input-shape signature and reused by every later step with the same
/// shapes: fed inputs are copied into the engine's own input tensors. Single-threaded and deterministic; use from one thread at a time.
///
/// A Conv whose value only a Relu reads runs fused with it: the convolution applies the Relu in its output
/// loop, and its gradient reads the Relu's output gradient masked by the Relu's output, so the Relu has no
/// pass of its own, forward or backward. The pre-activation value is then not kept (`value` and `gradient`
/// return nil for it, and it cannot be a seed); the gradients equal those of the unfused pair.
public final class GradientEngine {
    /// One node bound to its kernel and gradient, with value ids for its slots (nil = omitted).
    struct Step {
        let node: Node
        let kernel: any Kernel
        let gradient: (any GradientKernel)?
        let inputs: [Int?]
        let outputs: [Int?]
        /// Whether some input needs a gradient, so the backward pass must visit this node.
        let needsBackward: Bool
        /// Whether a training pass runs this node as at inference: a BatchNormalization whose scale and
        /// bias are both initializers and frozen (as Keras runs a frozen layer), keeping its moving statistics.
        let frozenStatistics: Bool
        /// The Relu node folded into this step (see `fusingRelus`), whose output this step writes.
        var absorbed: Node? = nil
    }

    /// Buffers and folded constants for one input-shape signature.
    final class Buffers {
        /// Per value id: its tensor (the engine's own copy for graph inputs).
        let values: [Tensor?]
        let gradients: [Tensor?]
        /// Steps left to run after folding the constant ones.
        let steps: [Step]
        /// Per step of `steps`: its input and output tensors, and the gradients of its inputs (nil where none flows).
        let stepInputs: [[Tensor?]], stepOutputs: [[Tensor?]], stepInputGradients: [[Tensor?]]
        /// Per step: the gradients of its outputs, used when a gradient reached every output that has one.
        let stepOutputGradients: [[Tensor?]]
        /// Per step: its kernel specialised for these shapes (geometry and index tables computed once).
        let kernels: [any Kernel]
        /// The graph outputs, in declaration order.
        let outputs: [Tensor]
        /// Scratch shared by the kernels (each runs alone, on the calling thread).
        let context: RunContext
        private let workspace: UnsafeMutableRawPointer

        init(values: [Tensor?], gradients: [Tensor?], steps: [Step], kernels: [any Kernel], workspaceBytes: Int,
             requiresGradient: [Bool], outputIDs: [Int]) {
            self.values = values
            outputs = outputIDs.map { values[$0]! }
            self.gradients = gradients
            self.steps = steps
            self.kernels = kernels
            workspace = UnsafeMutableRawPointer.allocate(byteCount: max(workspaceBytes, 1), alignment: 64)
            context = RunContext(workspace: workspace, workspaceStride: workspaceBytes, pool: .serial)
            stepInputs = steps.map { $0.inputs.map { $0.flatMap { values[$0] } } }
            stepOutputs = steps.map { $0.outputs.map { $0.flatMap { values[$0] } } }
            stepInputGradients = steps.map { $0.inputs.map { id in id.flatMap { requiresGradient[$0] ? gradients[$0] : nil } } }
            stepOutputGradients = steps.map { $0.outputs.map { $0.flatMap { gradients[$0] } } }
        }

        deinit { workspace.deallocate() }
    }

    /// The graph; its initializers share storage with the parameters the optimizer updates.
    public let graph: Graph
    /// The values gradients are computed for, in the order given.
    public let differentiable: [String]
    let names: [String]
    let ids: [String: Int]
    let steps: [Step]
    let inputIDs: [Int]
    let outputIDs: [Int]
    /// Per value: whether a gradient flows into it (it is differentiable or computed from one).
    let requiresGradient: [Bool]
    /// Buffers per input-shape signature (dtypes are fixed by the declared inputs).
    private var buffers: [[[Int]]: Buffers] = [:]
    private var current: Buffers?
    private var saved: [Int: [Tensor]] = [:]
    private var reached: [Bool]

    /// Binds every node of `graph` to its kernel and gradient from `registry`.
    /// - Parameters:
    ///   - differentiable: initializer or input names to differentiate with respect to (float32).
    /// - Throws: `.unsupportedOp` for an op without a kernel, or without a gradient when a
    ///   differentiable value flows through it; `.parseError` for dangling values or cycles.
    public init(graph: Graph, registry: OpRegistry, differentiable: [String]) throws {
        blasSingleThreaded
        self.graph = graph
        self.differentiable = differentiable
        var names: [String] = [], ids: [String: Int] = [:]
        func id(_ name: String) -> Int {
            if let i = ids[name] { return i }
            ids[name] = names.count
            names.append(name)
            return names.count - 1
        }
        for input in graph.inputs { _ = id(input.name) }
        for name in graph.initializers.keys.sorted() { _ = id(name) }
        let order = try graph.topologicalOrder()
        for n in order { for out in graph.nodes[n].outputs where !out.isEmpty { _ = id(out) } }
        var requires = [Bool](repeating: false, count: names.count)
        for name in differentiable {
            guard let i = ids[name] else { throw LatheError.invalid("'\(name)' is not an input or initializer of the graph") }
            let dtype = graph.initializers[name]?.dtype ?? graph.inputs.first { $0.name == name }?.dtype
            guard dtype == .float32 else { throw LatheError.dtype("cannot differentiate with respect to '\(name)': it is not float32") }
            requires[i] = true
        }
        var steps: [Step] = []
        for n in order {
            let node = graph.nodes[n]
            let opset = graph.opsets[node.domain] ?? 1
            guard let entry = registry.lookup(domain: node.domain, opType: node.opType, opset: opset) else {
                throw LatheError(.unsupportedOp, "unsupported op '\(node.opType)' (domain '\(node.domain)', opset \(opset)) at node '\(node.name)'")
            }
            let context = NodeContext(name: node.name, opType: node.opType, domain: node.domain, opset: opset,
                                      attributes: node.attributes, inputPresent: node.inputs.map { !$0.isEmpty },
                                      outputPresent: node.outputs.map { !$0.isEmpty })
            let inputs = node.inputs.map { $0.isEmpty ? nil : ids[$0] }
            let outputs = node.outputs.map { $0.isEmpty ? nil : ids[$0] }
            let needsBackward = inputs.contains { $0.map { requires[$0] } ?? false }
            var gradient: (any GradientKernel)?
            if let make = entry.makeGradient {
                gradient = try make(context)
            } else if needsBackward {
                throw LatheError(.unsupportedOp, "op '\(node.opType)' at node '\(node.name)' has no gradient registered, but a trainable value flows through it")
            }
            if needsBackward { for o in outputs { if let o { requires[o] = true } } }
            let frozenStatistics = node.opType == "BatchNormalization" && node.domain == "" && node.inputs.count >= 3
                && [1, 2].allSatisfy { graph.initializers[node.inputs[$0]] != nil && !requires[inputs[$0]!] }
            steps.append(Step(node: node, kernel: try entry.makeKernel(context), gradient: gradient,
                              inputs: inputs, outputs: outputs, needsBackward: needsBackward,
                              frozenStatistics: frozenStatistics))
        }
        for output in graph.outputs where ids[output.name] == nil {
            throw LatheError(.parseError, "graph output '\(output.name)' is never produced")
        }
        self.names = names
        self.ids = ids
        self.steps = Self.fusingRelus(steps, graphOutputs: Set(graph.outputs.compactMap { ids[$0.name] }),
                                      differentiable: Set(differentiable.compactMap { ids[$0] }))
        self.inputIDs = graph.inputs.map { ids[$0.name]! }
        self.outputIDs = graph.outputs.map { ids[$0.name]! }
        self.requiresGradient = requires
        self.reached = [Bool](repeating: false, count: names.count)
    }

    /// The tensor of a value after the last forward pass (borrowed: the next pass overwrites it).
    public func value(_ name: String) -> Tensor? { ids[name].flatMap { current?.values[$0] } }

    /// dLoss/d`name` after the last backward pass (borrowed), for a differentiable value or one computed from one.
    public func gradient(_ name: String) -> Tensor? { ids[name].flatMap { current?.gradients[$0] } }

    /// The node that produces `name`, if a node does.
    public func producer(of name: String) -> Node? {
        for step in steps {
            if let relu = step.absorbed, relu.outputs.contains(name) { return relu }
            if step.node.outputs.contains(name) { return step.node }
        }
        return nil
    }

    /// Folds each Relu into the step producing its input when that value has no other reader, is not a
    /// graph output or differentiable, the producer's kernel can apply the Relu in its output loop, and
    /// (when the producer needs a backward pass) its gradient can take the Relu's output gradient masked.
    static func fusingRelus(_ steps: [Step], graphOutputs: Set<Int>, differentiable: Set<Int>) -> [Step] {
        var readers: [Int: Int] = [:], producer: [Int: Int] = [:]
        for (index, step) in steps.enumerated() {
            for id in step.inputs { if let id { readers[id, default: 0] += 1 } }
            for id in step.outputs { if let id { producer[id] = index } }
        }
        var fused = steps, absorbed = Set<Int>()
        for (r, relu) in steps.enumerated() where relu.node.opType == "Relu" && relu.node.domain == "" {
            guard relu.inputs.count == 1, relu.outputs.count == 1, let x = relu.inputs[0], let y = relu.outputs[0],
                  readers[x] == 1, !graphOutputs.contains(x), !differentiable.contains(x),
                  let p = producer[x], fused[p].absorbed == nil, fused[p].outputs == [x],
                  let activation = relu.kernel.activation(constants: [nil]), activation == .relu,
                  let kernel = fused[p].kernel.fused(with: activation) else { continue }
            let producerStep = fused[p]
            var gradient = producerStep.gradient
            if producerStep.needsBackward {
                guard let maskable = gradient as? any ReluMaskableGradient else { continue }
                gradient = maskable.readingThroughRelu()
            }
            fused[p] = Step(node: producerStep.node, kernel: kernel, gradient: gradient, inputs: producerStep.inputs,
                            outputs: [y], needsBackward: producerStep.needsBackward,
                            frozenStatistics: producerStep.frozenStatistics, absorbed: relu.node)
            absorbed.insert(r)
        }
        return fused.enumerated().filter { !absorbed.contains($0.offset) }.map(\.element)
    }

    /// Runs the graph forward and returns its outputs in declaration order (borrowed tensors).
    /// - Parameters:
    ///   - training: run random and batch-dependent ops in training mode (through their gradients'
    ///     `trainingForward`) and keep what their backward needs.
    ///   - seed: seeds the training-mode randomness of this pass (each node derives its own).
    /// - Throws: shape or dtype errors naming the node; `.invalidArgument` for a missing input.
    @discardableResult
    public func forward(_ feeds: [String: Tensor], training: Bool, seed: UInt64 = 0) throws -> [Tensor] {
        for input in graph.inputs {
            guard let t = feeds[input.name] else { throw LatheError.invalid("input '\(input.name)' is not given") }
            guard t.dtype == input.dtype, input.accepts(t.shape) else {
                throw LatheError.shape("input '\(input.name)' expects \(input.dtype)\(input.dims.map { "\($0)" } ?? "[?]"), got \(t.type)")
            }
        }
        let b = try prepare(feeds)
        for (id, input) in zip(inputIDs, graph.inputs) {
            let source = feeds[input.name]!, own = b.values[id]!
            if source.bytes != own.bytes { own.bytes.copyMemory(from: source.bytes, byteCount: own.byteCount) }
        }
        current = b
        saved.removeAll(keepingCapacity: true)
        for index in b.steps.indices {
            let step = b.steps[index], ins = b.stepInputs[index], outs = b.stepOutputs[index]
            do {
                if training, !step.frozenStatistics, let gradient = step.gradient,
                   let keep = try gradient.trainingForward(ins, outs, seed: mix(seed, UInt64(index))) {
                    saved[index] = keep
                } else {
                    try b.kernels[index].compute(ins, outs, context: b.context)
                }
            } catch let error as LatheError {
                throw located(error, step)
            }
        }
        return b.outputs
    }

    /// Back-propagates from the given seeds (dLoss/dValue for any values, usually graph outputs or the
    /// input of a final activation fused into the loss) to every differentiable value.
    /// Call after `forward(_:training:seed:)` with the same feeds.
    /// - Throws: `.invalidState` before any forward pass, `.shapeMismatch` for a seed of the wrong shape.
    public func backward(seeds: [String: Tensor]) throws {
        guard let current else { throw LatheError(.invalidState, "backward needs a forward pass first") }
        for g in current.gradients { if let g { g.bytes.initializeMemory(as: UInt8.self, repeating: 0, count: g.byteCount) } }
        for i in reached.indices { reached[i] = false }
        for (name, seed) in seeds {
            guard let id = ids[name], let g = current.gradients[id] else {
                throw LatheError.invalid("no gradient flows into '\(name)' from the differentiable values")
            }
            guard seed.shape == g.shape, seed.dtype == .float32 else {
                throw LatheError.shape("gradient seed for '\(name)' must be float32\(g.shape), got \(seed.type)")
            }
            addInPlace(g.floats, seed.floats, g.count)
            reached[id] = true
        }
        for index in current.steps.indices.reversed() where current.steps[index].needsBackward {
            let step = current.steps[index]
            var anyReached = false, allReached = true
            for id in step.outputs { if let id, current.gradients[id] != nil { if reached[id] { anyReached = true } else { allReached = false } } }
            guard anyReached, let gradient = step.gradient else { continue }
            let outputGradients = allReached ? current.stepOutputGradients[index]
                : step.outputs.map { id in id.flatMap { reached[$0] ? current.gradients[$0] : nil } }
            let inputGradients = current.stepInputGradients[index]
            let pass = BackwardPass(inputs: current.stepInputs[index], outputs: current.stepOutputs[index],
                                    outputGradients: outputGradients, inputGradients: inputGradients,
                                    saved: saved[index] ?? [])
            do { try gradient.backward(pass) } catch let error as LatheError { throw located(error, step) }
            for (slot, id) in step.inputs.enumerated() where inputGradients[slot] != nil { reached[id!] = true }
        }
    }

    /// Types, folded constants and buffers for the shapes of `feeds`, built on first use (the last pass's
    /// buffers are found without a lookup when the shapes repeat).
    private func prepare(_ feeds: [String: Tensor]) throws -> Buffers {
        if let current, zip(inputIDs, graph.inputs).allSatisfy({ current.values[$0]!.shape == feeds[$1.name]!.shape }) {
            return current
        }
        let inputTypes = graph.inputs.map { feeds[$0.name]!.type }
        if let b = buffers[inputTypes.map(\.shape)] { return b }
        var types = [TensorType?](repeating: nil, count: names.count)
        var constants: [Int: Tensor] = [:]
        var values = [Tensor?](repeating: nil, count: names.count)
        for (name, tensor) in graph.initializers {
            let id = ids[name]!
            types[id] = tensor.type
            values[id] = tensor
            if !requiresGradient[id] { constants[id] = tensor }
        }
        for (id, type) in zip(inputIDs, inputTypes) {
            types[id] = type
            values[id] = try Tensor(type.dtype, shape: type.shape)
        }
        var remaining: [Step] = [], kernels: [any Kernel] = [], workspaceBytes = 0
        for step in steps {
            let inTypes = step.inputs.map { $0.flatMap { types[$0] } }
            let inConsts = step.inputs.map { $0.flatMap { constants[$0] } }
            do {
                let outTypes = try step.kernel.infer(inTypes, constants: inConsts)
                for (slot, id) in step.outputs.enumerated() {
                    guard let id, slot < outTypes.count, let t = outTypes[slot] else { continue }
                    types[id] = t
                    values[id] = try Tensor(t.dtype, shape: t.shape)
                }
                let constant = step.inputs.allSatisfy { $0 == nil || constants[$0!] != nil } && !step.needsBackward
                if constant {
                    let outs = step.outputs.map { $0.flatMap { values[$0] } }
                    try step.kernel.compute(inConsts, outs)
                    for id in step.outputs { if let id { constants[id] = values[id] } }
                    continue
                }
            } catch let error as LatheError {
                throw located(error, step)
            }
            remaining.append(step)
            do {
                let kernel = try step.kernel.specialized(for: inTypes, constants: inConsts)
                kernels.append(kernel)
                workspaceBytes = max(workspaceBytes, kernel.workspaceSize(for: inTypes))
            } catch let error as LatheError {
                throw located(error, step)
            }
        }
        var gradients = [Tensor?](repeating: nil, count: names.count)
        for id in names.indices where requiresGradient[id] {
            if let t = types[id], t.dtype == .float32 { gradients[id] = try Tensor(.float32, shape: t.shape) }
        }
        let b = Buffers(values: values, gradients: gradients, steps: remaining, kernels: kernels,
                        workspaceBytes: workspaceBytes, requiresGradient: requiresGradient, outputIDs: outputIDs)
        buffers[inputTypes.map(\.shape)] = b
        return b
    }

    private func located(_ error: LatheError, _ step: Step) -> LatheError {
        error.message.contains("'\(step.node.name)'") ? error
            : LatheError(error.status, "\(step.node.opType) node '\(step.node.name)': \(error.message)")
    }
}

/// `a[i] += b[i]` for `count` elements.
@inline(__always) func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) {
    for i in 0..<count { a[i] += b[i] }
}

/// Mixes two 64-bit values into a well-spread seed (SplitMix64 finaliser).
func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var z = a &+ 0x9E37_79B9_7F4A_7C15 &* (b &+ 1)
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
