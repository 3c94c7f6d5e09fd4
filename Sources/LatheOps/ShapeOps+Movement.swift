import LatheCore

// Ops that rearrange elements (Transpose, Concat, Gather). They move whole elements through an unsigned
// integer type as wide as the dtype, so one kernel serves every dtype.

/// Transpose: output dim `i` is input dim `perm[i]`; `perm` defaults to reversing the dims.
final class TransposeKernel: Kernel {
    /// The `perm` attribute; nil reverses the dims.
    let perm: [Int]?

    init(_ c: NodeContext) throws {
        try c.expectInputs(1...1)
        perm = try c.attributes.ints("perm")
        if let perm, perm.sorted() != Array(0..<perm.count) {
            throw LatheError.invalid("\(c.label): perm \(perm) is not a permutation of 0..<\(perm.count)")
        }
    }

    /// The permutation for an input of `rank`.
    func permutation(rank: Int) throws -> [Int] {
        guard let perm else { return Array((0..<rank).reversed()) }
        guard perm.count == rank else { throw LatheError.shape("perm \(perm) has \(perm.count) entries for an input of rank \(rank)") }
        return perm
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "data")
        return [TensorType(x.dtype, try permutation(rank: x.shape.count).map { x.shape[$0] })]
    }

    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel {
        guard let x = inputs[0] else { return self }
        return PlannedTransposeKernel(TransposeLayout(inputShape: x.shape, perm: try permutation(rank: x.shape.count)))
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!
        transpose(x, outputs[0]!, TransposeLayout(inputShape: x.shape, perm: try permutation(rank: x.rank)))
    }
}

/// Transpose with its layout worked out for the plan's input shape.
final class PlannedTransposeKernel: Kernel {
    /// Output shape and strides for the plan's input shape.
    let layout: TransposeLayout

    init(_ layout: TransposeLayout) { self.layout = layout }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "data")
        return [TensorType(x.dtype, layout.outShape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws { transpose(inputs[0]!, outputs[0]!, layout) }
}

/// The output shape of a transpose and, per output axis, the input stride it walks.
struct TransposeLayout: Sendable {
    let outShape: [Int]
    let strides: [Int]

    init(inputShape: [Int], perm: [Int]) {
        let inStrides = ShapeMath.strides(inputShape)
        outShape = perm.map { inputShape[$0] }
        strides = perm.map { inStrides[$0] }
    }
}

/// Transposes `x` into `y` by moving elements as an unsigned integer of the dtype's width.
func transpose(_ x: Tensor, _ y: Tensor, _ layout: TransposeLayout) {
    func run<T>(_: T.Type) {
        transpose(x.bytes.assumingMemoryBound(to: T.self), y.bytes.assumingMemoryBound(to: T.self), layout)
    }
    switch x.dtype.size {
    case 1: run(UInt8.self)
    case 2: run(UInt16.self)
    case 4: run(UInt32.self)
    default: run(UInt64.self)
    }
}

/// Writes the transpose of a row-major `x` into `y`, walking the output in order.
func transpose<T>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ layout: TransposeLayout) {
    let outShape = layout.outShape, strides = layout.strides
    let rank = outShape.count
    let n = outShape.reduce(1, *)
    if n == 0 { return }
    if rank == 0 { y[0] = x[0]; return }
    let inner = outShape[rank - 1], innerStride = strides[rank - 1]
    withUnsafeTemporaryAllocation(of: Int.self, capacity: rank) { index in
        for d in 0..<rank { index[d] = 0 }
        var offIn = 0, offOut = 0
        while offOut < n {
            for j in 0..<inner { y[offOut + j] = x[offIn + j * innerStride] }
            offOut += inner
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                offIn += strides[d]
                if index[d] < outShape[d] { break }
                offIn -= strides[d] * outShape[d]
                index[d] = 0
                d -= 1
            }
            if d < 0 { break }
        }
    }
}

/// Concat along one axis (negative allowed); the other dims must match. Before opset 4 the axis defaults to 1.
final class ConcatKernel: Kernel {
    /// The concatenation axis, possibly negative.
    let axis: Int

