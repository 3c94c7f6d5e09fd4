import Testing
@testable import LatheOps
import LatheCore

@Suite struct PoolingTests {
    typealias S = ConvPoolNormSupport

    /// Naive pooling: per output element, loops over every kernel tap. MaxPool returns values and
    /// Indices (first maximum in row-major tap order; empty window → lowest float, index -1);
    /// AveragePool divides by the in-bounds taps, or by the taps inside the padded input.
    static func referencePool(x: Tensor, max: Bool, kernel: [Int], strides: [Int], dilations: [Int], begin: [Int],
                              end: [Int], output: [Int], countIncludePad: Bool,
                              columnMajor: Bool) -> (values: [Float], indices: [Int64]) {
        let xs = x.floatArray()
        let planes = x.shape[0] * x.shape[1], inShape = Array(x.shape.dropFirst(2))
        let inCount = inShape.reduce(1, *)
        var values: [Float] = [], indices: [Int64] = []
        for plane in 0..<planes {
            for o in S.indices(output) {
                var best = -Float.greatestFiniteMagnitude, bestIndex: Int64 = -1
                var sum: Double = 0, inBounds = 0, inPadded = 0
                for k in S.indices(kernel) {
                    let p = (0..<o.count).map { o[$0] * strides[$0] + k[$0] * dilations[$0] - begin[$0] }
                    if (0..<p.count).allSatisfy({ p[$0] < inShape[$0] + end[$0] }) { inPadded += 1 }
                    guard zip(p, inShape).allSatisfy({ $0 >= 0 && $0 < $1 }) else { continue }
                    let v = xs[plane * inCount + S.flat(p, inShape)]
                    inBounds += 1
                    sum += Double(v)
                    if bestIndex < 0 || v > best {
                        best = v
                        let spatial = columnMajor
                            ? S.flat(p.reversed(), inShape.reversed()) : S.flat(p, inShape)
                        bestIndex = Int64(plane * inCount + spatial)
                    }
                }
                if max {
                    values.append(best)
                    indices.append(bestIndex)
                } else {
                    values.append(Float(sum / Double(countIncludePad ? inPadded : inBounds)))
                }
            }
        }
        return (values, indices)
    }

