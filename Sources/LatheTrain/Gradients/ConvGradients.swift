import LatheCore
import LatheOps

/// Gradient of Conv (any number of spatial axes; stride, padding, auto_pad, dilation, groups), by the
/// same im2col unfolding and GEMM seam as the forward kernel, and its adjoint col2im.
enum ConvGradients {
    static func register(into registry: OpRegistry) throws {
        try registry.setGradient(opType: "Conv") { c in
            ConvGradient(window: try WindowSpec(c, requiresKernelShape: false), group: try c.attributes.int("group", 1))
        }
    }
}

/// Per sample and group: `dW += dY · colᵀ`, `dcol = Wᵀ · dY` folded back into `dX` by col2im,
/// `dB += Σ dY` over samples and positions.
final class ConvGradient: ReluMaskableGradient {
    let window: WindowSpec
    let group: Int
    /// The unfolded-input scratch (slot 0) and one sample's masked output gradient (slot 1), reused by
    /// later steps of the same shapes.
    let reused = ReusedTensors()
    /// The window geometry for the last input and kernel shapes (the kernel's shape is fixed per node).
    let geometry = ShapeCache<WindowGeometry>()

    init(window: WindowSpec, group: Int) {
        self.window = window
        self.group = max(group, 1)
    }

    func backward(_ p: BackwardPass) throws { try backward(p, reluOutput: nil) }

    func readingThroughRelu() -> any GradientKernel { ReluMaskedGradient(self) }

    /// The backward pass; with `reluOutput`, `p.outputGradients[0]` is the gradient of that Relu output
    /// and is masked by `reluOutput > 0` per sample as it is read (the Relu's own backward, fused).
    func backward(_ p: BackwardPass, reluOutput: Tensor?) throws {
        let x = try floatTensor(p.inputs, 0, "X"), w = try floatTensor(p.inputs, 1, "W")
        let dy = try floatTensor(p.outputGradients, 0, "dY")
        let dx = slot(p.inputGradients, 0), dw = slot(p.inputGradients, 1), db = slot(p.inputGradients, 2)
        let g = try geometry.value(for: x.shape) {
            try window.resolve(input: Array(x.shape.dropFirst(2)), kernel: Array(w.shape.dropFirst(2)))
        }
        let batch = x.shape[0], channels = x.shape[1], filters = w.shape[0]
        let groupChannels = channels / group, groupFilters = filters / group
        let rows = groupChannels * g.kernelCount, inCount = g.inputCount, outCount = g.outputCount
        let sampleCount = filters * outCount
        if let reluOutput, reluOutput.count != dy.count {
            throw LatheError.shape("Relu output of shape \(reluOutput.shape) does not match dY of shape \(dy.shape)")
        }
        let masked = try reluOutput.map { _ in try reused.tensor(1, count: sampleCount, shape: [sampleCount]).floats }
        let col = dx != nil || dw != nil ? try reused.tensor(0, count: rows * outCount, shape: [rows * outCount]).floats : nil
        for n in 0..<batch {
            var dyn = UnsafePointer(dy.floats + n * sampleCount)
            if let masked, let reluOutput {
                let yn = reluOutput.floats + n * sampleCount
                for m in 0..<filters {
                    let offset = m * outCount
                    let sum = maskByPositive(dyn + offset, yn + offset, into: masked + offset, count: outCount)
                    if let db { db.floats[m] += sum }
                }
                dyn = UnsafePointer(masked)
            } else if let db {
                for m in 0..<filters { db.floats[m] += lanewiseSum(dyn + m * outCount, count: outCount) }
            }
            guard let col, rows > 0, outCount > 0 else { continue }
            for gi in 0..<group {
                let xg = x.floats + (n * channels + gi * groupChannels) * inCount
                let dyg = dyn + gi * groupFilters * outCount
                let wOffset = gi * groupFilters * rows
                if let dw {
                    packageIm2col(xg, channels: groupChannels, g, col)
                    gemmAccumulate(transA: false, transB: true, m: groupFilters, n: rows, k: outCount,
                                   a: dyg, lda: outCount, b: col, ldb: outCount, c: dw.floats + wOffset, ldc: rows)
                }
                if let dx {
                    packageSgemm(transA: true, transB: false, m: rows, n: outCount, k: groupFilters, alpha: 1,
                                 a: w.floats + wOffset, lda: rows, b: dyg, ldb: outCount, beta: 0, c: col, ldc: outCount)
                    col2im(col, channels: groupChannels, g,
                           into: dx.floats + (n * channels + gi * groupChannels) * inCount)
                }
            }
        }
    }
}

