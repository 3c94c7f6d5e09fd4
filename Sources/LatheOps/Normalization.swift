import LatheCore

/// BatchNormalization (inference).
enum NormalizationOps {
    static func register(into registry: OpRegistry) throws {}
}
