import Foundation
import Testing
import LatheCore
import LatheOps

/// One LSTM or GRU configuration: sizes, attributes, which optional inputs and outputs are wired.
private struct RecurrentCase: CustomStringConvertible {
    var op = "LSTM"
    var seq = 4, batch = 3, input = 3, hidden = 4
    var direction = "forward"
    var layout = 0
    var bias = false, sequenceLens = false, initialH = false, initialC = false, peephole = false
    var clip: Float? = nil
    var inputForget = false
    var linearBeforeReset = false
    var activations: [String]? = nil
    var alphas: [Float]? = nil, betas: [Float]? = nil
    /// Wired outputs: Y, Y_h (and Y_c for LSTM).
    var outputs = [true, true, true]
    var opset = 14
    /// Whether the node states `hidden_size` (else it comes from R).
    var hiddenSizeAttribute = true

    var gates: Int { op == "LSTM" ? 4 : 3 }
    var directions: Int { direction == "bidirectional" ? 2 : 1 }
    var description: String {
        "\(op) \(direction) layout=\(layout) seq=\(seq) batch=\(batch) in=\(input) hid=\(hidden) B=\(bias) lens=\(sequenceLens) h0=\(initialH) c0=\(initialC) P=\(peephole) clip=\(clip.map { "\($0)" } ?? "-") if=\(inputForget) lbr=\(linearBeforeReset) act=\(activations ?? [])"
    }
}

/// Random inputs for a case, as flat arrays in ONNX layout.
private struct RecurrentInputs {
    var x: [Float], w: [Float], r: [Float]
    var b: [Float]?, lens: [Int]?, h0: [Float]?, c0: [Float]?, p: [Float]?

    init(_ c: RecurrentCase, _ rng: inout SeededRNG) {
        func uniform(_ n: Int, _ scale: Float) -> [Float] { (0..<n).map { _ in Float.random(in: -scale...scale, using: &rng) } }
        let nd = c.directions, gh = c.gates * c.hidden, states = nd * c.batch * c.hidden
        x = uniform(c.seq * c.batch * c.input, 1)
        w = uniform(nd * gh * c.input, 0.8)
        r = uniform(nd * gh * c.hidden, 0.8)
        b = c.bias ? uniform(nd * 2 * gh, 0.5) : nil
        if c.sequenceLens {
            // The first entry keeps the full length; one entry (when there are several) is empty.
            lens = (0..<c.batch).map { b in b == 0 ? c.seq : (b == 1 ? 0 : Int.random(in: 0...c.seq, using: &rng)) }
        }
        h0 = c.initialH ? uniform(states, 1) : nil
        c0 = c.initialC ? uniform(states, 1) : nil
        p = c.peephole ? uniform(nd * 3 * c.hidden, 0.5) : nil
    }
}

/// Naive reference: each batch entry on its own, per step, per unit, with explicit dot products.
private enum Reference {
    /// The ONNX recurrent activation `name` with its parameters.
    static func activate(_ name: String, _ alpha: Float, _ beta: Float, _ x: Float) -> Float {
        switch name.lowercased() {
        case "relu": return max(0, x)
        case "tanh": return Float(Foundation.tanh(Double(x)))
        case "sigmoid": return Float(1 / (1 + Foundation.exp(-Double(x))))
        case "affine": return alpha * x + beta
        case "leakyrelu": return x >= 0 ? x : alpha * x
        case "thresholdedrelu": return x >= alpha ? x : 0
        case "scaledtanh": return alpha * Float(Foundation.tanh(Double(beta * x)))
        case "hardsigmoid": return min(max(alpha * x + beta, 0), 1)
        case "elu": return x >= 0 ? x : alpha * Float(Foundation.exp(Double(x)) - 1)
        case "softsign": return x / (1 + abs(x))
        case "softplus": return Float(Foundation.log(1 + Foundation.exp(Double(x))))
        default: fatalError("unknown activation \(name)")
        }
    }

