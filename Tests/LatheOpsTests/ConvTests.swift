import Testing
@testable import LatheOps
import LatheCore

/// Helpers shared by the Conv, Pooling and Normalization suites (beside OpTestSupport.swift): one-node
/// models with initializers and named or omitted outputs, a NaN-aware tolerance check, and index
/// arithmetic for the naive references.
enum ConvPoolNormSupport {
    /// A float32 tensor of uniform values in -1...1.
    static func random(_ shape: [Int], _ rng: inout SeededRNG) throws -> Tensor {
        try Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &rng) })
    }

    /// One named input of a one-node model: a graph input, an initializer, or an omitted slot (nil).
    struct Input {
        var name: String
        var tensor: Tensor?
        var constant = false
    }

    /// Builds a model holding one node and runs it; returns the wired outputs in order.
    static func run(_ opType: String, opset: Int = 17, attributes: [String: AttributeValue] = [:],
                    inputs: [Input], outputs: [String] = ["y"]) throws -> [Tensor] {
        let registry = OpRegistry()
        try BuiltinOps.register(into: registry)
        let fed = inputs.filter { $0.tensor != nil && !$0.constant }
        var initializers: [String: Tensor] = [:]
        for input in inputs where input.constant { initializers[input.name] = input.tensor }
        let graph = Graph(
            inputs: fed.map { ValueInfo(name: $0.name, dtype: $0.tensor!.dtype, dims: $0.tensor!.shape.map { .fixed($0) }) },
            outputs: outputs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, dtype: .float32, dims: nil) },
            nodes: [Node(name: "n", opType: opType, inputs: inputs.map { $0.tensor == nil ? "" : $0.name },
                         outputs: outputs, attributes: attributes)],
            initializers: initializers, opsets: ["": opset])
        let session = Session(model: try Model(graph: graph, registry: registry))
        var feeds: [String: Tensor] = [:]
        for input in fed { feeds[input.name] = input.tensor! }
        let result = try session.run(feeds)
        return outputs.filter { !$0.isEmpty }.map { result[$0]! }
    }

    /// The status of the error `body` throws, or nil when it does not throw a `LatheError`.
    static func status(_ body: () throws -> Void) -> Status? {
        do { try body() } catch let error as LatheError { return error.status } catch { return nil }
        return nil
    }

    /// Tolerance used by every comparison: max|got − ref| <= 1e-4 · max(1, max|ref|); NaN matches NaN.
    static func close(_ got: [Float], _ ref: [Float]) -> Bool {
        guard got.count == ref.count else { return false }
        let scale = max(1, ref.lazy.filter { !$0.isNaN }.map(abs).max() ?? 0)
        return zip(got, ref).allSatisfy { g, r in
            (g.isNaN && r.isNaN) || (!g.isNaN && !r.isNaN && abs(g - r) <= 1e-4 * scale)
        }
    }

    /// Every multi-index of `shape`, row-major order.
    static func indices(_ shape: [Int]) -> [[Int]] {
        var result: [[Int]] = [[]]
        for d in shape { result = result.flatMap { prefix in (0..<d).map { prefix + [$0] } } }
        return result
    }

    /// Row-major flat offset of `index` in `shape`.
    static func flat(_ index: [Int], _ shape: [Int]) -> Int {
        zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }

    /// Reference geometry per the ONNX spec: pads begin/end and output size per spatial axis, or nil
    /// when the kernel does not fit the padded input.
    static func geometry(input: [Int], kernel: [Int], strides: [Int], dilations: [Int], pads: [Int],
                         autoPad: String, ceilMode: Bool) -> (begin: [Int], end: [Int], output: [Int])? {
        let r = input.count
        var begin = [Int](repeating: 0, count: r), end = begin, output = begin
        for i in 0..<r {
            let extent = (kernel[i] - 1) * dilations[i] + 1
            if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
                output[i] = Int((Double(input[i]) / Double(strides[i])).rounded(.up))
                let total = max(0, (output[i] - 1) * strides[i] + extent - input[i])
                begin[i] = autoPad == "SAME_UPPER" ? total / 2 : (total + 1) / 2
                end[i] = total - begin[i]
            } else {
                if autoPad == "NOTSET" { begin[i] = pads[i]; end[i] = pads[r + i] }
                let padded = input[i] + begin[i] + end[i]
                if padded < extent { return nil }
                let exact = Double(padded - extent) / Double(strides[i]) + 1
                output[i] = Int(ceilMode ? exact.rounded(.up) : exact.rounded(.down))
                if ceilMode && (output[i] - 1) * strides[i] >= input[i] + begin[i] { output[i] -= 1 }
            }
        }
        return (begin, end, output)
    }

    /// Picks a random element.
    static func pick<T>(_ options: [T], _ rng: inout SeededRNG) -> T { options[Int.random(in: 0..<options.count, using: &rng)] }
}

