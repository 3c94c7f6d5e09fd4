import CLatheShims
import Glibc
import LatheCore

/// Conv by Winograd F(4×4, 3×3) (Lavin & Gray 2016) for 2-D 3×3 kernels with stride 1, dilation 1 and one
/// group: 2.25× fewer multiplies than the direct product. Each 6×6 input tile is transformed
/// (`V = Bᵀ·d·B`), the 36 transformed values of every tile are multiplied with the transformed weights
/// (`U = G·g·Gᵀ`) as 36 GEMMs `U_k[filters × channels] · V_k[channels × tiles]` through `sgemm`, and each
/// 4×4 output tile is transformed back (`Aᵀ·M·A`) straight into NCHW Y, then bias and activation.
/// The tiles of consecutive tile rows, across images, form one block of the GEMMs' N; blocks run on the
/// pool's lanes. Error: about 1e-6 of `Σ|x·w|` (tests hold it to 1e-5), against 1e-7 for the direct path.
final class WinogradConvKernel: Kernel {
    /// The direct kernel this one stands in for: shape inference and the window attributes.
    let direct: ConvKernel
    /// The plan's window geometry (3×3, stride 1, dilation 1).
    let geometry: SpatialWindow
    /// W's value at plan time and its transform `U`, when W was a plan-time constant. A run uses `U`
    /// only while W still holds that value: training rewrites frozen weights in place (set_weights).
    let planned: (weights: Tensor, transform: Tensor)?

    /// When W is a constant, transforms it once. The caller checks `applies`.
    init(replacing direct: ConvKernel, geometry: SpatialWindow, weights: Tensor?) throws {
        self.direct = direct
        self.geometry = geometry
        if let weights {
            let filters = weights.shape[0], channels = weights.shape[1]
            let transform = try Tensor(.float32, shape: [36, filters, channels])
            lts_winograd_weights(weights.floats, filters, channels, transform.floats)
            planned = (try weights.copy(), transform)
        } else {
            planned = nil
        }
    }

    /// The Winograd kernel for `direct` at these input types when the shape is one it serves and pays
    /// for (see `pays`), else nil.
    static func replacing(_ direct: ConvKernel, _ g: SpatialWindow, _ inputs: [TensorType?], constants: [Tensor?]) throws
        -> WinogradConvKernel? {
        guard direct.group == 1, let x = inputs[0], let w = inputs[1], applies(g),
              pays(batch: x.shape[0], channels: x.shape[1], filters: w.shape[0], g) else { return nil }
        return try WinogradConvKernel(replacing: direct, geometry: g, weights: constants[1])
    }

    /// Whether the algorithm computes this window: two spatial axes, 3×3, stride 1, dilation 1, a non-empty output.
    static func applies(_ g: SpatialWindow) -> Bool {
        g.rank == 2 && g.kernel == [3, 3] && g.strides == [1, 1] && g.dilations == [1, 1] && g.outputCount > 0
    }

    /// The measured rule for choosing Winograd over im2col (release build, 1 thread, Zen 4; single
    /// Conv + Relu layers at batch 1 and 16, interleaved with the im2col path in one process):
    /// at least 8 channels and 8 filters (a 3-channel stem loses 10%: im2col's K = 27 is better
    /// than 36 GEMMs with K = 3), at least 16 tiles in the batch (with 1–4 tiles, 64 → 64 on 5×5 to
    /// 8×8 images ties or loses up to 1.7× to im2col; against the direct kernel, cnn_b's 32 → 64 conv
    /// on one 13×13 image — 9 tiles — ran its whole model in 92 µs with Winograd, 85 µs direct), and
    /// `channels · filters · batch · output pixels ≥ 196,608` — the work the GEMMs save must cover the
    /// transforms. Measured: wins of 0.4–0.65× for 32 → 32 at 64×64, 64 → 64 at 32×32, 16 → 16 at
    /// 32×32 and 64×64 and 128 → 128 at 16×16 (batch 1), 0.54–0.86× for 8 → 8 to 32 → 64 on 8×8 to
    /// 28×28 images at batch 16; below the bound, e.g. 16 → 16 at 16×16 or 8 → 16 at 28×28 on one
    /// image, Winograd loses by 1.1–1.8×.
    static func pays(batch: Int, channels: Int, filters: Int, _ g: SpatialWindow) -> Bool {
        let tiles = ((g.output[0] + 3) / 4) * ((g.output[1] + 3) / 4)
        return channels >= 8 && filters >= 8 && batch * tiles >= 16
            && (boundedProduct([channels, filters, batch, g.outputCount], limit: Int.max) ?? Int.max) >= 196_608
    }

    /// Tiles across and down one output plane.
    var tilesX: Int { (geometry.output[1] + 3) / 4 }
    var tilesY: Int { (geometry.output[0] + 3) / 4 }

    /// Tile rows per block (counted across the batch's images): the block's V and products
    /// (36 · (channels + filters) floats per tile) fill about 1 MB, so they stay in the L2 cache between
    /// the transforms and the GEMMs.
    func rowsPerBlock(batch: Int, channels: Int, filters: Int) -> Int {
        let budget = 1 << 20, perTile = 36 * (channels + filters) * MemoryLayout<Float>.size
        return max(1, min(batch * tilesY, budget / (perTile * tilesX)))
    }

    /// Offsets in floats of each lane's scratch regions: U (for a W that is not the planned one), the
    /// blocks' V and products, and the transforms' scratch; `total` floats in all.
    struct Layout {
        let u: Int, v: Int, p: Int, scratch: Int, total: Int

