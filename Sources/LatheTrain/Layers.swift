#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// An elementwise (or, for softmax, last-axis) activation, as Keras names them.
public enum ActivationFunction: Sendable, Equatable {
    case linear, relu, sigmoid, tanh, softmax
    case leakyRelu(alpha: Float = 0.3)

    /// The Keras name (`"relu"`, `"softmax"`, ...); nil for an unknown one.
    public init?(kerasName: String) {
        switch kerasName {
        case "linear", "": self = .linear
        case "relu": self = .relu
        case "sigmoid": self = .sigmoid
        case "tanh": self = .tanh
        case "softmax": self = .softmax
        case "leaky_relu": self = .leakyRelu()
        default: return nil
        }
    }
}

/// How a layer's weights start (Keras initializers).
public enum Initializer: Sendable, Equatable {
    /// Uniform in ±sqrt(6 / (fanIn + fanOut)).
    case glorotUniform
    /// Truncated normal (±2σ) with σ = sqrt(2 / fanIn) / 0.8796 (Keras's `he_normal`).
    case heNormal
    /// Uniform in ±sqrt(6 / fanIn).
    case heUniform
    case zeros
    /// A (semi-)orthogonal matrix over the last two axes, as Keras's `orthogonal` (recurrent kernels):
    /// the columns (or rows, whichever are fewer) are orthonormal.
    case orthogonal

    /// A tensor of `shape` filled from `rng`.
    func make(_ shape: [Int], fanIn: Int, fanOut: Int, _ rng: inout SeededGenerator) throws -> Tensor {
        let t = try Tensor(.float32, shape: shape)
        let p = t.floats
        switch self {
        case .zeros: break
        case .orthogonal: fillOrthogonal(p, shape, &rng)
        case .glorotUniform:
            let limit = (6 / Float(max(fanIn + fanOut, 1))).squareRoot()
            for i in 0..<t.count { p[i] = rng.uniform(-limit, limit) }
        case .heUniform:
            let limit = (6 / Float(max(fanIn, 1))).squareRoot()
            for i in 0..<t.count { p[i] = rng.uniform(-limit, limit) }
        case .heNormal:
            let sigma = (2 / Float(max(fanIn, 1))).squareRoot() / 0.879_625_66
            for i in 0..<t.count {
                var z = rng.normal()
                while abs(z) > 2 { z = rng.normal() }
                p[i] = sigma * z
            }
        }
        return t
    }
}

/// What a layer reads: a value of the graph under construction.
public struct LayerValue: Sendable {
    /// The value's name in the graph.
    public var name: String
    /// Its shape without the batch axis, in the layout below.
    public var shape: [Int]
    /// Whether an image value is channels-first inside the graph (`[C, H, W]`) or still as the user gave it
    /// (`[H, W, C]`). Vectors are neither and stay `false`.
    public var channelsFirst: Bool
}

/// Collects the nodes and weights of a `Sequential` model as its layers are added.
public struct GraphBuilder {
    var nodes: [Node] = []
    var initializers: [String: Tensor] = [:]
    /// The layers' weights (trained or frozen, not constants such as moving statistics), in creation order.
    var parameters: [String] = []
    /// The parameters that are trained, in creation order.
    var trainable: [String] = []
    /// L2 regularisation factors by weight name (see `KernelRegularized`).
    var l2: [String: Float] = [:]
    var rng: SeededGenerator
    private var counts: [String: Int] = [:]

    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    /// A fresh layer name in Keras style: `dense`, `dense_1`, ...
    mutating func uniqueName(_ base: String) -> String {
        let n = counts[base, default: 0]
        counts[base] = n + 1
        return n == 0 ? base : "\(base)_\(n)"
    }

    /// Adds a node whose single output is named `"\(name)/\(opType)"`, returning that name.
    mutating func add(_ opType: String, _ name: String, inputs: [String],
                      attributes: [String: AttributeValue] = [:]) -> String {
        let output = "\(name)/\(opType)"
        nodes.append(Node(name: output, opType: opType, inputs: inputs, outputs: [output], attributes: attributes))
        return output
    }