@Suite struct ConvTests {
    typealias S = ConvPoolNormSupport

    /// Naive Conv: loops over every output element, input channel of its group and kernel tap.
    static func referenceConv(x: Tensor, w: Tensor, bias: Tensor?, group: Int, strides: [Int], dilations: [Int],
                              begin: [Int], output: [Int]) -> [Float] {
        let xs = x.floatArray(), ws = w.floatArray(), bs = bias?.floatArray()
        let n = x.shape[0], c = x.shape[1], m = w.shape[0], cg = c / group, mg = m / group
        let inShape = Array(x.shape.dropFirst(2)), kernel = Array(w.shape.dropFirst(2))
        var y: [Float] = []
        for b in 0..<n {
            for f in 0..<m {
                let g = f / mg
                for o in S.indices(output) {
                    var acc: Double = Double(bs?[f] ?? 0)
                    for ci in 0..<cg {
                        for k in S.indices(kernel) {
                            let p = (0..<o.count).map { o[$0] * strides[$0] + k[$0] * dilations[$0] - begin[$0] }
                            guard zip(p, inShape).allSatisfy({ $0 >= 0 && $0 < $1 }) else { continue }
                            let xv = xs[(b * c + g * cg + ci) * inShape.reduce(1, *) + S.flat(p, inShape)]
                            let wv = ws[(f * cg + ci) * kernel.reduce(1, *) + S.flat(k, kernel)]
                            acc += Double(xv) * Double(wv)
                        }
                    }
                    y.append(Float(acc))
                }
            }
        }
        return y
    }

