import LatheCore

// Keras layers over sequences (`[N, T, F]`, time-major features last, as Keras takes them) and
// BatchNormalization and Reshape.
//
// ONNX LSTM and GRU take time-major `[T, N, F]` (layout 0; onnxruntime refuses layout 1 for some of
// them), so a recurrent layer is `Transpose → LSTM/GRU → Transpose/Reshape` back to `[N, T, units]`
// (`return_sequences`) or `[N, units]`. Conv1D and MaxPooling1D run channels-first inside (`[N, C, T]`)
// and transpose back, so every sequence value between layers is channels-last `[T, C]`.
// Weights are in ONNX layout: W `[1, gates·units, F]`, R `[1, gates·units, units]`, B `[1, 2·gates·units]`,
// gate order i, o, f, c (LSTM) and z, r, h (GRU); Conv1D kernel `[filters, C, k]`.

/// Fills `p` (a tensor of `shape`, seen as `[count / last, last]`) with a semi-orthogonal matrix:
/// Gram–Schmidt on a standard normal matrix, along whichever side is shorter (Keras's `orthogonal`).
func fillOrthogonal(_ p: UnsafeMutablePointer<Float>, _ shape: [Int], _ rng: inout SeededGenerator) {
    let cols = shape.last ?? 1, count = shape.reduce(1, *)
    guard cols > 0, count > 0 else { return }
    let rows = count / cols
    // Orthonormalise `vectors` vectors of length `length`: the columns when rows ≥ cols, else the rows.
    let (vectors, length) = rows >= cols ? (cols, rows) : (rows, cols)
    var m = (0..<count).map { _ in Double(rng.normal()) }   // vector v, element e at m[v * length + e]
    for v in 0..<vectors {
        for u in 0..<v {
            var dot = 0.0
            for e in 0..<length { dot += m[v * length + e] * m[u * length + e] }
            for e in 0..<length { m[v * length + e] -= dot * m[u * length + e] }
        }
        var norm = 0.0
        for e in 0..<length { norm += m[v * length + e] * m[v * length + e] }
        norm = max(norm.squareRoot(), 1e-12)
        for e in 0..<length { m[v * length + e] /= norm }
    }
    for r in 0..<rows {
        for c in 0..<cols {
            p[r * cols + c] = Float(rows >= cols ? m[c * length + r] : m[r * length + c])
        }
    }
}

extension GraphBuilder {
    /// An int64 shape constant for Reshape.
    mutating func shapeConstant(_ name: String, _ dims: [Int]) throws -> String {
        weight(name, try Tensor(shape: [dims.count], int64s: dims.map(Int64.init)), trainable: false)
    }

    /// The value, checked to be a channels-last sequence `[T, C]`.
    mutating func sequence(_ v: LayerValue, for layer: String) throws -> LayerValue {
        guard v.shape.count == 2, !v.channelsFirst else {
            throw LatheError.shape("\(layer) needs a sequence input [timesteps, features], got \(v.shape)")
        }
        return v
    }
}

/// The Keras recurrent layers LSTM, GRU and SimpleRNN over `[N, T, F]`.
struct RecurrentLayerBuilder {
    let opType: String, base: String, units: Int, gates: Int, returnSequences: Bool
    let attributes: [String: AttributeValue]
    /// Fills the `[1, 2·gates·units]` bias.
    let initialBias: (UnsafeMutablePointer<Float>) -> Void

