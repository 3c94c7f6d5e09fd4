import Testing
@testable import LatheOps
import LatheCore

/// Shape-op test helpers on the shared seeded generator.
extension SeededRNG {
    /// A uniform integer in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    /// A uniform float in [-scale, scale).
    mutating func float(_ scale: Float = 1) -> Float {
        (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
    }

    /// A random element of `items`.
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...items.count - 1)] }

    /// A random shape of `rank` with dims in `dims`.
    mutating func shape(rank: Int, dims: ClosedRange<Int> = 1...4) -> [Int] { (0..<rank).map { _ in int(dims) } }

    /// A tensor of random bytes (0/1 for bool), so data-movement checks see every bit of every dtype.
    mutating func tensor(_ dtype: DType, _ shape: [Int]) throws -> Tensor {
        let t = try Tensor(dtype, shape: shape)
        let p = t.bytes.assumingMemoryBound(to: UInt8.self)
        for i in 0..<t.byteCount { p[i] = dtype == .bool ? UInt8(next() & 1) : UInt8(truncatingIfNeeded: next()) }
        return t
    }

    /// A float32 tensor with values in [-scale, scale).
    mutating func floats(_ shape: [Int], scale: Float = 1) throws -> Tensor {
        try Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in float(scale) })
    }
}

/// Runs one node through `Model` and `Session` with a fresh registry of the built-in ops.
enum ShapeOpsHarness {
    /// How a node input is supplied.
    enum Operand {
        /// A graph input fed at run time.
        case feed(Tensor)
        /// An initializer (known at plan time).
        case constant(Tensor)
        /// An omitted optional input (empty name).
        case absent
    }

    /// A fresh registry holding the built-in ops.
    static func registry() throws -> OpRegistry {
        let r = OpRegistry()
        try BuiltinOps.register(into: r)
        return r
    }

    /// Builds a one-node model; `outputs` lists the output slots, `""` marking an omitted one.
    static func model(_ op: String, opset: Int, _ operands: [Operand], attributes: [String: AttributeValue],
                      outputs: [String]) throws -> (Model, [String: Tensor]) {
        var inputs: [ValueInfo] = [], initializers: [String: Tensor] = [:], names: [String] = [], feeds: [String: Tensor] = [:]
        for (i, operand) in operands.enumerated() {
            let name = "in\(i)"
            switch operand {
            case .feed(let t):
                inputs.append(ValueInfo(name: name, dtype: t.dtype, dims: t.shape.map { .fixed($0) }))
                feeds[name] = t
                names.append(name)
            case .constant(let t):
                initializers[name] = t
                names.append(name)
            case .absent:
                names.append("")
            }
        }
        let graph = Graph(inputs: inputs,
                          outputs: outputs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, dtype: .float32, dims: nil) },
                          nodes: [Node(name: "n", opType: op, inputs: names, outputs: outputs, attributes: attributes)],
                          initializers: initializers, opsets: ["": opset])
        return (try Model(graph: graph, registry: registry()), feeds)
    }

    /// Runs the node and returns its present outputs in slot order.
    static func run(_ op: String, opset: Int = 17, _ operands: [Operand], attributes: [String: AttributeValue] = [:],
                    outputs: [String] = ["y"]) throws -> [Tensor] {
        let (model, feeds) = try model(op, opset: opset, operands, attributes: attributes, outputs: outputs)
        let result = try Session(model: model).run(feeds)
        return outputs.filter { !$0.isEmpty }.map { result[$0]! }
    }

    /// Runs the node and returns its single output.
    static func run1(_ op: String, opset: Int = 17, _ operands: [Operand], attributes: [String: AttributeValue] = [:]) throws -> Tensor {
        try run(op, opset: opset, operands, attributes: attributes)[0]
    }

    /// The thrown `LatheError` (nil when none was thrown).
    static func error(_ body: () throws -> Void) -> LatheError? {
        do { try body() } catch let e as LatheError { return e } catch { return nil }
        return nil
    }

    /// Element `i` of `t` as raw bits (dtype-agnostic comparison).
    static func word(_ t: Tensor, _ i: Int) -> UInt64 {
        switch t.dtype.size {
        case 1: UInt64(t.bytes.load(fromByteOffset: i, as: UInt8.self))
        case 2: UInt64(t.bytes.load(fromByteOffset: 2 * i, as: UInt16.self))
        case 4: UInt64(t.bytes.load(fromByteOffset: 4 * i, as: UInt32.self))
        default: t.bytes.load(fromByteOffset: 8 * i, as: UInt64.self)
        }
    }

    /// All elements of `t` as raw bits.
    static func words(_ t: Tensor) -> [UInt64] { (0..<t.count).map { word(t, $0) } }

    /// Row-major multi-index of flat index `i`.
    static func unravel(_ i: Int, _ shape: [Int]) -> [Int] {
        var rest = i
        var index = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            index[d] = rest % shape[d]
            rest /= shape[d]
        }
        return index
    }

    /// Row-major flat index of a multi-index.
    static func ravel(_ index: [Int], _ shape: [Int]) -> Int {
        zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }
}

