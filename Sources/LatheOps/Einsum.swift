import CLatheShims
import LatheCore

/// Einsum (opset 12, float32 and float64): diagonals and lone labels are reduced per operand, operands are contracted
/// pairwise by permuting into `[batch, kept, contracted]` blocks and one matrix product (`sgemm`, or `cblas_dgemm` for float64) per batch entry, and the
/// result is summed and permuted into the output's label order.
enum EinsumOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Einsum", since: 12) { try EinsumKernel($0) }
    }
}

/// A parsed Einsum equation: integer labels per operand, ellipsis dimensions as negative labels.
struct EinsumEquation: Sendable {
    /// Each operand's terms: a letter's label is its Unicode value; `nil` marks the ellipsis.
    let operands: [[Int?]]
    /// The output terms (explicit or implied).
    let output: [Int?]
    /// Whether the equation had `->`.
    let explicit: Bool

    /// Parses `"ij,jk->ik"` (spaces ignored).
    /// - Throws: `.invalidArgument` naming the equation for a malformed one.
    init(_ text: String) throws {
        let equation = text.filter { $0 != " " }
        func terms(_ part: Substring) throws -> [Int?] {
            var result: [Int?] = [], dots = 0
            for ch in part {
                if ch == "." { dots += 1; continue }
                if dots != 0 {
                    guard dots == 3 else { throw LatheError.invalid("Einsum equation '\(text)': malformed ellipsis") }
                    result.append(nil); dots = 0
                }
                guard ch.isASCII, ch.isLetter, let v = ch.asciiValue else {
                    throw LatheError.invalid("Einsum equation '\(text)': unexpected character '\(ch)'")
                }
                result.append(Int(v))
            }
            if dots != 0 {
                guard dots == 3 else { throw LatheError.invalid("Einsum equation '\(text)': malformed ellipsis") }
                result.append(nil)
            }
            guard result.filter({ $0 == nil }).count <= 1 else {
                throw LatheError.invalid("Einsum equation '\(text)': more than one ellipsis in a term")
            }
            return result
        }
        var sides = [Substring(equation)]
        if let dash = equation.firstIndex(of: "-") {
            let after = equation.index(after: dash)
            guard after < equation.endIndex, equation[after] == ">" else {
                throw LatheError.invalid("Einsum equation '\(text)': '-' must begin '->'")
            }
            sides = [equation[..<dash], equation[equation.index(after: after)...]]
            guard !sides[1].contains("-") else { throw LatheError.invalid("Einsum equation '\(text)' has more than one '->'") }
        }
        operands = try sides[0].split(separator: ",", omittingEmptySubsequences: false).map(terms)
        explicit = sides.count == 2
        if explicit {
            output = try terms(sides[1])
            let known = Set(operands.joined().compactMap { $0 })
            for case let label? in output where !known.contains(label) {
                throw LatheError.invalid("Einsum equation '\(text)': output label '\(Character(UnicodeScalar(UInt8(label))))' appears in no input")
            }
            let outLabels = output.compactMap { $0 }
            guard Set(outLabels).count == outLabels.count else {
                throw LatheError.invalid("Einsum equation '\(text)': an output label repeats")
            }
        } else {
            var counts: [Int: Int] = [:]
            for case let label? in operands.joined() { counts[label, default: 0] += 1 }
            let once = counts.filter { $0.value == 1 }.keys.sorted()
            let hasEllipsis = operands.contains { $0.contains(nil) }
            output = (hasEllipsis ? [nil] : []) + once.map { Optional($0) }
        }
    }
}

/// An operand during evaluation: dense row-major values with one label per axis.
struct EinsumOperand<Element: EinsumElement> {
    var values: [Element]
    var labels: [Int]
    var dims: [Int]
}

