import LatheCore

/// Data-movement and shape ops, for every dtype: Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout here;
/// Transpose, Concat, Gather in `ShapeOps+Movement.swift`; Shape, Size, Constant, ConstantOfShape in `ShapeOps+Constants.swift`.
enum ShapeOps {
    /// Adds every op of the family to `registry`.
    static func register(into registry: OpRegistry) throws {
        try registry.add("Flatten") { try FlattenKernel($0) }
        try registry.add("Reshape", since: 5) { try ReshapeKernel($0) }
        try registry.add("Squeeze") { try SqueezeKernel($0) }
        try registry.add("Unsqueeze") { try UnsqueezeKernel($0) }
        try registry.add("Identity") { c in try c.expectInputs(1...1); return IdentityKernel() }
        try registry.add("Dropout", since: 10) { try DropoutKernel($0) }
        try registry.add("Transpose") { try TransposeKernel($0) }
        try registry.add("Concat") { try ConcatKernel($0) }
        try registry.add("Gather") { try GatherKernel($0) }
        try registry.add("Shape") { try ShapeKernel($0) }
        try registry.add("Size") { c in try c.expectInputs(1...1); return SizeKernel() }
        try registry.add("Constant") { try ConstantKernel($0) }
        try registry.add("ConstantOfShape", since: 9) { try ConstantOfShapeKernel($0) }
    }
}

/// Throws unless the input is present; any dtype is accepted.
func requirePresent(_ type: TensorType?, _ what: String) throws -> TensorType {
    guard let type else { throw LatheError.invalid("missing required input \(what)") }
    return type
}

/// The int64 values of a 1-D input that must be known at plan time (a Reshape shape, Squeeze axes, ...).
/// - Throws: `.unsupportedOp` when the value is only known at run time; dtype/rank errors otherwise.
func planTimeInts(_ type: TensorType, _ constant: Tensor?, _ what: String) throws -> [Int] {
    guard type.dtype == .int64 else { throw LatheError.dtype("\(what) must be int64, got \(type.dtype)") }
    guard type.shape.count == 1 else { throw LatheError.shape("\(what) must be 1-D, got shape \(type.shape)") }
    guard let constant else {
        throw LatheError(.unsupportedOp,
                         "\(what) must be known when the model is planned (an initializer, a Constant, or computed from shapes); a value computed at run time is not supported")
    }
    return constant.intArray()
}

/// Normalises axes against `rank`, rejecting out-of-range and repeated axes.
func normalizedAxes(_ axes: [Int], rank: Int, what: String) throws -> [Int] {
    var seen = Set<Int>()
    return try axes.map { axis in
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else { throw LatheError.invalid("\(what): axis \(axis) out of range for rank \(rank)") }
        guard seen.insert(a).inserted else { throw LatheError.invalid("\(what): axis \(axis) is repeated in \(axes)") }
        return a
    }
}

/// Copies the input's bytes into the output: the compute of every op that only changes the shape.
@inline(__always) func copyElements(_ input: Tensor, to output: Tensor) {
    if input.byteCount > 0 { output.bytes.copyMemory(from: input.bytes, byteCount: input.byteCount) }
}

/// Flatten: `[d0…dn]` → `[d0·…·d(axis-1), d(axis)·…·dn]`; axis in `[-r, r]`, default 1.
final class FlattenKernel: Kernel {
    /// Where the two output dims split the input, possibly negative.
    let axis: Int

    init(_ c: NodeContext) throws {
        try c.expectInputs(1...1)
        axis = try c.attributes.int("axis", 1)
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "input")
        let rank = x.shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a <= rank else { throw LatheError.invalid("axis \(axis) out of range [-\(rank), \(rank)]") }
        return [TensorType(x.dtype, [x.shape[..<a].reduce(1, *), x.shape[a...].reduce(1, *)])]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws { copyElements(inputs[0]!, to: outputs[0]!) }

    var outputMemory: OutputMemory { .viewOfInput }
}

