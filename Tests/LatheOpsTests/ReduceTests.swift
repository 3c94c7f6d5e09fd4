import Foundation
import Testing
import LatheCore

/// Reduce*, ArgMax/ArgMin, TopK and CumSum against naive loops over indices; tolerance 1e-4 × max(1, max|ref|).
@Suite struct ReduceTests {
    /// Naive reduction: groups the elements by their index with reduced axes zeroed, then applies `finish`.
    func reference(_ x: [Float], _ shape: [Int], axes: Set<Int>, keepDims: Bool, _ finish: ([Float]) -> Float) -> ([Float], [Int]) {
        let kept = shape.indices.map { axes.contains($0) ? 1 : shape[$0] }
        var groups = [[Float]](repeating: [], count: kept.reduce(1, *))
        for i in 0..<x.count {
            let idx = Naive.unravel(i, shape)
            groups[Naive.ravel(idx.indices.map { axes.contains($0) ? 0 : idx[$0] }, kept)].append(x[i])
        }
        let outShape = keepDims ? kept : shape.indices.filter { !axes.contains($0) }.map { shape[$0] }
        return (groups.map(finish), outShape)
    }

    static let reductions: [(String, @Sendable ([Float]) -> Float)] = [
        ("ReduceSum", { $0.reduce(0, +) }), ("ReduceMean", { $0.reduce(0, +) / Float($0.count) }),
        ("ReduceMax", { $0.max()! }), ("ReduceMin", { $0.min()! }), ("ReduceProd", { $0.reduce(1, *) }),
        ("ReduceL1", { $0.map(abs).reduce(0, +) }), ("ReduceL2", { $0.map { $0 * $0 }.reduce(0, +).squareRoot() }),
        ("ReduceSumSquare", { $0.map { $0 * $0 }.reduce(0, +) }), ("ReduceLogSum", { log($0.reduce(0, +)) }),
        ("ReduceLogSumExp", { xs in Float(log(xs.map { exp(Double($0)) }.reduce(0, +))) }),
    ]

    @Test func reductionsOverAxesAttributeAndInput() throws {
        var rng = SeededRNG(41)
        let shape = [2, 3, 4]
        let axesSets: [[Int]] = [[], [0], [1], [2], [-1], [0, 2], [1, 2], [0, 1, 2]]
        for (op, finish) in Self.reductions {
            let x = rng.floats(24, op == "ReduceLogSum" ? 0.1...1 : -1...1)
            for axes in axesSets {
                for keepDims in [true, false] {
                    let set = Set((axes.isEmpty ? [0, 1, 2] : axes).map { $0 < 0 ? $0 + 3 : $0 })
                    let (ref, refShape) = reference(x, shape, axes: set, keepDims: keepDims, finish)
                    let keep: [String: AttributeValue] = ["keepdims": .int(keepDims ? 1 : 0)]
                    // Axes as an attribute (opset 11) and as an input (opset 18; ReduceSum from 13).
                    var attributes = keep
                    if !axes.isEmpty { attributes["axes"] = .ints(axes) }
                    let fromAttribute = try runNode(op, inputs: [Tensor(shape: shape, floats: x)], opset: 11, attributes: attributes)[0]
                    expectClose(fromAttribute, ref, shape: refShape, "\(op) axes \(axes) keepdims \(keepDims) (attribute)")
                    let fromInput = try runNode(op, inputs: [Tensor(shape: shape, floats: x), Tensor(shape: [axes.count], int64s: axes.map(Int64.init))],
                                                opset: 18, attributes: keep, constantInputs: [1])[0]
                    expectClose(fromInput, ref, shape: refShape, "\(op) axes \(axes) keepdims \(keepDims) (input)")
                }
            }
        }
    }

    @Test func emptyAxesWithNoopAndIntegerReductions() throws {
        let x = try Tensor(shape: [2, 2], floats: [1, 2, 3, 4])
        let noop = try runNode("ReduceSum", inputs: [x, Tensor(shape: [0], int64s: [])], opset: 13,
                               attributes: ["noop_with_empty_axes": .int(1)], constantInputs: [1])[0]
        expectClose(noop, [1, 2, 3, 4], shape: [2, 2])
        let ints = try Tensor(shape: [2, 3], int64s: [1, -5, 3, 4, 2, -6])
        #expect(try runNode("ReduceMax", inputs: [ints], opset: 13, attributes: ["axes": .ints([1])])[0].intArray() == [3, 4])
        #expect(try runNode("ReduceSum", inputs: [ints, Tensor(shape: [1], int64s: [0])], opset: 13, constantInputs: [1])[0].intArray() == [5, -3, -3])
        let empty = try runNode("ReduceMax", inputs: [Tensor(shape: [2, 0], floats: [])], opset: 13, attributes: ["axes": .ints([1])])[0]
        #expect(empty.floatArray() == [-.infinity, -.infinity])
        #expect(throws: LatheError.self) { try runNode("ReduceMean", inputs: [x], opset: 13, attributes: ["axes": .ints([2])]) }
        #expect(throws: LatheError.self) { try runNode("ReduceMean", inputs: [x], opset: 13, attributes: ["axes": .ints([0, -2])]) }
    }

