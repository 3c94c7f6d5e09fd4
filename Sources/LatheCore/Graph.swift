/// One operation in a graph. Empty input or output names mark omitted optional slots, as in ONNX.
public struct Node: Sendable {
    public var name: String
    public var opType: String
    /// Operator domain; `""` is the ONNX default domain.
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: Attributes

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: AttributeValue] = [:]) {
        self.name = name
        self.opType = opType
        self.domain = OpRegistry.normalize(domain: domain)
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = Attributes(attributes, owner: "\(opType) node '\(name)'")
    }
}

/// The intermediate representation shared by import, inference, training and export.
public struct Graph: Sendable {
    /// Values the caller feeds (initializers excluded).
    public var inputs: [ValueInfo]
    /// Values the caller reads.
    public var outputs: [ValueInfo]
    /// Operations, in any order (the model sorts them).
    public var nodes: [Node]
    /// Constant tensors (weights) by value name.
    public var initializers: [String: Tensor]
    /// Operator-set version per domain (`""` is the ONNX default domain).
    public var opsets: [String: Int]
    /// Graph name, informational.
    public var name: String

    public init(name: String = "", inputs: [ValueInfo], outputs: [ValueInfo], nodes: [Node],
                initializers: [String: Tensor] = [:], opsets: [String: Int] = ["": 17]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
        self.opsets = opsets
    }
}
