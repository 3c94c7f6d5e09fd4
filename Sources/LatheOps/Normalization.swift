#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// BatchNormalization (inference form, float32).
enum NormalizationOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("BatchNormalization") { try BatchNormalizationKernel($0) }
    }
}

/// BatchNormalization (opsets 1–21) in inference form over channel axis 1:
/// `Y = (X − mean) / sqrt(var + epsilon) · scale + B`.
///
/// Training mode (`training_mode = 1`, or before opset 14 any wired statistics output) is refused.
/// From opset 14, wired `running_mean`/`running_var` outputs receive the unchanged input statistics.
final class BatchNormalizationKernel: Kernel {
    /// Added to the variance before the square root.
    let epsilon: Float
    /// Which output slots are wired.
    let outputPresent: [Bool]

    init(_ c: NodeContext) throws {
        try c.expectInputs(5...5)
        epsilon = try c.attributes.float("epsilon", 1e-5)
        guard epsilon >= 0, epsilon.isFinite else {
            throw LatheError.invalid("\(c.label): epsilon must be a finite non-negative value, got \(epsilon)")
        }
        guard c.outputPresent.first == true else { throw LatheError.invalid("\(c.label): output Y must be wired") }
        if c.opset >= 14 {
            if try c.attributes.int("training_mode", 0) != 0 {
                throw LatheError(.unsupportedOp, "\(c.label): training_mode=1 (batch statistics) is not supported; only inference is")
            }
            guard c.outputPresent.count <= 3 else {
                throw LatheError.invalid("\(c.label): BatchNormalization has at most 3 outputs, got \(c.outputPresent.count)")
            }
        } else {
            if c.outputPresent.dropFirst().contains(true) {
                throw LatheError(.unsupportedOp, "\(c.label): outputs mean, var, saved_mean and saved_var exist only in training mode, which is not supported; only Y may be wired")
            }
            if c.opset < 9, try c.attributes.int("spatial", 1) == 0 {
                throw LatheError(.unsupportedOp, "\(c.label): spatial=0 (per-activation statistics) is not supported")
            }
        }
        outputPresent = c.outputPresent
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32)
        guard x.shape.count >= 2 else { throw LatheError.shape("X must have rank >= 2 (N, C, ...), got shape \(x.shape)") }
        let channels = x.shape[1]
        for (slot, name) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let t = try require(inputs[slot], name, .float32)
            guard t.shape == [channels] else {
                throw LatheError.shape("\(name) must have shape [\(channels)] (the channels of X \(x.shape)), got \(t.shape)")
            }
        }
        return outputPresent.enumerated().map { slot, present in
            present ? (slot == 0 ? x : TensorType(.float32, [channels])) : nil
        }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let scale = inputs[1]!.floats, bias = inputs[2]!.floats
        let mean = inputs[3]!.floats, variance = inputs[4]!.floats
        let batch = x.shape[0], channels = x.shape[1]
        let size = x.shape.dropFirst(2).reduce(1, *)
        for c in 0..<channels {
            let a = scale[c] / sqrtf(variance[c] + epsilon)
            let b = bias[c] - mean[c] * a
            for n in 0..<batch {
                let offset = (n * channels + c) * size
                let xp = x.floats + offset, yp = y.floats + offset
                for i in 0..<size { yp[i] = xp[i] * a + b }
            }
        }
        if outputs.count > 1, let out = outputs[1] { out.floats.update(from: mean, count: channels) }
        if outputs.count > 2, let out = outputs[2] { out.floats.update(from: variance, count: channels) }
    }

    var outputMemory: OutputMemory { .inPlace }

    /// With constant statistics and only Y wired, `Y = X · a[c] + b[c]` along axis 1.
    func channelAffine(_ inputs: [TensorType?], constants: [Tensor?]) -> ChannelAffine? {
        guard !outputPresent.dropFirst().contains(true), let x = inputs[0], x.shape.count >= 2,
              let scale = constants[1], let bias = constants[2], let mean = constants[3], let variance = constants[4]
        else { return nil }
        let channels = x.shape[1]
        var a = [Float](repeating: 0, count: channels), b = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            a[c] = scale.floats[c] / sqrtf(variance.floats[c] + epsilon)
            b[c] = bias.floats[c] - mean.floats[c] * a[c]
        }
        return ChannelAffine(input: 0, axis: 1, scale: a, shift: b)
    }
}