    init(_ c: NodeContext) throws {
        guard !c.inputPresent.isEmpty else { throw LatheError.invalid("\(c.label) needs at least one input") }
        if c.opset < 4 {
            axis = try c.attributes.int("axis", 1)
        } else {
            guard let axis = try c.attributes.int("axis") else { throw LatheError.invalid("\(c.label): attribute 'axis' is required") }
            self.axis = axis
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let types = try inputs.enumerated().map { try requirePresent($0.element, "inputs[\($0.offset)]") }
        let first = types[0]
        let a = try ShapeMath.axis(axis, rank: first.shape.count, op: "Concat")
        var shape = first.shape
        shape[a] = 0
        for (i, t) in types.enumerated() {
            guard t.dtype == first.dtype else { throw LatheError.dtype("inputs[\(i)] is \(t.dtype) but inputs[0] is \(first.dtype)") }
            guard t.shape.count == first.shape.count,
                  t.shape.indices.allSatisfy({ $0 == a || t.shape[$0] == first.shape[$0] }) else {
                throw LatheError.shape("inputs[\(i)] has shape \(t.shape), incompatible with inputs[0] \(first.shape) for concatenation on axis \(a)")
            }
            shape[a] += t.shape[a]
        }
        return [TensorType(first.dtype, shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let y = outputs[0]!
        let a = axis < 0 ? axis + y.rank : axis
        let outer = y.shape[..<a].reduce(1, *)
        let innerBytes = y.shape[(a + 1)...].reduce(1, *) * y.dtype.size
        let rowBytes = y.shape[a] * innerBytes
        var offset = 0
        for case let x? in inputs {
            let blockBytes = x.shape[a] * innerBytes
            if blockBytes > 0 {
                for o in 0..<outer {
                    (y.bytes + o * rowBytes + offset).copyMemory(from: x.bytes + o * blockBytes, byteCount: blockBytes)
                }
            }
            offset += blockBytes
        }
    }
}

/// Gather along one axis with int32/int64 indices of any rank; negative indices count from the end.
final class GatherKernel: Kernel {
    /// The indexed axis of `data`, possibly negative.
    let axis: Int

    init(_ c: NodeContext) throws {
        try c.expectInputs(2...2)
        axis = try c.attributes.int("axis", 0)
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let data = try requirePresent(inputs[0], "data")
        let indices = try require(inputs[1], "indices", .int64, .int32)
        guard !data.shape.isEmpty else { throw LatheError.shape("data must have rank >= 1, got a scalar") }
        let a = try ShapeMath.axis(axis, rank: data.shape.count, op: "Gather")
        return [TensorType(data.dtype, Array(data.shape[..<a]) + indices.shape + Array(data.shape[(a + 1)...]))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let data = inputs[0]!, indices = inputs[1]!, y = outputs[0]!
        let a = axis < 0 ? axis + data.rank : axis
        let geometry = GatherGeometry(outer: data.shape[..<a].reduce(1, *), axisSize: data.shape[a],
                                      inner: data.shape[(a + 1)...].reduce(1, *), count: indices.count)
        func run<T, I: BinaryInteger>(_: T.Type, _: I.Type) throws {
            try gather(data.bytes.assumingMemoryBound(to: T.self), indices.bytes.assumingMemoryBound(to: I.self),
                       y.bytes.assumingMemoryBound(to: T.self), geometry)
        }
        func run<T>(_ t: T.Type) throws {
            if indices.dtype == .int64 { try run(t, Int64.self) } else { try run(t, Int32.self) }
        }
        switch data.dtype.size {
        case 1: try run(UInt8.self)
        case 2: try run(UInt16.self)
        case 4: try run(UInt32.self)
        default: try run(UInt64.self)
        }
    }
}

/// Sizes of a gather: data viewed as `[outer, axisSize, inner]`, `count` indices.
struct GatherGeometry {
    let outer: Int, axisSize: Int, inner: Int, count: Int
}

/// `y[o, i, :] = x[o, indices[i], :]`, after checking every index is in `[-axisSize, axisSize)`.
func gather<T, I: BinaryInteger>(_ x: UnsafePointer<T>, _ indices: UnsafePointer<I>, _ y: UnsafeMutablePointer<T>,
                                 _ g: GatherGeometry) throws {
    for i in 0..<g.count {
        let k = Int(indices[i])
        guard k >= -g.axisSize && k < g.axisSize else {
            throw LatheError.invalid("index \(k) out of range [-\(g.axisSize), \(g.axisSize - 1)] for an axis of size \(g.axisSize)")
        }
    }
    if g.inner == 0 { return }
    for o in 0..<g.outer {
        let src = x + o * g.axisSize * g.inner
        var dst = y + o * g.count * g.inner
        for i in 0..<g.count {
            var k = Int(indices[i])
            if k < 0 { k += g.axisSize }
            dst.update(from: src + k * g.inner, count: g.inner)
            dst += g.inner
        }
    }
}
