#if canImport(Glibc)
import Glibc
#endif

/// One inference context over a model: owns the buffers of every intermediate value, re-plans only
/// when input shapes change. Use from one thread at a time; create one session per thread.
public final class Session {
    /// The model this session runs.
    public let model: Model
    private var inputs: [Tensor?]
    private var plan: Plan?
    /// Every value's tensor for the current plan (constants, inputs, intermediates, outputs).
    private var values: [Tensor?]
    /// Outputs handed to a caller who may keep them: the next run writes those into fresh buffers.
    private var handedOut = Set<Int>()
    private var hasRun = false

    /// Creates a session; buffers are allocated at the first run.
    public init(model: Model) {
        self.model = model
        self.inputs = Array(repeating: nil, count: model.inputIDs.count)
        self.values = Array(repeating: nil, count: model.valueNames.count)
    }

    /// Index of a declared input, or an error listing the valid names.
    public func inputIndex(_ name: String) throws -> Int {
        guard let i = model.graph.inputs.firstIndex(where: { $0.name == name }) else {
            let names = model.graph.inputs.map { "'\($0.name)'" }.joined(separator: ", ")
            throw LatheError.invalid("model has no input named '\(name)' (inputs: \(names))")
        }
        return i
    }

    /// Sets an input. The tensor is used as is (no copy); do not modify it until the run finishes.
    /// - Throws: `.dtypeMismatch` or `.shapeMismatch` when it does not fit the declared input.
    public func setInput(_ name: String, _ tensor: Tensor) throws {
        let index = try checkInput(name, tensor.type)
        inputs[index] = tensor
        values[model.inputIDs[index]] = nil   // drop the previous run's reference now
    }

    /// Checks that a tensor of `type` may be fed as input `name`, without setting anything.
    /// - Returns: the input's index.
    /// - Throws: `.invalidArgument` for an unknown name, `.dtypeMismatch` or `.shapeMismatch`.
    @discardableResult
    public func checkInput(_ name: String, _ type: TensorType) throws -> Int {
        let index = try inputIndex(name)
        let info = model.graph.inputs[index]
        guard type.dtype == info.dtype else {
            throw LatheError.dtype("input '\(name)' expects \(info.dtype), got \(type.dtype)")
        }
        guard info.accepts(type.shape) else {
            let declared = info.dims.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "?"
            throw LatheError.shape("input '\(name)' expects shape \(declared), got \(type.shape)")
        }
        return index
    }

    /// Runs the model on the inputs set so far.
    /// - Throws: `.invalidState` when an input is missing; kernel errors naming the node.
    public func run() throws {
        for (i, input) in inputs.enumerated() where input == nil {
            throw LatheError(.invalidState, "input '\(model.graph.inputs[i].name)' is not set")
        }
        let inputTypes = inputs.map { $0!.type }
        if plan == nil || plan!.inputTypes != inputTypes || !shapeLikeInputsMatchPlan() {
            try replan(inputTypes)
        }
        let plan = plan!
        for (id, input) in zip(model.inputIDs, inputs) { values[id] = input }
        for id in handedOut where plan.constants[id] == nil && !model.inputIDs.contains(id) {
            if let t = plan.types[id] { values[id] = try Tensor(t.dtype, shape: t.shape) }
        }
        handedOut.removeAll(keepingCapacity: true)
        for step in plan.steps {
            do {
                try step.kernel.compute(step.inputs.map { $0.flatMap { values[$0] } },
                                        step.outputs.map { $0.flatMap { values[$0] } })
            } catch let error as LatheError {
                hasRun = false
                throw LatheError(error.status, Plan.located(error.message, step))
            }
        }
        hasRun = true
    }

    /// Whether the small integer inputs hold the values the current plan was specialised to.
    private func shapeLikeInputsMatchPlan() -> Bool {
        guard let plan else { return false }
        for (index, value) in plan.inputValues {
            guard let input = inputs[index], input.byteCount == value.byteCount,
                  memcmp(input.bytes, value.bytes, value.byteCount) == 0 else { return false }
        }
        return true
    }

    private func replan(_ inputTypes: [TensorType]) throws {
        plan = nil
        hasRun = false
        var inputValues: [Int: Tensor] = [:]
        for (index, type) in inputTypes.enumerated()
            where Plan.isShapeLike(type) || model.valueDependentInputIndices.contains(index) {
            inputValues[index] = try inputs[index]?.copy()
        }
        let newPlan = try Plan(model: model, inputTypes: inputTypes, inputValues: inputValues)
        var newValues = [Tensor?](repeating: nil, count: model.valueNames.count)
        for (id, t) in newPlan.constants { newValues[id] = t }
        for step in newPlan.steps {
            for id in step.outputs.compactMap({ $0 }) where newValues[id] == nil {
                let t = newPlan.types[id]!
                newValues[id] = try Tensor(t.dtype, shape: t.shape)
            }
        }
        values = newValues
        plan = newPlan
    }

    /// Plans for the given input shapes now (resolving symbolic dimensions such as the batch size)
    /// instead of at the next `run`. Inputs not named keep the shape of the tensor already set.
    /// - Throws: shape or dtype errors naming the node that cannot take these shapes.
    public func reshape(_ shapes: [String: [Int]]) throws {
        var types: [TensorType] = []
        for (i, info) in model.graph.inputs.enumerated() {
            guard let shape = shapes[info.name] ?? inputs[i]?.shape else {
                throw LatheError.invalid("reshape: no shape given for input '\(info.name)'")
            }
            try checkInput(info.name, TensorType(info.dtype, shape))
            types.append(TensorType(info.dtype, shape))
        }
        for name in shapes.keys { _ = try inputIndex(name) }
        if plan?.inputTypes != types || !shapeLikeInputsMatchPlan() { try replan(types) }
    }

    /// Index of a declared output, or an error listing the valid names.
    public func outputIndex(_ name: String) throws -> Int {
        guard let i = model.graph.outputs.firstIndex(where: { $0.name == name }) else {
            let names = model.graph.outputs.map { "'\($0.name)'" }.joined(separator: ", ")
            throw LatheError.invalid("model has no output named '\(name)' (outputs: \(names))")
        }
        return i
    }

    /// The output of the last run, borrowed: its memory is reused by the next run.
    public func borrowOutput(at index: Int) throws -> Tensor {
        guard hasRun else { throw LatheError(.invalidState, "no outputs yet: call run() first") }
        guard index >= 0 && index < model.outputIDs.count else {
            throw LatheError.invalid("output index \(index) out of range (model has \(model.outputIDs.count))")
        }
        let id = model.outputIDs[index]
        guard let t = values[id] else { throw LatheError(.internal, "output '\(model.valueNames[id])' was not computed") }
        return t
    }

    /// The output of the last run, the caller's to keep: the next run writes into a fresh buffer.
    public func output(_ name: String) throws -> Tensor {
        let index = try outputIndex(name)
        let t = try borrowOutput(at: index)
        handedOut.insert(model.outputIDs[index])
        return t
    }

    /// Sets the inputs, runs, and returns every output by name.
    public func run(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        for (name, tensor) in feeds { try setInput(name, tensor) }
        try run()
        var result: [String: Tensor] = [:]
        for info in model.graph.outputs { result[info.name] = try output(info.name) }
        return result
    }
}
