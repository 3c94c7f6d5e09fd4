#if canImport(Glibc)
import Glibc
#endif
import CLatheShims
import LatheCore

/// One of the activation functions an ONNX recurrent op (LSTM, GRU) may name in `activations`,
/// with its `activation_alpha` / `activation_beta` parameters resolved.
enum RecurrentActivation: Sendable, Equatable {
    case relu
    case tanh
    case sigmoid
    /// `alpha * x + beta`.
    case affine(alpha: Float, beta: Float)
    /// `x` if `x >= 0`, else `alpha * x`.
    case leakyRelu(alpha: Float)
    /// `x` if `x >= alpha`, else 0.
    case thresholdedRelu(alpha: Float)
    /// `alpha * tanh(beta * x)`.
    case scaledTanh(alpha: Float, beta: Float)
    /// `min(max(alpha * x + beta, 0), 1)`.
    case hardSigmoid(alpha: Float, beta: Float)
    /// `x` if `x >= 0`, else `alpha * (e^x - 1)`.
    case elu(alpha: Float)
    /// `x / (1 + |x|)`.
    case softsign
    /// `log(1 + e^x)`.
    case softplus

    /// How many `activation_alpha` and `activation_beta` values a function consumes, and their defaults
    /// (those of the ONNX operator of the same name).
    private static func parameters(_ lowercased: String) -> (alpha: Float?, beta: Float?)? {
        switch lowercased {
        case "relu", "tanh", "sigmoid", "softsign", "softplus": (nil, nil)
        case "affine": (1, 0)
        case "leakyrelu": (0.01, nil)
        case "thresholdedrelu": (1, nil)
        case "scaledtanh": (1, 1)
        case "hardsigmoid": (0.2, 0.5)
        case "elu": (1, nil)
        default: nil
        }
    }

    /// Resolves activation names (case-insensitive) against the alpha and beta lists, which are consumed
    /// in order by the functions that take such a parameter; a missing value takes the operator default.
    /// - Throws: `.invalidArgument` naming an unknown function.
    static func parse(_ names: [String], alphas: [Float], betas: [Float], owner: String) throws -> [RecurrentActivation] {
        var nextAlpha = 0, nextBeta = 0
        return try names.map { name in
            let key = name.lowercased()
            guard let defaults = parameters(key) else {
                throw LatheError.invalid("\(owner): unknown activation '\(name)' (expected Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign or Softplus)")
            }
            var alpha: Float = 0, beta: Float = 0
            if let fallback = defaults.alpha {
                alpha = nextAlpha < alphas.count ? alphas[nextAlpha] : fallback
                nextAlpha += 1
            }
            if let fallback = defaults.beta {
                beta = nextBeta < betas.count ? betas[nextBeta] : fallback
                nextBeta += 1
            }
            switch key {
            case "relu": return .relu
            case "tanh": return .tanh
            case "sigmoid": return .sigmoid
            case "affine": return .affine(alpha: alpha, beta: beta)
            case "leakyrelu": return .leakyRelu(alpha: alpha)
            case "thresholdedrelu": return .thresholdedRelu(alpha: alpha)
            case "scaledtanh": return .scaledTanh(alpha: alpha, beta: beta)
            case "hardsigmoid": return .hardSigmoid(alpha: alpha, beta: beta)
            case "elu": return .elu(alpha: alpha)
            case "softsign": return .softsign
            default: return .softplus
            }
        }
    }

    /// Applies the function in place to `count` contiguous values (one dispatch per call, not per element;
    /// Relu, Tanh, Sigmoid and ScaledTanh vectorised, see `VectorMath`; Tanh and Sigmoid run the C kernels
    /// at the CPU's instruction-set level).
    func apply(_ x: UnsafeMutablePointer<Float>, _ count: Int) {
        switch self {
        case .relu:
            VectorMath.map(x, x, count: count, VectorMath.relu)
        case .tanh:
            lts_vector_tanh(x, x, count, nil)
        case .sigmoid:
            lts_vector_sigmoid(x, x, count, nil)
        case .affine(let alpha, let beta):
            for i in 0..<count { x[i] = alpha * x[i] + beta }
        case .leakyRelu(let alpha):
            for i in 0..<count where x[i] < 0 { x[i] *= alpha }
        case .thresholdedRelu(let alpha):
            for i in 0..<count where x[i] < alpha { x[i] = 0 }
        case .scaledTanh(let alpha, let beta):
            VectorMath.map(x, x, count: count) { alpha * VectorMath.tanh(beta * $0) }
        case .hardSigmoid(let alpha, let beta):
            for i in 0..<count { x[i] = min(max(alpha * x[i] + beta, 0), 1) }
        case .elu(let alpha):
            for i in 0..<count where x[i] < 0 { x[i] = alpha * (expf(x[i]) - 1) }
        case .softsign:
            for i in 0..<count { x[i] = x[i] / (1 + abs(x[i])) }
        case .softplus:
            for i in 0..<count {
                let v = x[i]
                x[i] = v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v))
            }
        }
    }
}
