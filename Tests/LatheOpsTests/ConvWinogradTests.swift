import Foundation
import Testing
import CLatheShims
@testable import LatheOps
import LatheCore

/// Winograd F(4×4, 3×3) Conv against a float64 naive loop and the im2col path.
@Suite struct ConvWinogradTests {
    /// One convolution to check.
    struct Case: CustomStringConvertible {
        var batch = 1, channels = 8, filters = 8, height = 9, width = 11
        /// `[top, left, bottom, right]`.
        var pads = [1, 1, 1, 1]
        var bias = true
        var activation: FusedActivation? = nil
        /// Whether W is a plan-time constant (transformed once) or not (transformed per call).
        var constantW = true

        var description: String {
            "N\(batch) C\(channels) M\(filters) \(height)×\(width) pads \(pads) bias \(bias) \(activation.map { "\($0)" } ?? "linear") constW \(constantW)"
        }
    }

    /// The direct (im2col) kernel and the Winograd kernel for `c`, with random X, W and B.
    struct Setup {
        let direct: ConvKernel, winograd: WinogradConvKernel
        let x: Tensor, w: Tensor, b: Tensor?

        init(_ c: Case, seed: UInt64) throws {
            var rng = SeededRNG(seed)
            x = try Tensor(shape: [c.batch, c.channels, c.height, c.width], floats: rng.floats(c.batch * c.channels * c.height * c.width))
            w = try Tensor(shape: [c.filters, c.channels, 3, 3], floats: rng.floats(c.filters * c.channels * 9))
            b = c.bias ? try Tensor(shape: [c.filters], floats: rng.floats(c.filters)) : nil
            let context = NodeContext(name: "c", opType: "Conv", domain: "", opset: 17,
                                      attributes: Attributes(["pads": .ints([c.pads[0], c.pads[1], c.pads[2], c.pads[3]])]),
                                      inputPresent: [true, true, c.bias], outputPresent: [true])
            var base = try ConvKernel(context)
            if let activation = c.activation { base = base.fused(with: activation) as! ConvKernel }
            let g = try base.geometry(x.shape, w.shape, bias: b?.shape)
            direct = ConvKernel(window: base.window, group: 1, activation: base.activation, geometry: g)
            winograd = try WinogradConvKernel(replacing: direct, geometry: g, weights: c.constantW ? w : nil)
        }

        var inputs: [Tensor?] { b == nil ? [x, w] : [x, w, b] }

        /// Runs `kernel` on one thread (or `threads` lanes with the plan's per-lane workspace).
        func run(_ kernel: any Kernel, threads: Int = 1) throws -> Tensor {
            let type = try kernel.infer(inputs.map { $0?.type }, constants: Array(repeating: nil as Tensor?, count: inputs.count))[0]!
            let y = try Tensor(.float32, shape: type.shape)
            if threads == 1 {
                try kernel.compute(inputs, [y])
            } else {
                let stride = (kernel.workspaceSize(for: inputs.map { $0?.type }) + 63) / 64 * 64
                let memory = UnsafeMutableRawPointer.allocate(byteCount: max(64, stride * threads), alignment: 64)
                defer { memory.deallocate() }
                let pool = ThreadPool(threads: threads)
                try kernel.compute(inputs, [y], context: RunContext(workspace: memory, workspaceStride: stride, pool: pool))
            }
            return y
        }
    }

    /// The float64 convolution with bias and activation, and per output `Σ|x·w| + |b|`.
    static func reference(_ s: Setup, _ c: Case) -> (y: [Double], magnitude: [Double]) {
        reference(x: s.x, w: s.w, b: s.b, c)
    }

