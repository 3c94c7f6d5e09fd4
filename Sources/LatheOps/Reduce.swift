#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// Reductions over axes (ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp), ArgMax/ArgMin,
/// TopK and CumSum.
enum ReduceOps {
    /// Adds every op of the family to `registry`.
    static func register(into registry: OpRegistry) throws {
        for reduction in ReduceKernel.Reduction.allCases {
            try registry.add(reduction.rawValue) { try ReduceKernel($0, reduction) }
        }
        try registry.add("ArgMax") { try ArgExtremumKernel($0, largest: true) }
        try registry.add("ArgMin") { try ArgExtremumKernel($0, largest: false) }
        try registry.add("TopK") { try TopKKernel($0) }
        try registry.add("CumSum", since: 11) { try CumSumKernel($0) }
    }
}

/// The reduced axes of a node: from the `axes` attribute (ReduceSum before opset 13, the others before 18)
/// or from the optional second input, with `noop_with_empty_axes` deciding what empty axes mean.
struct ReductionAxes {
    let attributeAxes: [Int]?
    let fromInput: Bool
    let noopWhenEmpty: Bool

    init(_ c: NodeContext, inputSince: Int) throws {
        fromInput = c.opset >= inputSince
        try c.expectInputs(fromInput ? 1...2 : 1...1)
        attributeAxes = fromInput ? nil : try c.attributes.ints("axes")
        noopWhenEmpty = try fromInput && c.attributes.int("noop_with_empty_axes", 0) != 0
    }

    /// Whether each dimension of a rank-`rank` input is reduced.
    func reduced(rank: Int, _ inputs: [TensorType?], _ constants: [Tensor?]) throws -> [Bool] {
        var axes = attributeAxes ?? []
        if fromInput, inputs.count > 1, inputs[1] != nil {
            axes = try planTimeIndices(inputs[1], constants[1], "axes") ?? []
        }
        if axes.isEmpty { return [Bool](repeating: !noopWhenEmpty, count: rank) }
        var reduced = [Bool](repeating: false, count: rank)
        for a in try normalizedAxes(axes, rank: rank, what: "axes") { reduced[a] = true }
        return reduced
    }
}

/// Reduce*: combines the elements along the reduced axes; `keepdims` keeps them as size-1 dimensions.
final class ReduceKernel: Kernel {
    /// The reductions, named by op type.
    enum Reduction: String, CaseIterable, Sendable {
        case sum = "ReduceSum", mean = "ReduceMean", max = "ReduceMax", min = "ReduceMin", prod = "ReduceProd"
        case l1 = "ReduceL1", l2 = "ReduceL2", sumSquare = "ReduceSumSquare", logSum = "ReduceLogSum"
        case logSumExp = "ReduceLogSumExp"
    }

    let reduction: Reduction
    let axes: ReductionAxes
    let keepDims: Bool

    init(_ c: NodeContext, _ reduction: Reduction) throws {
        self.reduction = reduction
        axes = try ReductionAxes(c, inputSince: reduction == .sum ? 13 : 18)
        keepDims = try c.attributes.int("keepdims", 1) != 0
    }