    func build(_ b: inout GraphBuilder, _ input: LayerValue, kernel: Initializer, recurrent: Initializer) throws -> LayerValue {
        let layer = opType == "RNN" ? "SimpleRNN" : opType
        guard units > 0 else { throw LatheError.invalid("\(layer): units must be positive, got \(units)") }
        let x = try b.sequence(input, for: layer)
        let (steps, features) = (x.shape[0], x.shape[1])
        let name = b.uniqueName(base)
        let w = b.weight("\(name)/kernel", try kernel.make([1, gates * units, features], fanIn: features,
                                                          fanOut: gates * units, &b.rng))
        let r = b.weight("\(name)/recurrent_kernel", try recurrent.make([1, gates * units, units], fanIn: units,
                                                                      fanOut: gates * units, &b.rng))
        let biasTensor = try Tensor(.float32, shape: [1, 2 * gates * units])
        initialBias(biasTensor.floats)
        let bias = b.weight("\(name)/bias", biasTensor)
        let timeMajor = b.add("Transpose", "\(name)/time_major", inputs: [x.name], attributes: ["perm": .ints([1, 0, 2])])
        var attributes = self.attributes
        attributes["hidden_size"] = .int(units)
        let y = "\(name)/Y", yH = "\(name)/Y_h"
        b.nodes.append(Node(name: name, opType: opType, inputs: [timeMajor, w, r, bias],
                            outputs: returnSequences ? [y] : ["", yH], attributes: attributes))
        if returnSequences {   // Y [T, 1, N, units] → [N, T, 1, units] → [N, T, units]
            let batchMajor = b.add("Transpose", "\(name)/batch_major", inputs: [y], attributes: ["perm": .ints([2, 0, 1, 3])])
            let out = b.add("Reshape", "\(name)/sequences", inputs: [batchMajor, try b.shapeConstant("\(name)/sequence_shape", [-1, steps, units])])
            return LayerValue(name: out, shape: [steps, units], channelsFirst: false)
        }
        let out = b.add("Reshape", "\(name)/last", inputs: [yH, try b.shapeConstant("\(name)/last_shape", [-1, units])])
        return LayerValue(name: out, shape: [units], channelsFirst: false)
    }
}

/// Long short-term memory over `[N, T, F]` (Keras defaults: tanh/sigmoid, Glorot-uniform kernel, orthogonal
/// recurrent kernel, zero bias with the forget gate's input bias at 1). Output `[N, T, units]` with
/// `returnSequences`, else the last state `[N, units]`.
///
/// ONNX keeps two biases (Wb, Rb) where Keras has one; Rb starts at zero and both are trained.
public struct LSTM: Layer {
    public let units: Int
    public let returnSequences: Bool
    public let unitForgetBias: Bool
    public let inputShape: [Int]?

    public init(_ units: Int, returnSequences: Bool = false, unitForgetBias: Bool = true, inputShape: [Int]? = nil) {
        self.units = units
        self.returnSequences = returnSequences
        self.unitForgetBias = unitForgetBias
        self.inputShape = inputShape
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        let units = self.units, forget = unitForgetBias
        return try RecurrentLayerBuilder(opType: "LSTM", base: "lstm", units: units, gates: 4, returnSequences: returnSequences,
                                         attributes: [:], initialBias: { p in
                                             if forget { for j in 2 * units..<3 * units { p[j] = 1 } }   // Wb of gate f
                                         }).build(&b, input, kernel: .glorotUniform, recurrent: .orthogonal)
    }
}

/// Gated recurrent unit over `[N, T, F]`, as Keras's default `reset_after=True` (ONNX `linear_before_reset=1`,
/// whose B holds Keras's input and recurrent biases). Output `[N, T, units]` or `[N, units]`.
public struct GRU: Layer {
    public let units: Int
    public let returnSequences: Bool
    public let inputShape: [Int]?

    public init(_ units: Int, returnSequences: Bool = false, inputShape: [Int]? = nil) {
        self.units = units
        self.returnSequences = returnSequences
        self.inputShape = inputShape
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        try RecurrentLayerBuilder(opType: "GRU", base: "gru", units: units, gates: 3, returnSequences: returnSequences,
                                  attributes: ["linear_before_reset": .int(1)], initialBias: { _ in })
            .build(&b, input, kernel: .glorotUniform, recurrent: .orthogonal)
    }
}

/// Keras's SimpleRNN over `[N, T, F]`: `h_t = activation(x_t · kernel + h_{t−1} · recurrent_kernel + bias)`
/// (ONNX `RNN`; Keras defaults: tanh, Glorot-uniform kernel, orthogonal recurrent kernel, zero bias).
/// Output `[N, T, units]` with `returnSequences`, else the last state `[N, units]`.
///
/// Activations: tanh, relu, sigmoid, or linear (ONNX `Affine` with alpha 1, beta 0). ONNX keeps two
/// biases (Wb, Rb) where Keras has one; Rb starts at zero and both are trained.
public struct SimpleRNN: Layer {
    public let units: Int
    public let activation: ActivationFunction
    public let returnSequences: Bool
    public let inputShape: [Int]?

