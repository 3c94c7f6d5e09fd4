import LatheCore

/// Data movement and generation for every dtype: Split, Pad (constant/reflect/edge/wrap), Tile, Range;
/// and GlobalMaxPool (float32).
enum DataOps {
    /// Adds every op of the family to `registry`.
    static func register(into registry: OpRegistry) throws {
        try registry.add("Split", since: 2) { try SplitKernel($0) }
        try registry.add("Pad", since: 2) { try PadKernel($0) }
        try registry.add("Tile", since: 6) { c in try c.expectInputs(2...2); return TileKernel() }
        try registry.add("Range", since: 11) { c in try c.expectInputs(3...3); return RangeKernel() }
        try registry.add("GlobalMaxPool") { c in try c.expectInputs(1...1); return GlobalMaxPoolKernel() }
    }
}

/// Split: cuts the input along `axis` into one piece per output. Piece lengths come from the `split`
/// attribute (before opset 13) or input (from 13), else from `num_outputs` (opset 18) rounding up with a
/// shorter last piece, else equal parts.
final class SplitKernel: Kernel {
    let axis: Int
    let outputCount: Int
    let attributeSplit: [Int]?
    let numOutputs: Int?
    let splitFromInput: Bool

    init(_ c: NodeContext) throws {
        splitFromInput = c.opset >= 13
        try c.expectInputs(splitFromInput ? 1...2 : 1...1)
        axis = try c.attributes.int("axis", 0)
        outputCount = c.outputPresent.count
        guard outputCount > 0 else { throw LatheError.invalid("\(c.label) needs at least one output") }
        attributeSplit = splitFromInput ? nil : try c.attributes.ints("split")
        numOutputs = c.opset >= 18 ? try c.attributes.int("num_outputs") : nil
        if let numOutputs, numOutputs != outputCount {
            throw LatheError.invalid("\(c.label): num_outputs = \(numOutputs) but the node has \(outputCount) outputs")
        }
        if let attributeSplit, attributeSplit.count != outputCount {
            throw LatheError.invalid("\(c.label): split has \(attributeSplit.count) entries for \(outputCount) outputs")
        }
    }

    /// The length of each piece along the split axis of length `dim`.
    func lengths(dim: Int, _ inputs: [TensorType?], _ constants: [Tensor?]) throws -> [Int] {
        var split = attributeSplit
        if splitFromInput, inputs.count > 1, inputs[1] != nil {
            split = try planTimeIndices(inputs[1], constants[1], "split")
            if numOutputs != nil { throw LatheError.invalid("split input and num_outputs attribute are exclusive") }
        }
        if let split {
            guard split.count == outputCount else { throw LatheError.invalid("split has \(split.count) entries for \(outputCount) outputs") }
            guard split.allSatisfy({ $0 >= 0 }), split.reduce(0, +) == dim else {
                throw LatheError.shape("split \(split) does not add up to the axis length \(dim)")
            }
            return split
        }
        if numOutputs != nil {
            let chunk = (dim + outputCount - 1) / outputCount
            let lengths = (0..<outputCount).map { max(0, min(chunk, dim - $0 * chunk)) }
            return lengths
        }
        guard dim % outputCount == 0 else {
            throw LatheError.shape("axis length \(dim) cannot be split into \(outputCount) equal parts")
        }
        return [Int](repeating: dim / outputCount, count: outputCount)
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "input")
        let a = try ShapeMath.axis(axis, rank: x.shape.count, op: "axis")
        return try lengths(dim: x.shape[a], inputs, constants).map { length in
            var shape = x.shape
            shape[a] = length
            return TensorType(x.dtype, shape)
        }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!
        let a = try ShapeMath.axis(axis, rank: x.rank)
        let (outer, length, inner) = aroundAxis(x.shape, a)
        let size = x.dtype.size
        var start = 0
        for case let (piece, y) in zip(try lengths(dim: length, inputs.map { $0?.type }, inputs), outputs) {
            if let y, piece > 0 {
                let block = piece * inner * size
                for o in 0..<outer {
                    (y.bytes + o * block).copyMemory(from: x.bytes + ((o * length + start) * inner) * size, byteCount: block)
                }
            }
            start += piece
        }
    }
}

