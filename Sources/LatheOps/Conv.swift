import LatheCore

/// Conv (float32, any number of spatial axes): the direct kernel (`DirectConv`) for the shapes it serves,
/// otherwise im2col and `sgemm`, per group.
enum ConvOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("Conv") { try ConvKernel($0) }
    }
}

/// How a sliding-window op pads its input (`auto_pad`).
enum AutoPad: String, Sendable {
    case notSet = "NOTSET"
    case sameUpper = "SAME_UPPER"
    case sameLower = "SAME_LOWER"
    case valid = "VALID"
}

/// The product of `values`, or nil when it exceeds `limit` (the default fits a BLAS dimension).
func boundedProduct(_ values: [Int], limit: Int = Int(Int32.max)) -> Int? {
    var product = 1
    for v in values {
        let (p, overflow) = product.multipliedReportingOverflow(by: v)
        if overflow || p > limit { return nil }
        product = p
    }
    return product
}

/// The window attributes shared by Conv and the pooling ops, validated at model load.
struct WindowAttributes: Sendable {
    /// `auto_pad`, NOTSET when absent.
    let autoPad: AutoPad
    /// `kernel_shape`, when the node carries it.
    let kernelShape: [Int]?
    /// `pads` as `[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`, when present.
    let pads: [Int]?
    /// `strides`, when present (1 per axis otherwise).
    let strides: [Int]?
    /// `dilations`, when present (1 per axis otherwise).
    let dilations: [Int]?
    /// Whether output sizes round up (`ceil_mode`, pooling only).
    let ceilMode: Bool
    /// "Conv node 'c1'", for messages.
    let label: String

    /// Reads and checks `auto_pad`, `kernel_shape`, `pads`, `strides`, `dilations` and `ceil_mode`.
    /// - Throws: `.invalidArgument` naming the attribute when a value is out of range or lengths disagree.
    init(_ c: NodeContext, requiresKernelShape: Bool) throws {
        let a = c.attributes
        label = c.label
        let autoPadName = try a.string("auto_pad", "NOTSET")
        guard let autoPad = AutoPad(rawValue: autoPadName) else {
            throw LatheError.invalid("\(c.label): auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '\(autoPadName)'")
        }
        self.autoPad = autoPad
        kernelShape = try a.ints("kernel_shape")
        pads = try a.ints("pads")
        strides = try a.ints("strides")
        dilations = try a.ints("dilations")
        ceilMode = try a.int("ceil_mode", 0) != 0
        if requiresKernelShape && kernelShape == nil {
            throw LatheError.invalid("\(c.label): attribute 'kernel_shape' is required")
        }
        if let kernelShape, kernelShape.isEmpty || kernelShape.contains(where: { $0 < 1 }) {
            throw LatheError.invalid("\(c.label): kernel_shape must be a non-empty list of positive sizes, got \(kernelShape)")
        }
        if let strides, strides.contains(where: { $0 < 1 }) {
            throw LatheError.invalid("\(c.label): strides must be positive, got \(strides)")
        }
        if let dilations, dilations.contains(where: { $0 < 1 }) {
            throw LatheError.invalid("\(c.label): dilations must be positive, got \(dilations)")
        }
        if let pads {
            guard pads.allSatisfy({ $0 >= 0 }), pads.count % 2 == 0 else {
                throw LatheError.invalid("\(c.label): pads must be an even number of non-negative values, got \(pads)")
            }
            if autoPad != .notSet && pads.contains(where: { $0 != 0 }) {
                throw LatheError.invalid("\(c.label): pads \(pads) cannot be combined with auto_pad \(autoPad.rawValue)")
            }
        }
        let largest = Int(Int32.max)
        for (name, values) in [("kernel_shape", kernelShape), ("pads", pads), ("strides", strides), ("dilations", dilations)] {
            if let values, values.contains(where: { $0 > largest }) {
                throw LatheError.invalid("\(c.label): \(name) \(values) has a value above \(largest)")
            }
        }
        if let kernelShape { try checkLengths(spatialRank: kernelShape.count) }
    }

