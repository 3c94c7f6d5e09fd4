import CLatheShims
import Testing
@testable import LatheOps
import LatheCore

/// The direct convolution (`DirectConv`, conv_kernels.c) at every instruction-set level this CPU runs,
/// against the im2col + `sgemm` path and the naive loop (`ConvTests.referenceConv`), over strides,
/// pads, dilations, 1×1 and 1-D windows, odd sizes and channel counts, batches, bias or not, every
/// fused activation, weights packed at plan time or per run, one lane or two.
/// Tolerance: `ConvPoolNormSupport.close` (1e-4 relative to the largest reference magnitude).
@Suite struct ConvDirectTests {
    typealias S = ConvPoolNormSupport

    /// One random problem: geometry and operands.
    struct Problem {
        var g: SpatialWindow
        var x: Tensor, w: Tensor, bias: Tensor?
        var activation: FusedActivation?
        var label: String { "x\(x.shape) w\(w.shape) strides \(g.strides) dilations \(g.dilations) pads \(g.padsBegin)+\(g.padsEnd) bias \(bias != nil) \(String(describing: activation))" }
    }

    static let activations: [FusedActivation?] = [nil, .relu, .leakyRelu(alpha: 0.1), .clip(min: -0.5, max: 0.75), .sigmoid, .tanh]

    /// A random problem of `spatial` axes (1 or 2) with outputs of at least one pixel.
    static func problem(_ rng: inout SeededRNG, spatial: Int, activation: FusedActivation?) throws -> Problem {
        while true {
            let kernel = (0..<spatial).map { _ in S.pick([1, 1, 2, 3, 3, 5], &rng) }
            let input = (0..<spatial).map { _ in Int.random(in: spatial == 1 ? 64...150 : 6...21, using: &rng) }
            let strides = (0..<spatial).map { _ in S.pick([1, 1, 1, 2, 2, 3], &rng) }
            let dilations = (0..<spatial).map { _ in S.pick([1, 1, 1, 2], &rng) }
            let pads = (0..<2 * spatial).map { _ in S.pick([0, 0, 1, 2], &rng) }
            guard let geo = S.geometry(input: input, kernel: kernel, strides: strides, dilations: dilations,
                                       pads: pads, autoPad: "NOTSET", ceilMode: false),
                  geo.output.reduce(1, *) >= DirectConv.smallestOutput else { continue }
            let g = SpatialWindow(input: input, kernel: kernel, strides: strides, dilations: dilations,
                                  padsBegin: geo.begin, padsEnd: geo.end, output: geo.output)
            let batch = S.pick([1, 1, 2, 3], &rng)
            let channels = S.pick([1, 2, 3, 5, 8, 17, 32], &rng), filters = S.pick([4, 5, 8, 13, 16, 33], &rng)
            let x = try S.random([batch, channels] + input, &rng), w = try S.random([filters, channels] + kernel, &rng)
            let bias = Bool.random(using: &rng) ? try S.random([filters], &rng) : nil
            return Problem(g: g, x: x, w: w, bias: bias, activation: activation)
        }
    }

    /// The im2col + `sgemm` path for one problem, then bias and activation (what ConvKernel did before).
    static func im2colConv(_ p: Problem) -> [Float] {
        let batch = p.x.shape[0], channels = p.x.shape[1], filters = p.w.shape[0]
        let rows = channels * p.g.kernelCount, outCount = p.g.outputCount
        var col = [Float](repeating: 0, count: rows * outCount)
        var y = [Float](repeating: 0, count: batch * filters * outCount)
        col.withUnsafeMutableBufferPointer { col in
            y.withUnsafeMutableBufferPointer { y in
                for n in 0..<batch {
                    im2col(p.x.floats + n * channels * p.g.inputCount, channels: channels, p.g, col.baseAddress!)
                    let yn = y.baseAddress! + n * filters * outCount
                    sgemm(transA: false, transB: false, m: filters, n: outCount, k: rows, alpha: 1, a: p.w.floats, lda: rows,
                          b: col.baseAddress!, ldb: outCount, beta: 0, c: yn, ldc: outCount)
                    for m in 0..<filters {
                        addBiasAndActivate(p.activation, yn + m * outCount, bias: p.bias?.floats[m] ?? 0, yn + m * outCount,
                                           count: outCount)
                    }
                }
            }
        }
        return y
    }

