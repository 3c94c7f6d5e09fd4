import Lathe
import LatheTrain

/// A Sequential or functional model spec read from Keras-style JSON (see include/lathe_train.h).
struct ModelSpec {
    /// The layers, each with its Keras class name and layer name (for messages and the summary).
    var layers: [(layer: any Layer, className: String, name: String)] = []
    /// Whether each layer is trained (Keras's `"trainable"`).
    var trainable: [Bool] = []
    /// The values each layer reads (0 the input, k the output of layer k - 1); a chain for Sequential.
    var connections: [[Int]] = []
    /// The value the model outputs (the last layer's unless a functional spec names another).
    var outputValue = 0
    /// Whether the spec is functional (`"class_name": "Functional"`).
    var functional = false
    /// The input shape without the batch axis, channels-last.
    var inputShape: [Int]?
    /// Seeds the weight initialisation.
    var seed: UInt64 = 0

    /// The Keras layer classes the training engine builds.
    static let supportedLayers = ["InputLayer", "Dense", "Conv1D", "Conv2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling2D",
                                  "GlobalAveragePooling2D", "Conv2DTranspose", "Flatten", "Reshape", "Dropout", "Activation",
                                  "BatchNormalization", "LSTM", "GRU", "SimpleRNN", "ONNXModel", "Add", "Concatenate"]