    /// Dtypes the reduction accepts.
    var dtypes: [DType] {
        switch reduction {
        case .max, .min: [.float32, .float64, .int64, .int32, .bool]
        case .sum, .prod, .sumSquare, .l1, .mean: [.float32, .float64, .int64, .int32]
        default: [.float32, .float64]
        }
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        guard let x = inputs[0] else { throw LatheError.invalid("missing required input data") }
        guard dtypes.contains(x.dtype) else { throw LatheError.dtype("data must be \(dtypes.map(\.description).joined(separator: " or ")), got \(x.dtype)") }
        let reduced = try axes.reduced(rank: x.shape.count, inputs, constants)
        var shape: [Int] = []
        for (d, r) in zip(x.shape, reduced) {
            if !r { shape.append(d) } else if keepDims { shape.append(1) }
        }
        return [TensorType(x.dtype, shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let reduced = try axes.reduced(rank: x.rank, inputs.map { $0?.type }, inputs)
        let kept = zip(x.shape, reduced).map { $1 ? 1 : $0 }
        let count = zip(x.shape, reduced).reduce(1) { $0 * ($1.1 ? $1.0 : 1) }
        switch x.dtype {
        case .float32: reduceFloats(x, y, kept: kept, count: count, as: Float.self)
        case .float64: reduceFloats(x, y, kept: kept, count: count, as: Double.self)
        case .int64: reduceIntegers(x, y, kept: kept, count: count, as: Int64.self)
        case .int32: reduceIntegers(x, y, kept: kept, count: count, as: Int32.self)
        default:
            // bool: max is "any", min is "all".
            reduceLoop(x, y, kept: kept, initial: UInt8(reduction == .min ? 1 : 0), reduction == .min ? { min($0, $1) } : { max($0, $1) })
        }
    }

    private func reduceFloats<T: LibmFloat>(_ x: Tensor, _ y: Tensor, kept: [Int], count: Int, as: T.Type) {
        let out = y.bytes.assumingMemoryBound(to: T.self), n = y.count
        switch reduction {
        case .sum, .mean, .logSum: reduceLoop(x, y, kept: kept, initial: T(0), +)
        case .max: reduceLoop(x, y, kept: kept, initial: -T.infinity) { a, b in b.isNaN || b > a ? b : a }
        case .min: reduceLoop(x, y, kept: kept, initial: T.infinity) { a, b in b.isNaN || b < a ? b : a }
        case .prod: reduceLoop(x, y, kept: kept, initial: T(1), *)
        case .l1: reduceLoop(x, y, kept: kept, initial: T(0)) { $0 + abs($1) }
        case .l2, .sumSquare: reduceLoop(x, y, kept: kept, initial: T(0)) { $0 + $1 * $1 }
        case .logSumExp:
            reduceLoop(x, y, kept: kept, initial: -T.infinity) { a, b in b.isNaN || b > a ? b : a }
            var sums = [T](repeating: 0, count: n)
            sums.withUnsafeMutableBufferPointer { s in
                let px = x.bytes.assumingMemoryBound(to: T.self)
                broadcastRuns(x.shape, [kept]) { start, run, offsets, steps in
                    for j in 0..<run {
                        let o = offsets[0] + j * steps[0]
                        let shift = out[o].isFinite ? out[o] : 0
                        s[o] += T.libmExp(px[start + j] - shift)
                    }
                }
                for o in 0..<n { out[o] = T.libmLog(s[o]) + (out[o].isFinite ? out[o] : 0) }
            }
        }
        switch reduction {
        case .mean: for o in 0..<n { out[o] /= T(count) }
        case .l2: for o in 0..<n { out[o] = out[o].squareRoot() }
        case .logSum: for o in 0..<n { out[o] = T.libmLog(out[o]) }
        default: break
        }
    }

    private func reduceIntegers<T: FixedWidthInteger & SignedInteger>(_ x: Tensor, _ y: Tensor, kept: [Int], count: Int, as: T.Type) {
        switch reduction {
        case .max: reduceLoop(x, y, kept: kept, initial: T.min) { max($0, $1) }
        case .min: reduceLoop(x, y, kept: kept, initial: T.max) { min($0, $1) }
        case .prod: reduceLoop(x, y, kept: kept, initial: T(1)) { $0 &* $1 }
        case .l1: reduceLoop(x, y, kept: kept, initial: T(0)) { $0 &+ ($1 < 0 ? 0 &- $1 : $1) }
        case .sumSquare: reduceLoop(x, y, kept: kept, initial: T(0)) { $0 &+ $1 &* $1 }
        default: reduceLoop(x, y, kept: kept, initial: T(0)) { $0 &+ $1 }
        }
        if reduction == .mean, count > 0 {
            let out = y.bytes.assumingMemoryBound(to: T.self)
            for o in 0..<y.count { out[o] /= T(count) }
        }
    }
}

/// Folds every element of `x` into the output element it reduces to: `y` holds one element per position
/// of `kept` (x's shape with reduced dimensions set to 1), starting from `initial`.
@inline(__always)
func reduceLoop<T>(_ x: Tensor, _ y: Tensor, kept: [Int], initial: T, _ combine: (T, T) -> T) {
    let px = x.bytes.assumingMemoryBound(to: T.self), py = y.bytes.assumingMemoryBound(to: T.self)
    for o in 0..<y.count { py[o] = initial }
    broadcastRuns(x.shape, [kept]) { start, run, offsets, steps in
        let base = offsets[0], step = steps[0]
        if step == 0 {
            var acc = py[base]
            for j in 0..<run { acc = combine(acc, px[start + j]) }
            py[base] = acc
        } else {
            for j in 0..<run { py[base + j * step] = combine(py[base + j * step], px[start + j]) }
        }
    }
}

/// Splits a shape around `axis` into (outer, axis length, inner) element counts.
func aroundAxis(_ shape: [Int], _ axis: Int) -> (outer: Int, length: Int, inner: Int) {
    (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
}

/// ArgMax/ArgMin: int64 index of the first (or, with `select_last_index`, last) extremum along `axis`.
final class ArgExtremumKernel: Kernel {
    let largest: Bool
    let axis: Int
    let keepDims: Bool
    let selectLast: Bool

    init(_ c: NodeContext, largest: Bool) throws {
        try c.expectInputs(1...1)
        self.largest = largest
        axis = try c.attributes.int("axis", 0)
        keepDims = try c.attributes.int("keepdims", 1) != 0
        selectLast = try c.attributes.int("select_last_index", 0) != 0
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "data", .float32, .int64, .int32)
        let a = try ShapeMath.axis(axis, rank: x.shape.count, op: "axis")
        guard x.shape[a] > 0 else { throw LatheError.shape("cannot take an extremum over an empty axis \(axis) of shape \(x.shape)") }
        var shape = x.shape
        if keepDims { shape[a] = 1 } else { shape.remove(at: a) }
        return [TensorType(.int64, shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!.int64s
        let (outer, length, inner) = aroundAxis(x.shape, try ShapeMath.axis(axis, rank: x.rank))
        func run<T: Comparable>(_: T.Type) {
            let p = x.bytes.assumingMemoryBound(to: T.self)
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * length * inner + i
                    var best = p[base], bestIndex = 0
                    for k in 1..<max(length, 1) {
                        let v = p[base + k * inner]
                        let better = largest ? (selectLast ? v >= best : v > best) : (selectLast ? v <= best : v < best)
                        if better { best = v; bestIndex = k }
                    }
                    y[o * inner + i] = Int64(bestIndex)
                }
            }
        }
        switch x.dtype {
        case .float32: run(Float.self)
        case .int64: run(Int64.self)
        default: run(Int32.self)
        }
    }
}

/// TopK: the k largest (or smallest) elements along `axis` and their int64 indices, always sorted (which
/// `sorted = 0` permits); equal values
/// keep their original order (lower index first), as ONNX Runtime does. k is an attribute before opset 10,
/// then an input known at plan time.
final class TopKKernel: Kernel {
    let attributeK: Int?
    let axis: Int
    let largest: Bool

    init(_ c: NodeContext) throws {
        if c.opset < 10 {
            try c.expectInputs(1...1)
            guard let k = try c.attributes.int("k") else { throw LatheError.invalid("\(c.label): attribute 'k' is required before opset 10") }
            attributeK = k
        } else {
            try c.expectInputs(2...2)
            attributeK = nil
        }
        axis = try c.attributes.int("axis", -1)
        largest = try c.attributes.int("largest", 1) != 0
    }

    func k(_ inputs: [TensorType?], _ constants: [Tensor?]) throws -> Int {
        if let attributeK { return attributeK }
        let values = try planTimeIndices(inputs[1], constants[1], "K")!
        guard values.count == 1 else { throw LatheError.shape("K must hold one value, got \(values.count)") }
        return values[0]
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32, .int64, .int32)
        let a = try ShapeMath.axis(axis, rank: x.shape.count, op: "axis")
        let k = try k(inputs, constants)
        guard k >= 0 && k <= x.shape[a] else { throw LatheError.invalid("K = \(k) is outside 0...\(x.shape[a]) for axis \(axis) of shape \(x.shape)") }
        var shape = x.shape
        shape[a] = k
        return [TensorType(x.dtype, shape), TensorType(.int64, shape)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!
        let k = try k(inputs.map { $0?.type }, inputs)
        let (outer, length, inner) = aroundAxis(x.shape, try ShapeMath.axis(axis, rank: x.rank))
        let values = outputs[0], indices = outputs[1]
        func run<T: Comparable>(_: T.Type) {
            let p = x.bytes.assumingMemoryBound(to: T.self)
            let pv = values?.bytes.assumingMemoryBound(to: T.self), pi = indices?.int64s
            var order = [Int](repeating: 0, count: length)
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * length * inner + i
                    for j in 0..<length { order[j] = j }
                    order.sort { a, b in
                        let va = p[base + a * inner], vb = p[base + b * inner]
                        if va == vb { return a < b }
                        return largest ? va > vb : va < vb
                    }
                    for j in 0..<k {
                        let out = o * k * inner + j * inner + i
                        pv?[out] = p[base + order[j] * inner]
                        pi?[out] = Int64(order[j])
                    }
                }
            }
        }
        switch x.dtype {
        case .float32: run(Float.self)
        case .int64: run(Int64.self)
        default: run(Int32.self)
        }
    }
}

