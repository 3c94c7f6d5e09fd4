#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// Gradients of Softmax and LogSoftmax, with the forward kernels' axis rules: before opset 13 the input
/// is coerced to 2-D at `axis` (default 1); from opset 13 the op normalises over `axis` (default -1).
enum SoftmaxGradients {
    static func register(into registry: OpRegistry) throws {
        try registry.setGradient(opType: "Softmax") { try SoftmaxGradient($0, logarithmic: false) }
        try registry.setGradient(opType: "LogSoftmax") { try SoftmaxGradient($0, logarithmic: true) }
    }
}

/// Softmax: `dX = Y ⊙ (dY − Σ dY ⊙ Y)`; LogSoftmax: `dX = dY − exp(Y) · Σ dY`, sums over the normalised axis.
final class SoftmaxGradient: GradientKernel {
    let axis: Int
    let coercesTo2D: Bool
    let logarithmic: Bool

    init(_ c: NodeContext, logarithmic: Bool) throws {
        coercesTo2D = c.opset < 13
        axis = try c.attributes.int("axis", coercesTo2D ? 1 : -1)
        self.logarithmic = logarithmic
    }

    func backward(_ p: BackwardPass) throws {
        guard let dxTensor = slot(p.inputGradients, 0) else { return }
        let yTensor = try floatTensor(p.outputs, 0, "Y")
        let y = yTensor.floats, dy = try floatTensor(p.outputGradients, 0, "dY").floats, dx = dxTensor.floats
        let shape = yTensor.shape
        let a = try ShapeMath.axis(axis, rank: shape.count)
        let outer = shape[..<a].reduce(1, *)
        let n = coercesTo2D ? shape[a...].reduce(1, *) : shape[a]
        let inner = coercesTo2D ? 1 : shape[(a + 1)...].reduce(1, *)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                var sum: Float = 0
                for j in 0..<n { let k = base + j * inner; sum += logarithmic ? dy[k] : dy[k] * y[k] }
                for j in 0..<n {
                    let k = base + j * inner
                    dx[k] += logarithmic ? dy[k] - expf(y[k]) * sum : y[k] * (dy[k] - sum)
                }
            }
        }
    }
}
