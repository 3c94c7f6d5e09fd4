#if canImport(Glibc)
import Glibc
#endif
import CLatheShims
import LatheCore

/// Conv of one or two spatial axes and one group by the direct (implicit-GEMM) C kernel
/// (`conv_kernels.c`): register tiles of filters × output pixels read the input straight from NCHW
/// X (stride 1) or from one packed strip at a time, and store `act(· + bias)` straight into NCHW Y.
/// Never builds the whole unfolded matrix. Chosen per shape by `ConvKernel.specialized`.
struct DirectConv: @unchecked Sendable {
    /// One image's problem, activation included.
    let shape: lts_conv_shape
    /// The instruction-set level's kernel.
    let kernels: UnsafePointer<lts_conv_kernels>
    /// W packed for `kernels.mr` when it was a plan-time constant; packed per run otherwise.
    let packedWeights: [Float]?
    /// W's value at plan time, when constant. A run uses `packedWeights` only while W still holds it:
    /// training rewrites frozen weights in place (set_weights, checkpoint loads).
    let plannedWeights: [Float]?
    /// Floats of packed weights.
    let packedCount: Int
    /// Scratch bytes of one lane, after the packed weights (64-byte multiple).
    let scratchBytes: Int

    /// Output pixels per image below which im2col wins (it batches small images into one product).
    static let smallestOutput = 64

    /// Rows of the unfolded input (channels × kernel taps) above which im2col and the BLAS win (a packed
    /// strip outgrows L2; measured on Zen 4: 256×3×3 direct 1.3× faster, 512×3×3 0.75×).
    static let largestDepth = 4096

    /// The direct plan of a convolution, or nil when the shape is not one it serves: groups, three or
    /// more spatial axes, fewer than 4 filters, a depth above `largestDepth`, offsets beyond Int32, or
    /// fewer than `smallestOutput` output pixels per image.
    /// - Parameters:
    ///   - weights: W when constant at plan time (packed now), else nil.
    ///   - kernels: the level to run (the CPU's best by default).
    init?(_ g: SpatialWindow, channels: Int, filters: Int, group: Int, activation: FusedActivation?,
          weights: Tensor?, kernels: UnsafePointer<lts_conv_kernels> = lts_conv_kernels_active()!) {
        guard group == 1, g.rank <= 2, filters >= 4, g.outputCount >= Self.smallestOutput else { return nil }
        let depth = channels * g.kernelCount
        guard depth <= Self.largestDepth else { return nil }
        let two = g.rank == 2
        /// Axis 0 of the 2-D problem is a unit axis for a 1-D convolution.
        func axis(_ values: [Int], _ unit: Int) -> (Int64, Int64) {
            two ? (Int64(values[0]), Int64(values[1])) : (Int64(unit), Int64(values[0]))
        }
        let (ih, iw) = axis(g.input, 1), (oh, ow) = axis(g.output, 1), (kh, kw) = axis(g.kernel, 1)
        let (sh, sw) = axis(g.strides, 1), (dh, dw) = axis(g.dilations, 1), (pt, pl) = axis(g.padsBegin, 0)
        // Stride 1 numbers pixels over the padded image: every offset must fit an Int32.
        let paddedPlane = (oh + (kh - 1) * dh) * (ow + (kw - 1) * dw)
        guard boundedProduct([channels, Int(paddedPlane) + 64], limit: Int(Int32.max) / 2) != nil else { return nil }
        let (code, alpha, beta) = Self.code(activation)
        var shape = lts_conv_shape(channels: Int64(channels), in_h: ih, in_w: iw, filters: Int64(filters),
                                   kernel_h: kh, kernel_w: kw, stride_h: sh, stride_w: sw, dilation_h: dh, dilation_w: dw,
                                   pad_top: pt, pad_left: pl, out_h: oh, out_w: ow,
                                   activation: Int32(code.rawValue), alpha: alpha, beta: beta)
        let mr = kernels.pointee.mr, nr = kernels.pointee.nr
        self.kernels = kernels
        packedCount = (filters + mr - 1) / mr * mr * depth
        scratchBytes = (lts_conv_scratch_bytes(&shape, nr) + 63) / 64 * 64
        self.shape = shape
        if let weights {
            var packed = [Float](repeating: 0, count: packedCount)
            packed.withUnsafeMutableBufferPointer {
                lts_conv_pack_weights(weights.floats, filters, depth, mr, $0.baseAddress!)
            }
            packedWeights = packed
            plannedWeights = Array(UnsafeBufferPointer(start: weights.floats, count: weights.count))
        } else {
            packedWeights = nil
            plannedWeights = nil
        }
    }

    /// The C code and parameters of a fused activation.
    static func code(_ activation: FusedActivation?) -> (lts_conv_activation, Float, Float) {
        switch activation {
        case nil: (lts_conv_activation_none, 0, 0)
        case .relu: (lts_conv_activation_relu, 0, 0)
        case .leakyRelu(let alpha): (lts_conv_activation_leaky_relu, alpha, 0)
        case .clip(let lo, let hi): (lts_conv_activation_clip, lo, hi)
        case .sigmoid: (lts_conv_activation_sigmoid, 0, 0)
        case .tanh: (lts_conv_activation_tanh, 0, 0)
        }
    }

    /// Bytes of per-run packed weights at the start of lane 0's workspace (also reserved when W was packed
    /// at plan time, for a W rewritten since).
    var packedBytes: Int { (packedCount * MemoryLayout<Float>.size + 63) / 64 * 64 }

    /// Workspace bytes of one lane: the per-run packed weights (used in lane 0's block), then scratch.
    var workspaceBytes: Int { packedBytes + scratchBytes }

    /// `y = act(W ⋆ x + bias)` for the whole batch: its output strips split over the pool's lanes in
    /// contiguous ranges when the product is large enough to pay for the hand-off.
    func run(x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
             y: UnsafeMutablePointer<Float>, batch: Int, context: RunContext) {
        let kernels = self.kernels.pointee
        let depth = Int(shape.channels * shape.kernel_h * shape.kernel_w)
        let filters = Int(shape.filters)
        let outCount = filters * Int(shape.out_h * shape.out_w)
        let packedBytes = self.packedBytes
        withUnsafePointer(to: shape) { shape in
            let strips = lts_conv_strip_count(shape, kernels.nr, batch)
            /// Runs everything with the weights at `packed`.
            func all(_ packed: UnsafePointer<Float>) {
                // A small product runs on the caller: the hand-off would cost more.
                let serial = batch * outCount * depth < 1 << 18
                (serial ? RunContext(workspace: context.workspace, workspaceStride: 0, pool: .serial) : context)
                    .forEachRange(strips) { range, scratch in
                        kernels.run!(shape, x, packed, bias, y, batch, range.lowerBound, range.upperBound, scratch + packedBytes)
                    }
            }
            if let packedWeights, let plannedWeights,
               memcmp(plannedWeights, w, plannedWeights.count * MemoryLayout<Float>.size) == 0 {
                packedWeights.withUnsafeBufferPointer { all($0.baseAddress!) }
            } else {
                let packed = context.workspace.assumingMemoryBound(to: Float.self)
                lts_conv_pack_weights(w, filters, depth, kernels.mr, packed)
                all(packed)
            }
        }
    }
}
