import LatheCore

/// Flatten, Reshape, Transpose, Concat, Squeeze, Unsqueeze, Gather, Shape, Constant, ConstantOfShape, Identity, Dropout.
enum ShapeOps {
    static func register(into registry: OpRegistry) throws {}
}