    /// Reads a spec: `{"layers": [...]}`, Keras's `{"class_name": "Sequential", "config": {"layers": [...]}}`
    /// or a functional `{"class_name": "Functional", "config": {"layers": [...], "output_layers": [...]}}`
    /// whose layers name their inputs in `"inbound_nodes"`.
    init(json text: String) throws {
        let root = try JSON.parse(text)
        guard case .object = root else { throw LatheError.invalid("spec must be a JSON object with \"layers\"") }
        let body = root["config"].flatMap { $0["layers"] == nil ? nil : $0 } ?? root
        if let className = root["class_name"] {
            guard [.string("Sequential"), .string("Functional"), .string("Model")].contains(className) else {
                throw LatheError(.unsupportedOp, "spec: only Sequential and Functional models are supported, got class_name \(className.text)")
            }
            functional = className != .string("Sequential")
        }
        /// Value index by layer name (functional specs).
        var values: [String: Int] = [:]
        var inputLayers = 0
        guard case .array(let items)? = body["layers"] else { throw LatheError.invalid("spec needs \"layers\": an array of layers") }
        if let shape = root["input_shape"] { inputShape = try ConfigReader.shape(shape, "spec: \"input_shape\"") }
        if inputShape == nil, let shape = body["build_input_shape"], shape != .null {
            inputShape = Array(try ConfigReader.shape(shape, "spec: \"build_input_shape\"", batchAxis: true))
        }
        if let seed = root["seed"] {
            guard case .number(let s) = seed, s >= 0, s == s.rounded(), s < 0x1p64 else { throw LatheError.invalid("spec: \"seed\" must be a whole number >= 0") }
            self.seed = UInt64(s)
        }
        for (index, item) in items.enumerated() {
            guard case .string(let className)? = item["class_name"] else {
                throw LatheError.invalid("layer \(index): needs \"class_name\" (a string)")
            }
            var config = ConfigReader(item["config"] ?? .object([:]), where: "layer \(index) (\(className))")
            let name = try config.string("name", className.lowercased())
            config.context = "layer \(index) (\(className) '\(name)')"
            if let shape = try config.inputShape(), inputShape == nil { inputShape = shape }
            var layerTrainable = true
            if className != "ONNXModel" { layerTrainable = try config.bool("trainable", true) }   // ONNXModel reads its own
            let inbound = try ModelSpec.layerNames(item["inbound_nodes"] ?? .null)
            let layer: (any Layer)?
            switch className {
            case "InputLayer":
                layer = nil
                inputLayers += 1
                if functional && inputLayers > 1 {
                    throw LatheError(.unsupportedOp, "layer \(index) (InputLayer '\(name)'): models with several inputs are not supported")
                }
                values[name] = 0
            case "Add": layer = Add()
            case "Concatenate": layer = Concatenate(axis: try config.int("axis", -1))
            case "Dense":
                layer = Dense(try config.int("units"), activation: try config.activation(),
                              useBias: try config.bool("use_bias", true), kernelInitializer: try config.initializer(.glorotUniform))
                try config.requireZerosBias()
            case "Conv2D":
                layer = Conv2D(try config.int("filters"), kernelSize: try config.pair("kernel_size"),
                               strides: try config.pair("strides", (1, 1)), padding: try config.padding(),
                               activation: try config.activation(), kernelInitializer: try config.initializer(.glorotUniform))
                try config.requireDefault("use_bias", .bool(true))
                try config.requireDefault("dilation_rate", .number(1), .array([.number(1), .number(1)]))
                try config.requireDefault("groups", .number(1))
                try config.requireChannelsLast()
                try config.requireZerosBias()
            case "Conv2DTranspose":
                layer = Conv2DTranspose(try config.int("filters"), kernelSize: try config.pair("kernel_size"),
                                        strides: try config.pair("strides", (1, 1)), padding: try config.padding(),
                                        outputPadding: try config.optionalPair("output_padding", allowZero: true),
                                        dilationRate: try config.pair("dilation_rate", (1, 1)),
                                        activation: try config.activation(), kernelInitializer: try config.initializer(.glorotUniform))
                try config.requireDefault("use_bias", .bool(true))
                try config.requireChannelsLast()
                try config.requireZerosBias()
            case "MaxPooling2D", "AveragePooling2D":
                let size = try config.pair("pool_size", (2, 2))
                let strides = try config.optionalPair("strides")
                let padding = try config.padding()
                try config.requireChannelsLast()
                layer = className == "MaxPooling2D" ? MaxPooling2D(size, strides: strides, padding: padding)
                                                    : AveragePooling2D(size, strides: strides, padding: padding)
            case "GlobalAveragePooling2D":
                try config.requireChannelsLast()
                try config.requireDefault("keepdims", .bool(false))
                layer = GlobalAveragePooling2D()
            case "Flatten":
                try config.requireChannelsLast()
                layer = Flatten()
            case "Dropout":
                layer = Dropout(Float(try config.double("rate")))
                try config.requireDefault("noise_shape", .null)
            case "Activation":
                layer = Activation(try config.activation(required: true))
            case "Conv1D":
                layer = Conv1D(try config.int("filters"), kernelSize: try config.single("kernel_size"),
                               strides: try config.single("strides", 1), padding: try config.padding(),
                               activation: try config.activation())
                try config.requireDefault("use_bias", .bool(true))
                try config.requireDefault("dilation_rate", .number(1), .array([.number(1)]))
                try config.requireDefault("groups", .number(1))
                try config.requireInitializer("kernel_initializer", "glorot_uniform", "GlorotUniform")
                try config.requireChannelsLast()
                try config.requireZerosBias()
            case "MaxPooling1D":
                let size = try config.single("pool_size", 2)
                let strides = try config.optionalSingle("strides")
                layer = MaxPooling1D(size, strides: strides, padding: try config.padding())
                try config.requireChannelsLast()
            case "Reshape":
                guard let target = config.take("target_shape") else { throw config.fail("target_shape", "is required") }
                layer = Reshape(try ConfigReader.shape(target, "\(config.context): \"target_shape\""))
            case "BatchNormalization":
                try config.requireDefault("axis", .number(-1), .array([.number(-1)]))
                try config.requireDefault("center", .bool(true))
                try config.requireDefault("scale", .bool(true))
                for key in ["beta_initializer", "moving_mean_initializer"] { try config.requireInitializer(key, "zeros", "Zeros") }
                for key in ["gamma_initializer", "moving_variance_initializer"] { try config.requireInitializer(key, "ones", "Ones") }
                layer = BatchNormalization(momentum: Float(try config.double("momentum", 0.99)),
                                           epsilon: Float(try config.double("epsilon", 1e-3)))
            case "LSTM", "GRU":
                let units = try config.int("units")
                let returnSequences = try config.bool("return_sequences", false)
                try config.requireRecurrentDefaults()
                if className == "LSTM" {
                    layer = LSTM(units, returnSequences: returnSequences, unitForgetBias: try config.bool("unit_forget_bias", true))
                } else {
                    try config.requireDefault("reset_after", .bool(true))
                    layer = GRU(units, returnSequences: returnSequences)
                }
            case "ONNXModel":
                guard case .string(let path)? = config.take("path") else { throw config.fail("path", "is required (an ONNX file)") }
                var cut: String?
                if let value = config.take("cut_at") {
                    guard case .string(let name) = value else { throw config.fail("cut_at", "must be a tensor name, got \(value.text)") }
                    cut = name
                }
                let imported = try ImportedModel(contentsOf: path, cutAt: cut,
                                                 trainable: try config.bool("trainable", false),
                                                 freeze: try config.strings("freeze"), unfreeze: try config.strings("unfreeze"))
                if inputShape == nil { inputShape = imported.inputShape }
                layer = imported
            case "SimpleRNN":
                let units = try config.int("units")
                let returnSequences = try config.bool("return_sequences", false)
                let activation = try config.activation(fallback: .tanh)
                try config.requireRecurrentDefaults(simple: true)
                layer = SimpleRNN(units, activation: activation, returnSequences: returnSequences)
            default:
                throw LatheError(.unsupportedOp, "layer \(index) (\(className)): '\(className)' is not supported by Lathe's training engine (supported: \(ModelSpec.supportedLayers.joined(separator: ", ")))")
            }
            let regularized = try config.kernelRegularizer().flatMap { l2 in layer.map { KernelRegularized($0, l2: l2) } } ?? layer
            try config.finish()
            guard let regularized else { continue }
            var reads = [layers.count]
            if functional {
                guard !inbound.isEmpty else {
                    throw LatheError.invalid("layer \(index) (\(className) '\(name)'): needs \"inbound_nodes\" naming the layers it reads")
                }
                reads = try inbound.map { source in
                    guard let value = values[source] else {
                        throw LatheError.invalid("layer \(index) (\(className) '\(name)'): inbound '\(source)' is not an InputLayer or an earlier layer (list layers after their inputs)")
                    }
                    return value
                }
            }
            guard values[name] == nil || !functional else {
                throw LatheError.invalid("layer \(index) (\(className)): the name '\(name)' is used twice")
            }
            layers.append((regularized, className, name))
            trainable.append(layerTrainable)
            connections.append(reads)
            values[name] = layers.count
        }
        outputValue = layers.count
        if functional {
            guard inputLayers == 1 else { throw LatheError.invalid("spec: a functional model needs one InputLayer") }
            let outputs = try ModelSpec.layerNames(body["output_layers"] ?? .null)
            guard outputs.count <= 1 else { throw LatheError(.unsupportedOp, "spec: models with several outputs are not supported, got \(outputs)") }
            if let output = outputs.first {
                guard let value = values[output] else { throw LatheError.invalid("spec: output layer '\(output)' is not a layer of the model") }
                outputValue = value
            }
        }
    }

