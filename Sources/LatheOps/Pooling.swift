import LatheCore

/// MaxPool, AveragePool, GlobalAveragePool (float32, any number of spatial axes).
enum PoolingOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("MaxPool") { try PoolKernel($0, .max) }
        try registry.add("AveragePool") { try PoolKernel($0, .average) }
        try registry.add("GlobalAveragePool") { c in
            try c.expectInputs(1...1)
            guard c.outputPresent == [true] else { throw LatheError.invalid("\(c.label): takes exactly one wired output Y") }
            return GlobalAveragePoolKernel()
        }
    }
}

/// For every output position of a window, the in-bounds input positions it reads.
struct WindowTable: Sendable {
    /// Row-major spatial offsets of the taps of output `o`: `offsets[start[o]..<start[o + 1]]`.
    let offsets: [Int]
    let start: [Int]
    /// Per output, how many taps fall inside the explicitly padded input (for `count_include_pad`).
    let paddedCounts: [Int]

    /// Enumerates the taps of every window of `g`, axis 0 outermost, so taps come in row-major order.
    init(_ g: SpatialWindow) {
        let r = g.rank
        // Per axis and output index: the valid input positions, and the count inside the padded extent.
        var axisPositions = [[Int]](repeating: [], count: r)
        var axisStart = [[Int]](repeating: [0], count: r)
        var axisPadded = [[Int]](repeating: [], count: r)
        for a in 0..<r {
            for o in 0..<g.output[a] {
                var padded = 0
                for k in 0..<g.kernel[a] {
                    let p = o * g.strides[a] + k * g.dilations[a] - g.padsBegin[a]
                    if p >= 0 && p < g.input[a] { axisPositions[a].append(p) }
                    if p < g.input[a] + g.padsEnd[a] { padded += 1 }
                }
                axisStart[a].append(axisPositions[a].count)
                axisPadded[a].append(padded)
            }
        }
        let inStrides = ShapeMath.strides(g.input)
        let outCount = g.outputCount
        var offsets: [Int] = []
        offsets.reserveCapacity(outCount * g.kernelCount)
        var start = [0]
        start.reserveCapacity(outCount + 1)
        var paddedCounts = [Int](repeating: 1, count: outCount)
        var position = [Int](repeating: 0, count: r)
        var tap = [Int](repeating: 0, count: r)
        for o in 0..<outCount {
            var taps = 1
            for a in 0..<r {
                taps *= axisStart[a][position[a] + 1] - axisStart[a][position[a]]
                paddedCounts[o] *= axisPadded[a][position[a]]
                tap[a] = 0
            }
            for _ in 0..<taps {
                var offset = 0
                for a in 0..<r { offset += axisPositions[a][axisStart[a][position[a]] + tap[a]] * inStrides[a] }
                offsets.append(offset)
                var a = r - 1
                while a >= 0 {
                    tap[a] += 1
                    if tap[a] < axisStart[a][position[a] + 1] - axisStart[a][position[a]] { break }
                    tap[a] = 0
                    a -= 1
                }
            }
            start.append(offsets.count)
            var a = r - 1
            while a >= 0 {
                position[a] += 1
                if position[a] < g.output[a] { break }
                position[a] = 0
                a -= 1
            }
        }
        self.offsets = offsets
        self.start = start
        self.paddedCounts = paddedCounts
    }
}

/// MaxPool (opsets 1–21, optional Indices output) and AveragePool (opsets 1–21).
final class PoolKernel: Kernel {
    /// Which reduction the window applies.
    enum Mode: Sendable { case max, average }

    /// MaxPool or AveragePool.
    let mode: Mode
    /// Window attributes (kernel_shape, pads, strides, dilations, auto_pad, ceil_mode).
    let window: WindowAttributes
    /// AveragePool: divide by the taps inside the padded input rather than the in-bounds ones.
    let countIncludePad: Bool
    /// MaxPool: Indices flatten the spatial position column-major (`storage_order = 1`).
    let columnMajorIndices: Bool
    /// Which output slots are wired (MaxPool's Indices is optional).
    let outputPresent: [Bool]
    /// The window geometry and tap table of the plan's input shape (set by `specialized`).
    let resolved: (geometry: SpatialWindow, table: WindowTable, indexStrides: [Int])?