/// Reshape (opset ≥ 5): target shape from a plan-time int64 input; 0 copies the input dim
/// (or is a literal 0 with `allowzero`, opset ≥ 14), one -1 is inferred.
final class ReshapeKernel: Kernel {
    /// Whether a 0 in the shape is a literal zero rather than a copy of the input dim.
    let allowZero: Bool

    init(_ c: NodeContext) throws {
        try c.expectInputs(2...2)
        allowZero = try c.opset >= 14 && c.attributes.int("allowzero", 0) != 0
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "data")
        let requested = try planTimeInts(try requirePresent(inputs[1], "shape"), constants[1], "shape")
        return [TensorType(x.dtype, try ReshapeKernel.resolve(requested, input: x.shape, allowZero: allowZero))]
    }

    /// The concrete output shape for a requested shape, per the ONNX rules.
    static func resolve(_ requested: [Int], input: [Int], allowZero: Bool) throws -> [Int] {
        var shape = requested
        var inferred: Int?
        for (i, d) in requested.enumerated() {
            switch d {
            case -1:
                guard inferred == nil else { throw LatheError.shape("shape \(requested) has more than one -1") }
                inferred = i
            case 0 where !allowZero:
                guard i < input.count else {
                    throw LatheError.shape("shape \(requested) copies dim \(i) (0), but the input \(input) has rank \(input.count)")
                }
                shape[i] = input[i]
            case ..<0:
                throw LatheError.shape("shape \(requested) has invalid dimension \(d)")
            default:
                break
            }
        }
        if allowZero, inferred != nil, requested.contains(0) {
            throw LatheError.shape("shape \(requested) has both 0 and -1 while allowzero is set")
        }
        let count = input.reduce(1, *)
        if let i = inferred {
            let known = shape.enumerated().reduce(1) { $1.offset == i ? $0 : $0 * $1.element }
            guard known != 0, count % known == 0 else {
                throw LatheError.shape("cannot reshape input of shape \(input) to \(requested)")
            }
            shape[i] = count / known
        }
        guard shape.reduce(1, *) == count else {
            throw LatheError.shape("cannot reshape input of shape \(input) (\(count) elements) to \(requested)")
        }
        return shape
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws { copyElements(inputs[0]!, to: outputs[0]!) }

    var outputMemory: OutputMemory { .viewOfInput }
}

/// Squeeze: removes the given size-1 axes, or every size-1 axis when none are given (an empty list counts
/// as none, as in ONNX Runtime).
/// Axes are an attribute before opset 13 and an optional plan-time int64 input from opset 13.
final class SqueezeKernel: Kernel {
    /// Axes from the attribute (opset < 13); nil when absent or given as an input.
    let attributeAxes: [Int]?

    init(_ c: NodeContext) throws {
        if c.opset < 13 {
            try c.expectInputs(1...1)
            attributeAxes = try c.attributes.ints("axes")
        } else {
            try c.expectInputs(1...2)
            guard !c.attributes.has("axes") else {
                throw LatheError.invalid("\(c.label): from opset 13 'axes' is an input, not an attribute")
            }
            attributeAxes = nil
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "data")
        var axes = attributeAxes
        if inputs.count > 1, let t = inputs[1] { axes = try planTimeInts(t, constants[1], "axes") }
        guard let axes, !axes.isEmpty else { return [TensorType(x.dtype, x.shape.filter { $0 != 1 })] }
        let removed = Set(try normalizedAxes(axes, rank: x.shape.count, what: "axes"))
        for a in removed where x.shape[a] != 1 {
            throw LatheError.shape("cannot squeeze axis \(a) of size \(x.shape[a]) in shape \(x.shape)")
        }
        return [TensorType(x.dtype, x.shape.indices.filter { !removed.contains($0) }.map { x.shape[$0] })]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws { copyElements(inputs[0]!, to: outputs[0]!) }

    var outputMemory: OutputMemory { .viewOfInput }
}

/// Unsqueeze: inserts size-1 axes at the given positions of the output.
/// Axes are an attribute before opset 13 and a required plan-time int64 input from opset 13.
final class UnsqueezeKernel: Kernel {
    /// Axes from the attribute (opset < 13); nil when given as an input.
    let attributeAxes: [Int]?

