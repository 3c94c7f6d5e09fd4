import LatheCore

/// LSTM and GRU.
enum RecurrentOps {
    static func register(into registry: OpRegistry) throws {}
}