/// Gathers `source` into the axes `dims`, reading axis `i` with element stride `strides[i]` (0 broadcasts),
/// and sums over the extra axes `reduceDims` read with `reduceStrides`.
func stridedGather<Element: EinsumElement>(_ source: UnsafePointer<Element>, dims: [Int], strides: [Int],
                                           reduceDims: [Int] = [], reduceStrides: [Int] = []) -> [Element] {
    let count = dims.reduce(1, *), reduceCount = reduceDims.reduce(1, *)
    var result = [Element](repeating: 0, count: count)
    if count == 0 { return result }
    // Offsets of every reduced position, computed once.
    var reduceOffsets = [Int](repeating: 0, count: reduceCount)
    var index = [Int](repeating: 0, count: reduceDims.count)
    for r in 0..<reduceCount {
        var offset = 0
        for d in 0..<reduceDims.count { offset += index[d] * reduceStrides[d] }
        reduceOffsets[r] = offset
        var d = reduceDims.count - 1
        while d >= 0 { index[d] += 1; if index[d] < reduceDims[d] { break }; index[d] = 0; d -= 1 }
    }
    index = [Int](repeating: 0, count: dims.count)
    var offset = 0
    result.withUnsafeMutableBufferPointer { out in
        reduceOffsets.withUnsafeBufferPointer { reduce in
            for i in 0..<count {
                var sum: Element = 0
                for r in reduce { sum += source[offset + r] }
                out[i] = sum
                var d = dims.count - 1
                while d >= 0 {
                    index[d] += 1
                    offset += strides[d]
                    if index[d] < dims[d] { break }
                    offset -= index[d] * strides[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
    return result
}

/// Einsum: any equation over float32 or float64 operands (all of one type), with `...` broadcasting.
final class EinsumKernel: Kernel {
    let equation: EinsumEquation
    /// The equation text, for messages.
    let text: String

    init(_ c: NodeContext) throws {
        guard let text = try c.attributes.string("equation") else {
            throw LatheError.invalid("\(c.label): attribute 'equation' is required")
        }
        self.text = text
        equation = try EinsumEquation(text)
        guard equation.operands.count == c.inputPresent.count else {
            throw LatheError.invalid("\(c.label): equation '\(text)' has \(equation.operands.count) operands but the node has \(c.inputPresent.count) inputs")
        }
    }

    /// Label of ellipsis dimension `k` counted from the right (negative, so never a letter).
    private func ellipsisLabel(_ k: Int) -> Int { -1 - k }

    /// Each operand's concrete labels, the size of every label, and the output labels.
    func resolve(_ shapes: [[Int]]) throws -> (labels: [[Int]], sizes: [Int: Int], output: [Int]) {
        var labels: [[Int]] = [], sizes: [Int: Int] = [:], ellipsisRank = 0
        for (terms, shape) in zip(equation.operands, shapes) {
            let named = terms.filter { $0 != nil }.count
            let hasEllipsis = terms.contains(nil)
            guard hasEllipsis ? shape.count >= named : shape.count == named else {
                throw LatheError.shape("Einsum '\(text)': operand term of \(terms.count) labels does not fit input shape \(shape)")
            }
            let span = shape.count - named
            ellipsisRank = max(ellipsisRank, hasEllipsis ? span : 0)
            var operandLabels: [Int] = []
            for term in terms {
                if let term { operandLabels.append(term) } else {
                    for k in stride(from: span - 1, through: 0, by: -1) { operandLabels.append(ellipsisLabel(k)) }
                }
            }
            for (label, size) in zip(operandLabels, shape) {
                if let known = sizes[label], known != size {
                    if label < 0 && (known == 1 || size == 1) { sizes[label] = max(known, size); continue }
                    throw LatheError.shape("Einsum '\(text)': label sizes disagree (\(known) vs \(size)) across inputs \(shapes)")
                }
                sizes[label] = size
            }
            labels.append(operandLabels)
        }
        var output: [Int] = []
        for term in equation.output {
            if let term { output.append(term) } else {
                for k in stride(from: ellipsisRank - 1, through: 0, by: -1) { output.append(ellipsisLabel(k)) }
            }
        }
        if equation.explicit && !equation.output.contains(nil) && ellipsisRank > 0 {
            // Ellipsis dimensions not named in the output are summed, as the spec allows only when all are 1.
            for (shape, ls) in zip(shapes, labels) {
                for (l, s) in zip(ls, shape) where l < 0 && s != 1 {
                    throw LatheError.shape("Einsum '\(text)': the output omits '...' but its dimensions are not all 1 in \(shape)")
                }
            }
        }
        return (labels, sizes, output)
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let types = try inputs.enumerated().map { try require($1, "Inputs[\($0)]", .float32, .float64) }
        let dtype = types[0].dtype
        for (i, type) in types.enumerated() where type.dtype != dtype {
            throw LatheError.dtype("Einsum: Inputs[\(i)] is \(type.dtype) but Inputs[0] is \(dtype)")
        }
        let r = try resolve(types.map(\.shape))
        return [TensorType(dtype, r.output.map { r.sizes[$0]! })]
    }

    /// Reduces an operand's repeated labels to their diagonal and sums labels no one else needs.
    private func simplify<E>(_ operand: EinsumOperand<E>, keep: Set<Int>) -> EinsumOperand<E> {
        let strides = ShapeMath.strides(operand.dims)
        var labels: [Int] = [], dims: [Int] = [], gatherStrides: [Int] = []
        var reduceDims: [Int] = [], reduceStrides: [Int] = []
        for (axis, label) in operand.labels.enumerated() {
            if let i = labels.firstIndex(of: label) { gatherStrides[i] += strides[axis]; continue }
            labels.append(label); dims.append(operand.dims[axis]); gatherStrides.append(strides[axis])
        }
        var keptLabels: [Int] = [], keptDims: [Int] = [], keptStrides: [Int] = []
        for (i, label) in labels.enumerated() {
            if keep.contains(label) {
                keptLabels.append(label); keptDims.append(dims[i]); keptStrides.append(gatherStrides[i])
            } else {
                reduceDims.append(dims[i]); reduceStrides.append(gatherStrides[i])
            }
        }
        if keptLabels == operand.labels { return operand }
        let values = operand.values.withUnsafeBufferPointer {
            stridedGather($0.baseAddress!, dims: keptDims, strides: keptStrides, reduceDims: reduceDims, reduceStrides: reduceStrides)
        }
        return EinsumOperand(values: values, labels: keptLabels, dims: keptDims)
    }

    /// `operand`'s values laid out in `order` with sizes from `sizes` (size-1 axes broadcast).
    private func arrange<E>(_ operand: EinsumOperand<E>, _ order: [Int], _ sizes: [Int: Int]) -> [E] {
        if order == operand.labels && order.map({ sizes[$0]! }) == operand.dims { return operand.values }
        let strides = ShapeMath.strides(operand.dims)
        let dims = order.map { sizes[$0]! }
        let gatherStrides = order.map { label -> Int in
            guard let axis = operand.labels.firstIndex(of: label), operand.dims[axis] != 1 else { return 0 }
            return strides[axis]
        }
        return operand.values.withUnsafeBufferPointer { stridedGather($0.baseAddress!, dims: dims, strides: gatherStrides) }
    }

    /// Contracts two operands over their shared labels not in `needed`.
    private func contract<E>(_ a: EinsumOperand<E>, _ b: EinsumOperand<E>, needed: Set<Int>, sizes: [Int: Int]) -> EinsumOperand<E> {
        let shared = a.labels.filter { b.labels.contains($0) }
        let batch = shared.filter { needed.contains($0) }
        let summed = shared.filter { !needed.contains($0) }
        let aOnly = a.labels.filter { !b.labels.contains($0) }
        let bOnly = b.labels.filter { !a.labels.contains($0) }
        let size = { (labels: [Int]) in labels.reduce(1) { $0 * sizes[$1]! } }
        let batchCount = size(batch), m = size(aOnly), n = size(bOnly), k = size(summed)
        let left = arrange(a, batch + aOnly + summed, sizes)
        let right = arrange(b, batch + summed + bOnly, sizes)
        var result = [E](repeating: 0, count: batchCount * m * n)
        if k == 0 || result.isEmpty { return EinsumOperand(values: result, labels: batch + aOnly + bOnly, dims: (batch + aOnly + bOnly).map { sizes[$0]! }) }
        left.withUnsafeBufferPointer { l in
            right.withUnsafeBufferPointer { r in
                result.withUnsafeMutableBufferPointer { out in
                    for p in 0..<batchCount {
                        E.multiply(m: m, n: n, k: k, a: l.baseAddress! + p * m * k, b: r.baseAddress! + p * k * n,
                                   c: out.baseAddress! + p * m * n)
                    }
                }
            }
        }
        let labels = batch + aOnly + bOnly
        return EinsumOperand(values: result, labels: labels, dims: labels.map { sizes[$0]! })
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let tensors = inputs.map { $0! }
        if tensors[0].dtype == .float64 {
            try evaluate(tensors, outputs[0]!, as: Double.self)
        } else {
            try evaluate(tensors, outputs[0]!, as: Float.self)
        }
    }

    /// Evaluates the equation over `tensors` holding `E` elements into `output`.
    private func evaluate<E: EinsumElement>(_ tensors: [Tensor], _ output: Tensor, as: E.Type) throws {
        let r = try resolve(tensors.map(\.shape))
        var operands = zip(tensors, r.labels).map { t, labels in
            EinsumOperand(values: Array(UnsafeBufferPointer(start: t.bytes.assumingMemoryBound(to: E.self), count: t.count)),
                          labels: labels, dims: t.shape)
        }
        /// Labels still needed after operand `i`: the output's and those of operands other than `i`.
        func needed(excluding skip: Set<Int>) -> Set<Int> {
            var set = Set(r.output)
            for (j, operand) in operands.enumerated() where !skip.contains(j) { set.formUnion(operand.labels) }
            return set
        }
        for i in operands.indices {
            operands[i] = simplify(operands[i], keep: needed(excluding: [i]))
        }
        while operands.count > 1 {
            let keep = needed(excluding: [0, 1])
            let merged = contract(operands[0], operands[1], needed: keep, sizes: r.sizes)
            operands.removeFirst(2)
            operands.insert(simplify(merged, keep: keep), at: 0)
        }
        let last = simplify(operands[0], keep: Set(r.output))
        let values = arrange(last, r.output, r.sizes)
        values.withUnsafeBufferPointer {
            output.bytes.assumingMemoryBound(to: E.self).update(from: $0.baseAddress!, count: output.count)
        }
    }
}

/// The element types Einsum evaluates in: each brings its own row-major matrix product.
protocol EinsumElement: BinaryFloatingPoint {
    /// `c[m×n] = a[m×k] · b[k×n]`, all row-major and packed.
    static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Self>, b: UnsafePointer<Self>, c: UnsafeMutablePointer<Self>)
}

extension Float: EinsumElement {
    static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n, beta: 0, c: c, ldc: n)
    }
}

extension Double: EinsumElement {
    static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, b: UnsafePointer<Double>, c: UnsafeMutablePointer<Double>) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(n), blasint(k), 1,
                    a, blasint(k), b, blasint(n), 0, c, blasint(n))
    }
}