    /// Activation list with (alpha, beta) per entry: parameters consumed in order, ONNX defaults otherwise.
    static func resolve(_ c: RecurrentCase) -> [(String, Float, Float)] {
        let perDirection = c.op == "LSTM" ? ["Sigmoid", "Tanh", "Tanh"] : ["Sigmoid", "Tanh"]
        var names = c.activations ?? perDirection
        if names.count == perDirection.count && c.directions == 2 { names += names }
        let alphaDefaults: [String: Float] = ["affine": 1, "leakyrelu": 0.01, "thresholdedrelu": 1, "scaledtanh": 1, "hardsigmoid": 0.2, "elu": 1]
        let betaDefaults: [String: Float] = ["affine": 0, "scaledtanh": 1, "hardsigmoid": 0.5]
        var ai = 0, bi = 0
        let alphas = c.alphas ?? [], betas = c.betas ?? []
        return names.map { name in
            var alpha: Float = 0, beta: Float = 0
            if let a = alphaDefaults[name.lowercased()] { alpha = ai < alphas.count ? alphas[ai] : a; ai += 1 }
            if let b = betaDefaults[name.lowercased()] { beta = bi < betas.count ? betas[bi] : b; bi += 1 }
            return (name, alpha, beta)
        }
    }

    /// Y, Y_h, Y_c (Y_c empty for GRU) in the case's layout.
    static func run(_ c: RecurrentCase, _ v: RecurrentInputs) -> (y: [Float], yH: [Float], yC: [Float]) {
        let H = c.hidden, I = c.input, G = c.gates, nd = c.directions
        let acts = resolve(c)
        func xAt(_ t: Int, _ b: Int, _ i: Int) -> Float {
            c.layout == 0 ? v.x[(t * c.batch + b) * I + i] : v.x[(b * c.seq + t) * I + i]
        }
        func stateIndex(_ d: Int, _ b: Int, _ j: Int) -> Int {
            c.layout == 0 ? (d * c.batch + b) * H + j : (b * nd + d) * H + j
        }
        func yIndex(_ t: Int, _ d: Int, _ b: Int, _ j: Int) -> Int {
            c.layout == 0 ? ((t * nd + d) * c.batch + b) * H + j : ((b * c.seq + t) * nd + d) * H + j
        }
        func clip(_ x: Float) -> Float { c.clip.map { min(max(x, -$0), $0) } ?? x }
        var y = [Float](repeating: 0, count: c.seq * nd * c.batch * H)
        var yH = [Float](repeating: 0, count: nd * c.batch * H), yC = yH
        for d in 0..<nd {
            let reversed = c.direction == "reverse" || d == 1
            let perDir = c.op == "LSTM" ? 3 : 2
            func act(_ k: Int, _ x: Float) -> Float { let a = acts[d * perDir + k]; return activate(a.0, a.1, a.2, x) }
            // Pre-activation of gate k, unit j: x·W + hIn·R + Wb + Rb (recurrent part and its bias optional).
            func xPart(_ t: Int, _ b: Int, _ k: Int, _ j: Int) -> Float {
                var s: Float = 0
                for i in 0..<I { s += xAt(t, b, i) * v.w[(d * G * H + k * H + j) * I + i] }
                return s + (v.b.map { $0[d * 2 * G * H + k * H + j] } ?? 0)
            }
            func hPart(_ h: [Float], _ k: Int, _ j: Int) -> Float {
                var s: Float = 0
                for m in 0..<H { s += h[m] * v.r[(d * G * H + k * H + j) * H + m] }
                return s + (v.b.map { $0[d * 2 * G * H + G * H + k * H + j] } ?? 0)
            }
            for b in 0..<c.batch {
                let len = v.lens?[b] ?? c.seq
                var h = (0..<H).map { j in v.h0?[stateIndex(d, b, j)] ?? 0 }
                var cell = (0..<H).map { j in v.c0?[stateIndex(d, b, j)] ?? 0 }
                for step in 0..<len {
                    let t = reversed ? len - 1 - step : step
                    var newH = [Float](repeating: 0, count: H)
                    if c.op == "LSTM" {
                        let p = v.p
                        var newC = [Float](repeating: 0, count: H)
                        for j in 0..<H {
                            let pi = p?[d * 3 * H + j] ?? 0, po = p?[d * 3 * H + H + j] ?? 0, pf = p?[d * 3 * H + 2 * H + j] ?? 0
                            let i = act(0, clip(xPart(t, b, 0, j) + hPart(h, 0, j) + pi * cell[j]))
                            let f = c.inputForget ? 1 - i : act(0, clip(xPart(t, b, 2, j) + hPart(h, 2, j) + pf * cell[j]))
                            let g = act(1, clip(xPart(t, b, 3, j) + hPart(h, 3, j)))
                            newC[j] = f * cell[j] + i * g
                            let o = act(0, clip(xPart(t, b, 1, j) + hPart(h, 1, j) + po * newC[j]))
                            newH[j] = o * act(2, newC[j])
                        }
                        cell = newC
                    } else {
                        let z = (0..<H).map { j in act(0, clip(xPart(t, b, 0, j) + hPart(h, 0, j))) }
                        let r = (0..<H).map { j in act(0, clip(xPart(t, b, 1, j) + hPart(h, 1, j))) }
                        for j in 0..<H {
                            let candidate: Float
                            if c.linearBeforeReset {
                                candidate = act(1, clip(xPart(t, b, 2, j) + r[j] * hPart(h, 2, j)))
                            } else {
                                let rh = (0..<H).map { r[$0] * h[$0] }
                                candidate = act(1, clip(xPart(t, b, 2, j) + hPart(rh, 2, j)))
                            }
                            newH[j] = (1 - z[j]) * candidate + z[j] * h[j]
                        }
                    }
                    h = newH
                    for j in 0..<H { y[yIndex(t, d, b, j)] = h[j] }
                }
                for j in 0..<H {
                    yH[stateIndex(d, b, j)] = len == 0 ? 0 : h[j]
                    yC[stateIndex(d, b, j)] = len == 0 ? 0 : cell[j]
                }
            }
        }
        return (y, yH, c.op == "LSTM" ? yC : [])
    }
}