    init(_ c: NodeContext) throws {
        if c.opset < 13 {
            try c.expectInputs(1...1)
            guard let axes = try c.attributes.ints("axes") else {
                throw LatheError.invalid("\(c.label): attribute 'axes' is required")
            }
            attributeAxes = axes
        } else {
            try c.expectInputs(2...2)
            guard !c.attributes.has("axes") else {
                throw LatheError.invalid("\(c.label): from opset 13 'axes' is an input, not an attribute")
            }
            attributeAxes = nil
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "data")
        let axes = try attributeAxes ?? planTimeInts(try requirePresent(inputs[1], "axes"), constants[1], "axes")
        let rank = x.shape.count + axes.count
        let inserted = Set(try normalizedAxes(axes, rank: rank, what: "axes"))
        var rest = x.shape.makeIterator()
        return [TensorType(x.dtype, (0..<rank).map { inserted.contains($0) ? 1 : rest.next()! })]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws { copyElements(inputs[0]!, to: outputs[0]!) }

    var outputMemory: OutputMemory { .viewOfInput }
}

/// Identity: `Y = X`.
final class IdentityKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        [try requirePresent(inputs[0], "input")]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws { copyElements(inputs[0]!, to: outputs[0]!) }

    var outputMemory: OutputMemory { .viewOfInput }
}

/// Dropout at inference (opset ≥ 10): `Y = X`, optional mask all true. From opset 12 the optional `ratio` and
/// `training_mode` inputs are accepted; training mode itself is not supported.
final class DropoutKernel: Kernel {
    /// The node, for messages.
    let label: String
    /// Whether the node has a `mask` output slot.
    let hasMaskSlot: Bool

    init(_ c: NodeContext) throws {
        try c.expectInputs(c.opset < 12 ? 1...1 : 1...3)
        guard (1...2).contains(c.outputPresent.count) else {
            throw LatheError.invalid("\(c.label) has 1 or 2 outputs, got \(c.outputPresent.count)")
        }
        label = c.label
        hasMaskSlot = c.outputPresent.count == 2
        viewsInput = !c.outputPresent.dropFirst().contains(true) && !(c.inputPresent.count > 2 && c.inputPresent[2])
    }

    /// Without a wired mask or training_mode input, Y is X itself.
    let viewsInput: Bool

    var outputMemory: OutputMemory { viewsInput ? .viewOfInput : .none }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "data")
        if inputs.count > 1, let ratio = inputs[1] {
            _ = try require(ratio, "ratio", .float32, .float64)
            guard ratio.count == 1 else { throw LatheError.shape("ratio must be a scalar, got shape \(ratio.shape)") }
        }
        if inputs.count > 2, let mode = inputs[2] {
            _ = try require(mode, "training_mode", .bool)
            guard mode.count == 1 else { throw LatheError.shape("training_mode must be a scalar, got shape \(mode.shape)") }
            if let value = constants[2] { try checkInference(value) }
        }
        return hasMaskSlot ? [x, TensorType(.bool, x.shape)] : [x]
    }

    /// Throws `.unsupportedOp` when `training_mode` is true.
    func checkInference(_ mode: Tensor) throws {
        if mode.bytes.load(as: UInt8.self) != 0 {
            throw LatheError(.unsupportedOp, "\(label): training_mode = true (random dropout) is not supported; Lathe runs Dropout in inference mode only")
        }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        if inputs.count > 2, let mode = inputs[2] { try checkInference(mode) }
        copyElements(inputs[0]!, to: outputs[0]!)
        if outputs.count > 1, let mask = outputs[1], mask.count > 0 {
            mask.bytes.initializeMemory(as: UInt8.self, repeating: 1, count: mask.count)
        }
    }
}