    /// The layer names in an `"inbound_nodes"` or `"output_layers"` entry: a list of names (Lathe's short
    /// form, `["dense", "dense_1"]`), Keras 2's `[[["dense", 0, 0, {}], ...]]` / `[["dense", 0, 0]]`, or
    /// Keras 3's `[{"args": [{"config": {"keras_history": ["dense", 0, 0]}}, ...]}]`.
    static func layerNames(_ json: JSON) throws -> [String] {
        switch json {
        case .null: return []
        case .string(let name): return [name]
        case .array(let items):
            if items.count >= 3, case .string(let name) = items[0], case .number = items[1] { return [name] }
            return try items.flatMap(layerNames)
        case .object:
            if let history = json["keras_history"] { return Array(try layerNames(history).prefix(1)) }
            for key in ["args", "config"] { if let inner = json[key] { return try layerNames(inner) } }
            return []
        default:
            throw LatheError.invalid("spec: cannot read layer names from \(json.text)")
        }
    }
}

/// Reads one Keras config object, remembering which keys were used so that `finish` can reject the rest.
struct ConfigReader {
    let members: [String: JSON]
    /// Names the layer or object in messages.
    var context: String
    private var used: Set<String> = []

    /// Keras bookkeeping keys that do not change what is computed.
    static let ignored: Set<String> = ["name", "dtype", "autocast", "sparse", "ragged", "input_dtype", "seed",
                                      "zero_output_for_mask",
                                      "module", "registered_name", "build_config", "is_legacy_optimizer",
                                      "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor", "reduction"]