    /// Throws unless every per-axis attribute has one entry per spatial axis.
    func checkLengths(spatialRank r: Int) throws {
        if let kernelShape, kernelShape.count != r {
            throw LatheError.invalid("\(label): kernel_shape \(kernelShape) has \(kernelShape.count) entries for \(r) spatial axes")
        }
        if let strides, strides.count != r {
            throw LatheError.invalid("\(label): strides \(strides) has \(strides.count) entries for \(r) spatial axes")
        }
        if let dilations, dilations.count != r {
            throw LatheError.invalid("\(label): dilations \(dilations) has \(dilations.count) entries for \(r) spatial axes")
        }
        if let pads, pads.count != 2 * r {
            throw LatheError.invalid("\(label): pads \(pads) has \(pads.count) entries, expected \(2 * r) for \(r) spatial axes")
        }
    }

    /// The window geometry for a concrete spatial input shape and kernel size.
    /// - Throws: `.invalidArgument` for attribute lengths that do not fit, `.shapeMismatch` when the
    ///   (dilated) kernel is larger than the padded input.
    func resolve(input: [Int], kernel: [Int]) throws -> SpatialWindow {
        let r = input.count
        try checkLengths(spatialRank: r)
        guard boundedProduct(kernel) != nil else {
            throw LatheError.shape("\(label): kernel \(kernel) has more than \(Int32.max) taps")
        }
        let strides = self.strides ?? [Int](repeating: 1, count: r)
        let dilations = self.dilations ?? [Int](repeating: 1, count: r)
        var begin = [Int](repeating: 0, count: r), end = [Int](repeating: 0, count: r)
        var output = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let extent = (kernel[i] - 1) * dilations[i] + 1
            switch autoPad {
            case .notSet, .valid:
                if autoPad == .notSet, let pads { begin[i] = pads[i]; end[i] = pads[r + i] }
                let span = input[i] + begin[i] + end[i] - extent
                guard span >= 0 else {
                    throw LatheError.shape("\(label): kernel of extent \(extent) (kernel \(kernel[i]), dilation \(dilations[i])) is larger than the padded input \(input[i] + begin[i] + end[i]) on spatial axis \(i)")
                }
                if ceilMode {
                    output[i] = (span + strides[i] - 1) / strides[i] + 1
                    // A last window starting in the right padding is dropped.
                    if (output[i] - 1) * strides[i] >= input[i] + begin[i] { output[i] -= 1 }
                } else {
                    output[i] = span / strides[i] + 1
                }
            case .sameUpper, .sameLower:
                output[i] = (input[i] + strides[i] - 1) / strides[i]
                let total = max(0, (output[i] - 1) * strides[i] + extent - input[i])
                begin[i] = autoPad == .sameUpper ? total / 2 : total - total / 2
                end[i] = total - begin[i]
            }
        }
        return SpatialWindow(input: input, kernel: kernel, strides: strides, dilations: dilations,
                             padsBegin: begin, padsEnd: end, output: output)
    }
}

/// Resolved geometry of a sliding window over the spatial axes of one input shape.
struct SpatialWindow: Sendable, Equatable {
    /// Spatial input sizes.
    let input: [Int]
    /// Kernel taps per axis.
    let kernel: [Int]
    /// Step between windows per axis.
    let strides: [Int]
    /// Step between taps per axis.
    let dilations: [Int]
    /// Padding before and after each axis (after auto_pad).
    let padsBegin: [Int]
    let padsEnd: [Int]
    /// Spatial output sizes.
    let output: [Int]

    /// Number of spatial axes.
    var rank: Int { input.count }
    /// Elements of one spatial input plane.
    var inputCount: Int { input.reduce(1, *) }
    /// Elements of one spatial output plane.
    var outputCount: Int { output.reduce(1, *) }
    /// Taps of one window.
    var kernelCount: Int { kernel.reduce(1, *) }

