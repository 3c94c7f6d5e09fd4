import LatheCore

/// A layer with Keras's `kernel_regularizer=l2(factor)`: `factor · Σ w²` over the layer's kernel joins
/// the training loss (and `2 · factor · w` its gradient). The kernel is every trainable weight the
/// layer creates under the name `…/kernel` (Dense, Conv, the input kernel of a recurrent layer — not
/// its recurrent kernel, not biases), as in Keras.
public struct KernelRegularized: Layer {
    /// The regularised layer.
    public let layer: any Layer
    /// The L2 factor (Keras's `l2`, default 0.01 in `keras.regularizers.l2()`).
    public let l2: Float

    public init(_ layer: any Layer, l2: Float) {
        self.layer = layer
        self.l2 = l2
    }

    public var inputShape: [Int]? { layer.inputShape }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard l2 >= 0 && l2.isFinite else { throw LatheError.invalid("kernel_regularizer: l2 must be >= 0, got \(l2)") }
        let before = b.parameters.count
        let output = try layer.build(&b, input)
        let kernels = b.parameters[before...].filter { $0.hasSuffix("/kernel") }
        guard !kernels.isEmpty else { throw LatheError.invalid("kernel_regularizer: \(type(of: layer)) has no kernel") }
        for name in kernels { b.l2[name] = l2 }
        return output
    }
}