    init(_ json: JSON, where context: String) {
        if case .object(let members) = json { self.members = members } else { self.members = [:] }
        self.context = context
    }

    /// The value of `key`, marking it used; nil when absent or null.
    mutating func take(_ key: String) -> JSON? {
        used.insert(key)
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    func fail(_ key: String, _ message: String) -> LatheError { LatheError.invalid("\(context): \"\(key)\" \(message)") }

    mutating func double(_ key: String, _ fallback: Double? = nil) throws -> Double {
        guard let value = take(key) else {
            guard let fallback else { throw fail(key, "is required") }
            return fallback
        }
        guard case .number(let d) = value, d.isFinite else { throw fail(key, "must be a number, got \(value.text)") }
        return d
    }

    /// The number at `key`, or nil when absent or null.
    mutating func optionalDouble(_ key: String) throws -> Double? {
        guard members[key] != nil && members[key] != .null else { used.insert(key); return nil }
        return try double(key)
    }

    mutating func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
        guard let value = take(key) else {
            guard let fallback else { throw fail(key, "is required") }
            return fallback
        }
        guard case .number(let d) = value, d == d.rounded(), abs(d) < 1e9 else { throw fail(key, "must be a whole number, got \(value.text)") }
        return Int(d)
    }

    mutating func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        guard let value = take(key) else { return fallback }
        guard case .bool(let b) = value else { throw fail(key, "must be true or false, got \(value.text)") }
        return b
    }

    mutating func string(_ key: String, _ fallback: String) throws -> String {
        guard let value = take(key) else { return fallback }
        guard case .string(let s) = value else { throw fail(key, "must be a string, got \(value.text)") }
        return s
    }

    /// A list of strings at `key` (empty when absent or null).
    mutating func strings(_ key: String) throws -> [String] {
        guard let value = take(key) else { return [] }
        guard case .array(let items) = value,
              case let names = items.compactMap({ item -> String? in if case .string(let s) = item { s } else { nil } }),
              names.count == items.count else {
            throw fail(key, "must be a list of names, got \(value.text)")
        }
        return names
    }

    /// An int or a list of two ints (Keras's `kernel_size=3` or `(3, 3)`).
    mutating func pair(_ key: String, _ fallback: (Int, Int)? = nil) throws -> (Int, Int) {
        guard let value = try optionalPair(key) else {
            guard let fallback else { throw fail(key, "is required") }
            return fallback
        }
        return value
    }

    /// As `pair`, or nil when absent or null; `allowZero` admits 0 (Keras's `output_padding`).
    mutating func optionalPair(_ key: String, allowZero: Bool = false) throws -> (Int, Int)? {
        guard let value = take(key) else { return nil }
        let numbers: [Double]
        switch value {
        case .number(let d): numbers = [d, d]
        case .array(let items): numbers = items.compactMap { if case .number(let d) = $0 { d } else { nil } }
        default: numbers = []
        }
        guard numbers.count == 2, numbers.allSatisfy({ $0 == $0.rounded() && ($0 > 0 || allowZero && $0 == 0) && $0 < 1e9 }) else {
            throw fail(key, "must be a \(allowZero ? "non-negative" : "positive") whole number or a list of two, got \(value.text)")
        }
        return (Int(numbers[0]), Int(numbers[1]))
    }

    mutating func padding() throws -> String {
        let padding = try string("padding", "valid").lowercased()
        guard padding == "valid" || padding == "same" else { throw fail("padding", "must be \"valid\" or \"same\", got \"\(padding)\"") }
        return padding
    }

    mutating func activation(required: Bool = false, fallback: ActivationFunction = .linear) throws -> ActivationFunction {
        guard let value = take("activation") else {
            if required { throw fail("activation", "is required") }
            return fallback
        }
        guard case .string(let name) = value else { throw fail("activation", "must be a name, got \(value.text)") }
        guard let activation = ActivationFunction(kerasName: name) else {
            throw LatheError(.unsupportedOp, "\(context): activation '\(name)' is not supported (linear, relu, sigmoid, tanh, softmax, leaky_relu)")
        }
        return activation
    }

    mutating func initializer(_ fallback: Initializer) throws -> Initializer {
        guard let value = take("kernel_initializer") else { return fallback }
        let name: String
        switch value {
        case .string(let s): name = s
        case .object:
            guard case .string(let s)? = value["class_name"] else { throw fail("kernel_initializer", "needs a class_name") }
            name = s
        default: throw fail("kernel_initializer", "must be a name or {\"class_name\": ...}, got \(value.text)")
        }
        switch name {
        case "glorot_uniform", "GlorotUniform": return .glorotUniform
        case "he_normal", "HeNormal": return .heNormal
        case "he_uniform", "HeUniform": return .heUniform
        case "zeros", "Zeros": return .zeros
        default: throw LatheError(.unsupportedOp, "\(context): kernel_initializer '\(name)' is not supported (glorot_uniform, he_normal, he_uniform, zeros)")
        }
    }

    /// `input_shape` (without the batch axis), `batch_input_shape` / `batch_shape` (with it), or `input_dim`.
    mutating func inputShape() throws -> [Int]? {
        if let v = take("input_shape") { return try ConfigReader.shape(v, "\(context): \"input_shape\"") }
        for key in ["batch_input_shape", "batch_shape"] {
            if let v = take(key) { return try ConfigReader.shape(v, "\(context): \"\(key)\"", batchAxis: true) }
        }
        if let v = take("shape") { return try ConfigReader.shape(v, "\(context): \"shape\"") }
        if members["input_dim"] != nil { return [try int("input_dim")] }
        return nil
    }

    /// Throws `.unsupportedOp` unless `key` is absent, null or one of `defaults` (Keras's default values).
    mutating func requireDefault(_ key: String, _ defaults: JSON...) throws {
        guard let value = take(key) else { return }
        guard defaults.contains(value) else {
            throw LatheError(.unsupportedOp, "\(context): \(key)=\(value.text) is not supported (only \(defaults.map(\.text).joined(separator: " or ")))")
        }
    }

    /// An int, or a one-element list (Keras writes `kernel_size: [3]` for 1-D layers), at `key`.
    mutating func single(_ key: String, _ fallback: Int? = nil) throws -> Int {
        guard let value = try optionalSingle(key) else {
            guard let fallback else { throw fail(key, "is required") }
            return fallback
        }
        return value
    }

    /// As `single`, or nil when absent or null.
    mutating func optionalSingle(_ key: String) throws -> Int? {
        guard let value = take(key) else { return nil }
        switch value {
        case .number(let d) where d == d.rounded() && d > 0 && d < 1e9: return Int(d)
        case .array(let items) where items.count == 1:
            if case .number(let d) = items[0], d == d.rounded(), d > 0, d < 1e9 { return Int(d) }
        default: break
        }
        throw fail(key, "must be a positive whole number or a one-element list, got \(value.text)")
    }

    /// Accepts an initializer key only when it names one of `names` (a string or `{"class_name": ...}`).
    mutating func requireInitializer(_ key: String, _ names: String...) throws {
        guard let value = take(key) else { return }
        let name = value["class_name"] ?? value
        guard names.contains(where: { name == .string($0) }) else {
            throw LatheError(.unsupportedOp, "\(context): \(key)=\(value.text) is not supported (only \(names.joined(separator: " or ")))")
        }
    }

    /// The options of Keras's LSTM/GRU (or SimpleRNN, which has no recurrent activation and reads its
    /// activation itself) that Lathe's recurrent layers implement only at their defaults.
    mutating func requireRecurrentDefaults(simple: Bool = false) throws {
        if !simple {
            try requireDefault("activation", .string("tanh"))
            try requireDefault("recurrent_activation", .string("sigmoid"))
        }
        try requireDefault("use_bias", .bool(true))
        for key in ["dropout", "recurrent_dropout"] { try requireDefault(key, .number(0)) }
        for key in ["return_state", "go_backwards", "stateful", "unroll"] { try requireDefault(key, .bool(false)) }
        try requireInitializer("kernel_initializer", "glorot_uniform", "GlorotUniform")
        try requireInitializer("recurrent_initializer", "orthogonal", "Orthogonal")
        try requireZerosBias()
    }

    /// `kernel_regularizer`: nil when absent or null; the factor of `"l2"` (Keras's default 0.01) or of
    /// `{"class_name": "L2", "config": {"l2": x}}`; `.unsupportedOp` for other regularizers.
    mutating func kernelRegularizer() throws -> Float? {
        guard let value = take("kernel_regularizer") else { return nil }
        switch value {
        case .string("l2"), .string("L2"): return 0.01
        case .object:
            guard value["class_name"] == .string("L2") || value["class_name"] == .string("l2") else { break }
            var c = ConfigReader(value["config"] ?? .object([:]), where: "\(context): kernel_regularizer")
            let l2 = try c.double("l2", 0.01)
            try c.finish()
            guard l2 >= 0 else { throw c.fail("l2", "must be >= 0") }
            return Float(l2)
        default: break
        }
        throw LatheError(.unsupportedOp, "\(context): kernel_regularizer \(value.text) is not supported (only l2)")
    }

    mutating func requireChannelsLast() throws { try requireDefault("data_format", .string("channels_last")) }

    /// Accepts `bias_initializer` only when it is zeros (the engine's bias start).
    mutating func requireZerosBias() throws {
        guard let value = take("bias_initializer") else { return }
        let name = value["class_name"] ?? value
        guard name == .string("zeros") || name == .string("Zeros") else {
            throw LatheError(.unsupportedOp, "\(context): bias_initializer \(value.text) is not supported (only zeros)")
        }
    }

    /// Throws for the first key neither used, ignorable nor null: `.unsupportedOp` naming it.
    func finish() throws {
        for key in members.keys.sorted() where !used.contains(key) && !ConfigReader.ignored.contains(key) && members[key] != .null {
            throw LatheError(.unsupportedOp, "\(context): unsupported key \"\(key)\" (= \(members[key]!.text))")
        }
    }

    /// A shape (list of positive ints); with `batchAxis`, the first entry (null or a number) is dropped.
    static func shape(_ value: JSON, _ what: String, batchAxis: Bool = false) throws -> [Int] {
        guard case .array(var items) = value else { throw LatheError.invalid("\(what) must be a list of sizes, got \(value.text)") }
        if batchAxis && !items.isEmpty { items.removeFirst() }
        let dims: [Int] = try items.map { item in
            guard case .number(let d) = item, d == d.rounded(), d > 0, d < 1e9 else {
                throw LatheError.invalid("\(what) must hold positive whole numbers, got \(value.text)")
            }
            return Int(d)
        }
        guard !dims.isEmpty else { throw LatheError.invalid("\(what) is empty") }
        return dims
    }
}