    init(_ c: NodeContext, _ mode: Mode) throws {
        resolved = nil
        try c.expectInputs(1...1)
        self.mode = mode
        window = try WindowAttributes(c, requiresKernelShape: true)
        let includePad = try c.attributes.int("count_include_pad", 0)
        countIncludePad = mode == .average && includePad != 0
        let storageOrder = mode == .max ? try c.attributes.int("storage_order", 0) : 0
        guard storageOrder == 0 || storageOrder == 1 else {
            throw LatheError.invalid("\(c.label): storage_order must be 0 or 1, got \(storageOrder)")
        }
        columnMajorIndices = storageOrder == 1
        outputPresent = c.outputPresent
        guard c.outputPresent.first == true else { throw LatheError.invalid("\(c.label): output Y must be wired") }
        if mode == .average && c.outputPresent.count > 1 {
            throw LatheError.invalid("\(c.label): AveragePool has one output, got \(c.outputPresent.count)")
        }
        if mode == .max && c.outputPresent.count > 2 {
            throw LatheError.invalid("\(c.label): MaxPool has at most two outputs, got \(c.outputPresent.count)")
        }
    }

    private init(_ other: PoolKernel, geometry: SpatialWindow) {
        mode = other.mode
        window = other.window
        countIncludePad = other.countIncludePad
        columnMajorIndices = other.columnMajorIndices
        outputPresent = other.outputPresent
        resolved = (geometry, WindowTable(geometry), other.indexStrides(geometry))
    }

    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel {
        guard let x = inputs[0] else { return self }
        return PoolKernel(self, geometry: try geometry(x.shape))
    }

    /// Strides that flatten a spatial position into an Indices entry, row- or column-major.
    func indexStrides(_ g: SpatialWindow) -> [Int] {
        var strides = ShapeMath.strides(g.input)
        if columnMajorIndices {
            var step = 1
            for a in 0..<g.rank { strides[a] = step; step *= g.input[a] }
        }
        return strides
    }

