import Testing
import LatheCore

/// Split, Pad, Tile, Range and GlobalMaxPool against naive index loops (exact, or 1e-4 × max(1, max|ref|) for floats).
@Suite struct DataTests {
    let x: [Float] = (0..<24).map(Float.init)

    @Test func splitFromAttributeInputAndNumOutputs() throws {
        let input = try Tensor(shape: [2, 6, 2], floats: x)
        /// The naive slice of `input` along axis 1 from `start` with `length`.
        func piece(_ start: Int, _ length: Int) -> [Float] {
            (0..<(2 * length * 2)).map { i in let idx = Naive.unravel(i, [2, length, 2]); return x[Naive.ravel([idx[0], idx[1] + start, idx[2]], [2, 6, 2])] }
        }
        let byAttribute = try runNode("Split", inputs: [input], outputCount: 3, opset: 11, attributes: ["axis": .int(1), "split": .ints([1, 2, 3])])
        let byInput = try runNode("Split", inputs: [input, Tensor(shape: [3], int64s: [1, 2, 3])], outputCount: 3, opset: 13,
                                  attributes: ["axis": .int(-2)], constantInputs: [1])
        for outs in [byAttribute, byInput] {
            expectClose(outs[0], piece(0, 1), shape: [2, 1, 2])
            expectClose(outs[1], piece(1, 2), shape: [2, 2, 2])
            expectClose(outs[2], piece(3, 3), shape: [2, 3, 2])
        }
        let uneven = try runNode("Split", inputs: [Tensor(shape: [2, 6, 2], floats: x)], outputCount: 4, opset: 18,
                                 attributes: ["axis": .int(1), "num_outputs": .int(4)])
        #expect(uneven.map { $0.shape[1] } == [2, 2, 2, 0])
        let equal = try runNode("Split", inputs: [input], outputCount: 2, opset: 13, attributes: ["axis": .int(1)])
        expectClose(equal[1], piece(3, 3), shape: [2, 3, 2])
        #expect(throws: LatheError.self) { try runNode("Split", inputs: [input], outputCount: 4, opset: 13, attributes: ["axis": .int(1)]) }
        #expect(throws: LatheError.self) { try runNode("Split", inputs: [input], outputCount: 2, opset: 11, attributes: ["axis": .int(1), "split": .ints([1, 2])]) }
    }

    /// Numpy-style naive pad of a 2-D array.
    /// Negative pads crop first, then the mode pads what remains (ONNX Runtime's order).
    func padReference(_ x: [Float], _ shape: [Int], _ pads: [Int], mode: String, value: Float) -> ([Float], [Int]) {
        let out = [shape[0] + pads[0] + pads[2], shape[1] + pads[1] + pads[3]]
        func source(_ o: Int, _ begin: Int, _ end: Int, _ length: Int) -> Int? {
            let lo = max(-begin, 0), n = length - lo - max(-end, 0)
            guard let i = croppedSource(o - max(begin, 0), n) else { return nil }
            return lo + i
        }
        func croppedSource(_ start: Int, _ n: Int) -> Int? {
            var i = start
            if (0..<n).contains(i) { return i }
            switch mode {
            case "edge": return min(max(i, 0), n - 1)
            case "wrap": return ((i % n) + n) % n
            case "reflect":
                while !(0..<n).contains(i) { i = i < 0 ? -i : 2 * (n - 1) - i }
                return i
            default: return nil
            }
        }
        let values = (0..<(out[0] * out[1])).map { k -> Float in
            let r = k / out[1], c = k % out[1]
            guard let i = source(r, pads[0], pads[2], shape[0]), let j = source(c, pads[1], pads[3], shape[1]) else { return value }
            return x[i * shape[1] + j]
        }
        return (values, out)
    }

    @Test(arguments: ["constant", "reflect", "edge", "wrap"])
    func padModesWithNegativePads(_ mode: String) throws {
        let data = Array(x[0..<12]), shape = [3, 4]
        for pads in [[1, 2, 0, 1], [0, 0, 0, 0], [2, 3, 2, 3], [-1, 1, 1, -2], [0, -1, 0, 2], [0, 2, 0, -1]] {
            let (ref, refShape) = padReference(data, shape, pads, mode: mode, value: 7.5)
            let out = try runNode("Pad", inputs: [Tensor(shape: shape, floats: data), Tensor(shape: [4], int64s: pads.map(Int64.init)),
                                                  Tensor(shape: [], floats: [7.5])], opset: 19, attributes: ["mode": .string(mode)], constantInputs: [1])[0]
            expectClose(out, ref, shape: refShape, "\(mode) \(pads)")
            if mode != "wrap" {
                let legacy = try runNode("Pad", inputs: [Tensor(shape: shape, floats: data)], opset: 2,
                                         attributes: ["mode": .string(mode), "pads": .ints(pads), "value": .float(7.5)])[0]
                expectClose(legacy, ref, shape: refShape, "opset 2 \(mode) \(pads)")
            }
        }
    }