/// Reads `name` as a Keras optimizer name (`"adam"`) or config JSON (`{"class_name": "SGD", "config": {...}}`).
func makeOptimizer(_ text: String) throws -> Optimizer {
    let trimmed = text.drop { $0 == " " || $0 == "\n" || $0 == "\t" }
    guard trimmed.hasPrefix("{") else {
        guard let optimizer = Optimizer(kerasName: text) else {
            throw LatheError.invalid("unknown optimizer '\(text)' (sgd, adam, adamw, rmsprop)")
        }
        return optimizer
    }
    let json = try JSON.parse(text)
    guard case .string(let className)? = json["class_name"] else { throw LatheError.invalid("optimizer: needs \"class_name\"") }
    var c = ConfigReader(json["config"] ?? .object([:]), where: "optimizer \(className)")
    let algorithm: Optimizer.Algorithm
    let defaultRate: Double
    switch className.lowercased() {
    case "sgd":
        algorithm = .sgd(momentum: Float(try c.double("momentum", 0)), nesterov: try c.bool("nesterov", false))
        defaultRate = 0.01
    case "adam":
        algorithm = .adam(beta1: Float(try c.double("beta_1", 0.9)), beta2: Float(try c.double("beta_2", 0.999)),
                          epsilon: Float(try c.double("epsilon", 1e-7)))
        try c.requireDefault("amsgrad", .bool(false))
        defaultRate = 0.001
    case "adamw":
        algorithm = .adamW(weightDecay: Float(try c.double("weight_decay", 0.004)), beta1: Float(try c.double("beta_1", 0.9)),
                           beta2: Float(try c.double("beta_2", 0.999)), epsilon: Float(try c.double("epsilon", 1e-7)))
        try c.requireDefault("amsgrad", .bool(false))
        defaultRate = 0.001
    case "rmsprop":
        algorithm = .rmsprop(rho: Float(try c.double("rho", 0.9)), epsilon: Float(try c.double("epsilon", 1e-7)),
                             momentum: Float(try c.double("momentum", 0)), centered: try c.bool("centered", false))
        defaultRate = 0.001
    default:
        throw LatheError.invalid("unknown optimizer class '\(className)' (SGD, Adam, AdamW, RMSprop)")
    }
    var schedule: LearningRateSchedule?
    if let value = c.members["learning_rate"], case .object = value {
        _ = c.take("learning_rate")
        schedule = try makeSchedule(value)
    }
    let rate = schedule == nil ? try c.optionalDouble("learning_rate") ?? c.optionalDouble("lr") ?? defaultRate : defaultRate
    guard rate > 0 else { throw c.fail("learning_rate", "must be positive") }
    var clipping: GradientClipping?
    for (key, make) in [("clipnorm", GradientClipping.norm), ("clipvalue", GradientClipping.value), ("global_clipnorm", GradientClipping.globalNorm)] {
        guard let limit = try c.optionalDouble(key) else { continue }
        guard clipping == nil else { throw LatheError.invalid("optimizer \(className): only one of clipnorm, clipvalue and global_clipnorm may be set (as in Keras)") }
        guard limit > 0 else { throw c.fail(key, "must be positive") }
        clipping = make(Float(limit))
    }
    if className.lowercased() != "adamw" { try c.requireDefault("weight_decay", .number(0)) }
    try c.requireDefault("use_ema", .bool(false))
    try c.finish()
    return Optimizer(algorithm, learningRate: Float(rate), schedule: schedule, clipping: clipping)
}

