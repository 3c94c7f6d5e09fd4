import LatheCore

/// ConvTranspose (float32, any number of spatial axes) by `sgemm` and col2im, per group.
enum ConvTransposeOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("ConvTranspose") { try ConvTransposeKernel($0) }
    }
}

/// Resolved geometry of a transposed convolution over the spatial axes of one input shape.
struct TransposedWindow: Equatable {
    /// Spatial input sizes.
    let input: [Int]
    /// Kernel taps per axis.
    let kernel: [Int]
    /// Step between input positions in the output, per axis.
    let strides: [Int]
    /// Step between taps per axis.
    let dilations: [Int]
    /// Output positions cropped before each axis.
    let padsBegin: [Int]
    /// Spatial output sizes.
    let output: [Int]

    /// Elements of one spatial input plane.
    var inputCount: Int { input.reduce(1, *) }
    /// Elements of one spatial output plane.
    var outputCount: Int { output.reduce(1, *) }
    /// Taps of one window.
    var kernelCount: Int { kernel.reduce(1, *) }
}

/// Scatters the columns `col[channels·K × inputCount]` (K = kernel taps) into `channels` output planes
/// of `y`, adding each tap of input position `p` at output `p·stride + tap·dilation − padBegin` when inside.
func col2im(_ col: UnsafePointer<Float>, channels: Int, _ g: TransposedWindow, _ y: UnsafeMutablePointer<Float>) {
    let r = g.input.count, last = r - 1
    let inLast = g.input[last], outLast = g.output[last], strideLast = g.strides[last]
    if g.inputCount == 0 { return }
    let outerCount = g.inputCount / inLast
    let outStrides = ShapeMath.strides(g.output)
    var tap = [Int](repeating: 0, count: r), position = [Int](repeating: 0, count: r)
    var src = col
    for ch in 0..<channels {
        let plane = y + ch * g.outputCount
        for k in 0..<g.kernelCount {
            var rest = k
            for a in stride(from: last, through: 0, by: -1) { tap[a] = rest % g.kernel[a]; rest /= g.kernel[a] }
            let offset = tap[last] * g.dilations[last] - g.padsBegin[last]
            for a in 0..<r { position[a] = 0 }
            for _ in 0..<outerCount {
                var base = offset, inside = true
                for a in 0..<last where inside {
                    let o = position[a] * g.strides[a] + tap[a] * g.dilations[a] - g.padsBegin[a]
                    if o < 0 || o >= g.output[a] { inside = false } else { base += o * outStrides[a] }
                }
                if inside {
                    for p in 0..<inLast {
                        let o = p * strideLast + offset
                        if o >= 0 && o < outLast { plane[base + p * strideLast] += src[p] }
                    }
                }
                src += inLast
                var a = last - 1
                while a >= 0 {
                    position[a] += 1
                    if position[a] < g.input[a] { break }
                    position[a] = 0
                    a -= 1
                }
            }
        }
    }
}

/// ConvTranspose (opsets 1–22): the gradient of Conv with respect to its input.
/// `X [N, C, D...]`, `W [C, M/group, k...]`, `B [M]` → `Y [N, M, O...]`.
final class ConvTransposeKernel: Kernel {
    /// Window attributes (kernel_shape, pads, strides, dilations, auto_pad).
    let window: WindowAttributes
    /// Number of channel groups.
    let group: Int
    /// `output_padding`: extra output positions after each axis (only sizes the output).
    let outputPadding: [Int]?
    /// `output_shape`: requested spatial output sizes (pads are then derived).
    let outputShape: [Int]?

    init(_ c: NodeContext) throws {
        try c.expectInputs(2...3)
        guard c.outputPresent == [true] else { throw LatheError.invalid("\(c.label): takes exactly one wired output Y") }
        window = try WindowAttributes(c, requiresKernelShape: false)
        group = try c.attributes.int("group", 1)
        guard group >= 1 else { throw LatheError.invalid("\(c.label): group must be >= 1, got \(group)") }
        outputPadding = try c.attributes.ints("output_padding")
        outputShape = try c.attributes.ints("output_shape")
        if let outputPadding, outputPadding.contains(where: { $0 < 0 }) {
            throw LatheError.invalid("\(c.label): output_padding must be non-negative, got \(outputPadding)")
        }
        if let outputShape, outputShape.contains(where: { $0 < 0 }) {
            throw LatheError.invalid("\(c.label): output_shape must be non-negative, got \(outputShape)")
        }
    }