    public init(_ units: Int, activation: ActivationFunction = .tanh, returnSequences: Bool = false,
                inputShape: [Int]? = nil) {
        self.units = units
        self.activation = activation
        self.returnSequences = returnSequences
        self.inputShape = inputShape
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        var attributes: [String: AttributeValue] = [:]
        switch activation {
        case .tanh: break
        case .relu: attributes["activations"] = .strings(["Relu"])
        case .sigmoid: attributes["activations"] = .strings(["Sigmoid"])
        case .linear:
            attributes["activations"] = .strings(["Affine"])
            attributes["activation_alpha"] = .floats([1])
            attributes["activation_beta"] = .floats([0])
        default:
            throw LatheError(.unsupportedOp, "SimpleRNN: activation \(activation) is not supported (tanh, relu, sigmoid, linear)")
        }
        return try RecurrentLayerBuilder(opType: "RNN", base: "simple_rnn", units: units, gates: 1, returnSequences: returnSequences,
                                         attributes: attributes, initialBias: { _ in })
            .build(&b, input, kernel: .glorotUniform, recurrent: .orthogonal)
    }
}

/// 1-D convolution over channels-last sequences `[N, T, C]` → `[N, T', filters]`; kernel stored `[filters, C, k]`.
public struct Conv1D: Layer {
    public let filters: Int
    public let kernelSize: Int
    public let strides: Int
    public let padding: String
    public let activation: ActivationFunction
    public let inputShape: [Int]?

    public init(_ filters: Int, kernelSize: Int, strides: Int = 1, padding: String = "valid",
                activation: ActivationFunction = .linear, inputShape: [Int]? = nil) {
        self.filters = filters
        self.kernelSize = kernelSize
        self.strides = strides
        self.padding = padding
        self.activation = activation
        self.inputShape = inputShape
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard filters > 0, kernelSize > 0, strides > 0 else {
            throw LatheError.invalid("Conv1D: filters, kernel size and strides must be positive")
        }
        let x = try b.sequence(input, for: "Conv1D")
        let (steps, channels) = (x.shape[0], x.shape[1])
        let (pads, outT, _) = try windowPads(steps, 1, (kernelSize, 1), (strides, 1), padding, "Conv1D")
        let name = b.uniqueName("conv1d")
        let kernel = b.weight("\(name)/kernel", try Initializer.glorotUniform.make(
            [filters, channels, kernelSize], fanIn: channels * kernelSize, fanOut: filters * kernelSize, &b.rng))
        let bias = b.weight("\(name)/bias", try Tensor(.float32, shape: [filters]))
        let first = b.add("Transpose", "\(name)/channels_first", inputs: [x.name], attributes: ["perm": .ints([0, 2, 1])])
        let conv = b.add("Conv", name, inputs: [first, kernel, bias],
                         attributes: ["kernel_shape": .ints([kernelSize]), "strides": .ints([strides]), "pads": .ints([pads[0], pads[2]])])
        let back = b.add("Transpose", "\(name)/channels_last", inputs: [conv], attributes: ["perm": .ints([0, 2, 1])])
        return b.activate(LayerValue(name: back, shape: [outT, filters], channelsFirst: false), activation, "\(name)/activation")
    }
}

/// Max pooling over channels-last sequences `[N, T, C]`; `strides` default to the pool size, as in Keras.
public struct MaxPooling1D: Layer {
    public let poolSize: Int
    public let strides: Int?
    public let padding: String

    public init(_ poolSize: Int = 2, strides: Int? = nil, padding: String = "valid") {
        self.poolSize = poolSize
        self.strides = strides
        self.padding = padding
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        let stride = strides ?? poolSize
        guard poolSize > 0, stride > 0 else { throw LatheError.invalid("MaxPooling1D: pool size and strides must be positive") }
        let x = try b.sequence(input, for: "MaxPooling1D")
        let (pads, outT, _) = try windowPads(x.shape[0], 1, (poolSize, 1), (stride, 1), padding, "MaxPooling1D")
        let name = b.uniqueName("max_pooling1d")
        let first = b.add("Transpose", "\(name)/channels_first", inputs: [x.name], attributes: ["perm": .ints([0, 2, 1])])
        let pooled = b.add("MaxPool", name, inputs: [first],
                           attributes: ["kernel_shape": .ints([poolSize]), "strides": .ints([stride]), "pads": .ints([pads[0], pads[2]])])
        let back = b.add("Transpose", "\(name)/channels_last", inputs: [pooled], attributes: ["perm": .ints([0, 2, 1])])
        return LayerValue(name: back, shape: [outT, x.shape[1]], channelsFirst: false)
    }
}