/// Reads a Keras learning-rate schedule config: `{"class_name": "ExponentialDecay", "config": {...}}`
/// (also ExponentialDecay, PiecewiseConstantDecay, CosineDecay, InverseTimeDecay).
func makeSchedule(_ json: JSON) throws -> LearningRateSchedule {
    guard case .string(let className)? = json["class_name"] else { throw LatheError.invalid("learning_rate schedule: needs \"class_name\"") }
    var c = ConfigReader(json["config"] ?? .object([:]), where: "learning_rate schedule \(className)")
    func numbers(_ key: String) throws -> [Double] {
        guard case .array(let items)? = c.take(key) else { throw c.fail(key, "must be a list of numbers") }
        return try items.map { item in
            guard case .number(let d) = item, d.isFinite else { throw c.fail(key, "must be a list of numbers") }
            return d
        }
    }
    let schedule: LearningRateSchedule
    switch className {
    case "ExponentialDecay":
        schedule = .exponentialDecay(initial: try c.double("initial_learning_rate"), decaySteps: try c.int("decay_steps"),
                                     decayRate: try c.double("decay_rate"), staircase: try c.bool("staircase", false))
    case "InverseTimeDecay":
        schedule = .inverseTimeDecay(initial: try c.double("initial_learning_rate"), decaySteps: try c.int("decay_steps"),
                                     decayRate: try c.double("decay_rate"), staircase: try c.bool("staircase", false))
    case "PiecewiseConstantDecay":
        schedule = .piecewiseConstant(boundaries: try numbers("boundaries"), values: try numbers("values"))
    case "CosineDecay":
        schedule = .cosineDecay(initial: try c.double("initial_learning_rate"), decaySteps: try c.int("decay_steps"),
                                alpha: try c.double("alpha", 0), warmupTarget: try c.optionalDouble("warmup_target"),
                                warmupSteps: try c.int("warmup_steps", 0))
    default:
        throw LatheError(.unsupportedOp, "learning_rate schedule '\(className)' is not supported (ExponentialDecay, PiecewiseConstantDecay, CosineDecay, InverseTimeDecay)")
    }
    try c.finish()
    try schedule.validate()
    return schedule
}