    /// Checks X, W and B against each other and the attributes, returning the geometry.
    func geometry(_ x: [Int], _ w: [Int], bias: [Int]?) throws -> TransposedWindow {
        guard x.count >= 3 else { throw LatheError.shape("X must have rank >= 3 (N, C, spatial...), got shape \(x)") }
        guard w.count == x.count else { throw LatheError.shape("W of shape \(w) must have the same rank as X of shape \(x)") }
        guard w[0] == x[1] else { throw LatheError.shape("W \(w) must have \(x[1]) input channels (dimension 0), the channels of X \(x)") }
        guard x[1] % group == 0 else { throw LatheError.shape("X has \(x[1]) channels, not divisible by group \(group)") }
        let r = x.count - 2
        try window.checkLengths(spatialRank: r)
        let kernel = Array(w.dropFirst(2))
        if let declared = window.kernelShape, declared != kernel {
            throw LatheError.shape("kernel_shape \(declared) does not match the spatial shape \(kernel) of W")
        }
        if let bias, bias != [w[1] * group] {
            throw LatheError.shape("B must have shape [\(w[1] * group)], got \(bias)")
        }
        let input = Array(x.dropFirst(2))
        let strides = window.strides ?? Array(repeating: 1, count: r)
        let dilations = window.dilations ?? Array(repeating: 1, count: r)
        let extra = outputPadding ?? Array(repeating: 0, count: r)
        guard extra.count == r || extra.count == 2 * r else {
            throw LatheError.invalid("output_padding \(extra) has \(extra.count) entries for \(r) spatial axes")
        }
        var requested = outputShape
        if let shape = requested, shape.count == r + 2 { requested = Array(shape.dropFirst(2)) }
        if let requested, requested.count != r {
            throw LatheError.invalid("output_shape \(outputShape!) has \(outputShape!.count) entries for \(r) spatial axes")
        }
        var begin = [Int](repeating: 0, count: r), output = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let full = strides[i] * (input[i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1
            if window.autoPad == .sameUpper || window.autoPad == .sameLower || requested != nil {
                // Pads derived from the output size (negative totals, which would crop nothing, count as 0);
                // SAME_UPPER puts the odd position at the end, SAME_LOWER and NOTSET at the beginning.
                output[i] = requested?[i] ?? input[i] * strides[i]
                let total = max(0, full - output[i])
                begin[i] = window.autoPad == .sameUpper ? total / 2 : total - total / 2
            } else {
                let pads = window.autoPad == .valid ? nil : window.pads
                begin[i] = pads?[i] ?? 0
                output[i] = full - begin[i] - (pads?[r + i] ?? 0)
            }
            guard output[i] >= 0 else {
                throw LatheError.shape("ConvTranspose output size \(output[i]) on spatial axis \(i) is negative (pads larger than the output)")
            }
        }
        let g = TransposedWindow(input: input, kernel: kernel, strides: strides, dilations: dilations,
                                 padsBegin: begin, output: output)
        guard boundedProduct([w[1], g.kernelCount, g.inputCount]) != nil, boundedProduct(w) != nil else {
            throw LatheError(.outOfMemory, "transposed convolution of X \(x) with W \(w) needs a column matrix beyond \(Int32.max) elements")
        }
        return g
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32), w = try require(inputs[1], "W", .float32)
        let bias = try inputs.count > 2 ? inputs[2].map { try require($0, "B", .float32) } : nil
        let g = try geometry(x.shape, w.shape, bias: bias?.shape)
        return [TensorType(.float32, [x.shape[0], w.shape[1] * group] + g.output)]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, w = inputs[1]!, y = outputs[0]!
        let bias = inputs.count > 2 ? inputs[2] : nil
        let g = try geometry(x.shape, w.shape, bias: bias?.shape)
        let batch = x.shape[0], channels = x.shape[1]
        let groupChannels = channels / group, groupFilters = w.shape[1], filters = groupFilters * group
        let rows = groupFilters * g.kernelCount
        let inCount = g.inputCount, outCount = g.outputCount
        y.floats.update(repeating: 0, count: y.count)
        let col = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows * inCount))
        defer { col.deallocate() }
        for n in 0..<batch {
            for gi in 0..<group {
                let xg = x.floats + (n * channels + gi * groupChannels) * inCount
                let wg = w.floats + gi * groupChannels * rows
                let yg = y.floats + (n * filters + gi * groupFilters) * outCount
                // col[rows × inCount] = W_gᵀ · X_g.
                sgemm(transA: true, transB: false, m: rows, n: inCount, k: groupChannels, alpha: 1,
                      a: wg, lda: rows, b: xg, ldb: inCount, beta: 0, c: col, ldc: inCount)
                col2im(col, channels: groupFilters, g, yg)
            }
        }
        if let bias {
            for n in 0..<batch {
                for m in 0..<filters {
                    let row = y.floats + (n * filters + m) * outCount, v = bias.floats[m]
                    for i in 0..<outCount { row[i] += v }
                }
            }
        }
    }
}
