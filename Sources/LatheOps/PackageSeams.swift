import LatheCore

// The kernels' internal building blocks, opened (at `package` visibility, not public) to the other
// Lathe modules that compute with them: the training module's gradients reuse the same GEMM seam,
// im2col and window geometry as the forward kernels, so forward and backward can never disagree.

/// `C[m×n] = alpha · op(A) · op(B) + beta · C`, row-major: the `sgemm` seam of `Linear.swift`.
package func packageSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                          beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
          beta: beta, c: c, ldc: ldc)
}

/// Resolved geometry of a sliding window (Conv, pooling) over one input's spatial axes.
package struct WindowGeometry: Sendable, Equatable {
    /// Spatial input sizes.
    package let input: [Int]
    /// Kernel taps per axis.
    package let kernel: [Int]
    /// Step between windows per axis.
    package let strides: [Int]
    /// Step between taps per axis.
    package let dilations: [Int]
    /// Padding before each axis (after auto_pad).
    package let padsBegin: [Int]
    /// Padding after each axis (after auto_pad).
    package let padsEnd: [Int]
    /// Spatial output sizes.
    package let output: [Int]

    init(_ w: SpatialWindow) {
        input = w.input; kernel = w.kernel; strides = w.strides; dilations = w.dilations
        padsBegin = w.padsBegin; padsEnd = w.padsEnd; output = w.output
    }

    /// The kernels' own form of this geometry.
    var window: SpatialWindow {
        SpatialWindow(input: input, kernel: kernel, strides: strides, dilations: dilations,
                      padsBegin: padsBegin, padsEnd: padsEnd, output: output)
    }

    /// Elements of one spatial input plane.
    package var inputCount: Int { input.reduce(1, *) }
    /// Elements of one spatial output plane.
    package var outputCount: Int { output.reduce(1, *) }
    /// Taps of one window.
    package var kernelCount: Int { kernel.reduce(1, *) }
}

/// A node's window attributes (`auto_pad`, `kernel_shape`, `pads`, `strides`, `dilations`, `ceil_mode`),
/// read and validated exactly as Conv and the pooling kernels read them.
package struct WindowSpec: Sendable {
    let attributes: WindowAttributes

    /// Reads the node's window attributes.
    /// - Throws: `.invalidArgument` as the forward kernels do.
    package init(_ c: NodeContext, requiresKernelShape: Bool) throws {
        attributes = try WindowAttributes(c, requiresKernelShape: requiresKernelShape)
    }

    /// `kernel_shape`, when the node carries it.
    package var kernelShape: [Int]? { attributes.kernelShape }

    /// The geometry for spatial input sizes `input` and kernel taps `kernel`.
    package func resolve(input: [Int], kernel: [Int]) throws -> WindowGeometry {
        WindowGeometry(try attributes.resolve(input: input, kernel: kernel))
    }
}

/// `im2col` of `Conv.swift`: unfolds `channels` planes of `x` into `col[channels·K × outputCount]`.
package func packageIm2col(_ x: UnsafePointer<Float>, channels: Int, _ g: WindowGeometry,
                           _ col: UnsafeMutablePointer<Float>) {
    im2col(x, channels: channels, g.window, col)
}

/// The in-bounds taps of every window, as the pooling kernels enumerate them (row-major tap order).
package struct WindowTaps: Sendable {
    /// Row-major spatial input offsets of output `o`'s taps: `offsets[start[o]..<start[o + 1]]`.
    package let offsets: [Int]
    /// Start of each output's taps in `offsets` (one more entry than outputs).
    package let start: [Int]
    /// Per output, the taps inside the explicitly padded input (AveragePool's `count_include_pad`).
    package let paddedCounts: [Int]

    /// Enumerates the taps of `g`.
    package init(_ g: WindowGeometry) {
        let table = WindowTable(g.window)
        offsets = table.offsets
        start = table.start
        paddedCounts = table.paddedCounts
    }
}