/// Reads a Keras metric name (`"auc"`) or config JSON (`{"class_name": "F1Score", "config": {"average": "macro"}}`).
func makeMetric(_ text: String) throws -> Metric {
    guard text.hasPrefix("{") else {
        guard let metric = Metric(kerasName: text) else {
            throw LatheError.invalid("unknown metric '\(text)' (accuracy, binary_accuracy, mae, rmse, precision, recall, f1_score, auc)")
        }
        return metric
    }
    let json = try JSON.parse(text)
    guard case .string(let className)? = json["class_name"] else { throw LatheError.invalid("metric: needs \"class_name\"") }
    var c = ConfigReader(json["config"] ?? .object([:]), where: "metric \(className)")
    func threshold(_ key: String) throws -> Float? {
        guard let value = c.take(key) else { return nil }
        if case .array(let items) = value, items.count == 1, case .number(let d) = items[0] { return Float(d) }
        guard case .number(let d) = value, d >= 0, d <= 1 else { throw c.fail(key, "must be a number in [0, 1], got \(value.text)") }
        return Float(d)
    }
    let metric: Metric
    switch className {
    case "Accuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy": metric = .accuracy
    case "BinaryAccuracy":
        try c.requireDefault("threshold", .number(0.5))
        metric = .binaryAccuracy
    case "MeanAbsoluteError": metric = .meanAbsoluteError
    case "RootMeanSquaredError": metric = .rootMeanSquaredError
    case "Precision", "Recall":
        let t = try threshold("thresholds") ?? 0.5
        try c.requireDefault("top_k", .null)
        try c.requireDefault("class_id", .null)
        metric = className == "Precision" ? .precision(threshold: t) : .recall(threshold: t)
    case "F1Score":
        let average = try c.string("average", "micro")
        guard let mode = Metric.Average(rawValue: average) else { throw c.fail("average", "must be \"micro\", \"macro\" or \"weighted\", got \"\(average)\"") }
        metric = .f1(threshold: try threshold("threshold"), average: mode)
    case "AUC":
        let count = try c.int("num_thresholds", 200)
        guard count >= 2 && count <= 100_000 else { throw c.fail("num_thresholds", "must be in 2...100000") }
        try c.requireDefault("curve", .string("ROC"))
        try c.requireDefault("summation_method", .string("interpolation"))
        try c.requireDefault("multi_label", .bool(false))
        try c.requireDefault("thresholds", .null)
        try c.requireDefault("from_logits", .bool(false))
        metric = .auc(thresholds: count)
    default:
        throw LatheError(.unsupportedOp, "metric '\(className)' is not supported (Accuracy, BinaryAccuracy, MeanAbsoluteError, RootMeanSquaredError, Precision, Recall, F1Score, AUC)")
    }
    try c.finish()
    return metric
}

