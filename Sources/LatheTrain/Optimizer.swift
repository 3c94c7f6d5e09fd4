import CLatheShims
#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// A learning rate that changes with the optimizer's step count, as Keras's
/// `keras.optimizers.schedules` (evaluated per step: the first update uses `rate(atStep: 0)`).
public enum LearningRateSchedule: Sendable, Equatable {
    /// `initial · decayRate^(step / decaySteps)` (the exponent floored with `staircase`).
    case exponentialDecay(initial: Double, decaySteps: Int, decayRate: Double, staircase: Bool = false)
    /// `values[0]` while `step ≤ boundaries[0]`, `values[i]` while `boundaries[i−1] < step ≤ boundaries[i]`,
    /// the last value after the last boundary (`values.count == boundaries.count + 1`).
    case piecewiseConstant(boundaries: [Double], values: [Double])
    /// Cosine decay from `initial` (or, after a linear warm-up of `warmupSteps` from `initial` to
    /// `warmupTarget`, from `warmupTarget`) to `alpha` times that over `decaySteps`, then constant.
    case cosineDecay(initial: Double, decaySteps: Int, alpha: Double = 0, warmupTarget: Double? = nil, warmupSteps: Int = 0)
    /// `initial / (1 + decayRate · step / decaySteps)` (the quotient floored with `staircase`).
    case inverseTimeDecay(initial: Double, decaySteps: Int, decayRate: Double, staircase: Bool = false)

    /// Throws `.invalidArgument` for settings Keras would refuse (non-positive steps, mismatched lists).
    public func validate() throws {
        switch self {
        case .exponentialDecay(let initial, let steps, _, _), .inverseTimeDecay(let initial, let steps, _, _),
             .cosineDecay(let initial, let steps, _, _, _):
            guard steps > 0, initial.isFinite else { throw LatheError.invalid("learning-rate schedule \(self): decay_steps must be positive") }
            if case .cosineDecay(_, _, _, _, let warmup) = self, warmup < 0 {
                throw LatheError.invalid("learning-rate schedule: warmup_steps must be >= 0")
            }
        case .piecewiseConstant(let boundaries, let values):
            guard values.count == boundaries.count + 1, !values.isEmpty else {
                throw LatheError.invalid("PiecewiseConstantDecay needs one more value than boundaries, got \(boundaries.count) boundaries and \(values.count) values")
            }
            guard zip(boundaries, boundaries.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw LatheError.invalid("PiecewiseConstantDecay boundaries must increase, got \(boundaries)")
            }
        }
    }

    /// The learning rate for the update made after `step` earlier updates.
    public func rate(atStep step: Int) -> Float {
        let s = Double(step)
        switch self {
        case .exponentialDecay(let initial, let steps, let decay, let staircase):
            let p = s / Double(steps)
            return Float(initial * pow(decay, staircase ? p.rounded(.down) : p))
        case .inverseTimeDecay(let initial, let steps, let decay, let staircase):
            let p = s / Double(steps)
            return Float(initial / (1 + decay * (staircase ? p.rounded(.down) : p)))
        case .piecewiseConstant(let boundaries, let values):
            return Float(values[boundaries.firstIndex { s <= $0 } ?? boundaries.count])
        case .cosineDecay(let initial, let steps, let alpha, let target, let warmup):
            func decayed(_ step: Double, from rate: Double) -> Double {
                let cosine = 0.5 * (1 + cos(Double.pi * step / Double(steps)))
                return rate * ((1 - alpha) * cosine + alpha)
            }
            guard let target else { return Float(decayed(min(s, Double(steps)), from: initial)) }
            let clamped = min(s, Double(steps + warmup))
            if clamped < Double(warmup) { return Float((target - initial) * clamped / Double(warmup) + initial) }
            return Float(decayed(clamped - Double(warmup), from: target))
        }
    }
}

