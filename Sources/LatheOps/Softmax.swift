import LatheCore

/// Softmax, LogSoftmax.
enum SoftmaxOps {
    static func register(into registry: OpRegistry) throws {}
}
