#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// InstanceNormalization, LayerNormalization and GroupNormalization (float32): normalisation by
/// statistics computed from the input itself.
enum StatisticsNormalizationOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("InstanceNormalization") { try InstanceNormalizationKernel($0) }
        try registry.add("LayerNormalization", since: 17) { try LayerNormalizationKernel($0) }
        try registry.add("GroupNormalization", since: 18) { try GroupNormalizationKernel($0) }
    }
}

/// Reads `epsilon` (default 1e-5), refusing a negative or non-finite value.
private func readEpsilon(_ c: NodeContext) throws -> Float {
    let epsilon = try c.attributes.float("epsilon", 1e-5)
    guard epsilon >= 0, epsilon.isFinite else {
        throw LatheError.invalid("\(c.label): epsilon must be a finite non-negative value, got \(epsilon)")
    }
    return epsilon
}

/// Mean and `1 / sqrt(variance + epsilon)` of `count` contiguous values, accumulated in double precision.
@inline(__always) func meanAndInverseDeviation(_ x: UnsafePointer<Float>, _ count: Int, epsilon: Float) -> (Float, Float) {
    var sum = 0.0
    for i in 0..<count { sum += Double(x[i]) }
    let mean = count > 0 ? sum / Double(count) : 0
    var squares = 0.0
    for i in 0..<count { let d = Double(x[i]) - mean; squares += d * d }
    let variance = count > 0 ? squares / Double(count) : 0
    return (Float(mean), Float(1 / (variance + Double(epsilon)).squareRoot()))
}

/// InstanceNormalization (opsets 1–22): per sample and channel, `y = scale[c]·(x − mean)/sqrt(var + ε) + B[c]`.
final class InstanceNormalizationKernel: Kernel {
    /// Added to the variance.
    let epsilon: Float

    init(_ c: NodeContext) throws {
        try c.expectInputs(3...3)
        epsilon = try readEpsilon(c)
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "input", .float32)
        guard x.shape.count >= 3 else { throw LatheError.shape("input must have rank >= 3 (N, C, D...), got shape \(x.shape)") }
        for (slot, name) in [(1, "scale"), (2, "B")] {
            let t = try require(inputs[slot], name, .float32)
            guard t.shape == [x.shape[1]] else {
                throw LatheError.shape("\(name) must have shape [\(x.shape[1])] (the channels of input \(x.shape)), got \(t.shape)")
            }
        }
        return [x]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let scale = inputs[1]!.floats, bias = inputs[2]!.floats
        let channels = x.shape[1], size = x.shape.dropFirst(2).reduce(1, *)
        for plane in 0..<x.shape[0] * channels {
            let c = plane % channels
            let xp = x.floats + plane * size, yp = y.floats + plane * size
            let (mean, inverse) = meanAndInverseDeviation(xp, size, epsilon: epsilon)
            let a = scale[c] * inverse, b = bias[c] - mean * a
            for i in 0..<size { yp[i] = xp[i] * a + b }
        }
    }
}

/// LayerNormalization (opset 17): statistics over axes `axis...`, then `Scale` and `B` broadcast to
/// those axes. Optional outputs Mean and InvStdDev have X's leading dimensions followed by ones.
final class LayerNormalizationKernel: Kernel {
    /// First normalised axis (may be negative).
    let axis: Int
    /// Added to the variance.
    let epsilon: Float
    /// Which output slots are wired.
    let outputPresent: [Bool]

    init(_ c: NodeContext) throws {
        try c.expectInputs(2...3)
        guard c.outputPresent.count <= 3, c.outputPresent.first == true else {
            throw LatheError.invalid("\(c.label): takes output Y and optional Mean and InvStdDev")
        }
        axis = try c.attributes.int("axis", -1)
        epsilon = try readEpsilon(c)
        let stash = try c.attributes.int("stash_type", 1)
        guard stash == 1 else {
            throw LatheError(.unsupportedOp, "\(c.label): stash_type \(stash) is not supported; statistics are computed in float32 (stash_type 1)")
        }
        outputPresent = c.outputPresent
    }

