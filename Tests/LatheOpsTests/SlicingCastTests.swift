import Testing
import LatheCore

/// Slice, Expand and Cast against naive references.
@Suite struct SlicingCastTests {
    /// Naive numpy-style slice of one axis list, by enumerating every output index.
    func referenceSlice(_ x: [Float], _ shape: [Int], starts: [Int], ends: [Int], axes: [Int], steps: [Int]) -> ([Float], [Int]) {
        var ranges = shape.map { Array(0..<$0) }
        for (i, a) in axes.enumerated() {
            let dim = shape[a], step = steps[i]
            var s = starts[i] < 0 ? starts[i] + dim : starts[i], e = ends[i] < 0 ? ends[i] + dim : ends[i]
            if step > 0 { s = min(max(s, 0), dim); e = min(max(e, 0), dim) } else { s = min(max(s, -1), dim - 1); e = min(max(e, -1), dim - 1) }
            ranges[a] = Array(stride(from: s, to: e, by: step))
        }
        let outShape = ranges.map(\.count)
        let strides = ShapeMath.strides(shape)
        var out: [Float] = []
        func walk(_ d: Int, _ offset: Int) {
            if d == shape.count { out.append(x[offset]); return }
            for i in ranges[d] { walk(d + 1, offset + i * strides[d]) }
        }
        walk(0, 0)
        return (out, outShape)
    }

    @Test func sliceMatchesNumpySemantics() throws {
        var rng = SeededRNG(21)
        let shape = [4, 5, 6]
        let x = rng.floats(120)
        let cases: [([Int], [Int], [Int], [Int])] = [
            ([1], [3], [0], [1]), ([0, 1], [-1, 100], [1, 2], [1, 2]), ([-1], [-100], [2], [-1]),
            ([5], [-6], [1], [-2]), ([0, 0, 0], [4, 5, 6], [0, 1, 2], [2, 2, 3]), ([2], [2], [0], [1]),
            ([-2], [Int.max], [-1], [1]),
        ]
        for (starts, ends, axes, steps) in cases {
            let (ref, refShape) = referenceSlice(x, shape, starts: starts, ends: ends, axes: axes.map { $0 < 0 ? $0 + 3 : $0 }, steps: steps)
            func ints(_ v: [Int]) throws -> Tensor { try Tensor(shape: [v.count], int64s: v.map { Int64(clamping: $0) }) }
            let out = try runNode("Slice", inputs: [Tensor(shape: shape, floats: x), ints(starts), ints(ends), ints(axes), ints(steps)],
                                  constantInputs: [1, 2, 3, 4])[0]
            expectClose(out, ref, shape: refShape, "\(starts) \(ends) \(axes) \(steps)")
        }
        // Opset 9: attributes.
        let old = try runNode("Slice", inputs: [Tensor(shape: shape, floats: x)], opset: 9,
                              attributes: ["starts": .ints([1]), "ends": .ints([3]), "axes": .ints([2])])[0]
        let (ref, refShape) = referenceSlice(x, shape, starts: [1], ends: [3], axes: [2], steps: [1])
        expectClose(old, ref, shape: refShape)
    }

    @Test func sliceErrors() throws {
        let x = try Tensor(shape: [2, 2], floats: [1, 2, 3, 4])
        let one = try Tensor(shape: [1], int64s: [0])
        #expect(throws: LatheError.self) { try runNode("Slice", inputs: [x, one, one, one, Tensor(shape: [1], int64s: [0])], constantInputs: [1, 2, 3, 4]) }
        #expect(throws: LatheError.self) { try runNode("Slice", inputs: [x, one, one, Tensor(shape: [1], int64s: [5])], constantInputs: [1, 2, 3]) }
        // Bounds fed at run time plan too (specialised to their values): rows 0..<1 of x.
        expectClose(try runNode("Slice", inputs: [x, one, Tensor(shape: [1], int64s: [1])])[0], [1, 2], shape: [1, 2])
    }

    @Test func expandBroadcasts() throws {
        let x = try Tensor(shape: [3, 1], floats: [1, 2, 3])
        let out = try runNode("Expand", inputs: [x, Tensor(shape: [3], int64s: [2, 1, 4])], constantInputs: [1])[0]
        expectClose(out, [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], shape: [2, 3, 4])
        #expect(throws: LatheError.self) { try runNode("Expand", inputs: [x, Tensor(shape: [2], int64s: [2, 2])], constantInputs: [1]) }
    }

    @Test func castConvertsLikeC() throws {
        let x = try Tensor(shape: [6], floats: [-2.7, -0.5, 0, 0.5, 3.9, 1e20])
        #expect(try runNode("Cast", inputs: [x], attributes: ["to": .int(7)])[0].intArray() == [-2, 0, 0, 0, 3, Int(Int64(9.2e18))])
        #expect(try runNode("Cast", inputs: [x], attributes: ["to": .int(9)])[0].intArray() == [1, 1, 0, 1, 1, 1])
        let i = try Tensor(shape: [3], int64s: [-3, 0, 1 << 40])
        expectClose(try runNode("Cast", inputs: [i], attributes: ["to": .int(1)])[0], [-3, 0, Float(1 << 40)], shape: [3])
        #expect(try runNode("Cast", inputs: [i], attributes: ["to": .int(6)])[0].intArray() == [-3, 0, 0])
        do { _ = try runNode("Cast", inputs: [x], attributes: ["to": .int(8)]); Issue.record("cast to string accepted") } catch let e as LatheError {
            #expect(e.status == .dtypeMismatch && e.message.contains("string"))
        }
    }
}
