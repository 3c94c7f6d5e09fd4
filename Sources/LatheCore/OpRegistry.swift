import Synchronization

/// What an op factory learns about the node it builds a kernel for.
public struct NodeContext: Sendable {
    /// The node's name (for messages).
    public let name: String
    public let opType: String
    public let domain: String
    /// The opset version the model imports for this node's domain.
    public let opset: Int
    public let attributes: Attributes
    /// Which input slots are wired (ONNX marks an omitted optional input with an empty name).
    public let inputPresent: [Bool]
    /// Which output slots are wired.
    public let outputPresent: [Bool]
    /// Per output slot, the type the model declares for it (graph outputs), else nil.
    public let declaredOutputs: [ValueInfo?]

    public init(name: String, opType: String, domain: String, opset: Int, attributes: Attributes,
                inputPresent: [Bool], outputPresent: [Bool], declaredOutputs: [ValueInfo?] = []) {
        self.declaredOutputs = declaredOutputs
        self.name = name
        self.opType = opType
        self.domain = domain
        self.opset = opset
        self.attributes = attributes
        self.inputPresent = inputPresent
        self.outputPresent = outputPresent
    }

    /// "Conv node 'conv1'", for error messages.
    public var label: String { "\(opType) node '\(name)'" }

    /// Throws unless the number of input slots is within `range`.
    public func expectInputs(_ range: ClosedRange<Int>) throws {
        guard range.contains(inputPresent.count) else {
            throw LatheError.invalid("\(label) takes \(range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)...\(range.upperBound)") inputs, got \(inputPresent.count)")
        }
    }
}

/// A node's executable form: built once per node at model load, immutable, safe to share across threads.
///
/// The planner calls `infer` with concrete input types once per input-shape signature, then `compute`
/// on every run with outputs already allocated to the inferred types.
public protocol Kernel: AnyObject, Sendable {
    /// Output types from input types. `inputs[i]` is nil for an omitted optional input;
    /// `constants[i]` holds input i's value when it is known at plan time (weights, folded shapes).
    /// Returns one entry per output slot (nil for omitted outputs).
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?]

    /// Computes outputs from inputs. Absent optional inputs/outputs are nil. Outputs are preallocated.
    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws

    /// Outputs computable from input *types* alone (e.g. `Shape`), for constant folding; nil otherwise.
    func fold(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [Tensor]?

    /// Input slots whose values (not only types) decide the output shapes, such as Resize's `scales`.
    /// A graph input wired straight into one of them is specialised at plan time like a small integer
    /// input: `infer` sees its value among `constants`, and the plan is rebuilt when the value changes.
    var valueDependentInputs: Set<Int> { get }

    /// A kernel for exactly these input types, with shape-derived work (geometry, index tables) done
    /// once at plan time; the planner runs it instead of `self`. Default: `self`.
    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel

    /// Bytes of scratch `compute(_:_:context:)` needs per thread for these input types; the session
    /// carves them from its arena (64-byte aligned) so a run allocates nothing. Default: 0.
    func workspaceSize(for inputs: [TensorType?]) -> Int

    /// `compute` inside a session run: scratch carved from the arena and the session's thread pool.
    /// Default: calls `compute(_:_:)`.
    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], context: RunContext) throws

    /// How output 0 relates to the inputs' memory, so the planner may skip a copy or share a buffer.
    /// Default: `.none`.
    var outputMemory: OutputMemory { get }

    /// Applies `activation` to every output element inside the kernel's own output loop, or returns nil
    /// when the kernel cannot absorb it. Default: nil.
    func fused(with activation: FusedActivation) -> (any Kernel)?

    /// When this kernel is an elementwise activation (given its plan-time constants), which one.
    /// Default: nil.
    func activation(constants: [Tensor?]) -> FusedActivation?

    /// When this kernel computes `y = x · scale[c] + shift[c]` along one axis of a single varying
    /// input `x` (BatchNormalization, Add of a constant bias), that map. Default: nil.
    func channelAffine(_ inputs: [TensorType?], constants: [Tensor?]) -> ChannelAffine?

    /// A kernel computing `affine(self(inputs))`, with the input slots whose plan-time values change
    /// (new weights or bias; a slot beyond the current input count is appended), or nil when this
    /// kernel cannot absorb it. Default: nil.
    func absorbing(_ affine: ChannelAffine, _ inputs: [TensorType?], constants: [Tensor?]) throws
        -> (kernel: any Kernel, constants: [Int: Tensor])?
}

/// `y = x · scale[c] + shift[c]` along `axis` of `x` (a non-negative axis of the output).
public struct ChannelAffine: Sendable {
    /// Which input of the consuming kernel is `x`.
    public let input: Int
    /// The axis `c` runs along.
    public let axis: Int
    /// Per-channel factor; nil means 1.
    public let scale: [Float]?
    /// Per-channel offset.
    public let shift: [Float]

