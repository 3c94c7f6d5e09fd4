#if canImport(Glibc)
import Glibc
#endif
import Testing
import LatheCore
import LatheOps

/// The ai.onnx.ml ops against naive references: Scaler, Normalizer, LinearRegressor, LinearClassifier
/// (labels and post transforms) and ArrayFeatureExtractor. Tolerance: max|diff| <= 1e-4 × max(1, max|ref|).
@Suite struct MLTests {
    /// Runs one ai.onnx.ml node on `x`; returns its outputs.
    static func run(_ opType: String, _ x: Tensor, extra: [Tensor] = [], outputs: Int = 1,
                    attributes: [String: AttributeValue]) throws -> [Tensor] {
        let names = ["x"] + extra.indices.map { "e\($0)" }
        let outs = (0..<outputs).map { "out\($0)" }
        var initializers: [String: Tensor] = [:]
        for (i, t) in extra.enumerated() { initializers["e\(i)"] = t }
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: x.dtype, dims: x.shape.map { .fixed($0) })],
                          outputs: outs.map { ValueInfo(name: $0, dtype: .float32, dims: nil) },
                          nodes: [Node(name: "n", opType: opType, domain: "ai.onnx.ml", inputs: names, outputs: outs, attributes: attributes)],
                          initializers: initializers, opsets: ["": 17, "ai.onnx.ml": 3])
        let result = try Session(model: try Model(graph: graph, registry: builtinRegistry())).run(["x": x])
        return outs.map { result[$0]! }
    }

    @Test func scaler() throws {
        var rng = SeededRNG(1)
        let x = rng.floats(12, -5...5), offset = rng.floats(4), scale = rng.floats(4)
        let got = try Self.run("Scaler", try Tensor(shape: [3, 4], floats: x), attributes: ["offset": .floats(offset), "scale": .floats(scale)])[0]
        expectClose(got, x.indices.map { (x[$0] - offset[$0 % 4]) * scale[$0 % 4] }, shape: [3, 4])
        let ints = try Tensor(shape: [2, 2], int64s: [1, -2, 3, 4])
        let scaled = try Self.run("Scaler", ints, attributes: ["offset": .floats([1]), "scale": .floats([0.5])])[0]
        expectClose(scaled, [0, -1.5, 1, 1.5], shape: [2, 2])
    }

    @Test(arguments: ["MAX", "L1", "L2"]) func normalizer(norm: String) throws {
        var rng = SeededRNG(2)
        let x = rng.floats(15, -2...3)
        let got = try Self.run("Normalizer", try Tensor(shape: [3, 5], floats: x), attributes: ["norm": .string(norm)])[0]
        var ref = x
        for row in 0..<3 {
            let v = Array(x[(row * 5)..<(row * 5 + 5)])
            let d = norm == "MAX" ? v.max()! : norm == "L1" ? v.map(abs).reduce(0, +) : v.map { $0 * $0 }.reduce(0, +).squareRoot()
            for j in 0..<5 { ref[row * 5 + j] = v[j] / d }
        }
        expectClose(got, ref, shape: [3, 5])
    }

    @Test func linearRegressor() throws {
        var rng = SeededRNG(3)
        let x = rng.floats(8), w = rng.floats(6), b = rng.floats(3)
        let got = try Self.run("LinearRegressor", try Tensor(shape: [2, 4], floats: x).reshaped([4, 2]),
                               attributes: ["coefficients": .floats(w), "intercepts": .floats(b), "targets": .int(3)])[0]
        var ref: [Float] = []
        for n in 0..<4 {
            for t in 0..<3 {
                let first: Float = x[n * 2] * w[t * 2], second: Float = x[n * 2 + 1] * w[t * 2 + 1]
                ref.append(b[t] + first + second)
            }
        }
        expectClose(got, ref, shape: [4, 3])
    }

    @Test(arguments: ["NONE", "SOFTMAX", "LOGISTIC"]) func linearClassifier(post: String) throws {
        var rng = SeededRNG(4)
        let x = rng.floats(10), w = rng.floats(6), b = rng.floats(3), labels = [5, 7, 9]
        let got = try Self.run("LinearClassifier", try Tensor(shape: [5, 2], floats: x), outputs: 2,
                               attributes: ["coefficients": .floats(w), "intercepts": .floats(b), "classlabels_ints": .ints(labels),
                                            "post_transform": .string(post)])
        var scores: [Float] = [], predicted: [Int] = []
        for n in 0..<5 {
            var row: [Float] = []
            for c in 0..<3 {
                let first: Float = x[n * 2] * w[c * 2], second: Float = x[n * 2 + 1] * w[c * 2 + 1]
                row.append(b[c] + first + second)
            }
            if post == "LOGISTIC" { row = row.map { 1 / (1 + expf(-$0)) } }
            if post == "SOFTMAX" { let e = row.map { expf($0 - row.max()!) }; row = e.map { $0 / e.reduce(0, +) } }
            predicted.append(labels[row.firstIndex(of: row.max()!)!])
            scores += row
        }
        #expect(got[0].intArray() == predicted)
        expectClose(got[1], scores, shape: [5, 3])
    }

    @Test func binaryClassifierWithOneScoreRow() throws {
        let x = try Tensor(shape: [3, 1], floats: [-2, 0.5, 3])
        let got = try Self.run("LinearClassifier", x, outputs: 2,
                               attributes: ["coefficients": .floats([1]), "intercepts": .floats([-1]), "classlabels_ints": .ints([0, 1]),
                                            "post_transform": .string("LOGISTIC")])
        let raw: [Float] = [-3, -0.5, 2]
        let p: [Float] = raw.map { 1 / (1 + expf(-$0)) }
        #expect(got[0].intArray() == [0, 0, 1])
        expectClose(got[1], p.flatMap { [1 - $0, $0] }, shape: [3, 2])
    }

    @Test func arrayFeatureExtractor() throws {
        let x = try Tensor(shape: [2, 3], int64s: [10, 20, 30, 40, 50, 60])
        let got = try Self.run("ArrayFeatureExtractor", x, extra: [try Tensor(shape: [2], int64s: [2, 0])], attributes: [:])[0]
        #expect(got.shape == [2, 2])
        #expect(got.intArray() == [30, 10, 60, 40])
        #expect(throws: LatheError.self) {
            _ = try Self.run("ArrayFeatureExtractor", x, extra: [try Tensor(shape: [1], int64s: [3])], attributes: [:])
        }
    }

    @Test func errors() throws {
        let x = try Tensor(shape: [1, 2], floats: [1, 2])
        #expect(throws: LatheError.self) {
            _ = try Self.run("LinearClassifier", x, outputs: 2, attributes: ["coefficients": .floats([1, 1]), "classlabels_strings": .strings(["a", "b"])])
        }
        #expect(throws: LatheError.self) { _ = try Self.run("Normalizer", x, attributes: ["norm": .string("L3")]) }
        #expect(throws: LatheError.self) { _ = try Self.run("Scaler", x, attributes: ["scale": .floats([1, 2, 3])]) }
        #expect(throws: LatheError.self) { _ = try Self.run("LinearRegressor", x, attributes: ["coefficients": .floats([1, 2, 3])]) }
        #expect(throws: LatheError.self) {
            _ = try Self.run("LinearClassifier", x, outputs: 2, attributes: ["coefficients": .floats([1, 1]), "classlabels_ints": .ints([0]),
                                                                            "post_transform": .string("PROBIT")])
        }
    }
}