    /// The float64 convolution of X, W and B for case `c`'s geometry and activation, with `Σ|x·w| + |b|`.
    static func reference(x: Tensor, w: Tensor, b: Tensor?, _ c: Case) -> (y: [Double], magnitude: [Double]) {
        let xs = x.floatArray(), ws = w.floatArray(), bs = b?.floatArray()
        let oh = c.height + c.pads[0] + c.pads[2] - 2, ow = c.width + c.pads[1] + c.pads[3] - 2
        var y: [Double] = [], magnitude: [Double] = []
        for n in 0..<c.batch {
            for f in 0..<c.filters {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var acc = Double(bs?[f] ?? 0), abs = Swift.abs(acc)
                        for ch in 0..<c.channels {
                            for ky in 0..<3 {
                                let iy = oy + ky - c.pads[0]
                                guard iy >= 0 && iy < c.height else { continue }
                                for kx in 0..<3 {
                                    let ix = ox + kx - c.pads[1]
                                    guard ix >= 0 && ix < c.width else { continue }
                                    let term = Double(xs[((n * c.channels + ch) * c.height + iy) * c.width + ix])
                                        * Double(ws[((f * c.channels + ch) * 3 + ky) * 3 + kx])
                                    acc += term
                                    abs += Swift.abs(term)
                                }
                            }
                        }
                        y.append(activate(c.activation, acc))
                        magnitude.append(abs)
                    }
                }
            }
        }
        return (y, magnitude)
    }

    /// `activation(v)` in double.
    static func activate(_ activation: FusedActivation?, _ v: Double) -> Double {
        switch activation {
        case nil: v
        case .relu: max(v, 0)
        case .leakyRelu(let alpha): v < 0 ? Double(alpha) * v : v
        case .clip(let lo, let hi): min(max(v, Double(lo)), Double(hi))
        case .sigmoid: 1 / (1 + exp(-v))
        case .tanh: tanh(v)
        }
    }

    /// The largest `|got − ref| / (Σ|x·w| + |b|)` over all outputs.
    static func worstRelativeError(_ got: Tensor, _ ref: (y: [Double], magnitude: [Double])) -> Double {
        zip(got.floatArray(), zip(ref.y, ref.magnitude)).map { g, r in abs(Double(g) - r.0) / max(r.1, 1e-30) }.max() ?? 0
    }

    static let cases: [Case] = [
        Case(),
        Case(batch: 1, channels: 17, filters: 5, height: 13, width: 7, pads: [0, 0, 0, 0], bias: false),
        Case(batch: 3, channels: 20, filters: 19, height: 10, width: 14, activation: .relu),
        Case(batch: 2, channels: 1, filters: 3, height: 5, width: 4, pads: [2, 0, 1, 2], constantW: false),
        Case(batch: 1, channels: 32, filters: 16, height: 16, width: 16, activation: .leakyRelu(alpha: 0.1)),
        Case(batch: 2, channels: 6, filters: 33, height: 3, width: 3, pads: [0, 1, 0, 1], activation: .sigmoid),
        Case(batch: 1, channels: 9, filters: 7, height: 1, width: 1, activation: .tanh, constantW: false),
        Case(batch: 4, channels: 24, filters: 12, height: 21, width: 18, bias: false, activation: .clip(min: -0.5, max: 0.5)),
        Case(batch: 1, channels: 64, filters: 64, height: 12, width: 12, pads: [1, 2, 0, 1]),
    ]

    @Test(arguments: cases.indices) func matchesFloat64AndIm2col(index: Int) throws {
        let c = Self.cases[index]
        let s = try Setup(c, seed: UInt64(100 + index))
        let ref = Self.reference(s, c)
        let winograd = try s.run(s.winograd), direct = try s.run(s.direct)
        #expect(winograd.shape == direct.shape, "\(c)")
        let wError = Self.worstRelativeError(winograd, ref), dError = Self.worstRelativeError(direct, ref)
        // F(4×4, 3×3) measures up to 1.6e-6 of Σ|x·w| over these cases (im2col 2.3e-7); both within 1e-5.
        #expect(wError <= 1e-5, "\(c): worst error \(wError) of Σ|x·w|")
        #expect(dError <= 1e-5, "\(c): im2col worst error \(dError) of Σ|x·w|")
        let gap = zip(winograd.floatArray(), direct.floatArray()).map { abs($0 - $1) }.max() ?? 0
        let scale = max(1, ref.magnitude.max() ?? 0)
        #expect(Double(gap) <= 2e-5 * scale, "\(c): Winograd vs im2col differ by \(gap)")
    }

    @Test func lanesGiveTheSameBits() throws {
        // Blocks do not depend on the lane count, so 3 lanes compute exactly what 1 lane does.
        let c = Case(batch: 5, channels: 40, filters: 24, height: 30, width: 29, activation: .relu)
        let s = try Setup(c, seed: 7)
        #expect(s.winograd.rowsPerBlock(batch: 5, channels: 40, filters: 24) < 5 * s.winograd.tilesY, "the case must span several blocks")
        let one = try s.run(s.winograd), three = try s.run(s.winograd, threads: 3)
        #expect(one.floatArray() == three.floatArray())
        #expect(Self.worstRelativeError(one, Self.reference(s, c)) <= 1e-5)
    }

    @Test func weightsRewrittenInPlaceAreSeen() throws {
        // Training's set_weights rewrites a frozen (plan-time constant) W in place: the planned
        // transform must not be used for the new values.
        let c = Case(channels: 12, filters: 10)
        let s = try Setup(c, seed: 11)
        let before = try s.run(s.winograd)
        for i in 0..<s.w.count { s.w.floats[i] *= -0.5 }
        let after = try s.run(s.winograd)
        #expect(Self.worstRelativeError(after, Self.reference(s, c)) <= 1e-5)
        #expect(before.floatArray() != after.floatArray())
    }

    @Test func everyLevelComputesTheSameTransforms() throws {
        // The per-ISA transform bodies against the baseline, bit for bit: a block of 3 ragged tile rows
        // that crosses from the first image into the second.
        let batch = 2, channels = 3, filters = 5, height = 7, width = 23
        let shape = lts_winograd_geometry(channels: channels, filters: filters, height: height, width: width, pad_top: 1,
                                          pad_left: 2, out_height: 6, out_width: 24, tiles_x: 6, tiles_y: 2)
        let first = 1, rows = 3, tiles = rows * 6
        var rng = SeededRNG(3)
        let x = rng.floats(batch * channels * height * width)
        let p = rng.floats(36 * filters * tiles)
        /// The input and output transforms of `level`.
        func transforms(_ level: lts_vector_level) -> ([Float], [Float]) {
            let kernels = lts_winograd_kernels_at(level)!.pointee
            var v = [Float](repeating: .nan, count: 36 * channels * tiles)
            var y = [Float](repeating: .nan, count: batch * filters * 6 * 24)
            var scratch = [Float](repeating: 0, count: lts_winograd_scratch_floats(tiles, rows))
            withUnsafePointer(to: shape) { g in
                kernels.input(g, first, rows, x, &v, tiles, &scratch)
                kernels.output(g, first, rows, p, tiles, &y, &scratch)
            }
            return (v, y)
        }
        let baseline = transforms(lts_vector_level_baseline)
        #expect(!baseline.0.contains { $0.isNaN }, "every V entry written")
        #expect(baseline.1.filter { !$0.isNaN }.count == filters * (2 + 4 + 2) * 24, "the valid rows of the block's tile rows written")
        for level in [lts_vector_level_avx2, lts_vector_level_avx512] where lts_winograd_kernels_at(level) != nil {
            let other = transforms(level)
            #expect(other.0.elementsEqual(baseline.0) { $0.bitPattern == $1.bitPattern }, "input transform at level \(level.rawValue)")
            #expect(other.1.elementsEqual(baseline.1) { $0.bitPattern == $1.bitPattern }, "output transform at level \(level.rawValue)")
        }
    }

    @Test func planPicksWinogradByTheRule() throws {
        var rng = SeededRNG(5)
        /// The kernel the plan runs for a Conv of X `[batch, channels, size, size]` with these attributes.
        func planned(channels: Int, filters: Int = 32, kernel: Int = 3, batch: Int = 1, size: Int = 16,
                     _ attributes: [String: AttributeValue] = [:]) throws -> any Kernel {
            let context = NodeContext(name: "c", opType: "Conv", domain: "", opset: 17, attributes: Attributes(attributes),
                                      inputPresent: [true, true], outputPresent: [true])
            let group = (try? Attributes(attributes).int("group", 1)) ?? 1
            let w = try Tensor(shape: [filters, channels / group, kernel, kernel], floats: rng.floats(filters * channels / group * kernel * kernel))
            return try ConvKernel(context).specialized(for: [TensorType(.float32, [batch, channels, size, size]), w.type],
                                                       constants: [nil, w])
        }
        #expect(try planned(channels: 32) is WinogradConvKernel)                         // 32·32·1·196 ≥ 196,608
        #expect(try planned(channels: 32, ["pads": .ints([1, 1, 1, 1])]) is WinogradConvKernel)
        #expect(try planned(channels: 16, filters: 16) is ConvKernel)                    // 16·16·1·196: too little work
        #expect(try planned(channels: 16, filters: 16, batch: 4) is WinogradConvKernel)  // 4 images: enough
        #expect(try planned(channels: 3, batch: 64) is ConvKernel)                       // a stem: K = 27 on im2col
        #expect(try planned(channels: 64, filters: 64, size: 8) is ConvKernel)           // 4 tiles on one image
        #expect(try planned(channels: 64, filters: 64, batch: 2, size: 8) is ConvKernel)  // 8 tiles: direct wins
        #expect(try planned(channels: 64, filters: 64, batch: 4, size: 8) is WinogradConvKernel)
        #expect(try planned(channels: 32, ["strides": .ints([2, 2])]) is ConvKernel)
        #expect(try planned(channels: 32, ["dilations": .ints([2, 2])]) is ConvKernel)
        #expect(try planned(channels: 32, ["group": .int(2)]) is ConvKernel)
        #expect(try planned(channels: 32, kernel: 5) is ConvKernel)
    }

    @Test func sessionRunMatchesNaive() throws {
        // Through a session: W and B initializers, a fused Relu, two threads, batch 2.
        var rng = SeededRNG(9)
        let c = Case(batch: 2, channels: 32, filters: 32, height: 16, width: 16, activation: .relu)
        let x = try Tensor(shape: [2, 32, 16, 16], floats: rng.floats(2 * 32 * 256))
        let w = try Tensor(shape: [32, 32, 3, 3], floats: rng.floats(32 * 32 * 9))
        let b = try Tensor(shape: [32], floats: rng.floats(32))
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, dims: x.shape.map { .fixed($0) })],
            outputs: [ValueInfo(name: "y", dtype: .float32, dims: nil)],
            nodes: [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                         attributes: ["pads": .ints([1, 1, 1, 1]), "kernel_shape": .ints([3, 3])]),
                    Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"], attributes: [:])],
            initializers: ["w": w, "b": b], opsets: ["": 17])
        let session = Session(model: try Model(graph: graph, registry: builtinRegistry()), options: SessionOptions(threads: 2))
        let y = try session.run(["x": x])["y"]!
        #expect(y.shape == [2, 32, 16, 16])
        #expect(Self.worstRelativeError(y, Self.reference(x: x, w: w, b: b, c)) <= 1e-5)
    }
}