    /// Adds a weight, returning its name: a parameter (`trainable`; trained unless `frozen`) or a constant.
    mutating func weight(_ name: String, _ tensor: Tensor, trainable: Bool = true, frozen: Bool = false) -> String {
        initializers[name] = tensor
        if trainable {
            parameters.append(name)
            if !frozen { self.trainable.append(name) }
        }
        return name
    }

    /// The value as channels-first `[C, H, W]` (inserting a Transpose from the user's channels-last).
    mutating func channelsFirst(_ v: LayerValue, for layer: String) throws -> LayerValue {
        guard v.shape.count == 3 else {
            throw LatheError.shape("\(layer) needs an image input [height, width, channels], got \(v.shape)")
        }
        if v.channelsFirst { return v }
        let out = add("Transpose", uniqueName("to_channels_first"), inputs: [v.name], attributes: ["perm": .ints([0, 3, 1, 2])])
        return LayerValue(name: out, shape: [v.shape[2], v.shape[0], v.shape[1]], channelsFirst: true)
    }

    /// Appends an activation node (none for `.linear`).
    mutating func activate(_ v: LayerValue, _ activation: ActivationFunction, _ name: String) -> LayerValue {
        var out = v
        switch activation {
        case .linear: return v
        case .relu: out.name = add("Relu", name, inputs: [v.name])
        case .sigmoid: out.name = add("Sigmoid", name, inputs: [v.name])
        case .tanh: out.name = add("Tanh", name, inputs: [v.name])
        case .softmax: out.name = add("Softmax", name, inputs: [v.name], attributes: ["axis": .int(-1)])
        case .leakyRelu(let alpha): out.name = add("LeakyRelu", name, inputs: [v.name], attributes: ["alpha": .float(alpha)])
        }
        return out
    }
}

/// A Keras-style layer: adds its nodes and weights to the graph being built.
public protocol Layer: Sendable {
    /// The user-facing input shape without the batch axis (channels-last for images), when this layer
    /// is the first and declares it, as Keras's `input_shape`.
    var inputShape: [Int]? { get }
    /// Adds the layer's nodes after `input`, returning the layer's output.
    func build(_ builder: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue
}

extension Layer {
    public var inputShape: [Int]? { nil }
}

/// Fully connected: `y = activation(x · kernel + bias)`, kernel `[in, units]` (as in Keras), over `[N, in]`.
public struct Dense: Layer {
    public let units: Int
    public let activation: ActivationFunction
    public let useBias: Bool
    public let kernelInitializer: Initializer
    public let inputShape: [Int]?

    public init(_ units: Int, activation: ActivationFunction = .linear, useBias: Bool = true,
                kernelInitializer: Initializer = .glorotUniform, inputShape: [Int]? = nil) {
        self.units = units
        self.activation = activation
        self.useBias = useBias
        self.kernelInitializer = kernelInitializer
        self.inputShape = inputShape
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard units > 0 else { throw LatheError.invalid("Dense: units must be positive, got \(units)") }
        guard input.shape.count == 1 else {
            throw LatheError.shape("Dense takes a vector per sample; got \(input.shape) (add Flatten first)")
        }
        let name = b.uniqueName("dense")
        let kernel = b.weight("\(name)/kernel", try kernelInitializer.make([input.shape[0], units], fanIn: input.shape[0], fanOut: units, &b.rng))
        var inputs = [input.name, kernel]
        if useBias { inputs.append(b.weight("\(name)/bias", try Tensor(.float32, shape: [units]))) }
        let y = b.add("Gemm", name, inputs: inputs)
        return b.activate(LayerValue(name: y, shape: [units], channelsFirst: false), activation, "\(name)/activation")
    }
}

/// 2-D convolution over channels-last images `[N, H, W, C]` (run channels-first inside).
/// Kernel stored as ONNX `[filters, C, kh, kw]`; `padding` is `"valid"` or `"same"` (TensorFlow's rule:
/// the extra padding goes after).
public struct Conv2D: Layer {
    public let filters: Int
    public let kernelSize: (Int, Int)
    public let strides: (Int, Int)
    public let padding: String
    public let activation: ActivationFunction
    public let kernelInitializer: Initializer
    public let inputShape: [Int]?