    /// The window geometry for input shape `x`.
    func geometry(_ x: [Int]) throws -> SpatialWindow {
        guard x.count >= 3 else { throw LatheError.shape("X must have rank >= 3 (N, C, spatial...), got shape \(x)") }
        let kernel = window.kernelShape!
        guard kernel.count == x.count - 2 else {
            throw LatheError.shape("kernel_shape \(kernel) has \(kernel.count) axes but X of shape \(x) has \(x.count - 2) spatial axes")
        }
        let g = try window.resolve(input: Array(x.dropFirst(2)), kernel: kernel)
        guard boundedProduct([g.outputCount, g.kernelCount]) != nil else {
            throw LatheError(.outOfMemory, "pooling X \(x) with kernel \(kernel) needs a window table beyond \(Int32.max) entries")
        }
        return g
    }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32)
        let shape = Array(x.shape.prefix(2)) + (try geometry(x.shape)).output
        return outputPresent.enumerated().map { slot, present in
            present ? TensorType(slot == 0 ? .float32 : .int64, shape) : nil
        }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        try compute(inputs, outputs, context: .serial)
    }

    /// Splits the planes (N·C) into one contiguous chunk per lane of the session's pool when there is
    /// enough work; each plane's arithmetic is the same however they are split.
    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], context: RunContext) throws {
        let x = inputs[0]!, y = outputs[0]!
        let planes = x.shape[0] * x.shape[1]
        let lanes = context.pool.threadCount
        if lanes > 1, outputs.count == 1, let (g, _, _) = resolved, planes >= 2 * lanes,
           planes * g.outputCount * g.kernelCount >= 1 << 15 {
            let chunk = (planes + lanes - 1) / lanes
            context.pool.parallelFor(lanes) { lane in
                let lo = lane * chunk, hi = min(planes, lo + chunk)
                if lo < hi { poolPlanes(x, y, lo..<hi) }
            }
            return
        }
        try computePlanes(inputs, outputs)
    }

    /// Planes `range` of X into Y without Indices, on the caller's thread (needs the plan-time geometry).
    private func poolPlanes(_ x: Tensor, _ y: Tensor, _ range: Range<Int>) {
        let (g, table, _) = resolved!
        let inCount = g.inputCount, outCount = g.outputCount
        if g.rank == 2, g.dilations == [1, 1] {
            for plane in range { pool2D(x.floats + plane * inCount, y.floats + plane * outCount, g) }
            return
        }
        table.offsets.withUnsafeBufferPointer { offsets in
            table.start.withUnsafeBufferPointer { start in
                for plane in range {
                    poolTable(x.floats + plane * inCount, y.floats + plane * outCount, offsets, start, table.paddedCounts)
                }
            }
        }
    }

    /// One plane through the tap table (any rank and dilation), without Indices.
    private func poolTable(_ xp: UnsafePointer<Float>, _ yp: UnsafeMutablePointer<Float>, _ offsets: UnsafeBufferPointer<Int>,
                           _ start: UnsafeBufferPointer<Int>, _ paddedCounts: [Int]) {
        let outCount = start.count - 1
        switch mode {
        case .max:
            for o in 0..<outCount {
                var best = -Float.greatestFiniteMagnitude, seen = false
                for t in start[o]..<start[o + 1] {
                    let v = xp[offsets[t]]
                    if !seen || v > best { best = v; seen = true }
                }
                yp[o] = best
            }
        case .average:
            for o in 0..<outCount {
                var sum: Float = 0
                for t in start[o]..<start[o + 1] { sum += xp[offsets[t]] }
                let count = countIncludePad ? paddedCounts[o] : start[o + 1] - start[o]
                yp[o] = sum / Float(count)
            }
        }
    }

    /// Every plane, with Indices when wired.
    private func computePlanes(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let g: SpatialWindow, table: WindowTable, indexStrides: [Int]
        if let resolved {
            (g, table, indexStrides) = resolved
        } else {
            g = try geometry(x.shape)
            (table, indexStrides) = (WindowTable(g), self.indexStrides(g))
        }
        let planes = x.shape[0] * x.shape[1], inCount = g.inputCount, outCount = g.outputCount
        let indices = outputs.count > 1 ? outputs[1] : nil
        if indices == nil, resolved != nil {
            poolPlanes(x, y, 0..<planes)
            return
        }
        if indices == nil, g.rank == 2, g.dilations == [1, 1] {
            for plane in 0..<planes { pool2D(x.floats + plane * inCount, y.floats + plane * outCount, g) }
            return
        }
        table.offsets.withUnsafeBufferPointer { offsets in
            table.start.withUnsafeBufferPointer { start in
                for plane in 0..<planes {
                    let xp = x.floats + plane * inCount, yp = y.floats + plane * outCount
                    switch mode {
                    case .max:
                        for o in 0..<outCount {
                            // An empty window (all padding) yields the lowest float and index -1.
                            var best = -Float.greatestFiniteMagnitude, bestOffset = -1
                            for t in start[o]..<start[o + 1] {
                                let v = xp[offsets[t]]
                                if bestOffset < 0 || v > best { best = v; bestOffset = offsets[t] }
                            }
                            yp[o] = best
                            if let indices {
                                indices.int64s[plane * outCount + o] = bestOffset < 0
                                    ? -1 : Int64(plane * inCount + flatIndex(bestOffset, g.input, indexStrides))
                            }
                        }
                    case .average:
                        for o in 0..<outCount {
                            var sum: Float = 0
                            for t in start[o]..<start[o + 1] { sum += xp[offsets[t]] }
                            let count = countIncludePad ? table.paddedCounts[o] : start[o + 1] - start[o]
                            yp[o] = sum / Float(count)
                        }
                    }
                }
            }
        }
    }

    /// One plane of a two-axis, undilated window: the bounds of each window clipped to the input
    /// directly, no tap table. Max keeps the first tap and replaces it by any later larger one
    /// (so a NaN first tap wins, later NaNs are skipped) in every path.
    private func pool2D(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: SpatialWindow) {
        let (ih, iw) = (g.input[0], g.input[1]), (oh, ow) = (g.output[0], g.output[1])
        let (kh, kw) = (g.kernel[0], g.kernel[1]), (sh, sw) = (g.strides[0], g.strides[1])
        let (ph, pw) = (g.padsBegin[0], g.padsBegin[1])
        let (limitH, limitW) = (ih + g.padsEnd[0], iw + g.padsEnd[1])
        let isMax = mode == .max
        if isMax, kh == 2, kw == 2, sh == 2, sw == 2, ph == 0, pw == 0, 2 * oh <= ih, 2 * ow <= iw {
            maxPool2x2(x, y, iw: iw, oh: oh, ow: ow)
            return
        }
        // Output columns whose window lies inside the input: ox in firstInside..<endInside.
        let firstInside = min(ow, (pw + sw - 1) / sw)
        let endInside = max(firstInside, min(ow, iw + pw - kw < 0 ? 0 : (iw + pw - kw) / sw + 1))
        for oy in 0..<oh {
            let top = oy * sh - ph
            let y0 = max(top, 0), y1 = min(top + kh, ih)
            let rowsPadded = min(top + kh, limitH) - top
            let yRow = y + oy * ow
            /// The window of output column `ox`, clipped.
            @inline(__always) func window(_ ox: Int) -> Float {
                let left = ox * sw - pw
                let x0 = max(left, 0), x1 = min(left + kw, iw)
                if isMax {
                    var best = -Float.greatestFiniteMagnitude
                    var seen = false
                    for r in y0..<max(y0, y1) {
                        let row = x + r * iw
                        for c in x0..<max(x0, x1) {
                            let v = row[c]
                            if !seen || v > best { best = v; seen = true }
                        }
                    }
                    return best
                }
                var sum: Float = 0
                for r in y0..<max(y0, y1) {
                    let row = x + r * iw
                    for c in x0..<max(x0, x1) { sum += row[c] }
                }
                let count = countIncludePad ? rowsPadded * (min(left + kw, limitW) - left)
                                            : max(0, y1 - y0) * max(0, x1 - x0)
                return sum / Float(count)
            }
            for ox in 0..<firstInside { yRow[ox] = window(ox) }
            if y0 < y1 {
                // Interior columns: whole window rows, no clipping per tap.
                let count = Float(countIncludePad ? rowsPadded * kw : (y1 - y0) * kw)
                for ox in firstInside..<endInside {
                    let base = x + y0 * iw + ox * sw - pw
                    if isMax {
                        var best = base[0]
                        for r in 0..<(y1 - y0) {
                            let row = base + r * iw
                            for c in 0..<kw where row[c] > best { best = row[c] }
                        }
                        yRow[ox] = best
                    } else {
                        var sum: Float = 0
                        for r in 0..<(y1 - y0) {
                            let row = base + r * iw
                            for c in 0..<kw { sum += row[c] }
                        }
                        yRow[ox] = sum / count
                    }
                }
            } else {
                for ox in firstInside..<endInside { yRow[ox] = window(ox) }
            }
            for ox in endInside..<ow { yRow[ox] = window(ox) }
        }
    }

    /// MaxPool 2×2, stride 2, no padding: 8 outputs per step from two 16-float rows split into even
    /// and odd columns.
    private func maxPool2x2(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, iw: Int, oh: Int, ow: Int) {
        @inline(__always) func larger(_ best: SIMD8<Float>, _ v: SIMD8<Float>) -> SIMD8<Float> {
            best.replacing(with: v, where: v .> best)
        }
        for oy in 0..<oh {
            let r0 = x + 2 * oy * iw, r1 = r0 + iw, out = y + oy * ow
            var ox = 0
            while ox + 8 <= ow {
                let a = VectorMath.load(r0 + 2 * ox), b = VectorMath.load(r1 + 2 * ox)
                let best = larger(larger(larger(a.evenHalf, a.oddHalf), b.evenHalf), b.oddHalf)
                UnsafeMutableRawPointer(out + ox).storeBytes(of: best, as: SIMD8<Float>.self)
                ox += 8
            }
            while ox < ow {
                let p = r0 + 2 * ox, q = r1 + 2 * ox
                var best = p[0]
                if p[1] > best { best = p[1] }
                if q[0] > best { best = q[0] }
                if q[1] > best { best = q[1] }
                out[ox] = best
                ox += 1
            }
        }
    }

    /// The spatial part of an Indices entry: the row-major offset `rowMajor` re-flattened with `strides`.
    @inline(__always) func flatIndex(_ rowMajor: Int, _ spatial: [Int], _ strides: [Int]) -> Int {
        guard columnMajorIndices else { return rowMajor }
        var rest = rowMajor, index = 0
        for a in stride(from: spatial.count - 1, through: 0, by: -1) {
            index += (rest % spatial[a]) * strides[a]
            rest /= spatial[a]
        }
        return index
    }
}

/// GlobalAveragePool (opsets 1–21): the mean over all spatial axes, kept as size-1 axes.
final class GlobalAveragePoolKernel: Kernel {
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let x = try require(inputs[0], "X", .float32)
        guard x.shape.count >= 3 else { throw LatheError.shape("X must have rank >= 3 (N, C, spatial...), got shape \(x.shape)") }
        return [TensorType(.float32, Array(x.shape.prefix(2)) + [Int](repeating: 1, count: x.shape.count - 2))]
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let x = inputs[0]!, y = outputs[0]!
        let planes = x.shape[0] * x.shape[1]
        let size = x.shape.dropFirst(2).reduce(1, *)
        for plane in 0..<planes {
            let xp = x.floats + plane * size
            var sum: Float = 0
            for i in 0..<size { sum += xp[i] }
            y.floats[plane] = sum / Float(size)
        }
    }
}