/// Pad: grows (or, with negative pads, crops) each axis; new elements are a constant, the mirrored
/// interior (`reflect`), the nearest edge (`edge`) or the opposite side (`wrap`, opset 19).
/// Pads, the constant and the mode are attributes before opset 11; pads (and from opset 18 axes) are
/// inputs known at plan time after, and the constant an optional scalar input.
final class PadKernel: Kernel {
    enum Mode: String, Sendable { case constant, reflect, edge, wrap }
    let mode: Mode
    let attributePads: [Int]?
    let attributeValue: Float

    init(_ c: NodeContext) throws {
        let name = try c.attributes.string("mode", "constant")
        guard let mode = Mode(rawValue: name), mode != .wrap || c.opset >= 19 else {
            throw LatheError.invalid("\(c.label): unknown mode '\(name)'")
        }
        self.mode = mode
        if c.opset < 11 {
            try c.expectInputs(1...1)
            guard let pads = try c.attributes.ints(c.opset < 2 ? "paddings" : "pads") else {
                throw LatheError.invalid("\(c.label): attribute 'pads' is required before opset 11")
            }
            attributePads = pads
            attributeValue = try c.attributes.float("value", 0)
        } else {
            try c.expectInputs(c.opset >= 18 ? 2...4 : 2...3)
            attributePads = nil
            attributeValue = 0
        }
    }

    /// Per dimension, the (begin, end) pad amounts.
    func pads(rank: Int, _ inputs: [TensorType?], _ constants: [Tensor?]) throws -> [(Int, Int)] {
        let flat: [Int], axes: [Int]
        if let attributePads {
            flat = attributePads
            axes = Array(0..<rank)
        } else {
            flat = try planTimeIndices(inputs[1], constants[1], "pads")!
            if inputs.count > 3, inputs[3] != nil {
                axes = try normalizedAxes(try planTimeIndices(inputs[3], constants[3], "axes")!, rank: rank, what: "axes")
            } else {
                axes = Array(0..<rank)
            }
        }
        guard flat.count == 2 * axes.count else {
            throw LatheError.invalid("pads has \(flat.count) values, expected \(2 * axes.count) (begin and end for each of \(axes.count) axes)")
        }
        var result = [(Int, Int)](repeating: (0, 0), count: rank)
        for (i, a) in axes.enumerated() { result[a] = (flat[i], flat[i + axes.count]) }
        return result
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "data")
        if inputs.count > 2, let value = inputs[2] {
            guard value.dtype == x.dtype else { throw LatheError.dtype("constant_value must be \(x.dtype), got \(value.dtype)") }
            guard value.count <= 1 else { throw LatheError.shape("constant_value must be a scalar, got shape \(value.shape)") }
        }
        let pads = try pads(rank: x.shape.count, inputs, constants)
        let shape = try zip(x.shape, pads).map { dim, pad in
            let size = dim + pad.0 + pad.1
            guard size >= 0 else { throw LatheError.shape("pads \(pad) crop more than the dimension \(dim)") }
            let kept = dim + min(pad.0, 0) + min(pad.1, 0)
            guard kept > 0 || (pad.0 <= 0 && pad.1 <= 0) || mode == .constant else {
                throw LatheError.shape("\(mode.rawValue) padding cannot grow a dimension that is empty after cropping")
            }
            return size
        }
        return [TensorType(x.dtype, shape)]
    }

    /// The input coordinate that output coordinate `o` reads along a dimension of length `n` padded by
    /// `pad`, or -1 for the constant. Negative pads crop first; the other modes then read the cropped range,
    /// as ONNX Runtime does.
    func source(_ o: Int, pad: (Int, Int), length n: Int) -> Int {
        let lo = max(-pad.0, 0), m = n - lo - max(-pad.1, 0)
        let i = o - max(pad.0, 0)
        if i >= 0 && i < m { return lo + i }
        switch mode {
        case .constant: return -1
        case .edge: return lo + (i < 0 ? 0 : m - 1)
        case .wrap: return lo + ((i % m) + m) % m
        case .reflect:
            guard m > 1 else { return lo }
            let period = 2 * (m - 1)
            let r = ((i % period) + period) % period
            return lo + (r < m ? r : period - r)
        }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let pads = try pads(rank: x.rank, inputs.map { $0?.type }, inputs)
        let rank = x.rank, total = y.count
        guard total > 0 else { return }
        if rank == 0 { copyElements(x, to: y); return }
        let tables = (0..<rank).map { d in (0..<y.shape[d]).map { source($0, pad: pads[d], length: x.shape[d]) } }
        let strides = ShapeMath.strides(x.shape)
        let valueInput = inputs.count > 2 ? inputs[2] : nil
        func run<T>(_: T.Type, _ fill: T) {
            let px = x.bytes.assumingMemoryBound(to: T.self), py = y.bytes.assumingMemoryBound(to: T.self)
            let inner = y.shape[rank - 1], last = tables[rank - 1]
            var index = [Int](repeating: 0, count: rank)
            var out = 0
            while out < total {
                var base = 0, outside = false
                for d in 0..<(rank - 1) {
                    let s = tables[d][index[d]]
                    if s < 0 { outside = true; break }
                    base += s * strides[d]
                }
                for j in 0..<inner {
                    let s = last[j]
                    py[out + j] = outside || s < 0 ? fill : px[base + s]
                }
                out += inner
                var d = rank - 2
                while d >= 0 { index[d] += 1; if index[d] < y.shape[d] { break }; index[d] = 0; d -= 1 }
            }
        }
        func value<T>(_: T.Type, _ fromAttribute: T) -> T {
            guard let valueInput, valueInput.count == 1 else { return fromAttribute }
            return valueInput.bytes.assumingMemoryBound(to: T.self)[0]
        }
        let v = attributeValue
        switch x.dtype {
        case .float32: run(Float.self, value(Float.self, v))
        case .float64: run(Double.self, value(Double.self, Double(v)))
        case .int64: run(Int64.self, value(Int64.self, Int64(exactly: v.rounded(.towardZero)) ?? 0))
        case .int32: run(Int32.self, value(Int32.self, Int32(exactly: v.rounded(.towardZero)) ?? 0))
        case .int8: run(Int8.self, value(Int8.self, Int8(exactly: v.rounded(.towardZero)) ?? 0))
        case .uint8: run(UInt8.self, value(UInt8.self, UInt8(exactly: v.rounded(.towardZero)) ?? 0))
        case .bool: run(UInt8.self, value(UInt8.self, v != 0 ? 1 : 0))
        }
    }
}