/// LSTM and GRU against the naive reference, over directions, layouts, optional inputs and attributes.
///
/// Tolerance: max|diff| <= 1e-4 × max(1, max|ref|) per output.
@Suite struct RecurrentTests {
    private func int32Tensor(_ values: [Int]) throws -> Tensor {
        let t = try Tensor(.int32, shape: [values.count])
        let p = t.bytes.assumingMemoryBound(to: Int32.self)
        for (i, v) in values.enumerated() { p[i] = Int32(v) }
        return t
    }

    /// The case's node with X as the graph input and every other input as an initializer.
    private func graph(_ c: RecurrentCase, _ v: RecurrentInputs, lensAsInput: Bool = false) throws -> Graph {
        let nd = c.directions, gh = c.gates * c.hidden
        let stateShape = c.layout == 0 ? [nd, c.batch, c.hidden] : [c.batch, nd, c.hidden]
        var initializers: [String: Tensor] = [
            "W": try Tensor(shape: [nd, gh, c.input], floats: v.w),
            "R": try Tensor(shape: [nd, gh, c.hidden], floats: v.r),
        ]
        var names = ["X", "W", "R", "", "", "", "", ""]
        if let b = v.b { names[3] = "B"; initializers["B"] = try Tensor(shape: [nd, 2 * gh], floats: b) }
        var inputs = [ValueInfo(name: "X", dtype: .float32, dims: nil)]
        if let lens = v.lens {
            names[4] = "lens"
            if lensAsInput { inputs.append(ValueInfo(name: "lens", dtype: .int32, dims: nil)) }
            else { initializers["lens"] = try int32Tensor(lens) }
        }
        if let h0 = v.h0 { names[5] = "h0"; initializers["h0"] = try Tensor(shape: stateShape, floats: h0) }
        if let c0 = v.c0 { names[6] = "c0"; initializers["c0"] = try Tensor(shape: stateShape, floats: c0) }
        if let p = v.p { names[7] = "P"; initializers["P"] = try Tensor(shape: [nd, 3 * c.hidden], floats: p) }
        while names.last == "" { names.removeLast() }
        var attributes: [String: AttributeValue] = ["direction": .string(c.direction)]
        if c.hiddenSizeAttribute { attributes["hidden_size"] = .int(c.hidden) }
        if c.layout != 0 { attributes["layout"] = .int(c.layout) }
        if let clip = c.clip { attributes["clip"] = .float(clip) }
        if c.inputForget { attributes["input_forget"] = .int(1) }
        if c.linearBeforeReset { attributes["linear_before_reset"] = .int(1) }
        if let a = c.activations { attributes["activations"] = .strings(a) }
        if let a = c.alphas { attributes["activation_alpha"] = .floats(a) }
        if let b = c.betas { attributes["activation_beta"] = .floats(b) }
        let outputNames = ["Y", "Y_h", "Y_c"].prefix(c.op == "LSTM" ? 3 : 2).enumerated().map { c.outputs[$0.offset] ? $0.element : "" }
        return Graph(inputs: inputs,
                     outputs: outputNames.filter { !$0.isEmpty }.map { ValueInfo(name: $0, dtype: .float32, dims: nil) },
                     nodes: [Node(name: "rnn", opType: c.op, inputs: names, outputs: outputNames, attributes: attributes)],
                     initializers: initializers, opsets: ["": c.opset])
    }