        /// For blocks of at most `tiles` tiles whose GEMMs are `width` columns wide.
        init(channels: Int, filters: Int, tiles: Int, width: Int, tilesX: Int) {
            /// `n` rounded up to whole 64-byte lines.
            func lines(_ n: Int) -> Int { (n + 15) / 16 * 16 }
            u = 0
            v = lines(36 * filters * channels)
            p = v + lines(36 * channels * width)
            scratch = p + lines(36 * filters * width)
            total = scratch + lines(lts_winograd_scratch_floats(tiles, tiles / tilesX))
        }
    }

    func layout(batch: Int, channels: Int, filters: Int) -> Layout {
        let tiles = rowsPerBlock(batch: batch, channels: channels, filters: filters) * tilesX
        return Layout(channels: channels, filters: filters, tiles: tiles, width: Self.columns(tiles), tilesX: tilesX)
    }

    /// The GEMMs' N for a block of `tiles` tiles: rounded up to a multiple of 16 (zero columns), since
    /// OpenBLAS's small-matrix kernels on AVX-512 allocate a buffer on every call for most other N
    /// (measured with the allocation counter), and a steady-state run must not allocate.
    static func columns(_ tiles: Int) -> Int { (tiles + 15) / 16 * 16 }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        try direct.infer(inputs, constants: constants)
    }

    func workspaceSize(for inputs: [TensorType?]) -> Int {
        guard let x = inputs[0], let w = inputs[1] else { return 0 }
        return layout(batch: x.shape[0], channels: x.shape[1], filters: w.shape[0]).total * MemoryLayout<Float>.size
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let bytes = workspaceSize(for: inputs.map { $0?.type })
        try RunContext.withScratch(bytes) { try compute(inputs, outputs, context: $0) }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], context: RunContext) throws {
        let x = inputs[0]!, w = inputs[1]!, y = outputs[0]!
        let bias = inputs.count > 2 ? inputs[2] : nil
        let activation = direct.activation
        let batch = x.shape[0], channels = x.shape[1], filters = w.shape[0]
        let (outHeight, outWidth) = (geometry.output[0], geometry.output[1])
        let tilesX = self.tilesX, tilesY = self.tilesY
        let rowsPerBlock = rowsPerBlock(batch: batch, channels: channels, filters: filters)
        let layout = self.layout(batch: batch, channels: channels, filters: filters)
        let tileRows = batch * tilesY
        if tileRows == 0 { return }
        let kernels = lts_winograd_kernels_active().pointee
        let input = kernels.input!, output = kernels.output!
        let shape = lts_winograd_geometry(
            channels: channels, filters: filters, height: geometry.input[0], width: geometry.input[1],
            pad_top: geometry.padsBegin[0], pad_left: geometry.padsBegin[1], out_height: outHeight, out_width: outWidth,
            tiles_x: tilesX, tiles_y: tilesY)

        let u: UnsafePointer<Float>
        if let planned, memcmp(planned.weights.floats, w.floats, w.count * MemoryLayout<Float>.size) == 0 {
            u = UnsafePointer(planned.transform.floats)
        } else {
            let fresh = context.workspace.assumingMemoryBound(to: Float.self) + layout.u
            lts_winograd_weights(w.floats, filters, channels, fresh)
            u = UnsafePointer(fresh)
        }
        let outPlane = outHeight * outWidth
        /// Convolves tile rows `first..<first + count` (counted across the batch) on scratch `base`.
        func block(_ first: Int, _ count: Int, _ base: UnsafeMutablePointer<Float>) {
            let tiles = count * tilesX, width = Self.columns(tiles)
            let v = base + layout.v, p = base + layout.p, scratch = base + layout.scratch
            withUnsafePointer(to: shape) { input($0, first, count, x.floats, v, width, scratch) }
            if width > tiles {
                for row in 0..<36 * channels { (v + row * width + tiles).update(repeating: 0, count: width - tiles) }
            }
            for k in 0..<36 {
                sgemm(transA: false, transB: false, m: filters, n: width, k: channels, alpha: 1,
                      a: u + k * filters * channels, lda: channels, b: v + k * channels * width, ldb: width, beta: 0,
                      c: p + k * filters * width, ldc: width)
            }
            withUnsafePointer(to: shape) { output($0, first, count, p, width, y.floats, scratch) }
            if bias == nil && activation == nil { return }
            // Bias and activation over the rows just written, one contiguous span per image and filter.
            var r = 0
            while r < count {
                let (n, ty) = (first + r).quotientAndRemainder(dividingBy: tilesY)
                let rows = min(count - r, tilesY - ty)
                let start = 4 * ty * outWidth, length = min(outHeight, 4 * (ty + rows)) * outWidth - start
                for f in 0..<filters {
                    let span = y.floats + (n * filters + f) * outPlane + start
                    if let bias {
                        addBiasAndActivate(activation, span, bias: bias.floats[f], span, count: length)
                    } else {
                        applyActivation(activation, span, count: length)
                    }
                }
                r += rows
            }
        }
        let blocks = (tileRows + rowsPerBlock - 1) / rowsPerBlock
        /// Runs block `b` on scratch `base`.
        func run(_ b: Int, _ base: UnsafeMutablePointer<Float>) {
            let first = b * rowsPerBlock
            block(first, min(rowsPerBlock, tileRows - first), base)
        }
        context.forEachRange(blocks) { range, scratch in
            let base = scratch.assumingMemoryBound(to: Float.self)
            for b in range { run(b, base) }
        }
    }
}
