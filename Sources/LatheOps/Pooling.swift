import LatheCore

/// MaxPool, AveragePool, GlobalAveragePool.
enum PoolingOps {
    static func register(into registry: OpRegistry) throws {}
}