    /// Runs the case through a session and compares every wired output with the reference.
    private func check(_ c: RecurrentCase, seed: UInt64) throws {
        var rng = SeededRNG(seed)
        let v = RecurrentInputs(c, &rng)
        let model = try Model(graph: graph(c, v), registry: builtinRegistry())
        let xShape = c.layout == 0 ? [c.seq, c.batch, c.input] : [c.batch, c.seq, c.input]
        let out = try Session(model: model).run(["X": try Tensor(shape: xShape, floats: v.x)])
        let ref = Reference.run(c, v)
        let nd = c.directions
        let expected: [(String, [Float], [Int])] = [
            ("Y", ref.y, c.layout == 0 ? [c.seq, nd, c.batch, c.hidden] : [c.batch, c.seq, nd, c.hidden]),
            ("Y_h", ref.yH, c.layout == 0 ? [nd, c.batch, c.hidden] : [c.batch, nd, c.hidden]),
            ("Y_c", ref.yC, c.layout == 0 ? [nd, c.batch, c.hidden] : [c.batch, nd, c.hidden]),
        ]
        var checked = 0
        for (slot, (name, values, shape)) in expected.enumerated() where slot < c.gates - 1 && c.outputs[slot] {
            let got = try #require(out[name], "\(c): missing \(name)")
            #expect(got.shape == shape, "\(c): \(name) shape")
            let scale = max(1, values.map(abs).max() ?? 0)
            let diff = zip(got.floatArray(), values).map { abs($0 - $1) }.max() ?? 0
            #expect(diff <= 1e-4 * scale, "\(c): \(name) max|diff| = \(diff)")
            checked += 1
        }
        #expect(checked == c.outputs.prefix(c.gates - 1).filter { $0 }.count)
    }

