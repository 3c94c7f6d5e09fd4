/// A model specialised to concrete input types: every value's type is known, constant sub-graphs
/// (weights, shape arithmetic) are evaluated once, the optimisation passes have rewritten the rest,
/// and the remaining steps (kernels specialised to their shapes) are what `run` executes.
struct Plan {
    /// Input types this plan was built for, in `Model.inputIDs` order.
    let inputTypes: [TensorType]
    /// Values of the inputs this plan was specialised to (small integer inputs, see `Plan.isShapeLike`, and
    /// inputs wired into a kernel's `valueDependentInputs`), by input index.
    let inputValues: [Int: Tensor]
    /// Type of every value id (nil for values never computed). Passes may add ids past the model's.
    var types: [TensorType?]
    /// Values known at plan time (initializers, folded results, rewritten weights).
    var constants: [Int: Tensor]
    /// Steps that must run each time (some inputs not constant).
    var steps: [Model.Step]
    /// Scratch bytes each step's kernel asked for.
    var workspaceBytes: [Int]

    /// Whether an input of this type is treated as a plan-time value: a small int32/int64 tensor, such as a
    /// shape, axes or slice bounds fed at run time. Plans are then specialised to its values (re-planned when
    /// they change), so ops whose output shape depends on it (Reshape, Slice, Expand, ...) can be planned.
    static func isShapeLike(_ type: TensorType) -> Bool {
        (type.dtype == .int64 || type.dtype == .int32) && type.shape.count <= 1 && type.count <= 64
    }

    /// Infers types through the graph, folds every step whose inputs are all constant, applies
    /// `passes` in order, then specialises each remaining kernel to its input types.
    init(model: Model, inputTypes: [TensorType], inputValues: [Int: Tensor] = [:],
         passes: [PlanPass] = PlanPass.standard) throws {
        var types = [TensorType?](repeating: nil, count: model.valueNames.count)
        var constants: [Int: Tensor] = [:]
        for (name, tensor) in model.graph.initializers {
            let id = model.valueIDs[name]!
            constants[id] = tensor
            types[id] = tensor.type
        }
        for (id, type) in zip(model.inputIDs, inputTypes) { types[id] = type }
        for (index, value) in inputValues { constants[model.inputIDs[index]] = value }

        var remaining: [Model.Step] = []
        for step in model.steps {
            let inTypes = step.inputs.map { $0.flatMap { types[$0] } }
            let inConsts = step.inputs.map { $0.flatMap { constants[$0] } }
            let outTypes: [TensorType?]
            do {
                outTypes = try step.kernel.infer(inTypes, constants: inConsts)
            } catch let error as LatheError {
                throw LatheError(error.status, Plan.located(error.message, step))
            }
            guard outTypes.count == step.outputs.count else {
                throw LatheError(.internal, Plan.located("kernel inferred \(outTypes.count) outputs for \(step.outputs.count) slots", step))
            }
            for (slot, id) in step.outputs.enumerated() {
                guard let id else { continue }
                guard let t = outTypes[slot] else {
                    throw LatheError(.internal, Plan.located("no type inferred for output '\(model.valueNames[id])'", step))
                }
                types[id] = t
            }
            let allConstant = step.inputs.allSatisfy { $0 == nil || constants[$0!] != nil }
            do {
                if let folded = try step.kernel.fold(inTypes, constants: inConsts) {
                    for (slot, id) in step.outputs.enumerated() where id != nil && slot < folded.count {
                        constants[id!] = folded[slot]
                    }
                    continue
                }
                if allConstant && !step.outputs.isEmpty {
                    let outs = try step.outputs.map { id in try id.map { try Tensor(types[$0]!.dtype, shape: types[$0]!.shape) } }
                    try step.kernel.compute(inConsts, outs)
                    for (id, t) in zip(step.outputs, outs) where id != nil { constants[id!] = t }
                    continue
                }
            } catch let error as LatheError {
                throw LatheError(error.status, Plan.located(error.message, step))
            }
            remaining.append(step)
        }
        self.inputTypes = inputTypes
        self.inputValues = inputValues
        self.types = types
        self.constants = constants
        self.steps = remaining
        self.workspaceBytes = []

        for pass in passes { try pass.apply(to: &self, outputs: model.outputIDs) }

        for i in steps.indices {
            let step = steps[i]
            do {
                steps[i].kernel = try step.kernel.specialized(for: argumentTypes(of: step), constants: argumentConstants(of: step))
            } catch let error as LatheError {
                throw LatheError(error.status, Plan.located(error.message, step))
            }
            let bytes = steps[i].kernel.workspaceSize(for: argumentTypes(of: step))
            guard bytes < 1 << 40 else {
                throw LatheError(.outOfMemory, Plan.located("needs \(bytes) bytes of scratch", step))
            }
            workspaceBytes.append(max(0, bytes))
        }
    }

    /// The types of a step's inputs (nil for omitted slots).
    func argumentTypes(of step: Model.Step) -> [TensorType?] { step.inputs.map { $0.flatMap { types[$0] } } }

    /// The plan-time values of a step's inputs (nil when omitted or varying).
    func argumentConstants(of step: Model.Step) -> [Tensor?] { step.inputs.map { $0.flatMap { constants[$0] } } }

    /// Adds a plan-time value under a fresh id.
    mutating func addConstant(_ tensor: Tensor) -> Int {
        types.append(tensor.type)
        constants[types.count - 1] = tensor
        return types.count - 1
    }

    /// Prefixes a kernel's message with the node it came from, unless it already names it.
    static func located(_ message: String, _ step: Model.Step) -> String {
        message.contains("'\(step.node.name)'") ? message : "\(step.node.opType) node '\(step.node.name)': \(message)"
    }
}
