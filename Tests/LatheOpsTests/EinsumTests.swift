import Testing
import LatheCore

/// Einsum against a naive reference that loops over every assignment of the equation's labels,
/// multiplying one element of each operand into the output element its output labels pick.
/// Tolerance: max|diff| <= 1e-4 × max(1, max|ref|).
@Suite struct EinsumTests {
    /// Naive einsum for equations without ellipsis; `output` is the explicit output term.
    static func reference(_ terms: [String], output: String, _ operands: [[Float]], _ shapes: [[Int]]) -> ([Float], [Int]) {
        var sizes: [Character: Int] = [:]
        for (term, shape) in zip(terms, shapes) { for (c, s) in zip(term, shape) { sizes[c] = s } }
        let labels = Array(sizes.keys).sorted()
        let outShape = output.map { sizes[$0]! }
        var result = [Float](repeating: 0, count: outShape.reduce(1, *))
        let total = labels.reduce(1) { $0 * sizes[$1]! }
        for assignment in 0..<total {
            var value: [Character: Int] = [:], rest = assignment
            for l in labels.reversed() { value[l] = rest % sizes[l]!; rest /= sizes[l]! }
            var product: Float = 1
            for (i, term) in terms.enumerated() {
                let offset = zip(term, shapes[i]).reduce(0) { $0 * $1.1 + value[$1.0]! }
                product *= operands[i][offset]
            }
            let o = zip(output, outShape).reduce(0) { $0 * $1.1 + value[$1.0]! }
            result[o] += product
        }
        return (result, outShape)
    }

    @Test(arguments: [
        ("ij,jk->ik", [[3, 4], [4, 5]]), ("bij,bjk->bik", [[2, 3, 4], [2, 4, 2]]), ("ij->ji", [[3, 4]]),
        ("ii->i", [[4, 4]]), ("ii->", [[3, 3]]), ("bii->bi", [[2, 3, 3]]), ("ijk->j", [[2, 3, 4]]),
        ("i,j->ij", [[3], [4]]), ("i,i->", [[5], [5]]), ("ij,ij->ij", [[2, 3], [2, 3]]), ("ij,kj->ik", [[3, 4], [5, 4]]),
        ("ij,jk,kl->il", [[2, 3], [3, 4], [4, 2]]), ("iij,jk->ik", [[3, 3, 2], [2, 4]]), ("ijk,ikl->jl", [[2, 3, 2], [2, 2, 3]]),
    ])
    func explicitEquations(equation: String, shapes: [[Int]]) throws {
        var rng = SeededRNG(UInt64(equation.count * 31 + shapes.count))
        let operands = shapes.map { rng.floats($0.reduce(1, *)) }
        let parts = equation.split(separator: "-")
        let terms = parts[0].split(separator: ",").map(String.init), output = String(parts[1].dropFirst())
        let got = try runNode("Einsum", inputs: try zip(operands, shapes).map { try Tensor(shape: $1, floats: $0) }, opset: 12,
                              attributes: ["equation": .string(equation)])[0]
        let (ref, shape) = Self.reference(terms, output: output, operands, shapes)
        expectClose(got, ref, shape: shape, Comment(rawValue: equation))
    }

    @Test func implicitOutputSortsLoneLabels() throws {
        var rng = SeededRNG(5)
        let a = rng.floats(12), b = rng.floats(15)
        // "kj,ji" implies "->ik": labels appearing once, alphabetically.
        let got = try runNode("Einsum", inputs: [try Tensor(shape: [4, 3], floats: a), try Tensor(shape: [3, 5], floats: b)], opset: 12,
                              attributes: ["equation": .string("kj,ji")])[0]
        let (ref, shape) = Self.reference(["kj", "ji"], output: "ik", [a, b], [[4, 3], [3, 5]])
        expectClose(got, ref, shape: shape)
    }

    @Test func ellipsisBroadcastsBatchDimensions() throws {
        var rng = SeededRNG(6)
        let a = rng.floats(2 * 1 * 3 * 4), b = rng.floats(1 * 3 * 4 * 2)
        let got = try runNode("Einsum", inputs: [try Tensor(shape: [2, 1, 3, 4], floats: a), try Tensor(shape: [1, 3, 4, 2], floats: b)],
                              opset: 12, attributes: ["equation": .string("...ij,...jk->...ik")])[0]
        // Batch dimensions (2, 1) and (1, 3) broadcast to (2, 3): out[p, q] = a[p, 0] · b[0, q].
        var ref = [Float](repeating: 0, count: 2 * 3 * 3 * 2)
        for p in 0..<2 { for q in 0..<3 { for i in 0..<3 { for k in 0..<2 { for j in 0..<4 {
            ref[((p * 3 + q) * 3 + i) * 2 + k] += a[(p * 3 + i) * 4 + j] * b[((q * 4) + j) * 2 + k]
        } } } } }
        expectClose(got, ref, shape: [2, 3, 3, 2])
    }

    @Test func errors() throws {
        let x = try Tensor(shape: [2, 2], floats: [1, 2, 3, 4])
        for equation in ["ij->iz", "ij->ii", "i..j->ij", "ijk->i", "ij,jk->ik", "ij->i->j", "i$->i"] {
            #expect(throws: LatheError.self, Comment(rawValue: equation)) {
                _ = try runNode("Einsum", inputs: [x], opset: 12, attributes: ["equation": .string(equation)])
            }
        }
        #expect(throws: LatheError.self) { _ = try runNode("Einsum", inputs: [x], opset: 12) }
        #expect(throws: LatheError.self) {
            _ = try runNode("Einsum", inputs: [x, try Tensor(shape: [3, 2], floats: .init(repeating: 1, count: 6))], opset: 12,
                            attributes: ["equation": .string("ij,jk->ik")])
        }
    }
}
