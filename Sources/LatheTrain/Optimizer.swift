#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// Updates parameters from their gradients, with Keras's formulas and defaults.
///
/// Before the step, gradients get the L2 term (`2 · l2 · w`, for parameters of rank ≥ 2 — kernels, not
/// biases; the penalty `l2 · Σ w²` is added to the reported loss by `fit`) and are then scaled down so
/// that their global norm is at most `globalClipNorm` (Keras's `global_clipnorm`).
public final class Optimizer {
    /// The update rule.
    public enum Algorithm: Sendable, Equatable {
        /// `v = momentum · v − lr · g`; `w += v`, or with Nesterov `w += momentum · v − lr · g`.
        case sgd(momentum: Float = 0, nesterov: Bool = false)
        /// Adam (Keras form: bias correction folded into the step size, epsilon outside the root).
        case adam(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7)
        /// Adam with decoupled weight decay: `w −= lr · weightDecay · w` before the Adam step.
        case adamW(weightDecay: Float = 0.004, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7)
        /// `v = rho · v + (1 − rho) · g²`; `w −= lr · g / sqrt(v + epsilon)`.
        case rmsprop(rho: Float = 0.9, epsilon: Float = 1e-7)
    }

    public let algorithm: Algorithm
    /// Step size.
    public var learningRate: Float
    /// When set, gradients are scaled so that their global L2 norm is at most this.
    public var globalClipNorm: Float?
    /// L2 regularisation factor on kernels (parameters of rank ≥ 2).
    public var l2: Float
    /// Steps taken so far.
    public private(set) var iterations = 0
    /// First and second moment (or velocity) per parameter, allocated at the first step.
    private var slots: [[Float]] = [], slots2: [[Float]] = []

    public init(_ algorithm: Algorithm, learningRate: Float, globalClipNorm: Float? = nil, l2: Float = 0) {
        self.algorithm = algorithm
        self.learningRate = learningRate
        self.globalClipNorm = globalClipNorm
        self.l2 = l2
    }

    /// SGD (Keras default learning rate 0.01).
    public static func sgd(learningRate: Float = 0.01, momentum: Float = 0, nesterov: Bool = false) -> Optimizer {
        Optimizer(.sgd(momentum: momentum, nesterov: nesterov), learningRate: learningRate)
    }
    /// Adam (Keras default learning rate 0.001).
    public static func adam(learningRate: Float = 0.001) -> Optimizer { Optimizer(.adam(), learningRate: learningRate) }
    /// AdamW (Keras default learning rate 0.001, weight decay 0.004).
    public static func adamW(learningRate: Float = 0.001, weightDecay: Float = 0.004) -> Optimizer {
        Optimizer(.adamW(weightDecay: weightDecay), learningRate: learningRate)
    }
    /// RMSprop (Keras default learning rate 0.001).
    public static func rmsprop(learningRate: Float = 0.001) -> Optimizer { Optimizer(.rmsprop(), learningRate: learningRate) }

    /// The Keras name: `"sgd"`, `"adam"`, `"adamw"`, `"rmsprop"`, with Keras's default settings.
    public convenience init?(kerasName: String) {
        switch kerasName.lowercased() {
        case "sgd": self.init(.sgd(), learningRate: 0.01)
        case "adam": self.init(.adam(), learningRate: 0.001)
        case "adamw": self.init(.adamW(), learningRate: 0.001)
        case "rmsprop": self.init(.rmsprop(), learningRate: 0.001)
        default: return nil
        }
    }

    /// The L2 penalty `l2 · Σ w²` over the kernels among `parameters`.
    public func penalty(_ parameters: [Tensor]) -> Double {
        guard l2 != 0 else { return 0 }
        var sum = 0.0
        for w in parameters where w.rank >= 2 { for i in 0..<w.count { sum += Double(w.floats[i] * w.floats[i]) } }
        return Double(l2) * sum
    }

    /// Applies L2 and clipping to `gradients` (in place), then updates `parameters` (in place).
    /// - Throws: `.invalidArgument` when the parameter list changes between steps.
    public func step(parameters: [Tensor], gradients: [Tensor]) throws {
        guard parameters.count == gradients.count, zip(parameters, gradients).allSatisfy({ $0.count == $1.count }) else {
            throw LatheError.invalid("optimizer: \(gradients.count) gradients for \(parameters.count) parameters, or sizes differ")
        }
        if slots.isEmpty {
            slots = parameters.map { [Float](repeating: 0, count: $0.count) }
            slots2 = slots
        }
        guard slots.count == parameters.count, zip(slots, parameters).allSatisfy({ $0.count == $1.count }) else {
            throw LatheError.invalid("optimizer: the parameters changed since the first step")
        }
        if l2 != 0 {
            for (w, g) in zip(parameters, gradients) where w.rank >= 2 {
                for i in 0..<w.count { g.floats[i] += 2 * l2 * w.floats[i] }
            }
        }
        if let clip = globalClipNorm {
            var sum = 0.0
            for g in gradients { for i in 0..<g.count { sum += Double(g.floats[i] * g.floats[i]) } }
            let norm = Float(sum.squareRoot())
            if norm > clip {
                let scale = clip / norm
                for g in gradients { for i in 0..<g.count { g.floats[i] *= scale } }
            }
        }
        iterations += 1
        let lr = learningRate, t = Float(iterations)
        for (index, (wTensor, gTensor)) in zip(parameters, gradients).enumerated() {
            let w = wTensor.floats, g = gTensor.floats, n = wTensor.count
            slots[index].withUnsafeMutableBufferPointer { m in
                slots2[index].withUnsafeMutableBufferPointer { v in
                    switch algorithm {
                    case .sgd(let momentum, let nesterov):
                        if momentum == 0 {
                            for i in 0..<n { w[i] -= lr * g[i] }
                        } else {
                            for i in 0..<n {
                                m[i] = momentum * m[i] - lr * g[i]
                                w[i] += nesterov ? momentum * m[i] - lr * g[i] : m[i]
                            }
                        }
                    case .adam(let beta1, let beta2, let epsilon), .adamW(_, let beta1, let beta2, let epsilon):
                        if case .adamW(let decay, _, _, _) = algorithm {
                            for i in 0..<n { w[i] -= lr * decay * w[i] }
                        }
                        let step = lr * (1 - powf(beta2, t)).squareRoot() / (1 - powf(beta1, t))
                        for i in 0..<n {
                            m[i] += (g[i] - m[i]) * (1 - beta1)
                            v[i] += (g[i] * g[i] - v[i]) * (1 - beta2)
                            w[i] -= step * m[i] / (v[i].squareRoot() + epsilon)
                        }
                    case .rmsprop(let rho, let epsilon):
                        for i in 0..<n {
                            v[i] = rho * v[i] + (1 - rho) * g[i] * g[i]
                            w[i] -= lr * g[i] / (v[i] + epsilon).squareRoot()
                        }
                    }
                }
            }
        }
    }
}