    @Test func padAxesInputAndIntegerData() throws {
        let out = try runNode("Pad", inputs: [Tensor(shape: [2, 2], int64s: [1, 2, 3, 4]), Tensor(shape: [2], int64s: [1, 0]),
                                              Tensor(shape: [], int64s: [9]), Tensor(shape: [1], int64s: [-1])], opset: 18, constantInputs: [1, 3])[0]
        #expect(out.shape == [2, 3] && out.intArray() == [9, 1, 2, 9, 3, 4])
        #expect(throws: LatheError.self) {
            try runNode("Pad", inputs: [Tensor(shape: [2], floats: [1, 2]), Tensor(shape: [2], int64s: [-2, -1])], opset: 13, constantInputs: [1])
        }
        #expect(throws: LatheError.self) { try runNode("Pad", inputs: [Tensor(shape: [2], floats: [1, 2])], opset: 11, attributes: ["mode": .string("wrap")]) }
    }

    @Test func tileRepeatsEveryAxis() throws {
        let shape = [2, 3]
        for repeats in [[1, 1], [2, 3], [3, 1], [1, 0]] {
            let out = try runNode("Tile", inputs: [Tensor(shape: shape, floats: Array(x[0..<6])), Tensor(shape: [2], int64s: repeats.map(Int64.init))],
                                  constantInputs: [1])[0]
            let outShape = zip(shape, repeats).map(*)
            let ref = (0..<outShape.reduce(1, *)).map { i -> Float in let idx = Naive.unravel(i, outShape); return x[(idx[0] % 2) * 3 + idx[1] % 3] }
            expectClose(out, ref, shape: outShape, "repeats \(repeats)")
        }
        #expect(throws: LatheError.self) { try runNode("Tile", inputs: [Tensor(shape: [2], floats: [1, 2]), Tensor(shape: [2], int64s: [1, 1])], constantInputs: [1]) }
    }

    @Test func rangeFloatAndInteger() throws {
        let floats = try runNode("Range", inputs: [Tensor(shape: [], floats: [1]), Tensor(shape: [], floats: [2.2]), Tensor(shape: [], floats: [0.5])],
                                 constantInputs: [0, 1, 2])[0]
        expectClose(floats, [1, 1.5, 2], shape: [3])
        let ints = try runNode("Range", inputs: [Tensor(shape: [], int64s: [10]), Tensor(shape: [], int64s: [3]), Tensor(shape: [], int64s: [-3])])[0]
        #expect(ints.intArray() == [10, 7, 4])
        let empty = try runNode("Range", inputs: [Tensor(shape: [], int64s: [0]), Tensor(shape: [], int64s: [5]), Tensor(shape: [], int64s: [-1])])[0]
        #expect(empty.shape == [0])
        #expect(throws: LatheError.self) {
            try runNode("Range", inputs: [Tensor(shape: [], int64s: [0]), Tensor(shape: [], int64s: [5]), Tensor(shape: [], int64s: [0])])
        }
        // Float bounds fed at run time: the plan is specialised on their values.
        let fed = try runNode("Range", inputs: [Tensor(shape: [], floats: [0]), Tensor(shape: [], floats: [5]), Tensor(shape: [], floats: [1.5])])[0]
        expectClose(fed, [0, 1.5, 3, 4.5], shape: [4])
        let doubles = try runNode("Range", inputs: [1.0, -1.0, -0.75].map { v in
            let t = try Tensor(.float64, shape: [])
            t.bytes.assumingMemoryBound(to: Double.self)[0] = v
            return t
        })[0]
        #expect(doubles.dtype == .float64 && doubles.shape == [3])
        #expect((0..<3).map { doubles.bytes.assumingMemoryBound(to: Double.self)[$0] } == [1, 0.25, -0.5])
    }

    @Test func globalMaxPoolOverSpatialAxes() throws {
        var rng = SeededRNG(51)
        let data = rng.floats(2 * 3 * 4 * 5)
        let out = try runNode("GlobalMaxPool", inputs: [Tensor(shape: [2, 3, 4, 5], floats: data)])[0]
        let ref = (0..<6).map { c in data[(c * 20)..<((c + 1) * 20)].max()! }
        expectClose(out, ref, shape: [2, 3, 1, 1])
        #expect(throws: LatheError.self) { try runNode("GlobalMaxPool", inputs: [Tensor(shape: [2, 3], floats: .init(repeating: 0, count: 6))]) }
    }
}
