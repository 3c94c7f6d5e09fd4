import Testing
import LatheCore

/// Gemm and MatMul against naive triple loops.
@Suite struct LinearTests {
    func naiveMatMul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { var s: Float = 0; for p in 0..<k { s += a[i * k + p] * b[p * n + j] }; c[i * n + j] = s } }
        return c
    }

    func transpose(_ a: [Float], rows: Int, cols: Int) -> [Float] {
        var t = [Float](repeating: 0, count: a.count)
        for i in 0..<rows { for j in 0..<cols { t[j * rows + i] = a[i * cols + j] } }
        return t
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmAllTransposesAndBiasShapes(_ transA: Bool, _ transB: Bool) throws {
        var rng = SeededRNG(11)
        let m = 5, n = 7, k = 9
        let a = rng.floats(m * k), b = rng.floats(k * n)
        let aStored = transA ? transpose(a, rows: m, cols: k) : a
        let bStored = transB ? transpose(b, rows: k, cols: n) : b
        let product = naiveMatMul(a, b, m: m, n: n, k: k)
        // B (and C) also as initializers: a constant transposed B is stored K×N at plan time.
        for cShape in [[], [n], [1, n], [m, 1], [m, n]] as [[Int]] { for constants in [[], [1], [1, 2]] as [Set<Int>] {
            let c = rng.floats(cShape.reduce(1, *))
            let out = try runNode("Gemm", inputs: [
                Tensor(shape: transA ? [k, m] : [m, k], floats: aStored),
                Tensor(shape: transB ? [n, k] : [k, n], floats: bStored),
                Tensor(shape: cShape, floats: c),
            ], attributes: ["alpha": .float(0.5), "beta": .float(2), "transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0)],
               constantInputs: constants)[0]
            let cs = [Int](repeating: 1, count: 2 - cShape.count) + cShape
            let ref = (0..<m * n).map { idx -> Float in
                let i = idx / n, j = idx % n
                return 0.5 * product[idx] + 2 * c[(cs[0] == 1 ? 0 : i) * cs[1] + (cs[1] == 1 ? 0 : j)]
            }
            expectClose(out, ref, shape: [m, n], "C \(cShape), constant inputs \(constants.sorted())")
        } }
        let noBias = try runNode("Gemm", inputs: [Tensor(shape: transA ? [k, m] : [m, k], floats: aStored),
                                                  Tensor(shape: transB ? [n, k] : [k, n], floats: bStored)],
                                 attributes: ["transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0)])[0]
        expectClose(noBias, product, shape: [m, n])
    }

    @Test func gemmShapeErrors() throws {
        #expect(throws: LatheError.self) { try runNode("Gemm", inputs: [Tensor(shape: [2, 3], floats: .init(repeating: 1, count: 6)), Tensor(shape: [2, 3], floats: .init(repeating: 1, count: 6))]) }
        #expect(throws: LatheError.self) { try runNode("Gemm", inputs: [Tensor(shape: [2, 3], floats: .init(repeating: 1, count: 6)), Tensor(shape: [3, 2], floats: .init(repeating: 1, count: 6)), Tensor(shape: [3], floats: [1, 2, 3])]) }
    }

    static let matmulShapes: [([Int], [Int])] = [
        ([3, 4], [4, 5]), ([4], [4, 5]), ([3, 4], [4]), ([4], [4]), ([2, 3, 4], [4, 5]), ([2, 3, 4], [2, 4, 5]),
        ([2, 1, 3, 4], [5, 4, 2]), ([1, 3, 4], [2, 4, 5]), ([3, 4], [2, 4, 5]),
    ]

    @Test func matmulBroadcastsBatchesAndPromotesVectors() throws {
        var rng = SeededRNG(5)
        for (sa, sb) in Self.matmulShapes {
            let a = rng.floats(sa.reduce(1, *)), b = rng.floats(sb.reduce(1, *))
            let out = try runNode("MatMul", inputs: [Tensor(shape: sa, floats: a), Tensor(shape: sb, floats: b)])[0]
            // Reference: promote, broadcast batches by index arithmetic, multiply each pair naively.
            let a2 = sa.count == 1 ? [1, sa[0]] : sa, b2 = sb.count == 1 ? [sb[0], 1] : sb
            let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
            let ba = Array(a2.dropLast(2)), bb = Array(b2.dropLast(2))
            let batch = try ShapeMath.broadcast(ba, bb)
            let pa = [Int](repeating: 1, count: batch.count - ba.count) + ba, pb = [Int](repeating: 1, count: batch.count - bb.count) + bb
            var ref: [Float] = []
            for p in 0..<batch.reduce(1, *) {
                var idx = [Int](repeating: 0, count: batch.count), r = p
                for d in stride(from: batch.count - 1, through: 0, by: -1) { idx[d] = r % batch[d]; r /= batch[d] }
                var ia = 0, ib = 0
                for d in 0..<batch.count { ia = ia * pa[d] + (pa[d] == 1 ? 0 : idx[d]); ib = ib * pb[d] + (pb[d] == 1 ? 0 : idx[d]) }
                ref += naiveMatMul(Array(a[(ia * m * k)..<((ia + 1) * m * k)]), Array(b[(ib * k * n)..<((ib + 1) * k * n)]), m: m, n: n, k: k)
            }
            var shape = batch
            if sa.count > 1 { shape.append(m) }
            if sb.count > 1 { shape.append(n) }
            expectClose(out, ref, shape: shape, "\(sa) × \(sb)")
        }
        #expect(throws: LatheError.self) { try runNode("MatMul", inputs: [Tensor(shape: [2, 3], floats: .init(repeating: 1, count: 6)), Tensor(shape: [2, 3], floats: .init(repeating: 1, count: 6))]) }
    }
}