    public init(input: Int, axis: Int, scale: [Float]?, shift: [Float]) {
        self.input = input
        self.axis = axis
        self.scale = scale
        self.shift = shift
    }
}

/// How a kernel's output 0 may share memory with its input 0.
public enum OutputMemory: Sendable, Equatable {
    /// Output 0 needs its own buffer.
    case none
    /// Output 0 has input 0's bytes unchanged (a reshape, Identity, inference Dropout): it may be a view.
    case viewOfInput
    /// Output 0 may be written over input 0 when it has the same size and nothing reads input 0 later
    /// (each element is read before the same element is written).
    case inPlace
}

/// An elementwise activation a producing kernel can apply in its output loop.
public enum FusedActivation: Sendable, Equatable {
    case relu
    case leakyRelu(alpha: Float)
    case clip(min: Float, max: Float)
    case sigmoid
    case tanh
}

extension Kernel {
    public func fold(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [Tensor]? { nil }
    public var valueDependentInputs: Set<Int> { [] }

    public func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel { self }
    public func workspaceSize(for inputs: [TensorType?]) -> Int { 0 }
    public func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], context: RunContext) throws {
        try compute(inputs, outputs)
    }
    public var outputMemory: OutputMemory { .none }
    public func fused(with activation: FusedActivation) -> (any Kernel)? { nil }
    public func activation(constants: [Tensor?]) -> FusedActivation? { nil }
    public func channelAffine(_ inputs: [TensorType?], constants: [Tensor?]) -> ChannelAffine? { nil }
    public func absorbing(_ affine: ChannelAffine, _ inputs: [TensorType?], constants: [Tensor?]) throws
        -> (kernel: any Kernel, constants: [Int: Tensor])? { nil }
}

/// One entry of the op table: who implements `(domain, opType)` for which opset versions.
public struct OpEntry: Sendable {
    public let domain: String
    public let opType: String
    /// First opset version this entry serves.
    public let sinceVersion: Int
    /// Last opset version this entry serves (inclusive).
    public let untilVersion: Int
    /// Where the entry came from (`"builtin"`, a plugin path, `"python"`, ...).
    public let origin: String
    /// Builds a node's kernel, validating its attributes.
    public let makeKernel: @Sendable (NodeContext) throws -> any Kernel
    /// Builds a node's gradient for training; nil when the op cannot be differentiated.
    public let makeGradient: (@Sendable (NodeContext) throws -> any GradientKernel)?

    public init(domain: String = "", opType: String, since: Int = 1, until: Int = Int(Int32.max),
                origin: String = "builtin", makeKernel: @escaping @Sendable (NodeContext) throws -> any Kernel,
                makeGradient: (@Sendable (NodeContext) throws -> any GradientKernel)? = nil) {
        self.domain = OpRegistry.normalize(domain: domain)
        self.opType = opType
        self.sinceVersion = since
        self.untilVersion = until
        self.origin = origin
        self.makeKernel = makeKernel
        self.makeGradient = makeGradient
    }

    /// The same entry with `makeGradient` replaced.
    public func withGradient(_ makeGradient: (@Sendable (NodeContext) throws -> any GradientKernel)?) -> OpEntry {
        OpEntry(domain: domain, opType: opType, since: sinceVersion, until: untilVersion, origin: origin,
                makeKernel: makeKernel, makeGradient: makeGradient)
    }
}

/// What a gradient sees of one node during the backward pass.
public struct BackwardPass {
    /// The forward inputs (nil for omitted optional inputs).
    public let inputs: [Tensor?]
    /// The forward outputs, as computed in training mode.
    public let outputs: [Tensor?]
    /// dLoss/dOutput per output slot; nil where no gradient flows back through that output.
    public let outputGradients: [Tensor?]
    /// dLoss/dInput per input slot, to be *accumulated into* (`+=`); nil where no gradient is wanted.
    public let inputGradients: [Tensor?]
    /// What `GradientKernel.trainingForward` saved for this node (empty when it ran the inference kernel).
    public let saved: [Tensor]

    public init(inputs: [Tensor?], outputs: [Tensor?], outputGradients: [Tensor?], inputGradients: [Tensor?],
                saved: [Tensor]) {
        self.inputs = inputs
        self.outputs = outputs
        self.outputGradients = outputGradients
        self.inputGradients = inputGradients
        self.saved = saved
    }
}

