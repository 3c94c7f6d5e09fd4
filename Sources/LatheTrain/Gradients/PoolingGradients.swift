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
        if maximum, isPlain2x2(g) {
            for plane in 0..<planes {
                maxPool2x2Backward(x.floats + plane * inCount, dy.floats + plane * outCount, into: dxTensor.floats + plane * inCount,
                                   width: g.input[1], outHeight: g.output[0], outWidth: g.output[1])
            }
            return
        }
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

/// Whether `g` is a 2×2 window with stride 2, no dilation and no padding (every window whole).
func isPlain2x2(_ g: WindowGeometry) -> Bool {
    g.kernel == [2, 2] && g.strides == [2, 2] && g.dilations == [1, 1] && g.padsBegin == [0, 0] && g.padsEnd == [0, 0]
        && g.output[0] * 2 <= g.input[0] && g.output[1] * 2 <= g.input[1]
}

/// MaxPool 2×2/2 backward of one plane: `dx` at the first maximal tap (row-major, as the general path and
/// the forward choose) of each window gets `dy`. Eight windows at a time from two 16-float rows split into
/// even and odd columns, without a branch per comparison; the rest of a row one window at a time.
func maxPool2x2Backward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>,
                        width: Int, outHeight: Int, outWidth: Int) {
    for oh in 0..<outHeight {
        let top = 2 * oh * width, dyRow = dy + oh * outWidth
        var ow = 0
        while ow + 8 <= outWidth {
            let upper = x + top + 2 * ow, lower = upper + width
            let (toUpper, toLower) = maxPool2x2Shares(loadVector(upper), loadVector(lower), loadVector(dyRow + ow))
            let dxUpper = dx + top + 2 * ow, dxLower = dxUpper + width
            let above: SIMD16<Float> = loadVector(dxUpper), below: SIMD16<Float> = loadVector(dxLower)
            storeVector(above + toUpper, dxUpper)
            storeVector(below + toLower, dxLower)
            ow += 8
        }
        while ow < outWidth {
            let a = top + 2 * ow, b = a + 1, c = a + width, d = c + 1
            var best = x[a], at = a
            if x[b] > best { best = x[b]; at = b }
            if x[c] > best { best = x[c]; at = c }
            if x[d] > best { at = d }
            dx[at] += dyRow[ow]
            ow += 1
        }
    }
}

/// For eight 2×2 windows whose rows are `a` and `b` (16 floats each): what each tap receives of `g`, as
/// two 16-float rows (`g` at each window's first maximal tap, 0 elsewhere).
@inline(__always)
func maxPool2x2Shares(_ a: SIMD16<Float>, _ b: SIMD16<Float>, _ g: SIMD8<Float>) -> (SIMD16<Float>, SIMD16<Float>) {
    let t0 = a.evenHalf, t1 = a.oddHalf, t2 = b.evenHalf, t3 = b.oddHalf
    var best = t0
    let over1 = t1 .> best
    best.replace(with: t1, where: over1)
    let over2 = t2 .> best
    best.replace(with: t2, where: over2)
    let over3 = t3 .> best
    let zero = SIMD8<Float>()
    let g3 = zero.replacing(with: g, where: over3)
    let g2 = zero.replacing(with: g, where: over2 .& .!over3)
    let g1 = zero.replacing(with: g, where: over1 .& .!over2 .& .!over3)
    let g0 = zero.replacing(with: g, where: .!(over1 .| over2 .| over3))
    return (interleave(g0, g1), interleave(g2, g3))
}

/// `[e0, o0, e1, o1, …]`: the lanes of `even` and `odd` alternating.
@inline(__always)
func interleave(_ even: SIMD8<Float>, _ odd: SIMD8<Float>) -> SIMD16<Float> {
    SIMD16(even[0], odd[0], even[1], odd[1], even[2], odd[2], even[3], odd[3],
           even[4], odd[4], even[5], odd[5], even[6], odd[6], even[7], odd[7])
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