/// Tile: repeats the input `repeats[d]` times along each dimension (repeats known at plan time).
final class TileKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try requirePresent(inputs[0], "input")
        let repeats = try planTimeInts(try requirePresent(inputs[1], "repeats"), constants[1], "repeats")
        guard repeats.count == x.shape.count else {
            throw LatheError.shape("repeats has \(repeats.count) entries for an input of rank \(x.shape.count)")
        }
        guard repeats.allSatisfy({ $0 >= 0 }) else { throw LatheError.invalid("repeats must not be negative, got \(repeats)") }
        return [TensorType(x.dtype, zip(x.shape, repeats).map(*))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let rank = x.rank, size = x.dtype.size, total = y.count
        guard total > 0 else { return }
        if rank == 0 { copyElements(x, to: y); return }
        let rowLength = x.shape[rank - 1], rowBytes = rowLength * size
        let copies = y.shape[rank - 1] / rowLength
        let strides = ShapeMath.strides(x.shape)
        var index = [Int](repeating: 0, count: rank)
        var out = 0
        while out < total {
            var base = 0
            for d in 0..<(rank - 1) { base += (index[d] % x.shape[d]) * strides[d] }
            for c in 0..<copies { (y.bytes + (out + c * rowLength) * size).copyMemory(from: x.bytes + base * size, byteCount: rowBytes) }
            out += y.shape[rank - 1]
            var d = rank - 2
            while d >= 0 { index[d] += 1; if index[d] < y.shape[d] { break }; index[d] = 0; d -= 1 }
        }
    }
}

