import LatheCore

/// The built-in ops. Each family registers itself into the same table plugins use.
public enum BuiltinOps {
    /// Registers every built-in op family into `registry`.
    public static func register(into registry: OpRegistry) throws {
        try ElementwiseOps.register(into: registry)
        try ActivationOps.register(into: registry)
        try LinearOps.register(into: registry)
        try ShapeOps.register(into: registry)
        try SoftmaxOps.register(into: registry)
        try ConvOps.register(into: registry)
        try PoolingOps.register(into: registry)
        try NormalizationOps.register(into: registry)
        try RecurrentOps.register(into: registry)
        try SlicingOps.register(into: registry)
        try CastOps.register(into: registry)
        try MathOps.register(into: registry)
        try VariadicOps.register(into: registry)
        try LogicOps.register(into: registry)
        try ReduceOps.register(into: registry)
        try DataOps.register(into: registry)
        try ConvTransposeOps.register(into: registry)
        try StatisticsNormalizationOps.register(into: registry)
        try ResizeOps.register(into: registry)
        try RNNOps.register(into: registry)
        try EinsumOps.register(into: registry)
        try MLOps.register(into: registry)
    }

    /// Registers the built-ins into `OpRegistry.shared` exactly once per process.
    public static func ensureRegistered() {
        _ = registeredOnce
    }

    private static let registeredOnce: Bool = {
        do { try register(into: .shared) } catch { fatalError("built-in op registration failed: \(error)") }
        return true
    }()
}

extension OpRegistry {
    /// Registers a built-in op type for opsets `since...until`.
    func add(_ opType: String, since: Int = 1, until: Int = Int(Int32.max),
             _ make: @escaping @Sendable (NodeContext) throws -> any Kernel) throws {
        try register(OpEntry(opType: opType, since: since, until: until, makeKernel: make))
    }
}

/// Throws unless `type` is present and has one of the `allowed` dtypes.
func require(_ type: TensorType?, _ what: String, _ allowed: DType...) throws -> TensorType {
    guard let type else { throw LatheError.invalid("missing required input \(what)") }
    guard allowed.contains(type.dtype) else {
        throw LatheError.dtype("\(what) must be \(allowed.map(\.description).joined(separator: " or ")), got \(type.dtype)")
    }
    return type
}

/// Throws unless `type` has the expected rank.
func requireRank(_ type: TensorType, _ what: String, _ ranks: ClosedRange<Int>) throws {
    guard ranks.contains(type.shape.count) else {
        throw LatheError.shape("\(what) must have rank \(ranks.lowerBound == ranks.upperBound ? "\(ranks.lowerBound)" : "\(ranks.lowerBound)...\(ranks.upperBound)"), got shape \(type.shape)")
    }
}
