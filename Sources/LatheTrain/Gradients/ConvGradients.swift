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

/// Over chunks of samples (see `chunkSamples`) and per group: `dW += dY · colᵀ`, `dcol = Wᵀ · dY` folded
/// back into `dX` by col2im, `dB += Σ dY` over samples and positions. A chunk's output gradients are laid
/// side by side (`[filters × samples·positions]`), and so are its column gradients (and, for samples of
/// fewer than 64 positions, its unfolded inputs), so a GEMM spans the whole chunk: small feature maps still
/// give products long enough to run at speed.
final class ConvGradient: ReluMaskableGradient {
    let window: WindowSpec
    let group: Int
    /// Scratch reused by later steps of the same shapes: the chunk's unfolded inputs or column gradients
    /// (slot 0), its output gradients side by side (slot 1), one sample's unfolded input (slot 2).
    let reused = ReusedTensors()
    /// The window geometry for the last input and kernel shapes (the kernel's shape is fixed per node).
    let geometry = ShapeCache<WindowGeometry>()

    init(window: WindowSpec, group: Int) {
        self.window = window
        self.group = max(group, 1)
    }

    func backward(_ p: BackwardPass) throws { try backward(p, reluOutput: nil) }

    func readingThroughRelu() -> any GradientKernel { ReluMaskedGradient(self) }

    /// Samples per chunk: enough that a chunk spans at least 512 output positions (one sample when a
    /// sample alone does), at most the batch and at most 256 Ki floats of unfolded input, spread evenly.
    static func chunkSamples(batch: Int, positions: Int, rows: Int) -> Int {
        let wanted = max(1, min(batch, (512 + positions - 1) / max(positions, 1), (1 << 18) / max(rows * positions, 1)))
        let chunks = (batch + wanted - 1) / wanted
        return (batch + chunks - 1) / max(chunks, 1)
    }

    /// The backward pass; with `reluOutput`, `p.outputGradients[0]` is the gradient of that Relu output
    /// and is masked by `reluOutput > 0` as it is read (the Relu's own backward, fused).
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
        guard batch > 0, outCount > 0 else { return }
        let chunk = Self.chunkSamples(batch: batch, positions: outCount, rows: rows)
        let width = chunk * outCount   // the leading dimension of a chunk's side-by-side matrices
        let gathered = try reused.tensor(1, count: filters * width, shape: [filters * width]).floats
        let needsColumns = (dx != nil || dw != nil) && rows > 0
        // For an unpadded stride-1 2-D window, dX's product runs on dY with rows as wide as the input's
        // (zeros past each output row), so col2im adds one contiguous run per tap (`col2imPitched`).
        let pitch = dx != nil && isUnpaddedUnitStride2D(g) ? g.input[1] : nil
        let pitchedWidth = pitch.map { chunk * g.output[0] * $0 } ?? 0
        let pitched = try pitch.map { _ in try reused.tensor(3, count: filters * pitchedWidth, shape: [filters * pitchedWidth]).floats }
        let colCount = rows * max(width, pitchedWidth)
        let col = needsColumns ? try reused.tensor(0, count: colCount, shape: [colCount]).floats : nil
        // dW over the whole chunk needs its unfolded inputs side by side (one copy per sample): worth it only
        // when a sample has too few positions for a product of its own to run at speed.
        let sampleColumns = needsColumns && dw != nil && chunk > 1 && outCount < 64
            ? try reused.tensor(2, count: rows * outCount, shape: [rows * outCount]).floats : nil
        var first = 0
        while first < batch {
            let samples = min(chunk, batch - first), span = samples * outCount
            for s in 0..<samples {
                let n = first + s, dyn = dy.floats + n * sampleCount, yn = reluOutput.map { $0.floats + n * sampleCount }
                for m in 0..<filters {
                    let sum = gatherRow(dyn + m * outCount, maskedBy: yn.map { $0 + m * outCount },
                                        into: gathered + m * width + s * outCount, count: outCount)
                    if let db { db.floats[m] += sum }
                }
            }
            if let col {
                for gi in 0..<group {
                    let dyg = gathered + gi * groupFilters * width, wOffset = gi * groupFilters * rows
                    let planes = gi * groupChannels
                    if let dw, let sampleColumns {
                        for s in 0..<samples {
                            packageIm2col(x.floats + ((first + s) * channels + planes) * inCount, channels: groupChannels, g,
                                          sampleColumns)
                            for r in 0..<rows {
                                (col + r * width + s * outCount).update(from: sampleColumns + r * outCount, count: outCount)
                            }
                        }
                        gemmAccumulate(transA: false, transB: true, m: groupFilters, n: rows, k: span,
                                       a: dyg, lda: width, b: col, ldb: width, c: dw.floats + wOffset, ldc: rows)
                    } else if let dw {
                        for s in 0..<samples {
                            packageIm2col(x.floats + ((first + s) * channels + planes) * inCount, channels: groupChannels, g, col)
                            gemmAccumulate(transA: false, transB: true, m: groupFilters, n: rows, k: outCount,
                                           a: dyg + s * outCount, lda: width, b: col, ldb: outCount, c: dw.floats + wOffset, ldc: rows)
                        }
                    }
                    if let dx, let pitch, let pitched {
                        let outHeight = g.output[0], outWidth = g.output[1], sampleSpan = outHeight * pitch
                        for m in (gi * groupFilters)..<((gi + 1) * groupFilters) {
                            for s in 0..<samples {
                                for oh in 0..<outHeight {
                                    let row = pitched + m * pitchedWidth + s * sampleSpan + oh * pitch
                                    row.update(from: gathered + m * width + s * outCount + oh * outWidth, count: outWidth)
                                    (row + outWidth).update(repeating: 0, count: pitch - outWidth)
                                }
                            }
                        }
                        packageSgemm(transA: true, transB: false, m: rows, n: samples * sampleSpan, k: groupFilters, alpha: 1,
                                     a: w.floats + wOffset, lda: rows, b: pitched + gi * groupFilters * pitchedWidth,
                                     ldb: pitchedWidth, beta: 0, c: col, ldc: pitchedWidth)
                        for s in 0..<samples {
                            col2imPitched(col + s * sampleSpan, rowStride: pitchedWidth, channels: groupChannels, g,
                                          into: dx.floats + ((first + s) * channels + planes) * inCount)
                        }
                    } else if let dx {
                        packageSgemm(transA: true, transB: false, m: rows, n: span, k: groupFilters, alpha: 1,
                                     a: w.floats + wOffset, lda: rows, b: dyg, ldb: width, beta: 0, c: col, ldc: width)
                        for s in 0..<samples {
                            col2im(col + s * outCount, rowStride: width, channels: groupChannels, g,
                                   into: dx.floats + ((first + s) * channels + planes) * inCount)
                        }
                    }
                }
            }
            first += samples
        }
    }
}