    @Test func knownValues2D() throws {
        // 3×3 input, 2×2 kernel of ones, no padding: each output sums a 2×2 block.
        let x = try Tensor(shape: [1, 1, 3, 3], floats: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let w = try Tensor(shape: [1, 1, 2, 2], floats: [1, 1, 1, 1])
        let y = try S.run("Conv", inputs: [.init(name: "x", tensor: x), .init(name: "w", tensor: w, constant: true)])[0]
        #expect(y.shape == [1, 1, 2, 2])
        #expect(y.floatArray() == [12, 16, 24, 28])
    }

    @Test func sameUpperAndLowerPlaceOddPaddingDifferently() throws {
        // 1-D, kernel [1, 10] with stride 1 over 4 values: total padding 1, at the end (UPPER) or start (LOWER).
        let x = try Tensor(shape: [1, 1, 4], floats: [1, 2, 3, 4])
        let w = try Tensor(shape: [1, 1, 2], floats: [1, 10])
        let upper = try S.run("Conv", attributes: ["auto_pad": .string("SAME_UPPER")],
                              inputs: [.init(name: "x", tensor: x), .init(name: "w", tensor: w)])[0]
        let lower = try S.run("Conv", attributes: ["auto_pad": .string("SAME_LOWER")],
                              inputs: [.init(name: "x", tensor: x), .init(name: "w", tensor: w)])[0]
        #expect(upper.floatArray() == [21, 32, 43, 4])
        #expect(lower.floatArray() == [10, 21, 32, 43])
    }

    @Test(arguments: [11, 17, 21]) func randomizedAgainstNaive(opset: Int) throws {
        var rng = SeededRNG(UInt64(opset) * 7919)
        var checked = 0
        while checked < 60 {
            let spatial = S.pick([1, 1, 2, 2, 2, 3], &rng)
            let group = S.pick([1, 1, 2, 3], &rng)
            let depthwise = Bool.random(using: &rng) && group > 1
            let cg = depthwise ? 1 : Int.random(in: 1...3, using: &rng)
            let mg = Int.random(in: 1...3, using: &rng)
            let n = Int.random(in: 1...2, using: &rng)
            let kernel = (0..<spatial).map { _ in Int.random(in: 1...(spatial == 3 ? 2 : 3), using: &rng) }
            let input = (0..<spatial).map { _ in Int.random(in: 1...(spatial == 3 ? 5 : 8), using: &rng) }
            let strides = (0..<spatial).map { _ in Int.random(in: 1...3, using: &rng) }
            let dilations = (0..<spatial).map { _ in Int.random(in: 1...2, using: &rng) }
            let pads = (0..<2 * spatial).map { _ in Int.random(in: 0...2, using: &rng) }
            let autoPad = S.pick(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"], &rng)
            guard let geo = S.geometry(input: input, kernel: kernel, strides: strides, dilations: dilations,
                                       pads: pads, autoPad: autoPad, ceilMode: false) else { continue }
            let x = try S.random([n, cg * group] + input, &rng)
            let w = try S.random([mg * group, cg] + kernel, &rng)
            let bias = Bool.random(using: &rng) ? try S.random([mg * group], &rng) : nil
            var attributes: [String: AttributeValue] = ["group": .int(group), "auto_pad": .string(autoPad)]
            if Bool.random(using: &rng) { attributes["kernel_shape"] = .ints(kernel) }
            if strides.contains(where: { $0 != 1 }) || Bool.random(using: &rng) { attributes["strides"] = .ints(strides) }
            if dilations.contains(where: { $0 != 1 }) || Bool.random(using: &rng) { attributes["dilations"] = .ints(dilations) }
            if autoPad == "NOTSET" { attributes["pads"] = .ints(pads) }
            let weightsConstant = Bool.random(using: &rng)
            let y = try S.run("Conv", opset: opset, attributes: attributes, inputs: [
                .init(name: "x", tensor: x), .init(name: "w", tensor: w, constant: weightsConstant),
                .init(name: "b", tensor: bias, constant: weightsConstant),
            ])[0]
            let ref = Self.referenceConv(x: x, w: w, bias: bias, group: group, strides: strides, dilations: dilations,
                                         begin: geo.begin, output: geo.output)
            #expect(y.shape == [n, mg * group] + geo.output, "\(attributes) x\(x.shape) w\(w.shape)")
            #expect(S.close(y.floatArray(), ref), "\(attributes) x\(x.shape) w\(w.shape)")
            checked += 1
        }
    }

    @Test func pointwiseFastPathMatchesNaive() throws {
        var rng = SeededRNG(42)
        for group in [1, 2, 4] {
            let x = try S.random([2, 8, 5, 6], &rng), w = try S.random([6 * group / 2, 8 / group, 1, 1], &rng)
            let b = try S.random([w.shape[0]], &rng)
            let y = try S.run("Conv", attributes: ["group": .int(group)], inputs: [
                .init(name: "x", tensor: x), .init(name: "w", tensor: w, constant: true), .init(name: "b", tensor: b, constant: true),
            ])[0]
            let ref = Self.referenceConv(x: x, w: w, bias: b, group: group, strides: [1, 1], dilations: [1, 1],
                                         begin: [0, 0], output: [5, 6])
            #expect(y.shape == [2, w.shape[0], 5, 6])
            #expect(S.close(y.floatArray(), ref))
        }
    }

    @Test func shapeErrorsComeFromInference() throws {
        var rng = SeededRNG(1)
        let x = try S.random([1, 3, 5, 5], &rng)
        func conv(_ w: [Int], _ attributes: [String: AttributeValue] = [:], bias: [Int]? = nil, x: Tensor = x) -> Status? {
            S.status {
                _ = try S.run("Conv", attributes: attributes, inputs: [
                    .init(name: "x", tensor: x), .init(name: "w", tensor: try S.random(w, &rng)),
                    .init(name: "b", tensor: try bias.map { try S.random($0, &rng) }),
                ])
            }
        }
        #expect(conv([4, 2, 3, 3]) == .shapeMismatch)                                  // 3 channels vs 2 × 1 group
        #expect(conv([4, 1, 3, 3], ["group": .int(2)]) == .shapeMismatch)              // 3 channels vs 1 × 2 groups
        #expect(conv([4, 1, 3, 3], ["group": .int(3)]) == .shapeMismatch)              // 4 filters not divisible by 3
        #expect(conv([4, 3, 7, 3]) == .shapeMismatch)                                  // kernel taller than the input
        #expect(conv([4, 3, 3, 3], ["dilations": .ints([3, 1])]) == .shapeMismatch)   // dilated extent 7 > 5
        #expect(conv([4, 3, 3]) == .shapeMismatch)                                     // W rank differs from X
        #expect(conv([4, 3, 3, 3], ["kernel_shape": .ints([2, 2])]) == .shapeMismatch) // kernel_shape vs W
        #expect(conv([4, 3, 3, 3], bias: [3]) == .shapeMismatch)                       // B length
        #expect(conv([4, 3, 3, 3], ["strides": .ints([1, 1, 1])]) == .invalidArgument) // strides length
        #expect(conv([4, 3, 3, 3], ["pads": .ints([1, 1])]) == .invalidArgument)      // pads length
        #expect(conv([4, 3, 3, 3], x: try S.random([3, 5], &rng)) == .shapeMismatch)  // X rank 2
        // With padding the same kernel fits.
        #expect(conv([4, 3, 7, 3], ["pads": .ints([1, 0, 1, 0])]) == nil)
    }

    @Test func attributeErrorsAtLoad() throws {
        var rng = SeededRNG(2)
        let x = try S.random([1, 2, 4, 4], &rng), w = try S.random([2, 2, 3, 3], &rng)
        func conv(_ attributes: [String: AttributeValue]) -> Status? {
            S.status { _ = try S.run("Conv", attributes: attributes, inputs: [.init(name: "x", tensor: x), .init(name: "w", tensor: w)]) }
        }
        #expect(conv(["auto_pad": .string("SAME")]) == .invalidArgument)
        #expect(conv(["strides": .ints([0, 1])]) == .invalidArgument)
        #expect(conv(["dilations": .ints([1, -1])]) == .invalidArgument)
        #expect(conv(["pads": .ints([1, 1, 1])]) == .invalidArgument)
        #expect(conv(["pads": .ints([-1, 0, 0, 0])]) == .invalidArgument)
        #expect(conv(["group": .int(0)]) == .invalidArgument)
        #expect(conv(["auto_pad": .string("VALID"), "pads": .ints([1, 1, 1, 1])]) == .invalidArgument)
        #expect(conv(["kernel_shape": .ints([0, 3])]) == .invalidArgument)
        #expect(conv(["group": .string("1")]) == .invalidArgument)
        #expect(conv(["strides": .ints([Int.max, 1])]) == .invalidArgument)
        #expect(conv(["pads": .ints([0, 0, Int.max, 0])]) == .invalidArgument)
        #expect(conv(["auto_pad": .string("VALID"), "pads": .ints([0, 0, 0, 0])]) == nil)
    }
}
