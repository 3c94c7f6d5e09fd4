/// One node attribute value, as ONNX carries them.
public enum AttributeValue: Sendable {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensor(Tensor)
}

/// A node's attributes with typed accessors that throw clear errors naming the node and attribute.
public struct Attributes: Sendable {
    /// The raw values by name.
    public var values: [String: AttributeValue]
    /// Used in error messages ("Conv node 'conv1'").
    public var owner: String

    public init(_ values: [String: AttributeValue] = [:], owner: String = "") {
        self.values = values
        self.owner = owner
    }

    /// Whether the attribute is present.
    public func has(_ name: String) -> Bool { values[name] != nil }

    private func wrongType(_ name: String, _ expected: String) -> LatheError {
        LatheError.invalid("\(owner): attribute '\(name)' must be \(expected)")
    }

    /// An integer attribute, or `fallback` when absent.
    public func int(_ name: String, _ fallback: Int) throws -> Int {
        try int(name) ?? fallback
    }

    /// An integer attribute, or nil when absent.
    public func int(_ name: String) throws -> Int? {
        guard let v = values[name] else { return nil }
        guard case .int(let i) = v else { throw wrongType(name, "an int") }
        return i
    }

    /// A float attribute, or `fallback` when absent (an int is accepted too).
    public func float(_ name: String, _ fallback: Float) throws -> Float {
        try float(name) ?? fallback
    }

    /// A float attribute, or nil when absent.
    public func float(_ name: String) throws -> Float? {
        guard let v = values[name] else { return nil }
        switch v {
        case .float(let f): return f
        case .int(let i): return Float(i)
        default: throw wrongType(name, "a float")
        }
    }

    /// A string attribute, or `fallback` when absent.
    public func string(_ name: String, _ fallback: String) throws -> String {
        try string(name) ?? fallback
    }

    /// A string attribute, or nil when absent.
    public func string(_ name: String) throws -> String? {
        guard let v = values[name] else { return nil }
        guard case .string(let s) = v else { throw wrongType(name, "a string") }
        return s
    }

    /// An integer-list attribute, or nil when absent.
    public func ints(_ name: String) throws -> [Int]? {
        guard let v = values[name] else { return nil }
        switch v {
        case .ints(let a): return a
        case .int(let i): return [i]
        default: throw wrongType(name, "a list of ints")
        }
    }

    /// A float-list attribute, or nil when absent.
    public func floats(_ name: String) throws -> [Float]? {
        guard let v = values[name] else { return nil }
        switch v {
        case .floats(let a): return a
        case .float(let f): return [f]
        default: throw wrongType(name, "a list of floats")
        }
    }

    /// A string-list attribute, or nil when absent.
    public func strings(_ name: String) throws -> [String]? {
        guard let v = values[name] else { return nil }
        switch v {
        case .strings(let a): return a
        case .string(let s): return [s]
        default: throw wrongType(name, "a list of strings")
        }
    }

    /// A tensor attribute, or nil when absent.
    public func tensor(_ name: String) throws -> Tensor? {
        guard let v = values[name] else { return nil }
        guard case .tensor(let t) = v else { throw wrongType(name, "a tensor") }
        return t
    }
}
