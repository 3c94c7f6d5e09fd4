import LatheCore

/// Conv (1-D and 2-D).
enum ConvOps {
    static func register(into registry: OpRegistry) throws {}
}