/// The adjoint of im2col: adds each entry of `col[channels·K × outputCount]` into the input position it
/// was read from (entries read from padding are dropped).
func col2im(_ col: UnsafePointer<Float>, channels: Int, _ g: WindowGeometry, into x: UnsafeMutablePointer<Float>) {
    if g.input.count == 2 { return col2im2D(col, channels: channels, g, into: x) }
    let r = g.input.count, outCount = g.outputCount, kernelCount = g.kernelCount
    let inStrides = ShapeMath.strides(g.input)
    var tap = [Int](repeating: 0, count: r), position = [Int](repeating: 0, count: r)
    var src = col
    for ch in 0..<channels {
        let plane = x + ch * g.inputCount
        for k in 0..<kernelCount {
            var rest = k
            for a in stride(from: r - 1, through: 0, by: -1) { tap[a] = rest % g.kernel[a]; rest /= g.kernel[a] }
            for a in 0..<r { position[a] = 0 }
            for o in 0..<outCount {
                var offset = 0, inside = true
                for a in 0..<r {
                    let p = position[a] * g.strides[a] + tap[a] * g.dilations[a] - g.padsBegin[a]
                    if p < 0 || p >= g.input[a] { inside = false; break }
                    offset += p * inStrides[a]
                }
                if inside { plane[offset] += src[o] }
                var a = r - 1
                while a >= 0 {
                    position[a] += 1
                    if position[a] < g.output[a] { break }
                    position[a] = 0
                    a -= 1
                }
            }
            src += outCount
        }
    }
}

/// `col2im` for two spatial axes: per kernel tap, the output rows and columns whose input position lies
/// inside the image are computed once, so the inner loop is a plain strided add without bounds tests.
func col2im2D(_ col: UnsafePointer<Float>, channels: Int, _ g: WindowGeometry, into x: UnsafeMutablePointer<Float>) {
    let height = g.input[0], width = g.input[1], outHeight = g.output[0], outWidth = g.output[1]
    let strideH = g.strides[0], strideW = g.strides[1]
    var src = col
    for ch in 0..<channels {
        let plane = x + ch * height * width
        for kh in 0..<g.kernel[0] {
            let offsetH = kh * g.dilations[0] - g.padsBegin[0]
            let (firstRow, endRow) = insideRange(offset: offsetH, stride: strideH, size: height, count: outHeight)
            for kw in 0..<g.kernel[1] {
                let offsetW = kw * g.dilations[1] - g.padsBegin[1]
                let (firstColumn, endColumn) = insideRange(offset: offsetW, stride: strideW, size: width, count: outWidth)
                if firstColumn < endColumn {
                    for oh in firstRow..<endRow {
                        let row = plane + (oh * strideH + offsetH) * width + offsetW
                        let source = src + oh * outWidth
                        if strideW == 1 {
                            addRow(row + firstColumn, source + firstColumn, count: endColumn - firstColumn)
                        } else {
                            for ow in firstColumn..<endColumn { row[ow * strideW] += source[ow] }
                        }
                    }
                }
                src += outHeight * outWidth
            }
        }
    }
}

/// The output indices `o` in `0..<count` with `o·stride + offset` inside `0..<size`, as a half-open range.
@inline(__always)
private func insideRange(offset: Int, stride: Int, size: Int, count: Int) -> (Int, Int) {
    // first: smallest o with o·stride + offset ≥ 0; end: smallest o with o·stride + offset ≥ size.
    let first = offset >= 0 ? 0 : (-offset + stride - 1) / stride
    let end = size - offset <= 0 ? 0 : (size - offset + stride - 1) / stride
    return (min(first, count), min(max(end, first), count))
}