    public init(_ filters: Int, kernelSize: (Int, Int), strides: (Int, Int) = (1, 1), padding: String = "valid",
                activation: ActivationFunction = .linear, kernelInitializer: Initializer = .glorotUniform, inputShape: [Int]? = nil) {
        self.filters = filters
        self.kernelSize = kernelSize
        self.strides = strides
        self.padding = padding
        self.activation = activation
        self.kernelInitializer = kernelInitializer
        self.inputShape = inputShape
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard filters > 0, kernelSize.0 > 0, kernelSize.1 > 0, strides.0 > 0, strides.1 > 0 else {
            throw LatheError.invalid("Conv2D: filters, kernel size and strides must be positive")
        }
        let x = try b.channelsFirst(input, for: "Conv2D")
        let (pads, outH, outW) = try windowPads(x.shape[1], x.shape[2], kernelSize, strides, padding, "Conv2D")
        let name = b.uniqueName("conv2d")
        let (kh, kw) = kernelSize, c = x.shape[0]
        let kernel = b.weight("\(name)/kernel", try kernelInitializer.make([filters, c, kh, kw], fanIn: c * kh * kw,
                                                                         fanOut: filters * kh * kw, &b.rng))
        let bias = b.weight("\(name)/bias", try Tensor(.float32, shape: [filters]))
        let y = b.add("Conv", name, inputs: [x.name, kernel, bias],
                      attributes: ["kernel_shape": .ints([kh, kw]), "strides": .ints([strides.0, strides.1]), "pads": .ints(pads)])
        return b.activate(LayerValue(name: y, shape: [filters, outH, outW], channelsFirst: true), activation, "\(name)/activation")
    }
}

/// Transposed 2-D convolution over channels-last images `[N, H, W, C]` → `[N, H', W', filters]` (ONNX
/// ConvTranspose, run channels-first inside). Kernel stored as ONNX `[C, filters, kh, kw]` (Keras:
/// `[kh, kw, filters, C]`). Output sizes are Keras's: with `outputPadding` nil, "valid" gives
/// `H·s + max(k − s, 0)` and "same" `H·s`; with it, `(H − 1)·s + k − 2·pad + outputPadding` where `pad` is
/// 0 ("valid") or `k / 2` ("same"), `k` being the dilated kernel size. Placement is TensorFlow's (Keras's
/// backend): "same" crops the full output's surplus evenly with the odd position after.
public struct Conv2DTranspose: Layer {
    public let filters: Int
    public let kernelSize: (Int, Int)
    public let strides: (Int, Int)
    public let padding: String
    public let outputPadding: (Int, Int)?
    public let dilationRate: (Int, Int)
    public let activation: ActivationFunction
    public let kernelInitializer: Initializer
    public let inputShape: [Int]?

    public init(_ filters: Int, kernelSize: (Int, Int), strides: (Int, Int) = (1, 1), padding: String = "valid",
                outputPadding: (Int, Int)? = nil, dilationRate: (Int, Int) = (1, 1), activation: ActivationFunction = .linear,
                kernelInitializer: Initializer = .glorotUniform, inputShape: [Int]? = nil) {
        self.filters = filters
        self.kernelSize = kernelSize
        self.strides = strides
        self.padding = padding
        self.outputPadding = outputPadding
        self.dilationRate = dilationRate
        self.activation = activation
        self.kernelInitializer = kernelInitializer
        self.inputShape = inputShape
    }

