import LatheCore

// Ops whose outputs are known at plan time: Shape (from the input's type), Constant, ConstantOfShape.

/// Shape: the input's dims as int64, sliced by `start`/`end` from opset 15. Folded from types at plan time,
/// which is what turns exported `Shape → Gather → Concat → Reshape` chains into constants.
final class ShapeKernel: Kernel {
    /// First reported axis (opset ≥ 15), possibly negative.
    let start: Int
    /// One past the last reported axis (opset ≥ 15); nil means the rank.
    let end: Int?

    init(_ c: NodeContext) throws {
        try c.expectInputs(1...1)
        if c.opset >= 15 {
            start = try c.attributes.int("start", 0)
            end = try c.attributes.int("end")
        } else {
            start = 0
            end = nil
        }
    }

    /// The dims reported for an input of `shape`, with start/end clamped to `[0, rank]`.
    func dims(of shape: [Int]) -> [Int] {
        let rank = shape.count
        func clamp(_ axis: Int) -> Int { min(max(axis < 0 ? axis + rank : axis, 0), rank) }
        let lo = clamp(start), hi = clamp(end ?? rank)
        return lo < hi ? Array(shape[lo..<hi]) : []
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "data")
        return [TensorType(.int64, [dims(of: x.shape).count])]
    }

    func fold(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [Tensor]? {
        let dims = dims(of: try requirePresent(inputs[0], "data").shape)
        return [try Tensor(shape: [dims.count], int64s: dims.map(Int64.init))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        for (i, d) in dims(of: inputs[0]!.shape).enumerated() { outputs[0]!.int64s[i] = Int64(d) }
    }
}

/// Size: the input's element count as an int64 scalar (any dtype); known at plan time, so it folds.
final class SizeKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        _ = try requirePresent(inputs[0], "data")
        return [TensorType(.int64, [])]
    }

    func fold(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [Tensor]? {
        [try Tensor(shape: [], int64s: [Int64(try requirePresent(inputs[0], "data").count)])]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        outputs[0]!.int64s[0] = Int64(inputs[0]!.count)
    }
}

/// Constant: exactly one of `value`, `value_float(s)`, `value_int(s)`; string and sparse values are unsupported.
final class ConstantKernel: Kernel {
    /// The tensor the node produces.
    let value: Tensor

    init(_ c: NodeContext) throws {
        try c.expectInputs(0...0)
        let given = c.attributes.values.keys.sorted()
        guard given.count == 1, let name = given.first else {
            throw LatheError.invalid("\(c.label) needs exactly one value attribute, got \(given.isEmpty ? "none" : given.joined(separator: ", "))")
        }
        let a = c.attributes
        switch name {
        case "value":
            value = try a.tensor(name)!
        case "value_float":
            value = try Tensor(shape: [], floats: [try a.float(name)!])
        case "value_floats":
            let floats = try a.floats(name)!
            value = try Tensor(shape: [floats.count], floats: floats)
        case "value_int":
            value = try Tensor(shape: [], int64s: [Int64(try a.int(name)!)])
        case "value_ints":
            let ints = try a.ints(name)!
            value = try Tensor(shape: [ints.count], int64s: ints.map(Int64.init))
        case "value_string", "value_strings", "sparse_value":
            throw LatheError(.unsupportedOp, "\(c.label): attribute '\(name)' is not supported (Lathe has no string or sparse tensors)")
        default:
            throw LatheError.invalid("\(c.label): unknown attribute '\(name)'")
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] { [value.type] }

    func fold(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [Tensor]? { [value] }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws { copyElements(value, to: outputs[0]!) }
}

/// ConstantOfShape: a tensor of a plan-time int64 shape filled with the one-element `value`
/// (default float32 0); the dtype is the value's.
final class ConstantOfShapeKernel: Kernel {
    /// The one-element fill value; its dtype is the output's.
    let value: Tensor

    init(_ c: NodeContext) throws {
        try c.expectInputs(1...1)
        if let v = try c.attributes.tensor("value") {
            guard v.count == 1 else {
                throw LatheError.invalid("\(c.label): attribute 'value' must hold one element, got shape \(v.shape)")
            }
            value = v
        } else {
            value = try Tensor(shape: [1], floats: [0])
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let shape = try planTimeInts(try requirePresent(inputs[0], "input"), constants[0], "input (the output shape)")
        guard shape.allSatisfy({ $0 >= 0 }) else { throw LatheError.shape("output shape \(shape) has a negative dimension") }
        return [TensorType(value.dtype, shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let y = outputs[0]!
        func fill<T>(_: T.Type) {
            y.bytes.assumingMemoryBound(to: T.self).update(repeating: value.bytes.load(as: T.self), count: y.count)
        }
        switch value.dtype.size {
        case 1: fill(UInt8.self)
        case 2: fill(UInt16.self)
        case 4: fill(UInt32.self)
        default: fill(UInt64.self)
        }
    }
}