/// Range: `start, start + delta, ...` up to but excluding `limit` (float32, float64, int64 or int32 scalars).
/// The output length depends on the values, so they must be constants or graph inputs (on whose fed
/// values the plan is specialised); values computed inside the graph are refused.
final class RangeKernel: Kernel {
    /// Number of elements: `max(ceil((limit - start) / delta), 0)`.
    static func count(_ values: [Tensor], dtype: DType) throws -> Int {
        if dtype == .float32 || dtype == .float64 {
            // In double precision, as ONNX Runtime counts.
            let start = values[0].doubleValue, limit = values[1].doubleValue, delta = values[2].doubleValue
            guard delta != 0 else { throw LatheError.invalid("delta must not be 0") }
            let n = ((limit - start) / delta).rounded(.up)
            guard n.isFinite, n < 0x1p53 else {
                throw LatheError.invalid("range from \(start) to \(limit) by \(delta) does not have a finite length")
            }
            return max(Int(n), 0)
        }
        let start = values[0].intArray()[0], limit = values[1].intArray()[0], delta = values[2].intArray()[0]
        guard delta != 0 else { throw LatheError.invalid("delta must not be 0") }
        let span = limit - start
        let n = span / delta + (span % delta != 0 && (span > 0) == (delta > 0) ? 1 : 0)
        return max(n, 0)
    }

    /// The output length depends on all three values: graph inputs fed to them are specialised on.
    var valueDependentInputs: Set<Int> { [0, 1, 2] }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let start = try require(inputs[0], "start", .float32, .float64, .int64, .int32)
        for (i, name) in ["start", "limit", "delta"].enumerated() {
            let t = try require(inputs[i], name, start.dtype)
            guard t.count == 1, t.shape.count <= 1 else { throw LatheError.shape("\(name) must be a scalar, got shape \(t.shape)") }
        }
        guard let s = constants[0], let l = constants[1], let d = constants[2] else {
            throw LatheError(.unsupportedOp, "start, limit and delta must be known when the model is planned (the output length depends on them; computed values are not)")
        }
        return [TensorType(start.dtype, [try Self.count([s, l, d], dtype: start.dtype)])]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let y = outputs[0]!
        switch y.dtype {
        case .float32:
            let start = inputs[0]!.floats[0], delta = inputs[2]!.floats[0], p = y.floats
            for i in 0..<y.count { p[i] = start + Float(i) * delta }
        case .float64:
            let start = inputs[0]!.doubleValue, delta = inputs[2]!.doubleValue
            let p = y.bytes.assumingMemoryBound(to: Double.self)
            for i in 0..<y.count { p[i] = start + Double(i) * delta }
        case .int64:
            let start = inputs[0]!.int64s[0], delta = inputs[2]!.int64s[0], p = y.int64s
            for i in 0..<y.count { p[i] = start &+ Int64(i) &* delta }
        default:
            let start = Int32(inputs[0]!.intArray()[0]), delta = Int32(inputs[2]!.intArray()[0])
            let p = y.bytes.assumingMemoryBound(to: Int32.self)
            for i in 0..<y.count { p[i] = start &+ Int32(truncatingIfNeeded: i) &* delta }
        }
    }
}

private extension Tensor {
    /// The first element of a float32 or float64 tensor, as a Double.
    var doubleValue: Double {
        dtype == .float64 ? bytes.assumingMemoryBound(to: Double.self)[0] : Double(floats[0])
    }
}

/// GlobalMaxPool: the maximum over all spatial positions of each (batch, channel), keeping size-1 spatial dims.
final class GlobalMaxPoolKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32)
        guard x.shape.count >= 3 else { throw LatheError.shape("X must have rank >= 3 (N, C, spatial...), got shape \(x.shape)") }
        guard x.shape.dropFirst(2).allSatisfy({ $0 > 0 }) else { throw LatheError.shape("X has an empty spatial dimension: \(x.shape)") }
        return [TensorType(.float32, Array(x.shape.prefix(2)) + [Int](repeating: 1, count: x.shape.count - 2))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let y = outputs[0]!
        reduceLoop(inputs[0]!, y, kept: y.shape, initial: -Float.infinity) { a, b in b.isNaN || b > a ? b : a }
    }
}