private typealias H = ShapeOpsHarness

/// Data-movement ops compared bit for bit (tolerance 0) with index-by-index references, on every dtype.
@Suite struct ShapeOpsTests {
    // MARK: - Flatten, Reshape, Identity

    @Test func flattenAllAxesAndDtypes() throws {
        var rng = SeededRNG(1)
        for _ in 0..<40 {
            let rank = rng.int(0...4)
            let shape = rng.shape(rank: rank, dims: 0...4)
            let axis = rng.int(-rank...rank)
            let x = try rng.tensor(rng.pick(DType.allCases), shape)
            let y = try H.run1("Flatten", opset: rng.pick([11, 13, 21]), [.feed(x)], attributes: ["axis": .int(axis)])
            let a = axis < 0 ? axis + rank : axis
            #expect(y.shape == [shape[..<a].reduce(1, *), shape[a...].reduce(1, *)])
            #expect(y.dtype == x.dtype && H.words(y) == H.words(x))
        }
        let bad = H.error { _ = try H.run1("Flatten", [.feed(try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]))], attributes: ["axis": .int(3)]) }
        #expect(bad?.status == .invalidArgument && bad?.message.contains("axis 3") == true)
    }

    @Test func reshapeResolvesZeroAndMinusOne() throws {
        var rng = SeededRNG(2)
        let cases: [(input: [Int], shape: [Int], allowZero: Int, opset: Int, expected: [Int])] = [
            ([2, 3, 4], [4, -1], 0, 13, [4, 6]),
            ([2, 3, 4], [0, -1], 0, 13, [2, 12]),
            ([2, 3, 4], [0, 0, -1], 0, 14, [2, 3, 4]),
            ([2, 3, 4], [-1], 0, 21, [24]),
            ([2, 3, 4], [3, 2, 2, 2], 0, 5, [3, 2, 2, 2]),
            ([1, 1], [], 0, 13, []),
            ([0, 3], [3, 0], 1, 14, [3, 0]),
            ([0, 3], [0, 3], 0, 14, [0, 3]),
            ([2, 3], [0, 3], 1, 13, [2, 3]),  // allowzero only exists from opset 14
            ([0, 3], [-1, 3], 0, 14, [0, 3]),
        ]
        for c in cases {
            let x = try rng.tensor(rng.pick(DType.allCases), c.input)
            let y = try H.run1("Reshape", opset: c.opset,
                               [.feed(x), .constant(try Tensor(shape: [c.shape.count], int64s: c.shape.map(Int64.init)))],
                               attributes: c.opset >= 14 || c.allowZero != 0 ? ["allowzero": .int(c.allowZero)] : [:])
            #expect(y.shape == c.expected, "\(c)")
            #expect(H.words(y) == H.words(x))
        }
    }

    @Test func reshapeErrors() throws {
        let x = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        func reshape(_ shape: [Int64], opset: Int = 14, allowZero: Int = 0, fed: Bool = false) -> LatheError? {
            H.error {
                let s = try Tensor(shape: [shape.count], int64s: shape)
                _ = try H.run1("Reshape", opset: opset, [.feed(x), fed ? .feed(s) : .constant(s)], attributes: ["allowzero": .int(allowZero)])
            }
        }
        #expect(reshape([-1, -1])?.status == .shapeMismatch)
        #expect(reshape([5])?.status == .shapeMismatch)
        #expect(reshape([4, -1])?.status == .shapeMismatch)
        #expect(reshape([-2, -3])?.status == .shapeMismatch)
        #expect(reshape([0, -1], allowZero: 1)?.message.contains("allowzero") == true)
        #expect(reshape([2, 3, 0])?.status == .shapeMismatch)
        let empty = H.error {
            _ = try H.run1("Reshape", [.feed(try Tensor(.float32, shape: [2, 0, 3])), .constant(try Tensor(shape: [3], int64s: [2, 0, -1]))])
        }
        #expect(empty?.status == .shapeMismatch)  // -1 beside a zero product is ambiguous (ONNX Runtime refuses it too)
        #expect(reshape([3, 2], fed: true) == nil)  // a shape fed at run time specialises the plan to its value
        let badDtype = H.error {
            _ = try H.run1("Reshape", [.feed(x), .constant(try Tensor(shape: [2], floats: [3, 2]))])
        }
        #expect(badDtype?.status == .dtypeMismatch)
    }

    @Test func identityCopiesEveryDtype() throws {
        var rng = SeededRNG(3)
        for dtype in DType.allCases {
            let x = try rng.tensor(dtype, rng.shape(rank: rng.int(0...3)))
            let y = try H.run1("Identity", opset: rng.pick([11, 14, 21]), [.feed(x)])
            #expect(y.type == x.type && H.words(y) == H.words(x))
        }
    }

    // MARK: - Transpose

    @Test func transposeMatchesReference() throws {
        var rng = SeededRNG(4)
        for trial in 0..<50 {
            let rank = rng.int(0...5)
            let shape = rng.shape(rank: rank, dims: trial % 10 == 0 ? 0...3 : 1...4)
            var perm = Array(0..<rank)
            for i in stride(from: rank - 1, to: 0, by: -1) { perm.swapAt(i, rng.int(0...i)) }
            let useDefault = trial % 4 == 0
            let x = try rng.tensor(rng.pick(DType.allCases), shape)
            let y = try H.run1("Transpose", opset: rng.pick([11, 13, 21]), [.feed(x)],
                               attributes: useDefault ? [:] : ["perm": .ints(perm)])
            let p = useDefault ? Array((0..<rank).reversed()) : perm
            let outShape = p.map { shape[$0] }
            #expect(y.shape == outShape)
            for i in 0..<y.count {
                let out = H.unravel(i, outShape)
                var index = [Int](repeating: 0, count: rank)
                for d in 0..<rank { index[p[d]] = out[d] }
                #expect(H.word(y, i) == H.word(x, H.ravel(index, shape)))
            }
        }
    }

    @Test func transposeErrors() throws {
        let x = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        #expect(H.error { _ = try H.run1("Transpose", [.feed(x)], attributes: ["perm": .ints([0, 0])]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run1("Transpose", [.feed(x)], attributes: ["perm": .ints([1, 2])]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run1("Transpose", [.feed(x)], attributes: ["perm": .ints([2, 0, 1])]) }?.status == .shapeMismatch)
    }

    // MARK: - Concat

    @Test func concatMatchesReference() throws {
        var rng = SeededRNG(5)
        for _ in 0..<40 {
            let rank = rng.int(1...4)
            let axis = rng.int(-rank...(rank - 1))
            let a = axis < 0 ? axis + rank : axis
            let base = rng.shape(rank: rank)
            let dtype = rng.pick(DType.allCases)
            let xs = try (0..<rng.int(1...4)).map { _ in
                var s = base
                s[a] = rng.int(0...3)
                return try rng.tensor(dtype, s)
            }
            let y = try H.run1("Concat", opset: rng.pick([11, 13]), xs.map { .feed($0) }, attributes: ["axis": .int(axis)])
            var expected = base
            expected[a] = xs.map { $0.shape[a] }.reduce(0, +)
            #expect(y.shape == expected)
            for i in 0..<y.count {
                var index = H.unravel(i, expected)
                var which = 0
                while index[a] >= xs[which].shape[a] { index[a] -= xs[which].shape[a]; which += 1 }
                #expect(H.word(y, i) == H.word(xs[which], H.ravel(index, xs[which].shape)))
            }
        }
    }

    @Test func concatErrors() throws {
        let a = try Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        let b = try Tensor(shape: [2, 2], floats: [1, 2, 3, 4])
        let c = try Tensor(shape: [2], int64s: [1, 2])
        #expect(H.error { _ = try H.run1("Concat", [.feed(a), .feed(b)], attributes: ["axis": .int(0)]) }?.status == .shapeMismatch)
        #expect(try H.run1("Concat", [.feed(a), .feed(b)], attributes: ["axis": .int(-1)]).shape == [2, 5])
        #expect(H.error { _ = try H.run1("Concat", [.feed(a), .feed(c)], attributes: ["axis": .int(0)]) }?.status == .dtypeMismatch)
        #expect(H.error { _ = try H.run1("Concat", [.feed(a), .feed(a)]) }?.message.contains("'axis' is required") == true)
        #expect(H.error { _ = try H.run1("Concat", [.feed(a)], attributes: ["axis": .int(2)]) }?.status == .invalidArgument)
    }

    // MARK: - Squeeze, Unsqueeze

    @Test func squeezeAttributeAndInputForms() throws {
        var rng = SeededRNG(6)
        for _ in 0..<40 {
            let rank = rng.int(0...5)
            let shape = rng.shape(rank: rank, dims: 1...3)
            let ones = shape.indices.filter { shape[$0] == 1 }
            let explicit = rng.int(0...2) > 0
            let axes = explicit ? ones.filter { _ in rng.int(0...1) == 1 }.map { rng.int(0...1) == 1 ? $0 - rank : $0 } : []
            let opset = rng.pick([11, 12, 13, 21])
            let x = try rng.tensor(rng.pick(DType.allCases), shape)
            let y: Tensor
            if opset < 13 {
                y = try H.run1("Squeeze", opset: opset, [.feed(x)], attributes: explicit ? ["axes": .ints(axes)] : [:])
            } else {
                let operands: [H.Operand] = explicit ? [.feed(x), .constant(try Tensor(shape: [axes.count], int64s: axes.map(Int64.init)))] : [.feed(x)]
                y = try H.run1("Squeeze", opset: opset, operands)
            }
            let removed = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
            let expected = explicit && !axes.isEmpty ? shape.indices.filter { !removed.contains($0) }.map { shape[$0] } : shape.filter { $0 != 1 }
            #expect(y.shape == expected)
            #expect(H.words(y) == H.words(x))
        }
    }

    @Test func squeezeErrors() throws {
        let x = try Tensor(shape: [1, 3], floats: [1, 2, 3])
        let notOne = H.error { _ = try H.run1("Squeeze", opset: 11, [.feed(x)], attributes: ["axes": .ints([1])]) }
        #expect(notOne?.status == .shapeMismatch && notOne?.message.contains("size 3") == true)
        #expect(H.error { _ = try H.run1("Squeeze", opset: 11, [.feed(x)], attributes: ["axes": .ints([0, -2])]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run1("Squeeze", opset: 11, [.feed(x)], attributes: ["axes": .ints([2])]) }?.status == .invalidArgument)
        let fed = try H.run1("Squeeze", opset: 13, [.feed(x), .feed(try Tensor(shape: [1], int64s: [0]))])
        #expect(fed.shape == [3])  // axes fed at run time specialise the plan to their value
        #expect(H.error { _ = try H.run1("Squeeze", opset: 13, [.feed(x)], attributes: ["axes": .ints([0])]) }?.status == .invalidArgument)
    }

    @Test func unsqueezeAttributeAndInputForms() throws {
        var rng = SeededRNG(7)
        for _ in 0..<40 {
            let rank = rng.int(0...3)
            let shape = rng.shape(rank: rank)
            let outRank = rank + rng.int(1...3)
            var positions = Array(0..<outRank)
            for i in stride(from: outRank - 1, to: 0, by: -1) { positions.swapAt(i, rng.int(0...i)) }
            let chosen = Array(positions.prefix(outRank - rank))
            let axes = chosen.map { rng.int(0...1) == 1 ? $0 - outRank : $0 }
            let opset = rng.pick([11, 12, 13, 21])
            let x = try rng.tensor(rng.pick(DType.allCases), shape)
            let y = opset < 13
                ? try H.run1("Unsqueeze", opset: opset, [.feed(x)], attributes: ["axes": .ints(axes)])
                : try H.run1("Unsqueeze", opset: opset, [.feed(x), .constant(try Tensor(shape: [axes.count], int64s: axes.map(Int64.init)))])
            var expected: [Int] = []
            var rest = shape[...]
            for d in 0..<outRank { expected.append(chosen.contains(d) ? 1 : rest.removeFirst()) }
            #expect(y.shape == expected)
            #expect(H.words(y) == H.words(x))
        }
    }

    @Test func unsqueezeErrors() throws {
        let x = try Tensor(shape: [2], floats: [1, 2])
        #expect(H.error { _ = try H.run1("Unsqueeze", opset: 11, [.feed(x)]) }?.message.contains("'axes' is required") == true)
        #expect(H.error { _ = try H.run1("Unsqueeze", opset: 11, [.feed(x)], attributes: ["axes": .ints([0, 0])]) }?.message.contains("repeated") == true)
        #expect(H.error { _ = try H.run1("Unsqueeze", opset: 11, [.feed(x)], attributes: ["axes": .ints([2])]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run1("Unsqueeze", opset: 13, [.feed(x)]) }?.status == .invalidArgument)
        #expect(try H.run1("Unsqueeze", opset: 13, [.feed(x), .feed(try Tensor(shape: [1], int64s: [0]))]).shape == [1, 2])
    }

    // MARK: - Gather

    @Test func gatherMatchesReference() throws {
        var rng = SeededRNG(8)
        for trial in 0..<50 {
            let rank = rng.int(1...4)
            let shape = rng.shape(rank: rank)
            let axis = rng.int(-rank...(rank - 1))
            let a = axis < 0 ? axis + rank : axis
            let indexShape = rng.shape(rank: rng.int(0...2), dims: trial % 8 == 0 ? 0...2 : 1...3)
            let values = (0..<indexShape.reduce(1, *)).map { _ in rng.int(-shape[a]...(shape[a] - 1)) }
            let indices: Tensor
            if rng.int(0...1) == 0 {
                indices = try Tensor(shape: indexShape, int64s: values.map(Int64.init))
            } else {
                indices = try Tensor(.int32, shape: indexShape)
                for (i, v) in values.enumerated() { indices.bytes.storeBytes(of: Int32(v), toByteOffset: 4 * i, as: Int32.self) }
            }
            let x = try rng.tensor(rng.pick(DType.allCases), shape)
            let y = try H.run1("Gather", opset: rng.pick([11, 13]), [.feed(x), trial % 3 == 0 ? .constant(indices) : .feed(indices)],
                               attributes: ["axis": .int(axis)])
            let expected = Array(shape[..<a]) + indexShape + Array(shape[(a + 1)...])
            #expect(y.shape == expected)
            for i in 0..<y.count {
                let out = H.unravel(i, expected)
                let k = values[H.ravel(Array(out[a..<(a + indexShape.count)]), indexShape)]
                let index = Array(out[..<a]) + [k < 0 ? k + shape[a] : k] + Array(out[(a + indexShape.count)...])
                #expect(H.word(y, i) == H.word(x, H.ravel(index, shape)))
            }
        }
    }

    @Test func gatherErrors() throws {
        let x = try Tensor(shape: [3, 2], floats: [1, 2, 3, 4, 5, 6])
        for bad: Int64 in [3, -4, 1 << 40] {
            let e = H.error { _ = try H.run1("Gather", [.feed(x), .feed(try Tensor(shape: [2], int64s: [0, bad]))]) }
            #expect(e?.status == .invalidArgument && e?.message.contains("index \(bad) out of range") == true)
        }
        #expect(H.error { _ = try H.run1("Gather", [.feed(x), .feed(try Tensor(shape: [1], int64s: [0]))], attributes: ["axis": .int(2)]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run1("Gather", [.feed(x), .feed(try Tensor(shape: [1], floats: [0]))]) }?.status == .dtypeMismatch)
    }

    // MARK: - Shape, Constant, ConstantOfShape

    @Test func shapeWithStartEnd() throws {
        var rng = SeededRNG(9)
        for _ in 0..<40 {
            let rank = rng.int(0...4)
            let shape = rng.shape(rank: rank, dims: 0...5)
            let opset = rng.pick([13, 15, 19, 21])
            let start: Int? = opset >= 15 && rng.int(0...1) == 1 ? rng.int(-6...6) : nil
            let end: Int? = opset >= 15 && rng.int(0...1) == 1 ? rng.int(-6...6) : nil
            var attributes: [String: AttributeValue] = [:]
            if let start { attributes["start"] = .int(start) }
            if let end { attributes["end"] = .int(end) }
            let y = try H.run1("Shape", opset: opset, [.feed(try rng.tensor(.float32, shape))], attributes: attributes)
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
            let lo = clamp(start ?? 0), hi = clamp(end ?? rank)
            let expected = lo < hi ? Array(shape[lo..<hi]) : []
            #expect(y.dtype == .int64 && y.shape == [expected.count])
            #expect(y.intArray() == expected)
        }
    }

    @Test func shapeFoldsFromTypes() throws {
        let context = NodeContext(name: "s", opType: "Shape", domain: "", opset: 15,
                                  attributes: Attributes(["start": .int(1)]), inputPresent: [true], outputPresent: [true])
        let kernel = try H.registry().lookup(domain: "", opType: "Shape", opset: 15)!.makeKernel(context)
        let folded = try kernel.fold([TensorType(.float32, [7, 3, 5])], constants: [nil])
        #expect(folded?.count == 1 && folded?[0].intArray() == [3, 5])
    }

    @Test func constantForms() throws {
        let ints = try Tensor(.int32, shape: [2, 2])
        for (i, v) in [Int32(7), -1, 0, 5].enumerated() { ints.bytes.storeBytes(of: v, toByteOffset: 4 * i, as: Int32.self) }
        let fromTensor = try H.run1("Constant", [], attributes: ["value": .tensor(ints)])
        #expect(fromTensor.type == TensorType(.int32, [2, 2]) && fromTensor.intArray() == [7, -1, 0, 5])
        let f = try H.run1("Constant", [], attributes: ["value_float": .float(2.5)])
        #expect(f.type == TensorType(.float32, []) && f.floatArray() == [2.5])
        let fs = try H.run1("Constant", [], attributes: ["value_floats": .floats([1, -2, 3])])
        #expect(fs.type == TensorType(.float32, [3]) && fs.floatArray() == [1, -2, 3])
        let n = try H.run1("Constant", [], attributes: ["value_int": .int(-9)])
        #expect(n.type == TensorType(.int64, []) && n.intArray() == [-9])
        let ns = try H.run1("Constant", [], attributes: ["value_ints": .ints([4, 5])])
        #expect(ns.type == TensorType(.int64, [2]) && ns.intArray() == [4, 5])

        let s = H.error { _ = try H.run1("Constant", [], attributes: ["value_string": .string("a")]) }
        #expect(s?.status == .unsupportedOp && s?.message.contains("value_string") == true)
        #expect(H.error { _ = try H.run1("Constant", [], attributes: ["value_strings": .strings(["a"])]) }?.status == .unsupportedOp)
        #expect(H.error { _ = try H.run1("Constant", [], attributes: ["sparse_value": .int(0)]) }?.status == .unsupportedOp)
        #expect(H.error { _ = try H.run1("Constant", [], attributes: [:]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run1("Constant", [], attributes: ["value_int": .int(1), "value_float": .float(1)]) }?.status == .invalidArgument)
    }

    @Test func constantOfShapeFills() throws {
        let shape = try Tensor(shape: [2], int64s: [2, 3])
        let zeros = try H.run1("ConstantOfShape", [.constant(shape)])
        #expect(zeros.type == TensorType(.float32, [2, 3]) && zeros.floatArray() == [Float](repeating: 0, count: 6))
        let sevens = try H.run1("ConstantOfShape", opset: 9, [.constant(shape)], attributes: ["value": .tensor(try Tensor(shape: [1], int64s: [7]))])
        #expect(sevens.type == TensorType(.int64, [2, 3]) && sevens.intArray() == [Int](repeating: 7, count: 6))
        let trues = try H.run1("ConstantOfShape", opset: 21, [.constant(shape)], attributes: ["value": .tensor(try Tensor(shape: [1], bools: [true]))])
        #expect(trues.dtype == .bool && trues.intArray() == [Int](repeating: 1, count: 6))
        let halves = try H.run1("ConstantOfShape", [.constant(shape)], attributes: ["value": .tensor(try Tensor(shape: [], floats: [0.5]))])
        #expect(halves.floatArray() == [Float](repeating: 0.5, count: 6))
        let scalar = try H.run1("ConstantOfShape", [.constant(try Tensor(shape: [0], int64s: []))])
        #expect(scalar.shape == [] && scalar.floatArray() == [0])
        #expect(try H.run1("ConstantOfShape", [.constant(try Tensor(shape: [2], int64s: [0, 4]))]).shape == [0, 4])

        #expect(H.error { _ = try H.run1("ConstantOfShape", [.constant(try Tensor(shape: [2], int64s: [2, -1]))]) }?.status == .shapeMismatch)
        #expect(try H.run1("ConstantOfShape", [.feed(shape)]).shape == shape.intArray())
        #expect(H.error { _ = try H.run1("ConstantOfShape", [.constant(shape)], attributes: ["value": .tensor(try Tensor(shape: [2], floats: [1, 2]))]) }?.status == .invalidArgument)
    }

    // MARK: - Dropout

    @Test func dropoutIsIdentityWithTrueMask() throws {
        var rng = SeededRNG(10)
        for opset in [10, 11, 12, 13, 21] {
            let x = try rng.floats(rng.shape(rank: 3))
            var operands: [H.Operand] = [.feed(x)]
            if opset >= 12 {
                operands += [.constant(try Tensor(shape: [], floats: [0.3])), .constant(try Tensor(shape: [], bools: [false]))]
            }
            let outs = try H.run("Dropout", opset: opset, operands, outputs: ["y", "mask"])
            #expect(outs[0].floatArray() == x.floatArray())
            #expect(outs[1].dtype == .bool && outs[1].shape == x.shape && outs[1].intArray().allSatisfy { $0 == 1 })
            let single = try H.run("Dropout", opset: opset, [.feed(x)], outputs: ["y"])
            #expect(single[0].floatArray() == x.floatArray())
        }
        let ints = try rng.tensor(.int64, [4])
        #expect(H.words(try H.run("Dropout", opset: 13, [.feed(ints), .absent, .feed(try Tensor(shape: [], bools: [false]))])[0]) == H.words(ints))
    }

    @Test func dropoutTrainingModeIsRejected() throws {
        let x = try Tensor(shape: [2], floats: [1, 2])
        let constant = H.error { _ = try H.run("Dropout", opset: 13, [.feed(x), .absent, .constant(try Tensor(shape: [], bools: [true]))]) }
        #expect(constant?.status == .unsupportedOp && constant?.message.contains("training_mode") == true)
        let fed = H.error { _ = try H.run("Dropout", opset: 13, [.feed(x), .absent, .feed(try Tensor(shape: [], bools: [true]))]) }
        #expect(fed?.status == .unsupportedOp && fed?.message.contains("training_mode") == true)
        #expect(H.error { _ = try H.run("Dropout", opset: 11, [.feed(x), .constant(try Tensor(shape: [], floats: [0.5]))]) }?.status == .invalidArgument)
        #expect(H.error { _ = try H.run("Dropout", opset: 13, [.feed(x), .constant(try Tensor(shape: [2], floats: [0.5, 0.5]))]) }?.status == .shapeMismatch)
    }

    // MARK: - PyTorch-style dynamic batch

    /// `x[N, 3, 4]` → `Shape → Gather(0) → Unsqueeze → Concat([-1]) → Reshape` → `[N, 12]`, re-planned as N changes.
    @Test func dynamicBatchReshapeChain() throws {
        let nodes = [
            Node(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
            Node(name: "zero", opType: "Constant", inputs: [], outputs: ["i0"], attributes: ["value": .tensor(try Tensor(shape: [], int64s: [0]))]),
            Node(name: "batch", opType: "Gather", inputs: ["s", "i0"], outputs: ["n"], attributes: ["axis": .int(0)]),
            Node(name: "unsq", opType: "Unsqueeze", inputs: ["n", "axes"], outputs: ["n1"]),
            Node(name: "cat", opType: "Concat", inputs: ["n1", "minus1"], outputs: ["target"], attributes: ["axis": .int(0)]),
            Node(name: "reshape", opType: "Reshape", inputs: ["x", "target"], outputs: ["y"]),
        ]
        let graph = Graph(inputs: [ValueInfo(name: "x", dtype: .float32, dims: [.symbolic("N"), .fixed(3), .fixed(4)])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, dims: [.symbolic("N"), .fixed(12)])],
                          nodes: nodes,
                          initializers: ["axes": try Tensor(shape: [1], int64s: [0]), "minus1": try Tensor(shape: [1], int64s: [-1])],
                          opsets: ["": 17])
        let session = Session(model: try Model(graph: graph, registry: H.registry()))
        var rng = SeededRNG(11)
        for batch in [2, 5, 1, 2] {
            let x = try rng.floats([batch, 3, 4])
            let y = try session.run(["x": x])["y"]!
            #expect(y.shape == [batch, 12])
            #expect(y.floatArray() == x.floatArray())
        }
    }
}