    /// Every direction × layout × (no optional inputs | all of them) × attribute variant.
    @Test func lstmMatrix() throws {
        let names = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
                     "HardSigmoid", "Elu", "Softsign", "Softplus"]
        var rng = SeededRNG(7)
        var index = 0
        for direction in ["forward", "reverse", "bidirectional"] {
            for layout in [0, 1] {
                for optional in [false, true] {
                    for variant in 0..<4 {
                        var c = RecurrentCase(op: "LSTM", direction: direction, layout: layout)
                        c.seq = Int.random(in: 1...5, using: &rng); c.batch = Int.random(in: 1...3, using: &rng)
                        c.input = Int.random(in: 1...4, using: &rng); c.hidden = Int.random(in: 1...5, using: &rng)
                        (c.bias, c.sequenceLens, c.initialH, c.initialC, c.peephole) = (optional, optional, optional, optional, optional)
                        if variant == 1 { c.clip = 0.7 }
                        if variant == 2 { c.inputForget = true; c.clip = 1.5 }
                        if variant == 3 {
                            // Gate functions must stay bounded for the cell to make sense; g and h may be anything.
                            let gateChoices = ["Sigmoid", "HardSigmoid", "Softsign", "ScaledTanh"]
                            var chosen: [String] = []
                            for d in 0..<c.directions {
                                let k = index + 2 * d
                                chosen += [gateChoices[(index + d) % 4], names[k % 11], names[(k + 5) % 11]]
                            }
                            c.activations = chosen
                            c.alphas = [0.6, 0.3, 1.2, 0.4, 0.25, 0.9]
                            c.betas = [0.3, 0.8, 0.5, 0.1]
                        }
                        try check(c, seed: UInt64(100 + index))
                        index += 1
                    }
                }
            }
        }
        #expect(index == 48)
    }

    /// Every direction × layout × (no optional inputs | all of them) × linear_before_reset, clip and activations.
    @Test func gruMatrix() throws {
        let names = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
                     "HardSigmoid", "Elu", "Softsign", "Softplus"]
        var rng = SeededRNG(11)
        var index = 0
        for direction in ["forward", "reverse", "bidirectional"] {
            for layout in [0, 1] {
                for optional in [false, true] {
                    for variant in 0..<4 {
                        var c = RecurrentCase(op: "GRU", direction: direction, layout: layout)
                        c.seq = Int.random(in: 1...5, using: &rng); c.batch = Int.random(in: 1...3, using: &rng)
                        c.input = Int.random(in: 1...4, using: &rng); c.hidden = Int.random(in: 1...5, using: &rng)
                        (c.bias, c.sequenceLens, c.initialH) = (optional, optional, optional)
                        c.outputs = [true, true, false]
                        c.linearBeforeReset = variant % 2 == 1
                        if variant == 2 || variant == 3 { c.clip = 0.8 }
                        if variant >= 2 {
                            let gateChoices = ["Sigmoid", "HardSigmoid", "Softsign", "ScaledTanh"]
                            var chosen: [String] = []
                            for d in 0..<c.directions {
                                chosen += [gateChoices[(index + d) % 4], names[(index + 3 * d) % 11]]
                            }
                            c.activations = chosen
                            c.alphas = [0.5, 0.2, 1.1, 0.3]
                            c.betas = [0.4, 0.7, 0.6, 0.2]
                        }
                        try check(c, seed: UInt64(500 + index))
                        index += 1
                    }
                }
            }
        }
        #expect(index == 48)
    }

    /// Each optional output alone, omitted middle outputs, and older opsets.
    @Test func outputSubsetsAndOpsets() throws {
        var seed: UInt64 = 900
        for outputs in [[false, true, false], [false, false, true], [true, false, true], [false, true, true]] {
            for op in ["LSTM", "GRU"] where op == "LSTM" || !outputs[2] {
                var c = RecurrentCase(op: op, direction: "bidirectional")
                c.outputs = outputs
                c.bias = true; c.sequenceLens = true
                try check(c, seed: seed); seed += 1
            }
        }
        for opset in [7, 11, 13, 21] {
            for op in ["LSTM", "GRU"] {
                var c = RecurrentCase(op: op, direction: "reverse", opset: opset)
                c.outputs = [true, true, op == "LSTM"]
                c.initialH = true; c.bias = true
                try check(c, seed: seed); seed += 1
            }
        }
        // Activations given once for both directions apply to each; hidden_size taken from R when absent.
        var c = RecurrentCase(op: "GRU", direction: "bidirectional")
        c.outputs = [true, true, false]
        c.activations = ["HardSigmoid", "Softsign"]
        c.hiddenSizeAttribute = false
        try check(c, seed: seed)
    }

    /// sequence_lens fed at run time, including an out-of-range value.
    @Test func sequenceLensAtRunTime() throws {
        var rng = SeededRNG(3)
        var c = RecurrentCase(op: "LSTM", direction: "bidirectional", layout: 1)
        c.sequenceLens = true
        let v = RecurrentInputs(c, &rng)
        let session = Session(model: try Model(graph: graph(c, v, lensAsInput: true), registry: builtinRegistry()))
        let x = try Tensor(shape: [c.batch, c.seq, c.input], floats: v.x)
        let out = try session.run(["X": x, "lens": try int32Tensor(v.lens!)])
        let ref = Reference.run(c, v)
        let diff = zip(out["Y"]!.floatArray(), ref.y).map { abs($0 - $1) }.max() ?? 0
        #expect(diff <= 1e-4 * max(1, ref.y.map(abs).max()!))
        #expect(v.lens!.contains(0) && v.lens!.contains(c.seq))
        #expect {
            _ = try session.run(["X": x, "lens": try int32Tensor([1, c.seq + 1, 0])])
        } throws: { ($0 as? LatheError)?.status == .invalidArgument }
    }

    /// Bad attributes fail at load; bad shapes and dtypes fail when the plan is built.
    @Test func errors() throws {
        var rng = SeededRNG(5)
        let base = RecurrentCase(op: "LSTM", direction: "forward")
        let v = RecurrentInputs(base, &rng)

        func load(_ edit: (inout Graph) -> Void) throws -> Session {
            var g = try graph(base, v)
            edit(&g)
            return Session(model: try Model(graph: g, registry: builtinRegistry()))
        }
        func status(_ edit: (inout Graph) -> Void, input: Tensor? = nil) -> Status? {
            do {
                let session = try load(edit)
                _ = try session.run(["X": input ?? Tensor(shape: [base.seq, base.batch, base.input], floats: v.x)])
                return nil
            } catch let e as LatheError {
                return e.status
            } catch {
                return nil
            }
        }
        func setAttribute(_ name: String, _ value: AttributeValue) -> (inout Graph) -> Void {
            { $0.nodes[0].attributes.values[name] = value }
        }
        #expect(status({ _ in }) == nil)
        #expect(status(setAttribute("direction", .string("sideways"))) == .invalidArgument)
        #expect(status(setAttribute("hidden_size", .int(0))) == .invalidArgument)
        #expect(status(setAttribute("hidden_size", .int(5))) == .shapeMismatch)
        #expect(status(setAttribute("layout", .int(2))) == .invalidArgument)
        #expect(status({ $0.opsets[""] = 13; $0.nodes[0].attributes.values["layout"] = .int(1) }) == .invalidArgument)
        #expect(status(setAttribute("clip", .float(-1))) == .invalidArgument)
        #expect(status(setAttribute("activations", .strings(["Sigmoid", "Tanh"]))) == .invalidArgument)
        #expect(status(setAttribute("activations", .strings(["Sigmoid", "Tanh", "Swish"]))) == .invalidArgument)
        #expect(status(setAttribute("direction", .string("bidirectional"))) == .shapeMismatch)
        #expect(status({ $0.initializers["W"] = try! Tensor(shape: [1, 16, 2], floats: Array(repeating: 0, count: 32)) }) == .shapeMismatch)
        #expect(status({ $0.initializers["R"] = try! Tensor(shape: [1, 16], floats: Array(repeating: 0, count: 16 * 1)) }) == .shapeMismatch)
        #expect(status({ $0.initializers["B"] = try! Tensor(shape: [1, 16], floats: Array(repeating: 0, count: 16)); $0.nodes[0].inputs.append("B") }) == .shapeMismatch)
        #expect(status({ g in
            g.initializers["L"] = try! Tensor(shape: [3], int64s: [1, 1, 1])
            g.nodes[0].inputs += ["", "L"]
        }) == .dtypeMismatch)
        #expect(status({ g in
            g.initializers["L"] = try! int32Tensor([1, 9, 1])
            g.nodes[0].inputs += ["", "L"]
        }) == .invalidArgument)
        #expect(status({ g in
            g.initializers["h0"] = try! Tensor(shape: [1, 2, 4], floats: Array(repeating: 0, count: 8))
            g.nodes[0].inputs += ["", "", "h0"]
        }) == .shapeMismatch)
        #expect(status({ g in
            g.initializers["P"] = try! Tensor(shape: [1, 4], floats: Array(repeating: 0, count: 4))
            g.nodes[0].inputs += ["", "", "", "", "P"]
        }) == .shapeMismatch)
        #expect(status({ _ in }, input: try Tensor(shape: [base.seq, base.batch * base.input], floats: v.x)) == .shapeMismatch)
        #expect(status({ $0.nodes[0].inputs = ["X", "W"] }) == .invalidArgument)
        #expect(status({ $0.nodes[0].outputs.append("extra") }) == .invalidArgument)
        #expect(status({ $0.nodes[0].opType = "GRU" }) == .invalidArgument)  // Y_c is not a GRU output
    }
}