    /// Whether every output position reads exactly its own input position (1×1, stride 1, no padding).
    var isPointwise: Bool {
        kernel.allSatisfy { $0 == 1 } && strides.allSatisfy { $0 == 1 }
            && padsBegin.allSatisfy { $0 == 0 } && padsEnd.allSatisfy { $0 == 0 }
    }
}

/// Unfolds `channels` planes of `x` into the row-major matrix `col[channels·K × outputCount]`
/// (K = kernel taps): row `c·K + k` holds tap `k` of channel `c` for every output position, 0 in padding.
/// Rows start `rowStride` floats apart (default `outputCount`), so several images can sit side by side.
func im2col(_ x: UnsafePointer<Float>, channels: Int, _ g: SpatialWindow, _ col: UnsafeMutablePointer<Float>,
            rowStride: Int? = nil) {
    if g.outputCount == 0 { return }
    let gap = (rowStride ?? g.outputCount) - g.outputCount
    if g.rank == 2 { im2col2D(x, channels: channels, g, col, gap: gap); return }
    let r = g.rank, last = g.rank - 1
    let outLast = g.output[last], inLast = g.input[last], strideLast = g.strides[last]
    let outerCount = g.outputCount / outLast
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * r) { scratch in
        let inStrides = scratch.baseAddress!, tap = inStrides + r, position = tap + r
        var step = 1
        for a in stride(from: last, through: 0, by: -1) { inStrides[a] = step; step *= g.input[a] }
        var dst = col
        for ch in 0..<channels {
            let plane = x + ch * g.inputCount
            for k in 0..<g.kernelCount {
                var rest = k
                for a in stride(from: last, through: 0, by: -1) { tap[a] = rest % g.kernel[a]; rest /= g.kernel[a] }
                // Innermost axis: output indices lo..<hi read inside the input, the others are padding.
                let offset = tap[last] * g.dilations[last] - g.padsBegin[last]
                let lo = offset >= 0 ? 0 : (strideLast - 1 - offset) / strideLast
                let hi = inLast - 1 - offset < 0 ? 0 : min(outLast, (inLast - 1 - offset) / strideLast + 1)
                for a in 0..<r { position[a] = 0 }
                for _ in 0..<outerCount {
                    var base = offset, inside = lo < hi
                    for a in 0..<last where inside {
                        let p = position[a] * g.strides[a] + tap[a] * g.dilations[a] - g.padsBegin[a]
                        if p < 0 || p >= g.input[a] { inside = false } else { base += p * inStrides[a] }
                    }
                    if inside {
                        for o in 0..<lo { dst[o] = 0 }
                        for o in lo..<hi { dst[o] = plane[base + o * strideLast] }
                        for o in hi..<outLast { dst[o] = 0 }
                    } else {
                        dst.update(repeating: 0, count: outLast)
                    }
                    dst += outLast
                    var a = last - 1
                    while a >= 0 {
                        position[a] += 1
                        if position[a] < g.output[a] { break }
                        position[a] = 0
                        a -= 1
                    }
                }
                dst += gap
            }
        }
    }
}

