#if canImport(Glibc)
import Glibc
#endif
import CLatheShims

/// Keeps OpenBLAS on the calling thread, once per process: sessions split work over their own pool,
/// and OpenBLAS's spinning threads would add jitter and contend with it.
private let blasSingleThreaded: Void = openblas_set_num_threads(1)

/// How a session plans and runs.
public struct SessionOptions: Sendable {
    /// Threads a run may use (the caller counts as one). 1 runs everything on the caller's thread,
    /// bit-for-bit deterministic and without hand-offs; more split batches between threads.
    public var threads: Int
    /// Graph rewrites applied at plan time (all by default; empty to run the graph as written).
    public var passes: [PlanPass]

    public init(threads: Int = 1, passes: [PlanPass] = PlanPass.standard) {
        self.threads = threads
        self.passes = passes
    }
}

/// One inference context over a model. Planning (at the first run, or when input shapes change)
/// lays every intermediate value and kernel scratch out in one arena; a run then allocates nothing.
/// Use from one thread at a time; create one session per thread.
public final class Session {
    /// The model this session runs.
    public let model: Model
    /// How this session plans and runs.
    public let options: SessionOptions
    private let pool: ThreadPool
    private var inputs: [Tensor?] { didSet { inputsBound = false } }
    /// Whether the inputs set fit the current plan and their views are bound into the steps; cleared by
    /// every change of an input and by planning, so a run repeated on the same inputs skips both.
    private var inputsBound = false
    /// Whether each input's buffer belongs to the session (filled by `setInput(_:copying:)`).
    private var ownedInputs: [Bool]
    private var plan: Plan?
    /// Every value's tensor for the current plan (constants, inputs, intermediates, outputs).
    private var values: [Tensor?]
    /// The executable steps of the current plan, each with its argument lists bound to arena tensors.
    private var bound: [BoundStep] = []
    /// Bindings re-made at every run because they view a graph input.
    private var inputViews: [InputView] = []
    /// The arena holding every intermediate value and workspace.
    private var arena: Storage?
    private var hasRun = false

    /// A plan step ready to execute: kernel, argument tensors and scratch. A class, so a run borrows
    /// each step's fields instead of copying (and retaining) them.
    private final class BoundStep {
        let step: Model.Step
        let kernel: any Kernel
        var inputs: [Tensor?]
        let outputs: [Tensor?]
        let context: RunContext

        init(step: Model.Step, inputs: [Tensor?], outputs: [Tensor?], context: RunContext) {
            self.step = step
            self.kernel = step.kernel
            self.inputs = inputs
            self.outputs = outputs
            self.context = context
        }
    }

    /// Where a graph input (or a view of it) must be bound before a run.
    private struct InputView {
        /// Index of the graph input.
        let input: Int
        /// Shape of the view.
        let shape: [Int]
        /// The value id bound, and the step argument slots reading it.
        let value: Int
        let slots: [(step: Int, slot: Int)]
    }

    /// Creates a session; the arena is laid out at the first run (or `reshape`).
    public init(model: Model, options: SessionOptions = SessionOptions()) {
        blasSingleThreaded
        self.model = model
        self.options = options
        self.pool = options.threads > 1 ? ThreadPool(threads: options.threads) : .serial
        self.inputs = Array(repeating: nil, count: model.inputIDs.count)
        self.ownedInputs = Array(repeating: false, count: model.inputIDs.count)
        self.values = Array(repeating: nil, count: model.valueNames.count)
    }

