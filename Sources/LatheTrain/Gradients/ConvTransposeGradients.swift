import LatheCore
import LatheOps

/// Gradient of ConvTranspose (any number of spatial axes; stride, pads, auto_pad, output_padding,
/// output_shape, dilation, groups).
///
/// The forward is, per sample and group, `col = W_gᵀ · X_g` scattered into Y (col2im) plus B. Its adjoint
/// gathers dY back into columns (`dcol[(m, tap), p] = dY[m, p·stride + tap·dilation − padBegin]`, zero
/// outside), then `dX_g += W_g · dcol`, `dW_g += X_g · dcolᵀ`, `dB += Σ dY`.
enum ConvTransposeGradients {
    static func register(into registry: OpRegistry) throws {
        try registry.setGradient(opType: "ConvTranspose") { try ConvTransposeGradient($0) }
    }
}

final class ConvTransposeGradient: GradientKernel {
    let label: String
    let group: Int
    let autoPad: String
    let pads: [Int]?, strides: [Int]?, dilations: [Int]?, outputPadding: [Int]?
    let hasOutputShape: Bool

    init(_ c: NodeContext) throws {
        label = c.label
        let a = c.attributes
        group = max(try a.int("group", 1), 1)
        autoPad = try a.string("auto_pad", "NOTSET")
        pads = try a.ints("pads")
        strides = try a.ints("strides")
        dilations = try a.ints("dilations")
        outputPadding = try a.ints("output_padding")
        hasOutputShape = try a.ints("output_shape") != nil
    }

    /// Output positions cropped before each spatial axis, as the forward kernel resolves them.
    func padsBegin(input: [Int], kernel: [Int], output: [Int]) -> [Int] {
        let r = input.count
        return (0..<r).map { i in
            let stride = strides?[i] ?? 1, dilation = dilations?[i] ?? 1, extra = outputPadding?[i] ?? 0
            let full = stride * (input[i] - 1) + extra + (kernel[i] - 1) * dilation + 1
            if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" || hasOutputShape {
                let total = max(0, full - output[i])
                return autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
            }
            return autoPad == "VALID" ? 0 : pads?[i] ?? 0
        }
    }

    func backward(_ p: BackwardPass) throws {
        let x = try floatTensor(p.inputs, 0, "X"), w = try floatTensor(p.inputs, 1, "W")
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        let dx = slot(p.inputGradients, 0), dw = slot(p.inputGradients, 1), db = slot(p.inputGradients, 2)
        guard x.rank >= 3, w.rank == x.rank, dy.rank == x.rank else {
            throw LatheError.shape("\(label): X \(x.shape), W \(w.shape) and dY \(dy.shape) must share a rank >= 3")
        }
        let input = Array(x.shape.dropFirst(2)), kernel = Array(w.shape.dropFirst(2)), output = Array(dy.shape.dropFirst(2))
        let r = input.count
        let begin = padsBegin(input: input, kernel: kernel, output: output)
        let batch = x.shape[0], channels = x.shape[1], groupChannels = channels / group
        let groupFilters = w.shape[1], filters = groupFilters * group
        let kernelCount = kernel.reduce(1, *), inCount = input.reduce(1, *), outCount = output.reduce(1, *)
        let rows = groupFilters * kernelCount
        if let db {
            for n in 0..<batch {
                for m in 0..<filters {
                    let row = dy.floats + (n * filters + m) * outCount
                    var sum: Float = 0
                    for i in 0..<outCount { sum += row[i] }
                    db.floats[m] += sum
                }
            }
        }
        guard dx != nil || dw != nil, rows > 0, inCount > 0 else { return }
        // Per (tap, input position): the output offset it adds into, or -1 when cropped.
        var target = [Int](repeating: -1, count: kernelCount * inCount)
        let outStrides = ShapeMath.strides(output)
        var tap = [Int](repeating: 0, count: r), position = [Int](repeating: 0, count: r)
        for k in 0..<kernelCount {
            var rest = k
            for a in stride(from: r - 1, through: 0, by: -1) { tap[a] = rest % kernel[a]; rest /= kernel[a] }
            for a in 0..<r { position[a] = 0 }
            for q in 0..<inCount {
                var offset = 0, inside = true
                for a in 0..<r {
                    let o = position[a] * (strides?[a] ?? 1) + tap[a] * (dilations?[a] ?? 1) - begin[a]
                    if o < 0 || o >= output[a] { inside = false; break }
                    offset += o * outStrides[a]
                }
                if inside { target[k * inCount + q] = offset }
                var a = r - 1
                while a >= 0 {
                    position[a] += 1
                    if position[a] < input[a] { break }
                    position[a] = 0
                    a -= 1
                }
            }
        }
        let col = UnsafeMutablePointer<Float>.allocate(capacity: rows * inCount)
        defer { col.deallocate() }
        for n in 0..<batch {
            for gi in 0..<group {
                let dyg = dy.floats + (n * filters + gi * groupFilters) * outCount
                for m in 0..<groupFilters {
                    let plane = dyg + m * outCount
                    for k in 0..<kernelCount {
                        let dst = col + (m * kernelCount + k) * inCount, targets = k * inCount
                        for q in 0..<inCount {
                            let t = target[targets + q]
                            dst[q] = t >= 0 ? plane[t] : 0
                        }
                    }
                }
                let wg = w.floats + gi * groupChannels * rows
                let xg = x.floats + (n * channels + gi * groupChannels) * inCount
                if let dx {
                    gemmAccumulate(transA: false, transB: false, m: groupChannels, n: inCount, k: rows,
                                   a: wg, lda: rows, b: col, ldb: inCount,
                                   c: dx.floats + (n * channels + gi * groupChannels) * inCount, ldc: inCount)
                }
                if let dw {
                    gemmAccumulate(transA: false, transB: true, m: groupChannels, n: rows, k: inCount,
                                   a: xg, lda: inCount, b: col, ldb: inCount, c: dw.floats + gi * groupChannels * rows, ldc: rows)
                }
            }
        }
    }
}
