import LatheCore

/// Slice and Expand, for every dtype. Their index inputs (starts/ends/axes/steps, the Expand shape)
/// must be known when the model is planned, as PyTorch and tf2onnx exports have them.
enum SlicingOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Slice") { try SliceKernel($0) }
        try registry.add("Expand", since: 8) { c in try c.expectInputs(2...2); return ExpandKernel() }
    }
}

/// Integer values of an index input (int32 or int64) that must be constant at plan time.
func planTimeIndices(_ type: TensorType?, _ constant: Tensor?, _ what: String) throws -> [Int]? {
    guard let type else { return nil }
    guard type.dtype == .int64 || type.dtype == .int32 else { throw LatheError.dtype("\(what) must be int32 or int64, got \(type.dtype)") }
    guard type.shape.count == 1 else { throw LatheError.shape("\(what) must be 1-D, got shape \(type.shape)") }
    guard let constant else {
        throw LatheError(.unsupportedOp, "\(what) must be known when the model is planned (an initializer, a Constant, or computed from shapes)")
    }
    return constant.intArray()
}

/// Slice: per-axis `start:end:step` with numpy clamping (opset 1–9 from attributes, ≥ 10 from inputs).
final class SliceKernel: Kernel {
    /// Opset < 10 attributes.
    let attributeStarts: [Int]?, attributeEnds: [Int]?, attributeAxes: [Int]?

    init(_ c: NodeContext) throws {
        if c.opset < 10 {
            try c.expectInputs(1...1)
            guard let s = try c.attributes.ints("starts"), let e = try c.attributes.ints("ends") else {
                throw LatheError.invalid("\(c.label): attributes 'starts' and 'ends' are required before opset 10")
            }
            attributeStarts = s; attributeEnds = e; attributeAxes = try c.attributes.ints("axes")
        } else {
            try c.expectInputs(3...5)
            attributeStarts = nil; attributeEnds = nil; attributeAxes = nil
        }
    }

    /// Per-dimension (start, step, count) of the selection.
    struct Selection { var start: [Int], step: [Int], count: [Int] }

    func selection(_ inputs: [TensorType?], _ constants: [Tensor?]) throws -> (TensorType, Selection) {
        let x = try requirePresent(inputs[0], "data")
        let rank = x.shape.count
        let starts: [Int], ends: [Int], axesIn: [Int]?, stepsIn: [Int]?
        if let attributeStarts, let attributeEnds {
            starts = attributeStarts; ends = attributeEnds; axesIn = attributeAxes; stepsIn = nil
        } else {
            starts = try planTimeIndices(inputs[1], constants[1], "starts")!
            ends = try planTimeIndices(inputs[2], constants[2], "ends")!
            axesIn = inputs.count > 3 ? try planTimeIndices(inputs[3], constants[3], "axes") : nil
            stepsIn = inputs.count > 4 ? try planTimeIndices(inputs[4], constants[4], "steps") : nil
        }
        let axes = try normalizedAxes(axesIn ?? Array(0..<starts.count), rank: rank, what: "axes")
        let steps = stepsIn ?? [Int](repeating: 1, count: starts.count)
        guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
            throw LatheError.invalid("starts, ends, axes and steps must have equal lengths (\(starts.count), \(ends.count), \(axes.count), \(steps.count))")
        }
        var sel = Selection(start: [Int](repeating: 0, count: rank), step: [Int](repeating: 1, count: rank), count: x.shape)
        for (i, axis) in axes.enumerated() {
            let dim = x.shape[axis], step = steps[i]
            guard step != 0 else { throw LatheError.invalid("steps must not be 0") }
            func clamp(_ v: Int, _ lo: Int, _ hi: Int) -> Int { min(max(v, lo), hi) }
            var s = starts[i] < 0 ? starts[i] + dim : starts[i]
            var e = ends[i] < 0 ? ends[i] + dim : ends[i]
            if step > 0 {
                s = clamp(s, 0, dim); e = clamp(e, 0, dim)
                sel.count[axis] = e > s ? (e - s + step - 1) / step : 0
            } else {
                s = clamp(s, -1, dim - 1); e = clamp(e, -1, dim - 1)
                sel.count[axis] = s > e ? (s - e - step - 1) / -step : 0
            }
            sel.start[axis] = s
            sel.step[axis] = step
        }
        return (TensorType(x.dtype, sel.count), sel)
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        [try selection(inputs, constants).0]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let (_, sel) = try selection(inputs.map { $0?.type }, inputs)
        let size = x.dtype.size, rank = x.rank
        let strides = ShapeMath.strides(x.shape)
        let total = y.count
        guard total > 0 else { return }
        if rank == 0 { y.bytes.copyMemory(from: x.bytes, byteCount: size); return }
        let inner = sel.count[rank - 1], innerStep = sel.step[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var out = 0
        while out < total {
            var offset = 0
            for d in 0..<(rank - 1) { offset += (sel.start[d] + index[d] * sel.step[d]) * strides[d] }
            let base = offset + sel.start[rank - 1]
            if innerStep == 1 {
                (y.bytes + out * size).copyMemory(from: x.bytes + base * size, byteCount: inner * size)
            } else {
                for j in 0..<inner { (y.bytes + (out + j) * size).copyMemory(from: x.bytes + (base + j * innerStep) * size, byteCount: size) }
            }
            out += inner
            var d = rank - 2
            while d >= 0 { index[d] += 1; if index[d] < sel.count[d] { break }; index[d] = 0; d -= 1 }
        }
    }
}

/// Expand: broadcast the input to `broadcast(input.shape, shape)`.
final class ExpandKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "input")
        let shape = try planTimeInts(try requirePresent(inputs[1], "shape"), constants[1], "shape")
        return [TensorType(x.dtype, try ShapeMath.broadcast(x.shape, shape))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let size = x.dtype.size, rank = y.rank, total = y.count
        guard total > 0 else { return }
        let padded = [Int](repeating: 1, count: rank - x.rank) + x.shape
        let xs = ShapeMath.strides(padded)
        let srcStride = (0..<rank).map { padded[$0] == 1 ? 0 : xs[$0] }
        var index = [Int](repeating: 0, count: rank)
        for out in 0..<total {
            var offset = 0
            for d in 0..<rank { offset += index[d] * srcStride[d] }
            (y.bytes + out * size).copyMemory(from: x.bytes + offset * size, byteCount: size)
            var d = rank - 1
            while d >= 0 { index[d] += 1; if index[d] < y.shape[d] { break }; index[d] = 0; d -= 1 }
        }
    }
}