    /// ONNX pads (begin, end), output_padding and the output size along one axis, by Keras's rule (the
    /// size) and TensorFlow's (the placement: "same" crops the surplus of the full output with the odd
    /// position after, "valid" crops or extends at the end).
    static func axis(input: Int, kernel: Int, stride: Int, dilation: Int, padding: String,
                     outputPadding: Int?) throws -> (begin: Int, end: Int, extra: Int, output: Int) {
        let k = (kernel - 1) * dilation + 1
        let full = (input - 1) * stride + k
        let output: Int
        if let outputPadding {
            guard outputPadding >= 0, outputPadding < stride else {
                throw LatheError.invalid("Conv2DTranspose: output_padding \(outputPadding) must be in [0, stride \(stride))")
            }
            output = full - 2 * (padding == "same" ? k / 2 : 0) + outputPadding
            guard output > 0 else { throw LatheError.shape("Conv2DTranspose: output size \(output) is not positive") }
        } else {
            output = padding == "same" ? input * stride : input * stride + max(k - stride, 0)
        }
        let total = full - output
        if total < 0 { return (0, 0, -total, output) }
        let begin = padding == "same" ? total / 2 : 0
        return (begin, total - begin, 0, output)
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard filters > 0, kernelSize.0 > 0, kernelSize.1 > 0, strides.0 > 0, strides.1 > 0, dilationRate.0 > 0, dilationRate.1 > 0 else {
            throw LatheError.invalid("Conv2DTranspose: filters, kernel size, strides and dilation rate must be positive")
        }
        guard padding == "valid" || padding == "same" else {
            throw LatheError.invalid("Conv2DTranspose: padding must be \"valid\" or \"same\", got \"\(padding)\"")
        }
        let x = try b.channelsFirst(input, for: "Conv2DTranspose")
        let rows = try Self.axis(input: x.shape[1], kernel: kernelSize.0, stride: strides.0, dilation: dilationRate.0,
                                 padding: padding, outputPadding: outputPadding?.0)
        let cols = try Self.axis(input: x.shape[2], kernel: kernelSize.1, stride: strides.1, dilation: dilationRate.1,
                                 padding: padding, outputPadding: outputPadding?.1)
        let name = b.uniqueName("conv2d_transpose")
        let (kh, kw) = kernelSize, c = x.shape[0]
        let kernel = b.weight("\(name)/kernel", try kernelInitializer.make([c, filters, kh, kw], fanIn: filters * kh * kw,
                                                                         fanOut: c * kh * kw, &b.rng))
        let bias = b.weight("\(name)/bias", try Tensor(.float32, shape: [filters]))
        let y = b.add("ConvTranspose", name, inputs: [x.name, kernel, bias],
                      attributes: ["kernel_shape": .ints([kh, kw]), "strides": .ints([strides.0, strides.1]),
                                   "dilations": .ints([dilationRate.0, dilationRate.1]),
                                   "pads": .ints([rows.begin, cols.begin, rows.end, cols.end]),
                                   "output_padding": .ints([rows.extra, cols.extra])])
        return b.activate(LayerValue(name: y, shape: [filters, rows.output, cols.output], channelsFirst: true), activation,
                          "\(name)/activation")
    }
}

/// ONNX pads `[top, left, bottom, right]` and the output size for Keras's "valid" or "same" padding.
func windowPads(_ h: Int, _ w: Int, _ kernel: (Int, Int), _ strides: (Int, Int), _ padding: String,
                _ layer: String) throws -> ([Int], Int, Int) {
    switch padding {
    case "valid":
        guard h >= kernel.0, w >= kernel.1 else {
            throw LatheError.shape("\(layer): window \(kernel) is larger than the input \(h)×\(w)")
        }
        return ([0, 0, 0, 0], (h - kernel.0) / strides.0 + 1, (w - kernel.1) / strides.1 + 1)
    case "same":
        let outH = (h + strides.0 - 1) / strides.0, outW = (w + strides.1 - 1) / strides.1
        let padH = max((outH - 1) * strides.0 + kernel.0 - h, 0), padW = max((outW - 1) * strides.1 + kernel.1 - w, 0)
        return ([padH / 2, padW / 2, padH - padH / 2, padW - padW / 2], outH, outW)
    default:
        throw LatheError.invalid("\(layer): padding must be \"valid\" or \"same\", got \"\(padding)\"")
    }
}

/// Max pooling over channels-last images; `strides` default to the pool size, as in Keras.
public struct MaxPooling2D: Layer {
    public let poolSize: (Int, Int)
    public let strides: (Int, Int)?
    public let padding: String

