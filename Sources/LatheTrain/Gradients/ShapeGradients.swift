import LatheCore

/// Gradients of the data-movement ops Flatten, Reshape, Identity, Transpose and Concat, and of
/// Dropout (whose training-mode forward draws the mask).
enum ShapeGradients {
    static func register(into registry: OpRegistry) throws {
        for op in ["Flatten", "Reshape", "Identity"] {
            try registry.setGradient(opType: op) { _ in CopyGradient() }
        }
        try registry.setGradient(opType: "Transpose") { c in TransposeGradient(perm: try c.attributes.ints("perm")) }
        try registry.setGradient(opType: "Concat") { c in
            guard let axis = try c.attributes.int("axis") else { throw LatheError.invalid("\(c.label): attribute 'axis' is required") }
            return ConcatGradient(axis: axis)
        }
        try registry.setGradient(opType: "Dropout") { c in DropoutGradient(seedAttribute: try c.attributes.int("seed")) }
    }
}

/// Ops that keep the elements in order (`Y` is `X` with another shape): `dX += dY`.
final class CopyGradient: GradientKernel {
    func backward(_ p: BackwardPass) throws {
        guard let dx = slot(p.inputGradients, 0) else { return }
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        guard dy.count == dx.count else { throw LatheError.shape("dY has \(dy.count) elements, X has \(dx.count)") }
        addInPlace(dx.floats, dy.floats, dx.count)
    }
}

/// Transpose: `dX[i] += dY[perm(i)]`, i.e. dY transposed back by the inverse permutation.
final class TransposeGradient: GradientKernel {
    /// The forward permutation; nil reverses the axes.
    let perm: [Int]?

    /// Per output axis, the input stride it walks, for the last input shape.
    let walks = ShapeCache<[Int]>()

    init(perm: [Int]?) { self.perm = perm }

    func backward(_ p: BackwardPass) throws {
        guard let dx = slot(p.inputGradients, 0) else { return }
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        let rank = dx.rank
        // Output axis d walks input axis perm[d]; visit dY in order and scatter into dX.
        let walk = try walks.value(for: dx.shape) {
            let perm = self.perm ?? Array((0..<rank).reversed())
            guard perm.count == rank else { throw LatheError.invalid("perm \(perm) does not fit rank \(rank)") }
            let inStrides = ShapeMath.strides(dx.shape)
            return perm.map { inStrides[$0] }
        }
        let outShape = dy.shape
        let count = dy.count
        if count == 0 { return }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: rank) { index in
            index.initialize(repeating: 0)
            let g = dy.floats, d = dx.floats
            var offset = 0
            for o in 0..<count {
                d[offset] += g[o]
                var a = rank - 1
                while a >= 0 {
                    index[a] += 1
                    offset += walk[a]
                    if index[a] < outShape[a] { break }
                    offset -= walk[a] * outShape[a]
                    index[a] = 0
                    a -= 1
                }
            }
        }
    }
}

/// Concat: each input's gradient is its slice of dY along `axis`.
final class ConcatGradient: GradientKernel {
    let axis: Int

    init(axis: Int) { self.axis = axis }

    func backward(_ p: BackwardPass) throws {
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        let a = try ShapeMath.axis(axis, rank: dy.rank)
        let outer = dy.shape[..<a].reduce(1, *), inner = dy.shape[(a + 1)...].reduce(1, *)
        let rowLength = dy.shape[a] * inner
        var start = 0
        for (i, input) in p.inputs.enumerated() {
            guard let input else { continue }
            let width = input.shape[a] * inner
            if let dx = slot(p.inputGradients, i) {
                for o in 0..<outer { addInPlace(dx.floats + o * width, dy.floats + o * rowLength + start, width) }
            }
            start += width
        }
    }
}

/// Dropout in training mode: `Y = X · mask / (1 − ratio)` with a Bernoulli(1 − ratio) mask drawn from the
/// step's seed (or the node's `seed` attribute mixed with the step); backward `dX += dY · mask / (1 − ratio)`.
final class DropoutGradient: GradientKernel {
    /// The node's `seed` attribute, if any.
    let seedAttribute: Int?
    /// The mask scale of the last pass (every element rewritten each pass), reused at the same shape.
    let reused = ReusedTensors()

    init(seedAttribute: Int?) { self.seedAttribute = seedAttribute }

    func trainingForward(_ inputs: [Tensor?], _ outputs: [Tensor?], seed: UInt64) throws -> [Tensor]? {
        let x = try floatTensor(inputs, 0, "data"), y = try floatTensor(outputs, 0, "output")
        var ratio: Float = 0.5
        if inputs.count > 1, let r = inputs[1] {
            ratio = r.dtype == .float64 ? Float(r.bytes.load(as: Double.self)) : r.floats[0]
        }
        guard ratio >= 0 && ratio < 1 else { throw LatheError.invalid("Dropout ratio must be in [0, 1), got \(ratio)") }
        let scale = try reused.tensor(0, count: x.count, shape: x.shape)
        var rng = SeededGenerator(seed: seedAttribute.map { mix(UInt64(bitPattern: Int64($0)), seed) } ?? seed)
        let keep = 1 / (1 - ratio), s = scale.floats
        for i in 0..<x.count { s[i] = rng.nextUnitFloat() < ratio ? 0 : keep }
        for i in 0..<x.count { y.floats[i] = x.floats[i] * s[i] }
        if outputs.count > 1, let mask = outputs[1] {
            let m = mask.bytes.assumingMemoryBound(to: UInt8.self)
            for i in 0..<x.count { m[i] = s[i] == 0 ? 0 : 1 }
        }
        return reused.first(1)
    }

    func backward(_ p: BackwardPass) throws {
        guard let dx = slot(p.inputGradients, 0) else { return }
        let dy = try floatTensor(p.outputGradients, 0, "dY").floats, d = dx.floats
        if let scale = p.saved.first {
            let s = scale.floats
            for i in 0..<dx.count { d[i] += dy[i] * s[i] }
        } else {
            addInPlace(d, dy, dx.count)   // inference-mode forward: identity
        }
    }
}
