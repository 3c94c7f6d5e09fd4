import Testing
@testable import Lathe

/// The custom-domain example model (examples/plugins/sobel_cnn.onnx) from Swift, with SobelEdges
/// served by a Swift kernel registered through the same table C and Python plugins use.
@Suite struct PluginTests {
    /// examples/plugins, found from this file's path.
    static let examples: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/examples/plugins"
    }()

    /// Naive Sobel gradient magnitude of each NCHW plane, zero-padded, times `scale`.
    static func sobel(_ x: [Float], n: Int, c: Int, h: Int, w: Int, scale: Float) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        let kx: [[Float]] = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
        for p in 0..<(n * c) {
            for i in 0..<h {
                for j in 0..<w {
                    var gx: Float = 0, gy: Float = 0
                    for di in -1...1 {
                        for dj in -1...1 {
                            let r = i + di, col = j + dj
                            guard r >= 0 && r < h && col >= 0 && col < w else { continue }
                            let v = x[p * h * w + r * w + col]
                            gx += kx[di + 1][dj + 1] * v
                            gy += kx[dj + 1][di + 1] * v
                        }
                    }
                    y[p * h * w + i * w + j] = scale * (gx * gx + gy * gy).squareRoot()
                }
            }
        }
        return y
    }

    /// SobelEdges as a Swift kernel.
    final class SobelKernel: Kernel {
        let scale: Float
        init(scale: Float) { self.scale = scale }

        func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
            guard let x = inputs[0], x.dtype == .float32, x.shape.count == 4 else {
                throw LatheError.shape("SobelEdges needs float32 NCHW")
            }
            return [x]
        }

        func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
            let x = inputs[0]!, s = x.shape
            let y = PluginTests.sobel(x.floatArray(), n: s[0], c: s[1], h: s[2], w: s[3], scale: scale)
            y.withUnsafeBufferPointer { outputs[0]!.floats.update(from: $0.baseAddress!, count: y.count) }
        }
    }

    func registry() throws -> OpRegistry {
        let registry = OpRegistry()
        try registerBuiltinOps(into: registry)
        return registry
    }

    @Test func sobelModelRunsWithASwiftKernel() throws {
        let registry = try registry()
        let before = registry.generation
        try registry.register(OpEntry(domain: "com.acme.vision", opType: "SobelEdges", origin: "swift-test") { context in
            SobelKernel(scale: try context.attributes.float("scale", 1))
        })
        #expect(registry.generation == before + 1)
        #expect(registry.entries.contains { $0.domain == "com.acme.vision" && $0.origin == "swift-test" })

        var rng = SystemRandomNumberGenerator()
        let pixels = (0..<(2 * 16 * 16)).map { _ in Float.random(in: 0..<1, using: &rng) }
        let image = try Tensor(shape: [2, 1, 16, 16], floats: pixels)
        let model = try Model(contentsOf: Self.examples + "/sobel_cnn.onnx", registry: registry)
        let probs = try Session(model: model).run(["image": image])["probs"]!

        // Reference: the naive Sobel, then the same CNN without its Sobel layer (built-ins only).
        let edges = try Tensor(shape: [2, 1, 16, 16], floats: Self.sobel(pixels, n: 2, c: 1, h: 16, w: 16, scale: 0.25))
        let tail = try Model(contentsOf: Self.examples + "/sobel_cnn_tail.onnx", registry: registry)
        let expected = try Session(model: tail).run(["edges": edges])["probs"]!
        #expect(probs.shape == [2, 3])
        let ref = expected.floatArray()
        let tolerance = 1e-4 * max(1, ref.map(abs).max()!)
        #expect(zip(probs.floatArray(), ref).allSatisfy { abs($0 - $1) <= tolerance })
    }

    @Test func missingCustomOpIsNamedAtLoad() throws {
        #expect {
            try Model(contentsOf: Self.examples + "/sobel_cnn.onnx", registry: try registry())
        } throws: { error in
            let e = error as! LatheError
            return e.status == .unsupportedOp
                && e.message == "unsupported op 'SobelEdges' (domain 'com.acme.vision', opset 1) at node 'sobel'"
        }
    }

    @Test func unregisteringKeepsLoadedModels() throws {
        let registry = try registry()
        try registry.register(OpEntry(domain: "com.acme.vision", opType: "SobelEdges") { _ in SobelKernel(scale: 0.25) })
        let model = try Model(contentsOf: Self.examples + "/sobel_cnn.onnx", registry: registry)
        #expect(registry.unregister(domain: "com.acme.vision", opType: "SobelEdges") == 1)
        let out = try Session(model: model).run(["image": try Tensor(.float32, shape: [1, 1, 16, 16])])
        #expect(out["probs"]!.shape == [1, 3])
        #expect(throws: LatheError.self) { try Model(contentsOf: Self.examples + "/sobel_cnn.onnx", registry: registry) }
    }
}