/// `im2col` for two spatial axes, without index bookkeeping.
private func im2col2D(_ x: UnsafePointer<Float>, channels: Int, _ g: SpatialWindow, _ col: UnsafeMutablePointer<Float>,
                      gap: Int) {
    let (ih, iw) = (g.input[0], g.input[1]), (oh, ow) = (g.output[0], g.output[1])
    let (kh, kw) = (g.kernel[0], g.kernel[1]), (sh, sw) = (g.strides[0], g.strides[1])
    let (dh, dw) = (g.dilations[0], g.dilations[1]), (ph, pw) = (g.padsBegin[0], g.padsBegin[1])
    var dst = col
    for ch in 0..<channels {
        let plane = x + ch * ih * iw
        for ky in 0..<kh {
            for kx in 0..<kw {
                let offset = kx * dw - pw
                let lo = offset >= 0 ? 0 : (sw - 1 - offset) / sw
                let hi = iw - 1 - offset < 0 ? 0 : min(ow, (iw - 1 - offset) / sw + 1)
                for oy in 0..<oh {
                    let y = oy * sh + ky * dh - ph
                    if y < 0 || y >= ih || lo >= hi {
                        dst.update(repeating: 0, count: ow)
                    } else {
                        let row = plane + y * iw + offset
                        for o in 0..<lo { dst[o] = 0 }
                        if sw == 1 {
                            (dst + lo).update(from: row + lo, count: hi - lo)
                        } else {
                            for o in lo..<hi { dst[o] = row[o * sw] }
                        }
                        for o in hi..<ow { dst[o] = 0 }
                    }
                    dst += ow
                }
                dst += gap
            }
        }
    }
}

/// Conv (opsets 1–21): `Y[n, m] = Σ W[m, c] ⋆ X[n, group(m)·C/group + c] + B[m]`.
final class ConvKernel: Kernel {
    /// Window attributes (kernel_shape, pads, strides, dilations, auto_pad).
    let window: WindowAttributes
    /// Number of channel groups (`group`).
    let group: Int
    /// Applied to every output element (after a fusion pass).
    let activation: FusedActivation?
    /// The window geometry of the plan's input shapes (set by `specialized`).
    let resolved: SpatialWindow?
    /// The direct algorithm when `specialized` chose it for the plan's shapes; im2col and `sgemm` otherwise.
    let direct: DirectConv?

    init(_ c: NodeContext) throws {
        try c.expectInputs(2...3)
        guard c.outputPresent == [true] else { throw LatheError.invalid("\(c.label): takes exactly one wired output Y") }
        window = try WindowAttributes(c, requiresKernelShape: false)
        group = try c.attributes.int("group", 1)
        guard group >= 1 else { throw LatheError.invalid("\(c.label): group must be >= 1, got \(group)") }
        activation = nil
        resolved = nil
        direct = nil
    }

    init(window: WindowAttributes, group: Int, activation: FusedActivation?, geometry: SpatialWindow?,
         direct: DirectConv? = nil) {
        self.window = window
        self.group = group
        self.activation = activation
        self.resolved = geometry
        self.direct = direct
    }