    public init(_ poolSize: (Int, Int) = (2, 2), strides: (Int, Int)? = nil, padding: String = "valid") {
        self.poolSize = poolSize
        self.strides = strides
        self.padding = padding
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        try pool("MaxPool", "max_pooling2d", poolSize, strides ?? poolSize, padding, &b, input)
    }
}

/// Average pooling over channels-last images (padding excluded from the mean, as in Keras).
public struct AveragePooling2D: Layer {
    public let poolSize: (Int, Int)
    public let strides: (Int, Int)?
    public let padding: String

    public init(_ poolSize: (Int, Int) = (2, 2), strides: (Int, Int)? = nil, padding: String = "valid") {
        self.poolSize = poolSize
        self.strides = strides
        self.padding = padding
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        try pool("AveragePool", "average_pooling2d", poolSize, strides ?? poolSize, padding, &b, input)
    }
}

/// Adds a MaxPool or AveragePool node.
func pool(_ opType: String, _ base: String, _ size: (Int, Int), _ strides: (Int, Int), _ padding: String,
          _ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
    guard size.0 > 0, size.1 > 0, strides.0 > 0, strides.1 > 0 else {
        throw LatheError.invalid("\(opType): pool size and strides must be positive")
    }
    let x = try b.channelsFirst(input, for: base)
    let (pads, outH, outW) = try windowPads(x.shape[1], x.shape[2], size, strides, padding, base)
    let y = b.add(opType, b.uniqueName(base), inputs: [x.name],
                  attributes: ["kernel_shape": .ints([size.0, size.1]), "strides": .ints([strides.0, strides.1]), "pads": .ints(pads)])
    return LayerValue(name: y, shape: [x.shape[0], outH, outW], channelsFirst: true)
}

/// The mean over height and width of channels-last images: `[N, H, W, C]` → `[N, C]`.
public struct GlobalAveragePooling2D: Layer {
    public init() {}

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        let x = try b.channelsFirst(input, for: "GlobalAveragePooling2D")
        let name = b.uniqueName("global_average_pooling2d")
        let pooled = b.add("GlobalAveragePool", name, inputs: [x.name])
        let y = b.add("Flatten", name, inputs: [pooled], attributes: ["axis": .int(1)])
        return LayerValue(name: y, shape: [x.shape[0]], channelsFirst: false)
    }
}

/// Flattens each sample to a vector, in channels-last order (as Keras does), so Dense kernels mean the same.
public struct Flatten: Layer {
    public let inputShape: [Int]?

    public init(inputShape: [Int]? = nil) { self.inputShape = inputShape }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        let name = b.uniqueName("flatten")
        var source = input.name
        if input.channelsFirst {
            source = b.add("Transpose", name, inputs: [source], attributes: ["perm": .ints([0, 2, 3, 1])])
        }
        let y = b.add("Flatten", name, inputs: [source], attributes: ["axis": .int(1)])
        return LayerValue(name: y, shape: [input.shape.reduce(1, *)], channelsFirst: false)
    }
}

/// Zeroes a fraction `rate` of values during training (survivors scaled by 1 / (1 − rate)); identity at inference.
public struct Dropout: Layer {
    public let rate: Float

    public init(_ rate: Float) { self.rate = rate }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard rate >= 0 && rate < 1 else { throw LatheError.invalid("Dropout: rate must be in [0, 1), got \(rate)") }
        let name = b.uniqueName("dropout")
        let ratio = b.weight("\(name)/ratio", try Tensor(shape: [], floats: [rate]), trainable: false)
        var out = input
        out.name = b.add("Dropout", name, inputs: [input.name, ratio])
        return out
    }
}

/// A standalone activation.
public struct Activation: Layer {
    public let activation: ActivationFunction

    public init(_ activation: ActivationFunction) { self.activation = activation }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard activation != .softmax || !input.channelsFirst else {
            throw LatheError.invalid("Activation(softmax) on an image would normalise over width; flatten first")
        }
        return b.activate(input, activation, b.uniqueName("activation"))
    }
}