/// How gradients are clipped before the update (Keras's `clipnorm`, `clipvalue`, `global_clipnorm`;
/// Keras allows one at a time).
public enum GradientClipping: Sendable, Equatable {
    /// Each gradient tensor scaled so that its own L2 norm is at most this (`clipnorm`).
    case norm(Float)
    /// Each gradient value clamped to `[−v, v]` (`clipvalue`).
    case value(Float)
    /// All gradients scaled together so that their joint L2 norm is at most this (`global_clipnorm`).
    case globalNorm(Float)
}

/// Updates parameters from their gradients, with Keras's formulas and defaults.
///
/// A step clips the gradients (`clipping`), then applies the algorithm with the learning rate of the
/// current step (`schedule`, else `learningRate`). L2 regularisation is not here: it belongs to the
/// layers (`kernel_regularizer`) and enters the loss and gradients before the optimizer sees them.
public final class Optimizer {
    /// The update rule.
    public enum Algorithm: Sendable, Equatable {
        /// `v = momentum · v − lr · g`; `w += v`, or with Nesterov `w += momentum · v − lr · g`.
        case sgd(momentum: Float = 0, nesterov: Bool = false)
        /// Adam (Keras form: bias correction folded into the step size, epsilon outside the root).
        case adam(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7)
        /// Adam with decoupled weight decay: `w −= lr · weightDecay · w` before the Adam step.
        case adamW(weightDecay: Float = 0.004, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7)
        /// `v = rho · v + (1 − rho) · g²`; `w −= lr · g / sqrt(v + epsilon)`; centered: `v − ḡ²` under the
        /// root with `ḡ = rho · ḡ + (1 − rho) · g`; with momentum `m = momentum · m + increment`, `w −= m`.
        case rmsprop(rho: Float = 0.9, epsilon: Float = 1e-7, momentum: Float = 0, centered: Bool = false)

        /// The Keras class name (`"SGD"`, `"Adam"`, `"AdamW"`, `"RMSprop"`).
        public var className: String {
            switch self {
            case .sgd: "SGD"
            case .adam: "Adam"
            case .adamW: "AdamW"
            case .rmsprop: "RMSprop"
            }
        }

        /// How many arrays of state the rule keeps per parameter.
        var slotCount: Int {
            switch self {
            case .sgd: 1
            case .adam, .adamW: 2
            case .rmsprop: 3
            }
        }
    }

    public let algorithm: Algorithm
    /// Step size when there is no `schedule`.
    public var learningRate: Float
    /// When set, the learning rate of each step (then `learningRate` is not used).
    public let schedule: LearningRateSchedule?
    /// Gradient clipping before each step.
    public let clipping: GradientClipping?
    /// Steps taken so far.
    public private(set) var iterations = 0
    /// State arrays by kind and parameter (velocity; Adam's moments; RMSprop's mean square, momentum
    /// and mean gradient), allocated at the first step.
    private var state: [[Tensor]] = []

    /// A copy of the state arrays, `slots[kind][parameter]` (empty before the first step).
    public var slots: [[[Float]]] { state.map { $0.map { $0.floatArray() } } }