    /// The direct path at `level`, weights packed at plan time or per run, on `lanes` lanes.
    static func direct(_ p: Problem, level: lts_vector_level, constantWeights: Bool, lanes: Int) throws -> [Float] {
        let kernels = lts_conv_kernels_at(level)!
        let conv = try #require(DirectConv(p.g, channels: p.x.shape[1], filters: p.w.shape[0], group: 1,
                                           activation: p.activation, weights: constantWeights ? p.w : nil,
                                           kernels: kernels), "\(p.label)")
        let y = try Tensor(.float32, shape: [p.x.shape[0], p.w.shape[0]] + p.g.output)
        let pool = lanes == 1 ? ThreadPool.serial : ThreadPool(threads: lanes)
        let stride = conv.workspaceBytes
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(1, stride * lanes), alignment: 64)
        defer { memory.deallocate() }
        // Stale scratch must not leak into results.
        memory.initializeMemory(as: UInt8.self, repeating: 0xFF, count: max(1, stride * lanes))
        conv.run(x: p.x.floats, w: p.w.floats, bias: p.bias.map { UnsafePointer($0.floats) }, y: y.floats,
                 batch: p.x.shape[0], context: RunContext(workspace: memory, workspaceStride: stride, pool: pool))
        return y.floatArray()
    }

    /// The naive reference with the activation applied.
    static func naive(_ p: Problem) -> [Float] {
        var ref = ConvTests.referenceConv(x: p.x, w: p.w, bias: p.bias, group: 1, strides: p.g.strides,
                                          dilations: p.g.dilations, begin: p.g.padsBegin, output: p.g.output)
        if let activation = p.activation { ref.withUnsafeMutableBufferPointer { activation.apply($0.baseAddress!, count: $0.count) } }
        return ref
    }

    /// Every check of one level: 2-D and 1-D problems under each activation.
    static func check(_ level: lts_vector_level) throws {
        var rng = SeededRNG(0xC0DE + UInt64(level.rawValue))
        for (index, activation) in activations.enumerated() {
            for round in 0..<12 {
                let p = try problem(&rng, spatial: round % 4 == 3 ? 1 : 2, activation: activation)
                let reference = im2colConv(p)
                let got = try direct(p, level: level, constantWeights: round % 2 == 0, lanes: 1 + (round + index) % 2)
                #expect(S.close(got, reference), "\(p.label)")
                if round < 3 { #expect(S.close(got, naive(p)), "naive: \(p.label)") }
            }
        }
    }

    @Test func weightsRewrittenInPlaceAreSeen() throws {
        // Training's set_weights and checkpoint loads rewrite a frozen (plan-time constant) W in place:
        // the weights packed at plan time must not be used for the new values.
        var rng = SeededRNG(17)
        let p = try Self.problem(&rng, spatial: 2, activation: nil)
        let kernels = lts_conv_kernels_active()!
        let conv = try #require(DirectConv(p.g, channels: p.x.shape[1], filters: p.w.shape[0], group: 1, activation: nil,
                                           weights: p.w, kernels: kernels))
        let y = try Tensor(.float32, shape: [p.x.shape[0], p.w.shape[0]] + p.g.output)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(1, conv.workspaceBytes), alignment: 64)
        defer { memory.deallocate() }
        /// One run with the current contents of W.
        func run() -> [Float] {
            conv.run(x: p.x.floats, w: p.w.floats, bias: p.bias.map { UnsafePointer($0.floats) }, y: y.floats,
                     batch: p.x.shape[0], context: RunContext(workspace: memory, workspaceStride: conv.workspaceBytes, pool: .serial))
            return y.floatArray()
        }
        let before = run()
        #expect(S.close(before, Self.im2colConv(p)), "\(p.label)")
        for i in 0..<p.w.count { p.w.floats[i] *= -0.5 }
        let after = run()
        #expect(S.close(after, Self.im2colConv(p)), "after rewriting W: \(p.label)")
        #expect(before != after)
    }

    @Test func baseline() throws { try Self.check(lts_vector_level_baseline) }

    @Test(.enabled(if: VectorLevelTests.has(lts_vector_level_avx2), "this CPU lacks AVX2 or FMA"))
    func avx2() throws { try Self.check(lts_vector_level_avx2) }

    @Test(.enabled(if: VectorLevelTests.has(lts_vector_level_avx512), "this CPU lacks AVX-512 F/DQ/VL/BW"))
    func avx512() throws { try Self.check(lts_vector_level_avx512) }

    /// The shapes of the seed CNNs (3×3 pad 1 at 64×64, stride 2, 1×1 stride 2, 3×3 valid at 26×26 and
    /// 5×5) at the best level, against im2col.
    @Test func seedModelShapes() throws {
        var rng = SeededRNG(7)
        let cases: [(input: Int, channels: Int, filters: Int, kernel: Int, stride: Int, pad: Int)] = [
            (64, 32, 32, 3, 1, 1), (64, 32, 64, 3, 2, 1), (64, 32, 64, 1, 2, 0), (28, 1, 32, 3, 1, 0),
            (13, 32, 64, 3, 1, 0), (12, 64, 64, 3, 1, 0), (32, 64, 64, 1, 1, 0), (9, 8, 16, 3, 1, 1),
        ]
        for c in cases {
            let out = (c.input + 2 * c.pad - c.kernel) / c.stride + 1
            let g = SpatialWindow(input: [c.input, c.input], kernel: [c.kernel, c.kernel], strides: [c.stride, c.stride],
                                  dilations: [1, 1], padsBegin: [c.pad, c.pad], padsEnd: [c.pad, c.pad], output: [out, out])
            let p = Problem(g: g, x: try S.random([2, c.channels, c.input, c.input], &rng),
                            w: try S.random([c.filters, c.channels, c.kernel, c.kernel], &rng),
                            bias: try S.random([c.filters], &rng), activation: .relu)
            #expect(S.close(try Self.direct(p, level: lts_best_vector_level(), constantWeights: true, lanes: 2), Self.im2colConv(p)),
                    "\(p.label)")
        }
    }

    /// Plans choose the direct path for plain convolutions and im2col for grouped, 3-D, deep and tiny ones.
    @Test func choice() throws {
        let g2 = SpatialWindow(input: [8, 8], kernel: [3, 3], strides: [1, 1], dilations: [1, 1],
                               padsBegin: [1, 1], padsEnd: [1, 1], output: [8, 8])
        let g3 = SpatialWindow(input: [4, 4, 4], kernel: [3, 3, 3], strides: [1, 1, 1], dilations: [1, 1, 1],
                               padsBegin: [1, 1, 1], padsEnd: [1, 1, 1], output: [4, 4, 4])
        #expect(DirectConv(g2, channels: 8, filters: 8, group: 1, activation: nil, weights: nil) != nil)
        #expect(DirectConv(g2, channels: 8, filters: 8, group: 2, activation: nil, weights: nil) == nil)
        #expect(DirectConv(g3, channels: 8, filters: 8, group: 1, activation: nil, weights: nil) == nil)
        #expect(DirectConv(g2, channels: 8, filters: 2, group: 1, activation: nil, weights: nil) == nil)
        #expect(DirectConv(g2, channels: 1024, filters: 8, group: 1, activation: nil, weights: nil) == nil)
        let tiny = SpatialWindow(input: [5, 5], kernel: [3, 3], strides: [1, 1], dilations: [1, 1],
                                 padsBegin: [0, 0], padsEnd: [0, 0], output: [3, 3])
        #expect(DirectConv(tiny, channels: 8, filters: 8, group: 1, activation: nil, weights: nil) == nil)
    }
}