    /// Bytes of the arena of the current plan (0 before the first run or `reshape`).
    public var arenaBytes: Int { arena?.byteCount ?? 0 }

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
        ownedInputs[index] = false
        releaseViews(of: index)
    }

    /// Drops the previous run's references to input `index`, so a replaced caller buffer (DLPack) is
    /// released now rather than at the next run.
    private func releaseViews(of index: Int) {
        for view in inputViews where view.input == index {
            values[view.value] = nil
            for (s, slot) in view.slots { bound[s].inputs[slot] = nil }
        }
    }

    /// Sets input `index` by copying `byteCount` bytes from `data` into a session-owned buffer, reused
    /// from the previous call when dtype and shape are unchanged (then nothing is allocated).
    /// - Throws: `.dtypeMismatch` / `.shapeMismatch` when the type does not fit, `.shapeMismatch`
    ///   when `byteCount` does not match it.
    public func setInput(at index: Int, dtype: DType, shape: UnsafeBufferPointer<Int64>, copying data: UnsafeRawPointer?,
                         byteCount: Int) throws {
        guard index >= 0 && index < inputs.count else {
            throw LatheError.invalid("input index \(index) out of range (model has \(inputs.count))")
        }
        var tensor: Tensor
        if ownedInputs[index], let current = inputs[index], current.dtype == dtype, current.rank == shape.count,
           zip(current.shape, shape).allSatisfy({ $0 == Int($1) }) {
            tensor = current
        } else {
            let dims = shape.map { Int($0) }
            guard dims.allSatisfy({ $0 >= 0 }) else { throw LatheError.shape("negative dimension in shape \(dims)") }
            try checkInput(model.graph.inputs[index].name, TensorType(dtype, dims))
            let expected = TensorType(dtype, dims).count * dtype.size
            guard byteCount == expected else {
                throw LatheError.shape("input '\(model.graph.inputs[index].name)' of \(dtype)\(dims) needs \(expected) bytes, got byte_size \(byteCount)")
            }
            tensor = try Tensor(dtype, shape: dims)
        }
        guard byteCount == tensor.byteCount else {
            throw LatheError.shape("input '\(model.graph.inputs[index].name)' of \(tensor.type) needs \(tensor.byteCount) bytes, got byte_size \(byteCount)")
        }
        if byteCount > 0 {
            guard let data else { throw LatheError.invalid("data is NULL") }
            tensor.bytes.copyMemory(from: data, byteCount: byteCount)
        }
        inputs[index] = tensor
        ownedInputs[index] = true
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

    /// Whether the inputs set now have exactly the types the current plan was built for.
    private var planFitsInputs: Bool {
        guard let plan else { return false }
        for i in inputs.indices {
            let t = inputs[i]!, planned = plan.inputTypes[i]
            if t.dtype != planned.dtype || t.shape != planned.shape { return false }
        }
        return true
    }

    /// Runs the model on the inputs set so far. Allocates nothing unless input shapes changed.
    /// - Throws: `.invalidState` when an input is missing; kernel errors naming the node.
    public func run() throws {
        // Shape-like inputs are re-read every run: the caller may change their values in place.
        if !inputsBound || !shapeLikeInputsMatchPlan() { try bindInputs() }
        hasRun = false
        try bound.withUnsafeBufferPointer { steps in
            for i in steps.indices {
                unowned(unsafe) let b = steps[i]
                do {
                    try b.kernel.compute(b.inputs, b.outputs, context: b.context)
                } catch let error as LatheError {
                    throw LatheError(error.status, Plan.located(error.message, b.step))
                }
            }
        }
        hasRun = true
    }

    /// Plans for the inputs set when the current plan does not fit them, then binds every view of an
    /// input into the steps reading it.
    private func bindInputs() throws {
        for i in inputs.indices where inputs[i] == nil {
            throw LatheError(.invalidState, "input '\(model.graph.inputs[i].name)' is not set")
        }
        if !planFitsInputs || !shapeLikeInputsMatchPlan() {
            var types: [TensorType] = []
            for input in inputs { types.append(input!.type) }
            try replan(types)
        }
        for v in inputViews.indices {
            let view = inputViews[v]
            let input = inputs[view.input]!
            let tensor = try Tensor(input.dtype, shape: view.shape, storage: input.storage)
            values[view.value] = tensor
            for (s, slot) in view.slots { bound[s].inputs[slot] = tensor }
        }
        inputsBound = true
    }

    /// Whether the small integer inputs hold the values the current plan was specialised to.
    private func shapeLikeInputsMatchPlan() -> Bool {
        guard let plan else { return false }
        if plan.inputValues.isEmpty { return true }
        for (index, value) in plan.inputValues {
            guard let input = inputs[index], input.byteCount == value.byteCount,
                  memcmp(input.bytes, value.bytes, value.byteCount) == 0 else { return false }
        }
        return true
    }

    private func replan(_ inputTypes: [TensorType]) throws {
        inputsBound = false
        plan = nil
        hasRun = false
        bound = []
        inputViews = []
        arena = nil
        var inputValues: [Int: Tensor] = [:]
        for (index, type) in inputTypes.enumerated()
            where Plan.isShapeLike(type) || model.valueDependentInputIndices.contains(index) {
            inputValues[index] = try inputs[index]?.copy()
        }
        let newPlan = try Plan(model: model, inputTypes: inputTypes, inputValues: inputValues, passes: options.passes)
        let layout = MemoryPlan(plan: newPlan, inputs: model.inputIDs, outputs: model.outputIDs, lanes: pool.threadCount)
        let storage = try Storage(byteCount: layout.arenaBytes)

        var newValues = [Tensor?](repeating: nil, count: newPlan.types.count)
        for (id, t) in newPlan.constants { newValues[id] = t }
        for (id, placement) in layout.placements.enumerated() {
            guard case .arena(let offset) = placement, let t = newPlan.types[id] else { continue }
            let slice = Storage(slicing: storage, offset: offset, byteCount: t.count * t.dtype.size)
            newValues[id] = try Tensor(t.dtype, shape: t.shape, storage: slice)
        }
        let graphInput = Dictionary(uniqueKeysWithValues: model.inputIDs.enumerated().map { ($1, $0) })
        var viewsOfInputs: [Int: (input: Int, slots: [(step: Int, slot: Int)])] = [:]
        for id in newPlan.types.indices {
            let target: Int
            switch layout.placements[id] {
            case .view(let root): target = root
            default: if graphInput[id] != nil { target = id } else { continue }
            }
            guard let t = newPlan.types[id] else { continue }
            if let input = graphInput[target] {
                viewsOfInputs[id] = (input, [])
            } else if let root = newValues[target] {
                newValues[id] = try Tensor(t.dtype, shape: t.shape, storage: root.storage)
            }
        }
        var steps: [BoundStep] = []
        for (s, step) in newPlan.steps.enumerated() where !layout.skipped[s] {
            for (slot, id) in step.inputs.enumerated() where id != nil && viewsOfInputs[id!] != nil {
                viewsOfInputs[id!]!.slots.append((steps.count, slot))
            }
            let context = RunContext(workspace: storage.pointer + layout.workspaceOffsets[s],
                                     workspaceStride: layout.workspaceStrides[s], pool: pool)
            steps.append(BoundStep(step: step, inputs: step.inputs.map { $0.flatMap { newValues[$0] } },
                                   outputs: step.outputs.map { $0.flatMap { newValues[$0] } }, context: context))
        }
        inputViews = viewsOfInputs.sorted { $0.key < $1.key }.map { id, v in
            InputView(input: v.input, shape: newPlan.types[id]!.shape, value: id, slots: v.slots)
        }
        values = newValues
        bound = steps
        arena = storage
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

    /// The output of the last run, the caller's to keep: a copy, untouched by later runs.
    public func output(_ name: String) throws -> Tensor {
        try borrowOutput(at: try outputIndex(name)).copy()
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