    @Test func maxPoolCeilModeKnownValues() throws {
        // ONNX's maxpool_2d_ceil case: 4×4 input 1...16, 3×3 kernel, stride 2, ceil_mode.
        let x = try Tensor(shape: [1, 1, 4, 4], floats: (1...16).map(Float.init))
        let y = try S.run("MaxPool", attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)],
                          inputs: [.init(name: "x", tensor: x)])[0]
        #expect(y.shape == [1, 1, 2, 2])
        #expect(y.floatArray() == [11, 12, 15, 16])
    }

    @Test func averagePoolCeilModeDropsWindowStartingInRightPadding() throws {
        // Two values, kernel 2, stride 2, one pad at the end: ceil gives 2 windows, but the second starts
        // in the padding and is dropped.
        let x = try Tensor(shape: [1, 1, 2], floats: [1, 2])
        let y = try S.run("AveragePool", attributes: ["kernel_shape": .ints([2]), "strides": .ints([2]),
                                                      "pads": .ints([0, 1]), "ceil_mode": .int(1)],
                          inputs: [.init(name: "x", tensor: x)])[0]
        #expect(y.shape == [1, 1, 1])
        #expect(y.floatArray() == [1.5])
        // Three values: the second window starts at 2, inside the input, and is kept (partial window).
        let x3 = try Tensor(shape: [1, 1, 3], floats: [1, 2, 4])
        let y3 = try S.run("AveragePool", attributes: ["kernel_shape": .ints([2]), "strides": .ints([2]), "ceil_mode": .int(1),
                                                       "count_include_pad": .int(1)],
                           inputs: [.init(name: "x", tensor: x3)])[0]
        #expect(y3.floatArray() == [1.5, 4])
    }

    @Test func maxPoolIndicesStorageOrder() throws {
        // 2×3 input, max over the whole plane at (1, 0): row-major index 3, column-major 1.
        let x = try Tensor(shape: [1, 1, 2, 3], floats: [0, 1, 2, 9, 3, 4])
        for (order, expected) in [(0, Int64(3)), (1, Int64(1))] {
            let out = try S.run("MaxPool", opset: 12, attributes: ["kernel_shape": .ints([2, 3]), "storage_order": .int(order)],
                                inputs: [.init(name: "x", tensor: x)], outputs: ["y", "i"])
            #expect(out[0].floatArray() == [9])
            #expect(out[1].dtype == .int64 && out[1].intArray() == [Int(expected)])
        }
    }

    @Test(arguments: [(8, false), (10, true), (11, true), (12, true), (19, true), (21, true)])
    func randomizedMaxPool(opset: Int, modernAttributes: Bool) throws {
        try randomized(max: true, opset: opset, modernAttributes: modernAttributes)
    }

    @Test(arguments: [(7, false), (10, true), (11, true), (19, true), (21, true)])
    func randomizedAveragePool(opset: Int, modernAttributes: Bool) throws {
        try randomized(max: false, opset: opset, modernAttributes: modernAttributes)
    }

    /// Random shapes and attributes; `modernAttributes` enables ceil_mode and dilations (opset >= 10).
    func randomized(max: Bool, opset: Int, modernAttributes: Bool) throws {
        var rng = SeededRNG(UInt64(opset) * (max ? 31 : 37))
        var checked = 0
        while checked < 60 {
            let spatial = S.pick([1, 1, 2, 2, 2, 3], &rng)
            let kernel = (0..<spatial).map { _ in Int.random(in: 1...3, using: &rng) }
            let input = (0..<spatial).map { _ in Int.random(in: 1...(spatial == 3 ? 5 : 9), using: &rng) }
            let strides = (0..<spatial).map { _ in Int.random(in: 1...3, using: &rng) }
            let dilations = (0..<spatial).map { _ in modernAttributes ? Int.random(in: 1...2, using: &rng) : 1 }
            let pads = (0..<2 * spatial).map { _ in Int.random(in: 0...2, using: &rng) }
            let autoPad = S.pick(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"], &rng)
            let ceilMode = modernAttributes && Bool.random(using: &rng)
            let countIncludePad = Bool.random(using: &rng)
            let columnMajor = Bool.random(using: &rng)
            guard let geo = S.geometry(input: input, kernel: kernel, strides: strides, dilations: dilations,
                                       pads: pads, autoPad: autoPad, ceilMode: ceilMode) else { continue }
            let x = try S.random([Int.random(in: 1...2, using: &rng), Int.random(in: 1...3, using: &rng)] + input, &rng)
            var attributes: [String: AttributeValue] = ["kernel_shape": .ints(kernel), "auto_pad": .string(autoPad)]
            if strides.contains(where: { $0 != 1 }) || Bool.random(using: &rng) { attributes["strides"] = .ints(strides) }
            if dilations.contains(where: { $0 != 1 }) { attributes["dilations"] = .ints(dilations) }
            if autoPad == "NOTSET" { attributes["pads"] = .ints(pads) }
            if ceilMode { attributes["ceil_mode"] = .int(1) }
            if !max && countIncludePad { attributes["count_include_pad"] = .int(1) }
            if max && columnMajor { attributes["storage_order"] = .int(1) }
            let wantIndices = max && Bool.random(using: &rng)
            let out = try S.run(max ? "MaxPool" : "AveragePool", opset: opset, attributes: attributes,
                                inputs: [.init(name: "x", tensor: x)], outputs: wantIndices ? ["y", "i"] : ["y"])
            let ref = Self.referencePool(x: x, max: max, kernel: kernel, strides: strides, dilations: dilations,
                                         begin: geo.begin, end: geo.end, output: geo.output,
                                         countIncludePad: countIncludePad, columnMajor: columnMajor)
            let expectedShape = Array(x.shape.prefix(2)) + geo.output
            #expect(out[0].shape == expectedShape, "\(attributes) x\(x.shape)")
            #expect(S.close(out[0].floatArray(), ref.values), "\(attributes) x\(x.shape)")
            if wantIndices {
                #expect(out[1].shape == expectedShape)
                #expect(out[1].intArray() == ref.indices.map { Int($0) }, "\(attributes) x\(x.shape)")
            }
            checked += 1
        }
    }

    @Test func globalAveragePoolAnyRank() throws {
        var rng = SeededRNG(5)
        for shape in [[2, 3, 7], [1, 4, 3, 5], [2, 2, 2, 3, 4]] {
            let x = try S.random(shape, &rng)
            let y = try S.run("GlobalAveragePool", inputs: [.init(name: "x", tensor: x)])[0]
            let size = shape.dropFirst(2).reduce(1, *), xs = x.floatArray()
            let ref = (0..<shape[0] * shape[1]).map { p in Float((0..<size).reduce(0.0) { $0 + Double(xs[p * size + $1]) } / Double(size)) }
            #expect(y.shape == Array(shape.prefix(2)) + [Int](repeating: 1, count: shape.count - 2))
            #expect(S.close(y.floatArray(), ref))
        }
    }

    @Test func errors() throws {
        var rng = SeededRNG(6)
        let x = try S.random([1, 2, 4, 4], &rng)
        func pool(_ op: String, _ attributes: [String: AttributeValue], x: Tensor = x, outputs: [String] = ["y"]) -> Status? {
            S.status { _ = try S.run(op, attributes: attributes, inputs: [.init(name: "x", tensor: x)], outputs: outputs) }
        }
        #expect(pool("MaxPool", [:]) == .invalidArgument)                                           // kernel_shape missing
        #expect(pool("AveragePool", ["kernel_shape": .ints([2, 0])]) == .invalidArgument)
        #expect(pool("MaxPool", ["kernel_shape": .ints([2, 2]), "storage_order": .int(2)]) == .invalidArgument)
        #expect(pool("MaxPool", ["kernel_shape": .ints([2, 2]), "strides": .ints([1])]) == .invalidArgument)
        #expect(pool("MaxPool", ["kernel_shape": .ints([2, 2]), "auto_pad": .string("same")]) == .invalidArgument)
        #expect(pool("MaxPool", ["kernel_shape": .ints([2])]) == .shapeMismatch)                     // 1 axis, X has 2
        #expect(pool("MaxPool", ["kernel_shape": .ints([5, 2])]) == .shapeMismatch)                  // bigger than input
        #expect(pool("AveragePool", ["kernel_shape": .ints([3, 3]), "dilations": .ints([2, 1])]) == .shapeMismatch)
        #expect(pool("AveragePool", ["kernel_shape": .ints([2])], x: try S.random([4, 4], &rng)) == .shapeMismatch)
        #expect(pool("AveragePool", ["kernel_shape": .ints([2, 2])], outputs: ["y", "i"]) == .invalidArgument)
        #expect(pool("GlobalAveragePool", [:], x: try S.random([4, 4], &rng)) == .shapeMismatch)
        #expect(pool("MaxPool", ["kernel_shape": .ints([2, 2]), "dilations": .ints([1 << 40, 1])]) == .invalidArgument)
        #expect(pool("MaxPool", ["kernel_shape": .ints([40000, 40000]), "pads": .ints([40000, 40000, 0, 0])]) == .outOfMemory)
        #expect(pool("MaxPool", ["kernel_shape": .ints([5, 2]), "pads": .ints([1, 0, 0, 0])]) == nil)
    }
}
