import LatheCore
import LatheOps

/// Gradients of MaxPool, AveragePool and GlobalAveragePool, over the same window taps as the forward kernels.
enum PoolingGradients {
    static func register(into registry: OpRegistry) throws {
        try registry.setGradient(opType: "MaxPool") { c in
            PoolGradient(window: try WindowSpec(c, requiresKernelShape: true), maximum: true, countIncludePad: false)
        }
        try registry.setGradient(opType: "AveragePool") { c in
            PoolGradient(window: try WindowSpec(c, requiresKernelShape: true), maximum: false,
                         countIncludePad: try c.attributes.int("count_include_pad", 0) != 0)
        }
        try registry.setGradient(opType: "GlobalAveragePool") { _ in GlobalAveragePoolGradient() }
    }
}

/// MaxPool: dY flows to the first maximal tap of each window (the forward's choice); AveragePool:
/// dY / count to every in-bounds tap.
final class PoolGradient: GradientKernel {
    let window: WindowSpec
    let maximum: Bool
    let countIncludePad: Bool
    /// The window geometry and taps for the last input shape.
    let geometry = ShapeCache<(WindowGeometry, WindowTaps)>()

    init(window: WindowSpec, maximum: Bool, countIncludePad: Bool) {
        self.window = window
        self.maximum = maximum
        self.countIncludePad = countIncludePad
    }

    func backward(_ p: BackwardPass) throws {
        guard let dxTensor = slot(p.inputGradients, 0) else { return }
        let x = try floatTensor(p.inputs, 0, "X"), dy = try floatTensor(p.outputGradients, 0, "dY")
        guard let kernel = window.kernelShape, x.rank == kernel.count + 2 else {
            throw LatheError.shape("X of shape \(x.shape) does not fit the pooling kernel")
        }
        let (g, taps) = try geometry.value(for: x.shape) {
            let g = try window.resolve(input: Array(x.shape.dropFirst(2)), kernel: kernel)
            return (g, WindowTaps(g))
        }
        let planes = x.shape[0] * x.shape[1], inCount = g.inputCount, outCount = g.outputCount
        taps.offsets.withUnsafeBufferPointer { offsets in
            taps.start.withUnsafeBufferPointer { start in
                for plane in 0..<planes {
                    let xp = x.floats + plane * inCount, dx = dxTensor.floats + plane * inCount
                    let dyp = dy.floats + plane * outCount
                    for o in 0..<outCount {
                        if maximum {
                            var best = -Float.greatestFiniteMagnitude, bestOffset = -1
                            for t in start[o]..<start[o + 1] {
                                let v = xp[offsets[t]]
                                if bestOffset < 0 || v > best { best = v; bestOffset = offsets[t] }
                            }
                            if bestOffset >= 0 { dx[bestOffset] += dyp[o] }
                        } else {
                            let count = countIncludePad ? taps.paddedCounts[o] : start[o + 1] - start[o]
                            let share = dyp[o] / Float(max(count, 1))
                            for t in start[o]..<start[o + 1] { dx[offsets[t]] += share }
                        }
                    }
                }
            }
        }
    }
}

/// GlobalAveragePool: every position of a plane receives dY / (plane size).
final class GlobalAveragePoolGradient: GradientKernel {
    func backward(_ p: BackwardPass) throws {
        guard let dx = slot(p.inputGradients, 0) else { return }
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        let planes = dx.shape[0] * dx.shape[1], size = dx.shape.dropFirst(2).reduce(1, *)
        for plane in 0..<planes {
            let share = dy.floats[plane] / Float(max(size, 1))
            let d = dx.floats + plane * size
            for i in 0..<size { d[i] += share }
        }
    }
}
