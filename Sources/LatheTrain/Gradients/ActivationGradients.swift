import LatheCore

/// Gradients of the elementwise activations Relu, LeakyRelu, Sigmoid and Tanh.
enum ActivationGradients {
    static func register(into registry: OpRegistry) throws {
        try registry.setGradient(opType: "Relu") { _ in ActivationGradient(.relu) }
        try registry.setGradient(opType: "LeakyRelu") { c in
            ActivationGradient(.leakyRelu(alpha: try c.attributes.float("alpha", 0.01)))
        }
        try registry.setGradient(opType: "Sigmoid") { _ in ActivationGradient(.sigmoid) }
        try registry.setGradient(opType: "Tanh") { _ in ActivationGradient(.tanh) }
    }
}

/// `dX += dY · f'(X)`, with f' written from X (Relu, LeakyRelu) or from Y (Sigmoid, Tanh).
final class ActivationGradient: GradientKernel {
    /// Which activation.
    enum Kind: Sendable { case relu, leakyRelu(alpha: Float), sigmoid, tanh }
    let kind: Kind

    init(_ kind: Kind) { self.kind = kind }

    func backward(_ p: BackwardPass) throws {
        guard let dxTensor = slot(p.inputGradients, 0) else { return }
        let x = try floatTensor(p.inputs, 0, "X").floats, y = try floatTensor(p.outputs, 0, "Y").floats
        let dy = try floatTensor(p.outputGradients, 0, "dY").floats, dx = dxTensor.floats
        let n = dxTensor.count
        switch kind {
        case .relu:
            var i = 0
            while i + 16 <= n {
                let d: SIMD16<Float> = loadVector(dy + i), v: SIMD16<Float> = loadVector(x + i)
                let sum: SIMD16<Float> = loadVector(dx + i) + SIMD16<Float>().replacing(with: d, where: v .> 0)
                storeVector(sum, dx + i)
                i += 16
            }
            while i < n { dx[i] += x[i] > 0 ? dy[i] : 0; i += 1 }
        case .leakyRelu(let alpha): for i in 0..<n { dx[i] += x[i] >= 0 ? dy[i] : alpha * dy[i] }
        case .sigmoid: for i in 0..<n { dx[i] += dy[i] * y[i] * (1 - y[i]) }
        case .tanh: for i in 0..<n { dx[i] += dy[i] * (1 - y[i] * y[i]) }
        }
    }
}
