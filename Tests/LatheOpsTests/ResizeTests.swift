#if canImport(Glibc)
import Glibc
#endif
import Testing
import LatheCore

/// Resize and Upsample against naive references written from the spec's formulas: per output element,
/// the source coordinate of each axis, then nearest rounding, or the 2^r-corner (bi/tri)linear blend, or
/// the 4-tap cubic convolution with edge-clamped taps. Tolerance: max|diff| <= 1e-4 × max(1, max|ref|).
@Suite struct ResizeTests {
    /// The source coordinate of output index `y` (spec formulas; `outputWidth` = scale · input length).
    static func source(_ y: Int, mode: String, scale: Double, input: Int, output: Int) -> Double {
        let y = Double(y), width = scale * Double(input)
        switch mode {
        case "align_corners": return width == 1 ? 0 : y * Double(input - 1) / (width - 1)
        case "asymmetric": return y / scale
        case "pytorch_half_pixel": return width == 1 ? -0.5 : (y + 0.5) / scale - 0.5
        default: return (y + 0.5) / scale - 0.5
        }
    }

    /// Row-major offset of a multi-index.
    static func offset(_ index: [Int], _ shape: [Int]) -> Int { zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 } }

    /// Multi-index of a row-major offset.
    static func unravel(_ i: Int, _ shape: [Int]) -> [Int] {
        var rest = i, index = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) { index[d] = rest % shape[d]; rest /= shape[d] }
        return index
    }

    /// Naive Resize of `x` to `outShape` with per-axis `scales`.
    static func reference(_ x: [Float], _ shape: [Int], _ outShape: [Int], scales: [Double], mode: String,
                          coordinates: String, nearest: String = "round_prefer_floor", cubicA: Double = -0.75) -> [Float] {
        let r = shape.count
        return (0..<outShape.reduce(1, *)).map { o -> Float in
            let out = unravel(o, outShape)
            let coords = (0..<r).map { source(out[$0], mode: coordinates, scale: scales[$0], input: shape[$0], output: outShape[$0]) }
            func clamp(_ i: Int, _ a: Int) -> Int { min(max(i, 0), shape[a] - 1) }
            switch mode {
            case "nearest":
                let index = (0..<r).map { a -> Int in
                    let c = coords[a], f = floor(c)
                    let frac = c - f
                    var i: Int
                    switch nearest {
                    case "floor": i = Int(f)
                    case "ceil": i = Int(ceil(c))
                    case "round_prefer_ceil": i = frac >= 0.5 ? Int(f) + 1 : Int(f)
                    default: i = frac > 0.5 ? Int(f) + 1 : Int(f)
                    }
                    return clamp(i, a)
                }
                return x[offset(index, shape)]
            case "linear":
                var sum = 0.0
                for corner in 0..<(1 << r) {
                    var weight = 1.0, index = [Int](repeating: 0, count: r)
                    for a in 0..<r {
                        let c = coords[a], f = floor(c), t = c - f
                        let upper = corner >> a & 1 == 1
                        weight *= upper ? t : 1 - t
                        index[a] = clamp(Int(f) + (upper ? 1 : 0), a)
                    }
                    sum += weight * Double(x[offset(index, shape)])
                }
                return Float(sum)
            default:
                // Cubic along the last axis only (the tests resize one axis).
                let a = r - 1, c = coords[a], f = floor(c), t = c - f
                func kernel(_ d: Double) -> Double {
                    let d = abs(d)
                    if d <= 1 { return (cubicA + 2) * d * d * d - (cubicA + 3) * d * d + 1 }
                    if d < 2 { return cubicA * d * d * d - 5 * cubicA * d * d + 8 * cubicA * d - 4 * cubicA }
                    return 0
                }
                var sum = 0.0
                for k in -1...2 {
                    var index = out
                    index[a] = clamp(Int(f) + k, a)
                    sum += kernel(Double(k) - t) * Double(x[offset(index, shape)])
                }
                return Float(sum)
            }
        }
    }

    @Test(arguments: ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])
    func linearAndNearestScales(coordinates: String) throws {
        var rng = SeededRNG(31)
        let shape = [1, 2, 4, 5]
        let x = rng.floats(40)
        for scales: [Float] in [[1, 1, 2, 1.6], [1, 1, 0.5, 0.8], [1, 1, 1.5, 3]] {
            for mode in ["nearest", "linear"] {
                let outShape = zip(shape, scales).map { Int(Float($0) * $1) }
                let got = try runNode("Resize", inputs: [try Tensor(shape: shape, floats: x), nil, try Tensor(shape: [4], floats: scales)],
                                      opset: 19, attributes: ["mode": .string(mode), "coordinate_transformation_mode": .string(coordinates),
                                                              "nearest_mode": .string("floor")], constantInputs: [2])[0]
                let ref = Self.reference(x, shape, outShape, scales: scales.map(Double.init), mode: mode,
                                         coordinates: coordinates, nearest: "floor")
                expectClose(got, ref, shape: outShape, "\(mode) \(coordinates) \(scales)")
            }
        }
    }

    @Test(arguments: ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
    func nearestModesWithSizesFedAtRunTime(nearest: String) throws {
        var rng = SeededRNG(32)
        let shape = [1, 1, 5, 4], x = rng.floats(20)
        for sizes in [[1, 1, 9, 7], [1, 1, 3, 2], [1, 1, 5, 10]] {
            // sizes is a small int64 graph input: the plan is specialised to its value at run time.
            let got = try runNode("Resize", inputs: [try Tensor(shape: shape, floats: x), nil, nil, try Tensor(shape: [4], int64s: sizes.map(Int64.init))],
                                  opset: 13, attributes: ["mode": .string("nearest"), "nearest_mode": .string(nearest),
                                                          "coordinate_transformation_mode": .string("half_pixel")])[0]
            let scales = zip(sizes, shape).map { Double($0) / Double($1) }
            let ref = Self.reference(x, shape, sizes, scales: scales, mode: "nearest", coordinates: "half_pixel", nearest: nearest)
            expectClose(got, ref, shape: sizes, "\(nearest) \(sizes)")
        }
    }

    @Test func scalesFedAtRunTime() throws {
        var rng = SeededRNG(33)
        let shape = [1, 1, 3, 3], x = rng.floats(9)
        for scales: [Float] in [[1, 1, 2, 2], [1, 1, 3, 1]] {
            let got = try runNode("Resize", inputs: [try Tensor(shape: shape, floats: x), nil, try Tensor(shape: [4], floats: scales)],
                                  opset: 19, attributes: ["mode": .string("linear")])[0]
            let outShape = zip(shape, scales).map { Int(Float($0) * $1) }
            let ref = Self.reference(x, shape, outShape, scales: scales.map(Double.init), mode: "linear", coordinates: "half_pixel")
            expectClose(got, ref, shape: outShape)
        }
    }

    @Test func oneSessionReplansWhenScalesChange() throws {
        var rng = SeededRNG(37)
        let shape = [1, 1, 3, 3], x = try Tensor(shape: shape, floats: rng.floats(9))
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: shape.map { .fixed($0) }),
                                   ValueInfo(name: "scales", dtype: .float32, dims: [.fixed(4)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: nil)],
                          nodes: [Node(name: "r", opType: "Resize", inputs: ["x", "", "scales"], outputs: ["y"],
                                       attributes: ["mode": .string("nearest")])],
                          initializers: [:], opsets: ["": 19])
        let session = Session(model: try Model(graph: graph, registry: builtinRegistry()))
        for scales: [Float] in [[1, 1, 2, 2], [1, 1, 1, 3], [1, 1, 2, 2]] {
            let y = try session.run(["x": x, "scales": try Tensor(shape: [4], floats: scales)])["y"]!
            let outShape = zip(shape, scales).map { Int(Float($0) * $1) }
            let ref = Self.reference(x.floatArray(), shape, outShape, scales: scales.map(Double.init), mode: "nearest", coordinates: "half_pixel")
            expectClose(y, ref, shape: outShape, "scales \(scales)")
        }
    }

    @Test(arguments: [(-0.75, [Float](arrayLiteral: 1, 1, 1, 2.5)), (-0.5, [1, 1, 1, 0.7])])
    func cubicLastAxis(a: Double, scales: [Float]) throws {
        var rng = SeededRNG(34)
        let shape = [1, 2, 3, 6], x = rng.floats(36)
        let got = try runNode("Resize", inputs: [try Tensor(shape: shape, floats: x), nil, try Tensor(shape: [4], floats: scales)],
                              opset: 19, attributes: ["mode": .string("cubic"), "cubic_coeff_a": .float(Float(a))], constantInputs: [2])[0]
        let outShape = zip(shape, scales).map { Int(Float($0) * $1) }
        let ref = Self.reference(x, shape, outShape, scales: scales.map(Double.init), mode: "cubic", coordinates: "half_pixel", cubicA: a)
        expectClose(got, ref, shape: outShape)
    }

    @Test func axesAndKeepAspectRatio() throws {
        var rng = SeededRNG(35)
        let shape = [1, 1, 4, 6], x = rng.floats(24)
        // not_larger: one scale min(7/4, 5/6) = 5/6 for both axes; sizes round half up.
        let got = try runNode("Resize", inputs: [try Tensor(shape: shape, floats: x), nil, nil, try Tensor(shape: [2], int64s: [7, 5])],
                              opset: 18, attributes: ["mode": .string("linear"), "axes": .ints([2, 3]),
                                                      "keep_aspect_ratio_policy": .string("not_larger")], constantInputs: [3])[0]
        let scale = 5.0 / 6.0
        let outShape = [1, 1, Int(4 * scale + 0.5), 5]
        let ref = Self.reference(x, shape, outShape, scales: [1, 1, scale, scale], mode: "linear", coordinates: "half_pixel")
        expectClose(got, ref, shape: outShape)
    }

    @Test func upsampleOpset7And9() throws {
        var rng = SeededRNG(36)
        let shape = [1, 1, 2, 3], x = rng.floats(6)
        let scales: [Float] = [1, 1, 2, 3]
        for mode in ["nearest", "linear"] {
            let a = try runNode("Upsample", inputs: [try Tensor(shape: shape, floats: x)], opset: 7,
                                attributes: ["mode": .string(mode), "scales": .floats(scales)])[0]
            let b = try runNode("Upsample", inputs: [try Tensor(shape: shape, floats: x), try Tensor(shape: [4], floats: scales)], opset: 9,
                                attributes: ["mode": .string(mode)], constantInputs: [1])[0]
            let ref = Self.reference(x, shape, [1, 1, 4, 9], scales: scales.map(Double.init), mode: mode, coordinates: "asymmetric", nearest: "floor")
            expectClose(a, ref, shape: [1, 1, 4, 9], "opset 7 \(mode)")
            expectClose(b, ref, shape: [1, 1, 4, 9], "opset 9 \(mode)")
        }
    }

    @Test func errors() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], floats: [1, 2, 3, 4])
        #expect(throws: LatheError.self) {
            _ = try runNode("Resize", inputs: [x, nil, try Tensor(shape: [3], floats: [1, 1, 2])], opset: 19, constantInputs: [2])
        }
        #expect(throws: LatheError.self) {
            _ = try runNode("Resize", inputs: [x, nil, try Tensor(shape: [4], floats: [1, 1, 2, 2])], opset: 19,
                            attributes: ["mode": .string("bilinear")], constantInputs: [2])
        }
        #expect(throws: LatheError.self) {
            _ = try runNode("Resize", inputs: [x, nil, try Tensor(shape: [4], floats: [1, 1, -2, 2])], opset: 19, constantInputs: [2])
        }
        #expect(throws: LatheError.self) { _ = try runNode("Resize", inputs: [x], opset: 19) }
        #expect(throws: LatheError.self) { _ = try runNode("Upsample", inputs: [x], opset: 7) }
    }
}