/// A node's backward: built once per node by `OpEntry.makeGradient`, immutable, safe to share.
///
/// Gradients are float32 and have the shape of the value they belong to. The trainer zeroes every
/// gradient buffer before a backward pass; each node *adds* its contribution, so a value read by
/// several nodes collects the sum.
public protocol GradientKernel: AnyObject, Sendable {
    /// The forward pass in training mode when it differs from inference (Dropout draws a mask):
    /// fills `outputs` and returns tensors to keep for `backward`. Returns nil, touching nothing,
    /// when the inference kernel's `compute` is also the training forward.
    /// - Parameter seed: a per-node, per-step seed for random ops, fixed by the trainer's seed.
    func trainingForward(_ inputs: [Tensor?], _ outputs: [Tensor?], seed: UInt64) throws -> [Tensor]?

    /// Adds dLoss/dInput to every non-nil `pass.inputGradients` slot.
    func backward(_ pass: BackwardPass) throws
}

extension GradientKernel {
    public func trainingForward(_ inputs: [Tensor?], _ outputs: [Tensor?], seed: UInt64) throws -> [Tensor]? { nil }
}

/// The plugin table: every op, built-in or custom, is found here by `(domain, opType, opset)`.
/// Thread-safe. A loaded model keeps the kernels it built, so unregistering an op never affects it.
public final class OpRegistry: Sendable {
    private struct Key: Hashable { let domain: String, opType: String }
    private let table = Mutex<[Key: [OpEntry]]>([:])
    private let changes = Atomic<Int>(0)

    public init() {}

    /// The process-wide table that models load against by default.
    public static let shared = OpRegistry()

    /// `"ai.onnx"` and `""` both name the ONNX default domain.
    public static func normalize(domain: String) -> String { domain == "ai.onnx" ? "" : domain }

    /// Adds an entry; refuses one whose opset range overlaps an existing entry for the same op.
    public func register(_ entry: OpEntry) throws {
        guard !entry.opType.isEmpty, entry.sinceVersion <= entry.untilVersion else {
            throw LatheError.invalid("op entry needs a name and since <= until")
        }
        let key = Key(domain: entry.domain, opType: entry.opType)
        try table.withLock { table in
            if let clash = table[key, default: []].first(where: {
                $0.sinceVersion <= entry.untilVersion && entry.sinceVersion <= $0.untilVersion
            }) {
                throw LatheError.invalid(
                    "op '\(entry.opType)' (domain '\(entry.domain)') is already registered for opsets \(clash.sinceVersion)...\(clash.untilVersion) by \(clash.origin)")
            }
            table[key, default: []].append(entry)
            changes.add(1, ordering: .sequentiallyConsistent)
        }
    }

    /// Counts registrations and removals, so a listing can tell whether the table changed.
    public var generation: Int { changes.load(ordering: .sequentiallyConsistent) }

    /// Removes every entry for `(domain, opType)`; returns how many were removed.
    @discardableResult
    public func unregister(domain: String, opType: String) -> Int {
        let key = Key(domain: Self.normalize(domain: domain), opType: opType)
        return table.withLock {
            let removed = $0.removeValue(forKey: key)?.count ?? 0
            if removed > 0 { changes.add(1, ordering: .sequentiallyConsistent) }
            return removed
        }
    }

    /// Attaches a gradient to every registered entry of `(domain, opType)` (all opset ranges), replacing
    /// any gradient they had. This is how a training module adds backwards to ops registered without one.
    /// - Throws: `.invalidArgument` when the op is not registered.
    public func setGradient(domain: String = "", opType: String,
                            _ makeGradient: @escaping @Sendable (NodeContext) throws -> any GradientKernel) throws {
        let key = Key(domain: Self.normalize(domain: domain), opType: opType)
        try table.withLock { table in
            guard let entries = table[key], !entries.isEmpty else {
                throw LatheError.invalid("cannot attach a gradient to '\(opType)' (domain '\(domain)'): the op is not registered")
            }
            table[key] = entries.map { $0.withGradient(makeGradient) }
        }
    }

    /// The entry serving `opset`, if any.
    public func lookup(domain: String, opType: String, opset: Int) -> OpEntry? {
        let key = Key(domain: Self.normalize(domain: domain), opType: opType)
        return table.withLock { table in
            table[key]?.first { $0.sinceVersion <= opset && opset <= $0.untilVersion }
        }
    }

    /// Whether any entry exists for `(domain, opType)`, whatever the opset.
    public func contains(domain: String, opType: String) -> Bool {
        table.withLock { $0[Key(domain: Self.normalize(domain: domain), opType: opType)] != nil }
    }

    /// All entries, sorted by domain, op type and version.
    public var entries: [OpEntry] {
        table.withLock { Array($0.values.joined()) }.sorted {
            ($0.domain, $0.opType, $0.sinceVersion) < ($1.domain, $1.opType, $1.sinceVersion)
        }
    }
}