/// CumSum: running sums along the axis given by a scalar input, optionally exclusive and/or reversed
/// (float32, float64, int64, int32).
final class CumSumKernel: Kernel {
    let exclusive: Bool
    let reverse: Bool

    init(_ c: NodeContext) throws {
        try c.expectInputs(2...2)
        exclusive = try c.attributes.int("exclusive", 0) != 0
        reverse = try c.attributes.int("reverse", 0) != 0
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "x", .float32, .float64, .int64, .int32)
        let axis = try require(inputs[1], "axis", .int64, .int32)
        guard axis.count == 1, axis.shape.count <= 1 else { throw LatheError.shape("axis must be a scalar, got shape \(axis.shape)") }
        if let value = constants[1] { _ = try ShapeMath.axis(value.intArray()[0], rank: x.shape.count, op: "axis") }
        return [x]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        guard x.rank > 0 else { copyElements(x, to: y); return }
        let (outer, length, inner) = aroundAxis(x.shape, try ShapeMath.axis(inputs[1]!.intArray()[0], rank: x.rank, op: "axis"))
        func run<T: AdditiveArithmetic>(_: T.Type, _ add: (T, T) -> T) {
            let px = x.bytes.assumingMemoryBound(to: T.self), py = y.bytes.assumingMemoryBound(to: T.self)
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc = T.zero
                    for step in 0..<length {
                        let k = reverse ? length - 1 - step : step
                        let at = (o * length + k) * inner + i
                        if exclusive { py[at] = acc; acc = add(acc, px[at]) } else { acc = add(acc, px[at]); py[at] = acc }
                    }
                }
            }
        }
        switch x.dtype {
        case .float32: run(Float.self, +)
        case .float64: run(Double.self, +)
        case .int64: run(Int64.self, &+)
        default: run(Int32.self, &+)
        }
    }
}