    /// - Parameters:
    ///   - schedule: a learning-rate schedule; `learningRate` is then ignored.
    public init(_ algorithm: Algorithm, learningRate: Float, schedule: LearningRateSchedule? = nil,
                clipping: GradientClipping? = nil) {
        self.algorithm = algorithm
        self.learningRate = learningRate
        self.schedule = schedule
        self.clipping = clipping
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

    /// The learning rate the next step uses.
    public var currentLearningRate: Float { schedule?.rate(atStep: iterations) ?? learningRate }

    /// Puts back saved state (a checkpoint's): the step count and the slot arrays.
    /// - Throws: `.shapeMismatch` unless `slots` is empty or has this algorithm's kinds, one array per
    ///   parameter of `parameterSizes` each.
    public func restore(iterations: Int, slots: [[[Float]]], parameterSizes: [Int]) throws {
        guard iterations >= 0 else { throw LatheError.invalid("optimizer state: negative step count \(iterations)") }
        guard slots.isEmpty || (slots.count == algorithm.slotCount && slots.allSatisfy { $0.map(\.count) == parameterSizes }) else {
            throw LatheError.shape("optimizer state: \(slots.count) slot kinds of sizes \(slots.map { $0.map(\.count) }) do not fit \(algorithm.className) over parameters of sizes \(parameterSizes)")
        }
        self.state = try slots.map { kind in try kind.map { try Tensor(shape: [$0.count], floats: $0) } }
        self.iterations = iterations
    }

    /// Clips `gradients` (in place), then updates `parameters` (in place).
    /// - Throws: `.invalidArgument` when the parameter list changes between steps.
    public func step(parameters: [Tensor], gradients: [Tensor]) throws {
        guard parameters.count == gradients.count, zip(parameters, gradients).allSatisfy({ $0.count == $1.count }) else {
            throw LatheError.invalid("optimizer: \(gradients.count) gradients for \(parameters.count) parameters, or sizes differ")
        }
        if state.isEmpty {
            state = try (0..<algorithm.slotCount).map { _ in try parameters.map { try Tensor(.float32, shape: [$0.count]) } }
        }
        guard state.allSatisfy({ zip($0, parameters).allSatisfy { $0.count == $1.count } && $0.count == parameters.count }) else {
            throw LatheError.invalid("optimizer: the parameters changed since the first step")
        }
        clip(gradients)
        let lr = currentLearningRate
        iterations += 1
        let t = Float(iterations)
        for (index, (wTensor, gTensor)) in zip(parameters, gradients).enumerated() {
            let w = wTensor.floats, g = gTensor.floats, n = wTensor.count
            switch algorithm {
            case .sgd(let momentum, let nesterov):
                if momentum == 0 {
                    for i in 0..<n { w[i] -= lr * g[i] }
                } else {
                    let m = state[0][index].floats
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
                // m += (g − m)·(1 − β1); v += (g² − v)·(1 − β2); w −= step·m / (√v + ε), vectorised in C.
                lts_adam_update(w, g, state[0][index].floats, state[1][index].floats, n, step, 1 - beta1, 1 - beta2, epsilon)
            case .rmsprop(let rho, let epsilon, let momentum, let centered):
                let v = state[0][index].floats, m = state[1][index].floats, mean = state[2][index].floats
                for i in 0..<n {
                    v[i] = rho * v[i] + (1 - rho) * g[i] * g[i]
                    var denominator = v[i] + epsilon
                    if centered {
                        mean[i] = rho * mean[i] + (1 - rho) * g[i]
                        denominator = v[i] - mean[i] * mean[i] + epsilon
                    }
                    let increment = lr * g[i] / denominator.squareRoot()
                    if momentum > 0 {
                        m[i] = momentum * m[i] + increment
                        w[i] -= m[i]
                    } else {
                        w[i] -= increment
                    }
                }
            }
        }
    }

    /// Applies `clipping` to `gradients` in place (Keras's formulas: `g · c / max(‖g‖, c)`).
    private func clip(_ gradients: [Tensor]) {
        func norm(_ tensors: [Tensor]) -> Float {
            var sum = 0.0
            for g in tensors { for i in 0..<g.count { sum += Double(g.floats[i] * g.floats[i]) } }
            return Float(sum.squareRoot())
        }
        func scale(_ tensors: [Tensor], _ limit: Float) {
            let total = norm(tensors)
            guard total > limit else { return }
            for g in tensors { for i in 0..<g.count { g.floats[i] = g.floats[i] * limit / total } }
        }
        switch clipping {
        case nil: break
        case .norm(let limit): for g in gradients { scale([g], limit) }
        case .globalNorm(let limit): scale(gradients, limit)
        case .value(let limit): for g in gradients { for i in 0..<g.count { g.floats[i] = min(max(g.floats[i], -limit), limit) } }
        }
    }
}