    /// The first normalised axis, normalised against X's rank.
    func normalizedAxis(_ rank: Int) throws -> Int { try ShapeMath.axis(axis, rank: rank, op: "LayerNormalization") }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32)
        let a = try normalizedAxis(x.shape.count)
        let normalized = Array(x.shape[a...])
        for (slot, name) in [(1, "Scale"), (2, "B")] where slot < inputs.count {
            guard let t = inputs[slot] else { continue }
            _ = try require(t, name, .float32)
            guard (try? ShapeMath.broadcast(t.shape, normalized)) == normalized, t.shape.count <= normalized.count else {
                throw LatheError.shape("\(name) of shape \(t.shape) does not broadcast to the normalised shape \(normalized)")
            }
        }
        let statistics = TensorType(.float32, Array(x.shape[..<a]) + Array(repeating: 1, count: x.shape.count - a))
        return outputPresent.enumerated().map { slot, present in present ? (slot == 0 ? x : statistics) : nil }
    }

    /// `t` broadcast to `count` values over the normalised axes (materialised once per run when needed).
    private func expanded(_ t: Tensor, to normalized: [Int]) throws -> Tensor {
        if t.shape.reduce(1, *) == normalized.reduce(1, *) { return t }
        let out = try Tensor(.float32, shape: normalized)
        let padded = Array(repeating: 1, count: normalized.count - t.rank) + t.shape
        let strides = ShapeMath.strides(padded)
        var index = [Int](repeating: 0, count: normalized.count)
        for i in 0..<out.count {
            var offset = 0
            for d in 0..<normalized.count where padded[d] != 1 { offset += index[d] * strides[d] }
            out.floats[i] = t.floats[offset]
            var d = normalized.count - 1
            while d >= 0 { index[d] += 1; if index[d] < normalized[d] { break }; index[d] = 0; d -= 1 }
        }
        return out
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let a = try normalizedAxis(x.rank)
        let normalized = Array(x.shape[a...])
        let size = normalized.reduce(1, *), rows = x.shape[..<a].reduce(1, *)
        let scale = try expanded(inputs[1]!, to: normalized)
        let bias = try (inputs.count > 2 ? inputs[2] : nil).map { try expanded($0, to: normalized) }
        let meanOut = outputs.count > 1 ? outputs[1] : nil, inverseOut = outputs.count > 2 ? outputs[2] : nil
        for row in 0..<rows {
            let xp = x.floats + row * size, yp = y.floats + row * size
            let (mean, inverse) = meanAndInverseDeviation(xp, size, epsilon: epsilon)
            let s = scale.floats
            if let b = bias?.floats {
                for i in 0..<size { yp[i] = (xp[i] - mean) * inverse * s[i] + b[i] }
            } else {
                for i in 0..<size { yp[i] = (xp[i] - mean) * inverse * s[i] }
            }
            meanOut?.floats[row] = mean
            inverseOut?.floats[row] = inverse
        }
    }
}

/// GroupNormalization: channels split into `num_groups` groups, each normalised per sample.
/// Opset 18: `scale` and `bias` hold one value per group; opset 21: one per channel.
final class GroupNormalizationKernel: Kernel {
    /// Number of channel groups.
    let groups: Int
    /// Added to the variance.
    let epsilon: Float
    /// Whether scale and bias are per channel (opset 21) rather than per group (opset 18).
    let perChannel: Bool

    init(_ c: NodeContext) throws {
        try c.expectInputs(3...3)
        guard let groups = try c.attributes.int("num_groups") else {
            throw LatheError.invalid("\(c.label): attribute 'num_groups' is required")
        }
        guard groups >= 1 else { throw LatheError.invalid("\(c.label): num_groups must be >= 1, got \(groups)") }
        self.groups = groups
        // stash_type only sets the precision of the statistics, which are accumulated in double anyway.
        epsilon = try readEpsilon(c)
        perChannel = c.opset >= 21
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32)
        guard x.shape.count >= 3 else { throw LatheError.shape("X must have rank >= 3 (N, C, D...), got shape \(x.shape)") }
        guard x.shape[1] % groups == 0 else {
            throw LatheError.shape("X has \(x.shape[1]) channels, not divisible by num_groups \(groups)")
        }
        let expected = perChannel ? x.shape[1] : groups
        for (slot, name) in [(1, "scale"), (2, "bias")] {
            let t = try require(inputs[slot], name, .float32)
            guard t.shape == [expected] else {
                throw LatheError.shape("\(name) must have shape [\(expected)] (\(perChannel ? "channels" : "num_groups")), got \(t.shape)")
            }
        }
        return [x]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let scale = inputs[1]!.floats, bias = inputs[2]!.floats
        let channels = x.shape[1], size = x.shape.dropFirst(2).reduce(1, *)
        let perGroup = channels / groups, groupSize = perGroup * size
        for block in 0..<x.shape[0] * groups {
            let g = block % groups
            let xp = x.floats + block * groupSize, yp = y.floats + block * groupSize
            let (mean, inverse) = meanAndInverseDeviation(xp, groupSize, epsilon: epsilon)
            for c in 0..<perGroup {
                let p = perChannel ? g * perGroup + c : g
                let a = scale[p] * inverse, b = bias[p] - mean * a
                let xc = xp + c * size, yc = yp + c * size
                for i in 0..<size { yc[i] = xc[i] * a + b }
            }
        }
    }
}
