import LatheCore

/// A layer that reads several values (Keras's merge layers: `Add`, `Concatenate`); used in a functional
/// model, where a layer call may take several inputs.
public protocol MergeLayer: Layer {
    /// Adds the layer's nodes after `inputs`, returning the layer's output.
    func build(_ builder: inout GraphBuilder, _ inputs: [LayerValue]) throws -> LayerValue
}

extension MergeLayer {
    public func build(_ builder: inout GraphBuilder, _ input: LayerValue) throws -> LayerValue {
        throw LatheError.invalid("\(type(of: self)) merges two or more values; call it on them in a Functional model")
    }
}

/// The values in one layout: all channels-first when any image among them is (inserting Transposes).
private func commonLayout(_ b: inout GraphBuilder, _ inputs: [LayerValue], _ layer: String) throws -> [LayerValue] {
    guard inputs.count >= 2 else { throw LatheError.invalid("\(layer) needs at least two inputs, got \(inputs.count)") }
    guard inputs.contains(where: \.channelsFirst) else { return inputs }
    return try inputs.map { try b.channelsFirst($0, for: layer) }
}

/// The sum of two or more values of the same shape (Keras's `Add`).
public struct Add: MergeLayer {
    public init() {}

    public func build(_ b: inout GraphBuilder, _ inputs: [LayerValue]) throws -> LayerValue {
        let values = try commonLayout(&b, inputs, "Add")
        for v in values.dropFirst() where v.shape != values[0].shape {
            throw LatheError.shape("Add: inputs must have the same shape, got \(inputs.map(\.shape)) (without the batch axis)")
        }
        let name = b.uniqueName("add")
        var sum = values[0].name
        for (k, v) in values.dropFirst().enumerated() {
            sum = b.add("Add", k == 0 ? name : "\(name)_\(k)", inputs: [sum, v.name])
        }
        return LayerValue(name: sum, shape: values[0].shape, channelsFirst: values[0].channelsFirst)
    }
}

/// Two or more values joined along `axis` (Keras's `Concatenate`; the axis counts the batch axis as 0
/// and images channels-last, so the default `-1` joins channels or features).
public struct Concatenate: MergeLayer {
    public let axis: Int

    public init(axis: Int = -1) { self.axis = axis }

    public func build(_ b: inout GraphBuilder, _ inputs: [LayerValue]) throws -> LayerValue {
        let values = try commonLayout(&b, inputs, "Concatenate")
        let rank = values[0].shape.count
        guard values.allSatisfy({ $0.shape.count == rank }) else {
            throw LatheError.shape("Concatenate: inputs must have the same rank, got \(inputs.map(\.shape)) (without the batch axis)")
        }
        let userAxis = axis < 0 ? axis + rank + 1 : axis   // with the batch axis, channels-last
        guard userAxis >= 1 && userAxis <= rank else {
            throw LatheError.invalid("Concatenate: axis \(axis) is out of range for inputs of rank \(rank + 1) (the batch axis cannot be joined)")
        }
        // The axis inside the graph, without the batch axis: channels-last [H, W, C] is stored as [C, H, W].
        let inner = values[0].channelsFirst ? [1, 2, 0][userAxis - 1] : userAxis - 1
        for v in values.dropFirst() {
            for d in 0..<rank where d != inner && v.shape[d] != values[0].shape[d] {
                throw LatheError.shape("Concatenate: inputs must match except on axis \(axis), got \(inputs.map(\.shape)) (without the batch axis)")
            }
        }
        var shape = values[0].shape
        shape[inner] = values.reduce(0) { $0 + $1.shape[inner] }
        let y = b.add("Concat", b.uniqueName("concatenate"), inputs: values.map(\.name), attributes: ["axis": .int(inner + 1)])
        return LayerValue(name: y, shape: shape, channelsFirst: values[0].channelsFirst)
    }
}

/// A value of a functional model under construction (Keras's symbolic tensor): the model's input, or a
/// layer applied to such values. Built with `SymbolicValue.input(shape:)` and layer calls, `Dense(8)(x)`;
/// a value can only be made from existing ones, so the graph has no cycles.
public final class SymbolicValue: @unchecked Sendable {
    /// The layer that computes the value; nil for an input.
    public let layer: (any Layer)?
    /// The values the layer reads.
    public let inputs: [SymbolicValue]
    /// An input's shape without the batch axis (channels-last for images); nil for a layer's output.
    public let shape: [Int]?

    private init(layer: (any Layer)?, inputs: [SymbolicValue], shape: [Int]?) {
        self.layer = layer
        self.inputs = inputs
        self.shape = shape
    }

    /// A model input of `shape` without the batch axis (Keras's `Input(shape)`).
    public static func input(shape: [Int]) -> SymbolicValue { SymbolicValue(layer: nil, inputs: [], shape: shape) }

    /// `layer` applied to `inputs`.
    static func call(_ layer: any Layer, _ inputs: [SymbolicValue]) -> SymbolicValue {
        SymbolicValue(layer: layer, inputs: inputs, shape: nil)
    }
}

extension Layer {
    /// The layer applied to `inputs` in a functional model (one for most layers, several for merges).
    public func callAsFunction(_ inputs: SymbolicValue...) -> SymbolicValue { SymbolicValue.call(self, inputs) }

    /// The layer applied to `inputs` in a functional model.
    public func callAsFunction(_ inputs: [SymbolicValue]) -> SymbolicValue { SymbolicValue.call(self, inputs) }
}

extension Functional {
    /// A functional model (Keras's `Model(inputs, outputs)`) from `input` to `output`: the layers `output`
    /// depends on, in a topological order (`layers`; index them for `setTrainable`).
    /// - Throws: `.invalidArgument` when `input` is not an input, when `output` depends on another input
    ///   (the output is disconnected from the model's input), or when a layer is called without inputs.
    public convenience init(input: SymbolicValue, output: SymbolicValue, seed: UInt64 = 0,
                            registry: OpRegistry = TrainingOps.sharedRegistry) throws {
        guard input.layer == nil, let shape = input.shape else {
            throw LatheError.invalid("Functional: inputs must be values made by SymbolicValue.input(shape:) (Keras's Input), not layer outputs")
        }
        var index: [ObjectIdentifier: Int] = [ObjectIdentifier(input): 0]
        var layers: [any Layer] = []
        var connections: [[Int]] = []
        // Depth-first post-order from the output, without recursion (deep chains).
        var stack: [(value: SymbolicValue, expanded: Bool)] = [(output, false)]
        while let (value, expanded) = stack.popLast() {
            let id = ObjectIdentifier(value)
            if index[id] != nil { continue }
            guard let layer = value.layer else {
                throw LatheError.invalid("Functional: the output depends on an input that is not the model's input (a disconnected graph); multi-input models are not supported")
            }
            guard !value.inputs.isEmpty else { throw LatheError.invalid("Functional: layer \(type(of: layer)) is called without inputs") }
            if expanded {
                layers.append(layer)
                connections.append(value.inputs.map { index[ObjectIdentifier($0)]! })
                index[id] = layers.count
            } else {
                stack.append((value, true))
                for v in value.inputs.reversed() where index[ObjectIdentifier(v)] == nil { stack.append((v, false)) }
            }
        }
        try self.init(layers: layers, connections: connections, outputValue: index[ObjectIdentifier(output)]!,
                      inputShape: shape, seed: seed, registry: registry, graphName: "functional")
    }
}