/// Reads a Keras loss name (`"mse"`) or config JSON (`{"class_name": "BinaryCrossentropy", "config": {"from_logits": true}}`).
func makeLoss(_ text: String) throws -> Loss {
    guard text.hasPrefix("{") else {
        guard let loss = Loss(kerasName: text) else {
            throw LatheError.invalid("unknown loss '\(text)' (mse, mae, huber, binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy)")
        }
        return loss
    }
    let json = try JSON.parse(text)
    guard case .string(let className)? = json["class_name"] else { throw LatheError.invalid("loss: needs \"class_name\"") }
    var c = ConfigReader(json["config"] ?? .object([:]), where: "loss \(className)")
    let loss: Loss
    switch className {
    case "MeanSquaredError": loss = .meanSquaredError
    case "MeanAbsoluteError": loss = .meanAbsoluteError
    case "Huber":
        let delta = try c.double("delta", 1)
        guard delta > 0 else { throw c.fail("delta", "must be positive") }
        loss = .huber(delta: Float(delta))
    case "BinaryCrossentropy": loss = .binaryCrossentropy(fromLogits: try c.bool("from_logits", false))
    case "CategoricalCrossentropy": loss = .categoricalCrossentropy(fromLogits: try c.bool("from_logits", false))
    case "SparseCategoricalCrossentropy": loss = .sparseCategoricalCrossentropy(fromLogits: try c.bool("from_logits", false))
    default:
        throw LatheError(.unsupportedOp, "loss '\(className)' is not supported (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy)")
    }
    try c.requireDefault("label_smoothing", .number(0))
    try c.requireDefault("axis", .number(-1))
    try c.requireDefault("ignore_class", .null)
    try c.finish()
    return loss
}