/// Copies `count` floats of `dy` to `out`, masked by `mask > 0` when a Relu output `mask` is given
/// (dY through that Relu); returns Σ out, summed in 16 lanes and then across them (a fixed order).
@inline(__always)
func gatherRow(_ dy: UnsafePointer<Float>, maskedBy mask: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>,
               count: Int) -> Float {
    if let mask { return maskByPositive(dy, mask, into: out, count: count) }
    out.update(from: dy, count: count)
    return lanewiseSum(out, count: count)
}

/// Whether `g` is a 2-D window with unit strides and dilations and no padding.
func isUnpaddedUnitStride2D(_ g: WindowGeometry) -> Bool {
    g.input.count == 2 && g.strides == [1, 1] && g.dilations == [1, 1] && g.padsBegin == [0, 0] && g.padsEnd == [0, 0]
}

/// `col2im` for an unpadded stride-1 2-D window whose column gradients have rows as wide as the input's
/// (`col[channels·K × outHeight·width]`, rows `rowStride` apart, zero past each output row's `outWidth`):
/// each tap's column row lands on the input plane shifted by the tap, as one contiguous run. The zero
/// tail of an output row falls on the next row's first columns, where it adds nothing.
func col2imPitched(_ col: UnsafePointer<Float>, rowStride: Int, channels: Int, _ g: WindowGeometry,
                   into x: UnsafeMutablePointer<Float>) {
    let width = g.input[1], run = (g.output[0] - 1) * width + g.output[1]
    var src = col
    for ch in 0..<channels {
        let plane = x + ch * g.inputCount
        for kh in 0..<g.kernel[0] {
            for kw in 0..<g.kernel[1] {
                addRow(plane + kh * width + kw, src, count: run)
                src += rowStride
            }
        }
    }
}

/// The adjoint of im2col: adds each entry of `col[channels·K × outputCount]` (rows `rowStride` floats
/// apart) into the input position it was read from (entries read from padding are dropped).
func col2im(_ col: UnsafePointer<Float>, rowStride: Int, channels: Int, _ g: WindowGeometry, into x: UnsafeMutablePointer<Float>) {
    if g.input.count == 2 { return col2im2D(col, rowStride: rowStride, channels: channels, g, into: x) }
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
            src += rowStride
        }
    }
}

/// `col2im` for two spatial axes (rows of `col` `rowStride` floats apart): per kernel tap, the output rows and columns whose input position lies
/// inside the image are computed once, so the inner loop is a plain strided add without bounds tests.
func col2im2D(_ col: UnsafePointer<Float>, rowStride: Int, channels: Int, _ g: WindowGeometry, into x: UnsafeMutablePointer<Float>) {
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
                src += rowStride
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