    @Test func argExtremaWithTiesAndSelectLast() throws {
        var rng = SeededRNG(42)
        let shape = [3, 4, 5]
        // Values from a small set, so ties are common.
        let x = (0..<60).map { _ in Float(Int.random(in: 0...3, using: &rng)) }
        for op in ["ArgMax", "ArgMin"] {
            for axis in [0, 1, 2, -1] {
                for selectLast in [0, 1] {
                    let a = axis < 0 ? axis + 3 : axis
                    let out = try runNode(op, inputs: [Tensor(shape: shape, floats: x)], opset: 13,
                                          attributes: ["axis": .int(axis), "keepdims": .int(0), "select_last_index": .int(selectLast)])[0]
                    var outShape = shape
                    outShape.remove(at: a)
                    let ref = (0..<outShape.reduce(1, *)).map { o -> Int in
                        var idx = Naive.unravel(o, outShape)
                        idx.insert(0, at: a)
                        var best = 0
                        for k in 0..<shape[a] {
                            idx[a] = k
                            let v = x[Naive.ravel(idx, shape)]
                            idx[a] = best
                            let b = x[Naive.ravel(idx, shape)]
                            let better = op == "ArgMax" ? (v > b || (selectLast == 1 && v == b)) : (v < b || (selectLast == 1 && v == b))
                            if better { best = k }
                        }
                        return best
                    }
                    #expect(out.dtype == .int64 && out.shape == outShape && out.intArray() == ref, "\(op) axis \(axis) last \(selectLast)")
                }
            }
        }
    }

    @Test func topKMatchesAStableSort() throws {
        var rng = SeededRNG(43)
        let shape = [3, 6, 2]
        let x = (0..<36).map { _ in Float(Int.random(in: 0...4, using: &rng)) }
        for axis in [1, -1, 0] {
            for largest in [1, 0] {
                let a = axis < 0 ? axis + 3 : axis, k = shape[a] - 1
                let outs = try runNode("TopK", inputs: [Tensor(shape: shape, floats: x), Tensor(shape: [1], int64s: [Int64(k)])], outputCount: 2,
                                       opset: 11, attributes: ["axis": .int(axis), "largest": .int(largest)], constantInputs: [1])
                var outShape = shape
                outShape[a] = k
                var values = [Float](repeating: 0, count: outShape.reduce(1, *)), indices = [Int](repeating: 0, count: values.count)
                for o in 0..<values.count {
                    var idx = Naive.unravel(o, outShape)
                    let j = idx[a]
                    let lane = (0..<shape[a]).map { t -> (Float, Int) in idx[a] = t; return (x[Naive.ravel(idx, shape)], t) }
                    let sorted = lane.sorted { $0.0 != $1.0 ? (largest == 1 ? $0.0 > $1.0 : $0.0 < $1.0) : $0.1 < $1.1 }
                    (values[o], indices[o]) = sorted[j]
                }
                expectClose(outs[0], values, shape: outShape, "TopK axis \(axis) largest \(largest)")
                #expect(outs[1].intArray() == indices, "TopK indices axis \(axis) largest \(largest)")
            }
        }
        #expect(throws: LatheError.self) {
            try runNode("TopK", inputs: [Tensor(shape: [3], floats: [1, 2, 3]), Tensor(shape: [1], int64s: [4])], outputCount: 2, constantInputs: [1])
        }
        let legacy = try runNode("TopK", inputs: [Tensor(shape: [4], floats: [3, 1, 4, 1])], outputCount: 2, opset: 9, attributes: ["k": .int(2)])
        expectClose(legacy[0], [4, 3], shape: [2])
    }

    @Test func cumSumExclusiveAndReverse() throws {
        var rng = SeededRNG(44)
        let shape = [2, 3, 4], x = rng.floats(24)
        for axis in [0, 1, 2, -1] {
            for exclusive in [0, 1] {
                for reverse in [0, 1] {
                    let a = axis < 0 ? axis + 3 : axis
                    let out = try runNode("CumSum", inputs: [Tensor(shape: shape, floats: x), Tensor(shape: [], int64s: [Int64(axis)])], opset: 14,
                                          attributes: ["exclusive": .int(exclusive), "reverse": .int(reverse)])[0]
                    let ref = (0..<24).map { i -> Float in
                        var idx = Naive.unravel(i, shape)
                        let here = idx[a]
                        var sum: Float = 0
                        for k in 0..<shape[a] {
                            let included = reverse == 1 ? (exclusive == 1 ? k > here : k >= here) : (exclusive == 1 ? k < here : k <= here)
                            if included { idx[a] = k; sum += x[Naive.ravel(idx, shape)] }
                        }
                        return sum
                    }
                    expectClose(out, ref, shape: shape, "CumSum axis \(axis) exclusive \(exclusive) reverse \(reverse)")
                }
            }
        }
        #expect(throws: LatheError.self) {
            try runNode("CumSum", inputs: [Tensor(shape: [2], floats: [1, 2]), Tensor(shape: [], int64s: [1])], constantInputs: [1])
        }
    }
}