/// Batch normalization over the last (feature/channel) axis, as Keras's default `axis=-1`: batch statistics
/// in training (the moving statistics updated as `moving · momentum + batch · (1 − momentum)`), the moving
/// statistics at inference. γ starts at 1, β at 0, moving mean 0, moving variance 1.
public struct BatchNormalization: Layer {
    public let momentum: Float
    public let epsilon: Float
    public let inputShape: [Int]?

    public init(momentum: Float = 0.99, epsilon: Float = 1e-3, inputShape: [Int]? = nil) {
        self.momentum = momentum
        self.epsilon = epsilon
        self.inputShape = inputShape
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        guard momentum >= 0 && momentum <= 1, epsilon > 0 else {
            throw LatheError.invalid("BatchNormalization: momentum must be in [0, 1] and epsilon positive")
        }
        let name = b.uniqueName("batch_normalization")
        var x = input
        var back: [Int]?
        switch (input.shape.count, input.channelsFirst) {
        case (1, _), (3, true): break
        case (3, false): x = try b.channelsFirst(input, for: "BatchNormalization")
        case (2, false):   // [T, C] → [C, T] and back
            x.name = b.add("Transpose", "\(name)/channels_first", inputs: [input.name], attributes: ["perm": .ints([0, 2, 1])])
            x.shape = [input.shape[1], input.shape[0]]
            back = [0, 2, 1]
        default:
            throw LatheError.shape("BatchNormalization takes vectors, sequences or images; got \(input.shape)")
        }
        let channels = x.shape[0]
        let ones = try Tensor(shape: [channels], floats: [Float](repeating: 1, count: channels))
        let gamma = b.weight("\(name)/gamma", ones)
        let beta = b.weight("\(name)/beta", try Tensor(.float32, shape: [channels]))
        let mean = b.weight("\(name)/moving_mean", try Tensor(.float32, shape: [channels]), trainable: false)
        let variance = b.weight("\(name)/moving_variance", try Tensor(shape: [channels], floats: [Float](repeating: 1, count: channels)),
                                trainable: false)
        var y = b.add("BatchNormalization", name, inputs: [x.name, gamma, beta, mean, variance],
                      attributes: ["epsilon": .float(epsilon), "momentum": .float(momentum)])
        if let back {
            y = b.add("Transpose", "\(name)/channels_last", inputs: [y], attributes: ["perm": .ints(back)])
            return LayerValue(name: y, shape: input.shape, channelsFirst: false)
        }
        return LayerValue(name: y, shape: x.shape, channelsFirst: x.channelsFirst)
    }
}

/// Reshapes each sample to `targetShape` (channels-last, as Keras; the batch axis is kept).
public struct Reshape: Layer {
    public let targetShape: [Int]
    public let inputShape: [Int]?

    public init(_ targetShape: [Int], inputShape: [Int]? = nil) {
        self.targetShape = targetShape
        self.inputShape = inputShape
    }

    public func build(_ b: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        let count = input.shape.reduce(1, *)
        let unknown = targetShape.filter { $0 == -1 }.count
        let known = targetShape.filter { $0 != -1 }.reduce(1, *)
        guard unknown <= 1, targetShape.allSatisfy({ $0 > 0 || $0 == -1 }), known > 0,
              unknown == 1 ? count % known == 0 : known == count else {
            throw LatheError.shape("Reshape: cannot reshape \(input.shape) (\(count) values) to \(targetShape)")
        }
        let shape = targetShape.map { $0 == -1 ? count / known : $0 }
        let name = b.uniqueName("reshape")
        var source = input.name
        if input.channelsFirst {
            source = b.add("Transpose", "\(name)/channels_last", inputs: [source], attributes: ["perm": .ints([0, 2, 3, 1])])
        }
        let y = b.add("Reshape", name, inputs: [source, try b.shapeConstant("\(name)/shape", [-1] + shape)])
        return LayerValue(name: y, shape: shape, channelsFirst: false)
    }
}