    /// Checks X, W and B against each other and the attributes, returning the window geometry.
    func geometry(_ x: [Int], _ w: [Int], bias: [Int]?) throws -> SpatialWindow {
        guard x.count >= 3 else { throw LatheError.shape("X must have rank >= 3 (N, C, spatial...), got shape \(x)") }
        guard w.count == x.count else {
            throw LatheError.shape("W of shape \(w) must have the same rank as X of shape \(x)")
        }
        let channels = x[1], filters = w[0]
        guard w[1] * group == channels else {
            throw LatheError.shape("X has \(channels) channels but W \(w) expects \(w[1]) per group × \(group) groups = \(w[1] * group)")
        }
        guard filters % group == 0 else {
            throw LatheError.shape("W has \(filters) output channels, not divisible by group \(group)")
        }
        let kernel = Array(w.dropFirst(2))
        if let declared = window.kernelShape, declared != kernel {
            throw LatheError.shape("kernel_shape \(declared) does not match the spatial shape \(kernel) of W")
        }
        if let bias, bias != [filters] {
            throw LatheError.shape("B must have shape [\(filters)], got \(bias)")
        }
        let g = try window.resolve(input: Array(x.dropFirst(2)), kernel: kernel)
        guard boundedProduct([w[1], g.kernelCount, g.outputCount]) != nil else {
            throw LatheError(.outOfMemory, "convolution of X \(x) with W \(w) needs an unfolded matrix beyond \(Int32.max) elements")
        }
        return g
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32), w = try require(inputs[1], "W", .float32)
        let bias = try inputs.count > 2 ? inputs[2].map { try require($0, "B", .float32) } : nil
        let g = try geometry(x.shape, w.shape, bias: bias?.shape)
        return [TensorType(.float32, [x.shape[0], w.shape[0]] + g.output)]
    }

    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel {
        guard let x = inputs[0], let w = inputs[1] else { return self }
        let bias = inputs.count > 2 ? inputs[2]?.shape : nil
        let g = try geometry(x.shape, w.shape, bias: bias)
        // Winograd where it serves and pays (3×3, stride 1), else the direct kernel where it wins, else im2col.
        let plain = ConvKernel(window: window, group: group, activation: activation, geometry: g)
        if let winograd = try WinogradConvKernel.replacing(plain, g, inputs, constants: constants) { return winograd }
        let direct = DirectConv(g, channels: x.shape[1], filters: w.shape[0], group: group, activation: activation,
                                weights: constants.count > 1 ? constants[1] : nil)
        return ConvKernel(window: window, group: group, activation: activation, geometry: g, direct: direct)
    }

    /// How many images one GEMM covers: enough that the product has about 2,048 columns, so small
    /// feature maps still make a GEMM the BLAS runs efficiently.
    static func imagesPerProduct(batch: Int, _ g: SpatialWindow) -> Int {
        max(1, min(batch, 2048 / max(g.outputCount, 1)))
    }

    /// Floats of scratch one thread needs: the unfolded input of a chunk of images, plus the chunk's
    /// product when it spans several images (it is scattered to NCHW afterwards).
    func scratchCount(_ g: SpatialWindow, batch: Int, channels: Int, filters: Int) -> Int {
        let images = ConvKernel.imagesPerProduct(batch: batch, g)
        if images == 1 { return g.isPointwise ? 0 : channels / group * g.kernelCount * g.outputCount }
        return (channels / group * g.kernelCount + filters / group) * images * g.outputCount
    }

    func workspaceSize(for inputs: [TensorType?]) -> Int {
        guard let x = inputs[0], let w = inputs[1], x.shape.count >= 3,
              let g = resolved ?? (try? geometry(x.shape, w.shape, bias: nil)) else { return 0 }
        if let direct { return direct.workspaceBytes }
        return scratchCount(g, batch: x.shape[0], channels: x.shape[1], filters: w.shape[0]) * MemoryLayout<Float>.size
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, w = inputs[1]!
        let g = try resolved ?? geometry(x.shape, w.shape, bias: inputs.count > 2 ? inputs[2]?.shape : nil)
        let floats = direct.map { ($0.workspaceBytes + 3) / 4 }
            ?? scratchCount(g, batch: x.shape[0], channels: x.shape[1], filters: w.shape[0])
        try RunContext.withScratch(floats * MemoryLayout<Float>.size) { try compute(inputs, outputs, context: $0) }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], context: RunContext) throws {
        let x = inputs[0]!, w = inputs[1]!, y = outputs[0]!
        let bias = inputs.count > 2 ? inputs[2] : nil
        let g = try resolved ?? geometry(x.shape, w.shape, bias: bias?.shape)
        let batch = x.shape[0], channels = x.shape[1], filters = w.shape[0]
        if let direct {
            direct.run(x: x.floats, w: w.floats, bias: bias.map { UnsafePointer($0.floats) }, y: y.floats, batch: batch,
                       context: context)
            return
        }
        let groupChannels = channels / group, groupFilters = filters / group
        let rows = groupChannels * g.kernelCount
        let inCount = g.inputCount, outCount = g.outputCount
        let pointwise = g.isPointwise
        let group = self.group, activation = self.activation
        /// Convolves image `n` with the unfold scratch `col`.
        func image(_ n: Int, _ col: UnsafeMutablePointer<Float>) {
            let yn = y.floats + n * filters * outCount
            for gi in 0..<group {
                let xg = x.floats + (n * channels + gi * groupChannels) * inCount
                let yg = yn + gi * groupFilters * outCount
                let wg = w.floats + gi * groupFilters * rows
                if !pointwise { im2col(xg, channels: groupChannels, g, col) }
                sgemm(transA: false, transB: false, m: groupFilters, n: outCount, k: rows, alpha: 1,
                      a: wg, lda: rows, b: pointwise ? xg : col, ldb: outCount, beta: 0,
                      c: yg, ldc: outCount)
            }
            if let bias {
                for m in 0..<filters {
                    let row = yn + m * outCount
                    addBiasAndActivate(activation, row, bias: bias.floats[m], row, count: outCount)
                }
            } else {
                applyActivation(activation, yn, count: filters * outCount)
            }
        }
        /// Convolves images `first..<first + count` with one GEMM per group: their unfolded inputs side by
        /// side in `col`, the product in `product`, then scattered to NCHW with bias and activation.
        func images(_ first: Int, _ count: Int, _ col: UnsafeMutablePointer<Float>) {
            let width = count * outCount
            let product = col + rows * width
            for gi in 0..<group {
                for j in 0..<count {
                    im2col(x.floats + ((first + j) * channels + gi * groupChannels) * inCount, channels: groupChannels, g,
                           col + j * outCount, rowStride: width)
                }
                sgemm(transA: false, transB: false, m: groupFilters, n: width, k: rows, alpha: 1,
                      a: w.floats + gi * groupFilters * rows, lda: rows, b: col, ldb: width, beta: 0,
                      c: product, ldc: width)
                for j in 0..<count {
                    for f in 0..<groupFilters {
                        let m = gi * groupFilters + f
                        let dst = y.floats + ((first + j) * filters + m) * outCount
                        let src = product + f * width + j * outCount
                        if let bias {
                            addBiasAndActivate(activation, src, bias: bias.floats[m], dst, count: outCount)
                        } else if let activation {
                            activation.apply(src, dst, count: outCount)
                        } else {
                            dst.update(from: src, count: outCount)
                        }
                    }
                }
            }
        }
        let perProduct = ConvKernel.imagesPerProduct(batch: batch, g)
        let chunks = (batch + perProduct - 1) / perProduct
        /// Runs chunk `c` of the batch on scratch `col`.
        func chunk(_ c: Int, _ col: UnsafeMutablePointer<Float>) {
            let first = c * perProduct, count = min(perProduct, batch - first)
            if perProduct == 1 { image(first, col) } else { images(first, count, col) }
        }
        context.forEachRange(chunks) { range, scratch in
            let col = scratch.assumingMemoryBound(to: Float.self)
            for c in range { chunk(c, col) }
        }
    }

    func fused(with activation: FusedActivation) -> (any Kernel)? {
        self.activation == nil ? ConvKernel(window: window, group: group, activation: activation, geometry: resolved) : nil
    }

    /// Folds a per-output-channel affine (BatchNormalization) into constant W and B.
    func absorbing(_ affine: ChannelAffine, _ inputs: [TensorType?], constants: [Tensor?]) throws
        -> (kernel: any Kernel, constants: [Int: Tensor])? {
        guard activation == nil, affine.axis == 1, let w = constants[1] else { return nil }
        let filters = w.shape[0], perFilter = w.count / max(filters, 1)
        let hasBias = inputs.count > 2 && inputs[2] != nil
        guard affine.shift.count == filters, !hasBias || constants[2] != nil else { return nil }
        let newW = try w.copy(), newB = try Tensor(.float32, shape: [filters])
        for m in 0..<filters {
            let s = affine.scale?[m] ?? 1
            if affine.scale != nil { for i in 0..<perFilter { newW.floats[m * perFilter + i] *= s } }
            newB.floats[m] = (hasBias ? constants[2]!.floats[m] : 0) * s + affine.shift[m]
        }
        var replaced: [Int: Tensor] = [2: newB]
        if affine.scale != nil { replaced[1] = newW }
        return (ConvKernel(window: window, group: group, activation: nil, geometry: resolved), replaced)
    }
}
