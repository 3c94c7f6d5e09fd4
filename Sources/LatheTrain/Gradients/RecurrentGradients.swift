#if canImport(Glibc)
import Glibc
#endif
import CLatheShims
import LatheCore
import LatheOps

/// Backpropagation through time for LSTM, GRU and RNN.
///
/// Covered: directions forward, reverse and bidirectional, both layouts, the default activations
/// (LSTM Sigmoid/Tanh/Tanh, GRU Sigmoid/Tanh), RNN with Tanh (default), Relu, Sigmoid or Affine per
/// direction, GRU `linear_before_reset` 0 and 1, every output slot optional, gradients for X, W, R, B,
/// initial_h and initial_c. Not covered (the backward throws `.unsupportedOp`; the forward still runs
/// through the inference kernel): `sequence_lens`, peepholes, `clip`, `input_forget` and other activations.
///
/// The training forward walks each direction in processing order (`step s` reads time
/// `t = reversed ? seq − 1 − s : s`) and keeps, per direction, the gate activations and the hidden (and
/// cell) state before and after every step; the backward walks the steps back, collecting the
/// pre-activation gradients of every step so dW, dR, dB and dX are one GEMM each.
enum RecurrentGradients {
    static func register(into registry: OpRegistry) throws {
        try registry.setGradient(opType: "LSTM") { try RecurrentGradient($0, cell: .lstm) }
        try registry.setGradient(opType: "GRU") { c in
            try RecurrentGradient(c, cell: .gru(linearBeforeReset: try c.attributes.int("linear_before_reset", 0) != 0))
        }
        try registry.setGradient(opType: "RNN") { try RecurrentGradient($0, cell: .rnn) }
    }
}

/// Sizes of one LSTM/GRU run and where its tensors keep each step, for either `layout`.
struct RecurrentShape {
    let seq: Int, batch: Int, input: Int, hidden: Int, directions: Int
    /// `layout = 1`: X, Y and the states are batch-major.
    let batchMajor: Bool

    /// Row of X (of `input` values) holding time `t` of batch entry `b`.
    func xRow(_ t: Int, _ b: Int) -> Int { batchMajor ? b * seq + t : t * batch + b }
    /// Offset in Y of time `t`, direction `d`, batch entry `b`.
    func yOffset(_ t: Int, _ d: Int, _ b: Int) -> Int {
        (batchMajor ? (b * seq + t) * directions + d : (t * directions + d) * batch + b) * hidden
    }
    /// Offset in a state tensor of direction `d`, batch entry `b`.
    func stateOffset(_ d: Int, _ b: Int) -> Int { (batchMajor ? b * directions + d : d * batch + b) * hidden }
}

/// An activation of the simple RNN cell whose derivative follows from its output `a`.
enum CellActivation: Sendable, Equatable {
    case tanh, relu, sigmoid
    /// `alpha · x + beta`.
    case affine(alpha: Float, beta: Float)

    /// Applies the function in place to `count` values.
    func apply(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        switch self {
        case .tanh: for j in 0..<count { p[j] = tanhf(p[j]) }
        case .relu: for j in 0..<count { p[j] = max(p[j], 0) }
        case .sigmoid: for j in 0..<count { p[j] = LatheTrain.sigmoid(p[j]) }
        case .affine(let alpha, let beta): for j in 0..<count { p[j] = alpha * p[j] + beta }
        }
    }

    /// The derivative at the input whose activation is `a`.
    @inline(__always) func derivative(output a: Float) -> Float {
        switch self {
        case .tanh: 1 - a * a
        case .relu: a > 0 ? 1 : 0
        case .sigmoid: a * (1 - a)
        case .affine(let alpha, _): alpha
        }
    }
}

/// The gradient (and training forward) of LSTM, GRU or RNN.
final class RecurrentGradient: GradientKernel {
    /// Which cell the node runs.
    enum Cell: Sendable, Equatable {
        case lstm
        case gru(linearBeforeReset: Bool)
        case rnn

        /// Gates per direction: 4 (i, o, f, c), 3 (z, r, h) or 1.
        var gates: Int {
            switch self {
            case .lstm: 4
            case .gru: 3
            case .rnn: 1
            }
        }
        var isGRU: Bool { if case .gru = self { true } else { false } }
    }

    let cell: Cell
    let label: String
    let reverse: Bool, bidirectional: Bool
    let batchMajor: Bool
    /// The RNN cell's activation per direction (empty for LSTM and GRU).
    let cellActivations: [CellActivation]
    /// Why this node's backward cannot run, if it cannot.
    let unsupported: String?
    /// The saved states and scratch of the last pass, reused by the next one of the same shapes.
    let reused = ReusedTensors()

    init(_ c: NodeContext, cell: Cell) throws {
        self.cell = cell
        label = c.label
        let a = c.attributes
        let direction = try a.string("direction", "forward")
        reverse = direction == "reverse"
        bidirectional = direction == "bidirectional"
        batchMajor = try a.int("layout", 0) == 1
        let defaults = cell == .lstm ? ["Sigmoid", "Tanh", "Tanh"] : ["Sigmoid", "Tanh"]
        let directions = bidirectional ? 2 : 1
        var reasons: [String] = []
        var cellActivations: [CellActivation] = []
        if cell == .rnn {
            let names = try a.strings("activations") ?? Array(repeating: "Tanh", count: directions)
            let alphas = try a.floats("activation_alpha") ?? [], betas = try a.floats("activation_beta") ?? []
            var affine = 0
            for name in names {
                switch name.lowercased() {
                case "tanh": cellActivations.append(.tanh)
                case "relu": cellActivations.append(.relu)
                case "sigmoid": cellActivations.append(.sigmoid)
                case "affine":
                    cellActivations.append(.affine(alpha: affine < alphas.count ? alphas[affine] : 1,
                                                   beta: affine < betas.count ? betas[affine] : 0))
                    affine += 1
                default: reasons.append("activation \(name) (Tanh, Relu, Sigmoid, Affine)")
                }
            }
            if names.count != directions { reasons.append("\(names.count) activations for \(directions) direction(s)") }
            while cellActivations.count < directions { cellActivations.append(.tanh) }
        } else if let names = try a.strings("activations"),
           names.map({ $0.lowercased() }) != (0..<directions).flatMap({ _ in defaults.map { $0.lowercased() } }) {
            reasons.append("activations other than \(defaults)")
        }
        self.cellActivations = cellActivations
        if try a.float("clip") != nil { reasons.append("clip") }
        if try a.int("input_forget", 0) != 0 { reasons.append("input_forget") }
        let present = c.inputPresent
        if present.count > 4, present[4] { reasons.append("sequence_lens") }
        if cell == .lstm, present.count > 7, present[7] { reasons.append("peepholes (P)") }
        unsupported = reasons.isEmpty ? nil : reasons.joined(separator: ", ")
    }

    /// Sizes of this run, from X and R.
    func shape(_ inputs: [Tensor?]) throws -> RecurrentShape {
        let x = try floatTensor(inputs, 0, "X"), r = try floatTensor(inputs, 2, "R")
        guard x.rank == 3, r.rank == 3 else { throw LatheError.shape("\(label): X and R must have rank 3") }
        return RecurrentShape(seq: batchMajor ? x.shape[1] : x.shape[0], batch: batchMajor ? x.shape[0] : x.shape[1],
                              input: x.shape[2], hidden: r.shape[2], directions: bidirectional ? 2 : 1,
                              batchMajor: batchMajor)
    }

    /// Whether direction `d` walks from the last step to the first.
    func reversed(_ d: Int) -> Bool { reverse || d == 1 }

    /// X's rows for direction `d` in processing order: `[seq, batch, input]`.
    func gatherInput(_ x: Tensor, _ g: RecurrentShape, direction d: Int, into xs: UnsafeMutablePointer<Float>) {
        for s in 0..<g.seq {
            let t = reversed(d) ? g.seq - 1 - s : s
            for b in 0..<g.batch {
                (xs + (s * g.batch + b) * g.input).update(from: x.floats + g.xRow(t, b) * g.input, count: g.input)
            }
        }
    }

    /// Runs the cell, writing the wired outputs and keeping per direction `[states, cells, gates, aux]`:
    /// hidden states `[seq + 1, batch, hidden]` (entry 0 is initial_h), LSTM cell states of the same shape,
    /// activated gates `[seq, batch, gates·hidden]`, and `[seq, batch, hidden]` of: for LSTM tanh of the new
    /// cell state, for GRU the recurrent input of the candidate (`r ⊙ h` without `linear_before_reset`,
    /// `h·Rhᵀ + Rbh` with it). LSTM steps run the fused product-and-cell kernel
    /// (`lts_recurrent_kernels.lstm_forward`). Every saved and scratch tensor is overwritten whole, so
    /// none is cleared first.
    func trainingForward(_ inputs: [Tensor?], _ outputs: [Tensor?], seed: UInt64) throws -> [Tensor]? {
        guard unsupported == nil else { return nil }
        let g = try shape(inputs)
        guard g.seq > 0 else { return nil }
        let x = inputs[0]!, w = inputs[1]!, r = inputs[2]!
        let bias = slot(inputs, 3), initialH = slot(inputs, 5), initialC = cell == .lstm ? slot(inputs, 6) : nil
        let hidden = g.hidden, width = cell.gates * hidden, rows = g.seq * g.batch
        let stateCount = (g.seq + 1) * g.batch * hidden
        let lstm = cell == .lstm, gru = cell.isGRU, directions = g.directions
        let states = try reused.tensor(0, count: directions * stateCount, shape: [directions, g.seq + 1, g.batch, hidden])
        let cells = try reused.tensor(1, count: lstm ? directions * stateCount : 0, shape: lstm ? [directions, g.seq + 1, g.batch, hidden] : [0])
        let gates = try reused.tensor(2, count: directions * rows * width, shape: [directions, g.seq, g.batch, width])
        let auxCount = gru || lstm ? directions * rows * hidden : 0
        let aux = try reused.tensor(3, count: auxCount, shape: auxCount > 0 ? [directions, g.seq, g.batch, hidden] : [0])
        let xs = try reused.tensor(4, count: rows * g.input, shape: [rows, g.input])
        let gateBias = try reused.tensor(5, count: 2 * width, shape: [2 * width])
        let recurrent = try reused.tensor(6, count: g.batch * width, shape: [g.batch, width])
        let packedCount = lstm ? lts_lstm_packed_count(hidden) : 0
        let packedR = try reused.tensor(14, count: packedCount, shape: [packedCount])
        let lstmForward = lts_recurrent_kernels_active().pointee.lstm_forward!
        for d in 0..<g.directions {
            let hs = states.floats + d * stateCount, acts = gates.floats + d * rows * width
            let wd = w.floats + d * width * g.input, rd = r.floats + d * width * hidden
            gatherInput(x, g, direction: d, into: xs.floats)
            // Pre-activations from X (plus Wb + Rb, or Wb alone for GRU's h gate with linear_before_reset).
            packageSgemm(transA: false, transB: true, m: rows, n: width, k: g.input, alpha: 1, a: xs.floats,
                         lda: g.input, b: wd, ldb: g.input, beta: 0, c: acts, ldc: width)
            let wb = gateBias.floats, rb = wb + width
            if let bias {
                wb.update(from: bias.floats + d * 2 * width, count: 2 * width)
            } else {
                wb.update(repeating: 0, count: 2 * width)
            }
            let rbh = rb + 2 * hidden
            for j in 0..<width { wb[j] += cell == .gru(linearBeforeReset: true) && j >= 2 * hidden ? 0 : rb[j] }
            for row in 0..<rows { addInPlace(acts + row * width, wb, width) }
            for b in 0..<g.batch {
                if let initialH {
                    (hs + b * hidden).update(from: initialH.floats + g.stateOffset(d, b), count: hidden)
                } else {
                    (hs + b * hidden).update(repeating: 0, count: hidden)
                }
            }
            let cs = cells.floats + (cell == .lstm ? d * stateCount : 0)
            var lstmStep = lts_lstm_forward_step()
            if cell == .lstm {
                lts_lstm_pack_recurrence(rd, hidden, packedR.floats)
                lstmStep.batch = g.batch
                lstmStep.hidden = hidden
                lstmStep.packed_r = UnsafePointer(packedR.floats)
                lstmStep.h_prev_stride = hidden
                lstmStep.pre_stride = width
                lstmStep.h_next_stride = hidden
                lstmStep.gates_stride = width
                for b in 0..<g.batch {
                    if let initialC {
                        (cs + b * hidden).update(from: initialC.floats + g.stateOffset(d, b), count: hidden)
                    } else {
                        (cs + b * hidden).update(repeating: 0, count: hidden)
                    }
                }
            }
            for s in 0..<g.seq {
                let hPrev = hs + s * g.batch * hidden, hNext = hPrev + g.batch * hidden
                let stepGates = acts + s * g.batch * width
                switch cell {
                case .rnn:
                    packageSgemm(transA: false, transB: true, m: g.batch, n: hidden, k: hidden, alpha: 1, a: hPrev,
                                 lda: hidden, b: rd, ldb: hidden, beta: 1, c: stepGates, ldc: width)
                    cellActivations[d].apply(stepGates, g.batch * hidden)
                    hNext.update(from: stepGates, count: g.batch * hidden)
                case .lstm:
                    // Gates, c, h and tanh(c) in place of the pre-activations (X·Wᵀ + biases) in `acts`.
                    let cPrev = cs + s * g.batch * hidden
                    lstmStep.h_prev = UnsafePointer(hPrev)
                    lstmStep.pre = UnsafePointer(stepGates)
                    lstmStep.c_prev = UnsafePointer(cPrev)
                    lstmStep.c_next = cPrev + g.batch * hidden
                    lstmStep.h_next = hNext
                    lstmStep.gates = stepGates
                    lstmStep.tanh_c = aux.floats + (d * g.seq + s) * g.batch * hidden
                    withUnsafePointer(to: lstmStep) { lstmForward($0) }
                case .gru(let linearBeforeReset):
                    let rec = recurrent.floats, keep = aux.floats + (d * g.seq + s) * g.batch * hidden
                    packageSgemm(transA: false, transB: true, m: g.batch, n: linearBeforeReset ? width : 2 * hidden,
                                 k: hidden, alpha: 1, a: hPrev, lda: hidden, b: rd, ldb: hidden, beta: 0, c: rec, ldc: width)
                    for b in 0..<g.batch {
                        let a = stepGates + b * width, q = rec + b * width, hp = hPrev + b * hidden
                        for j in 0..<2 * hidden { a[j] = sigmoid(a[j] + q[j]) }
                        let k = keep + b * hidden
                        for j in 0..<hidden {
                            k[j] = linearBeforeReset ? q[2 * hidden + j] + rbh[j] : a[hidden + j] * hp[j]
                        }
                    }
                    if !linearBeforeReset {
                        packageSgemm(transA: false, transB: true, m: g.batch, n: hidden, k: hidden, alpha: 1, a: keep,
                                     lda: hidden, b: rd + 2 * hidden * hidden, ldb: hidden, beta: 0,
                                     c: rec + 2 * hidden, ldc: width)
                    }
                    for b in 0..<g.batch {
                        let a = stepGates + b * width, q = rec + b * width, k = keep + b * hidden
                        let hp = hPrev + b * hidden, hn = hNext + b * hidden
                        for j in 0..<hidden {
                            let candidate = a[2 * hidden + j] + (linearBeforeReset ? a[hidden + j] * k[j] : q[2 * hidden + j])
                            let hc = tanhf(candidate), z = a[j]
                            a[2 * hidden + j] = hc
                            hn[j] = (1 - z) * hc + z * hp[j]
                        }
                    }
                }
                if let y = slot(outputs, 0) {
                    let t = reversed(d) ? g.seq - 1 - s : s
                    for b in 0..<g.batch {
                        (y.floats + g.yOffset(t, d, b)).update(from: hNext + b * hidden, count: hidden)
                    }
                }
            }
            for slotIndex in 1...2 where slotIndex < outputs.count {
                guard let out = outputs[slotIndex] else { continue }
                let source = slotIndex == 1 ? hs : cs
                let last = source + g.seq * g.batch * hidden
                for b in 0..<g.batch {
                    (out.floats + g.stateOffset(d, b)).update(from: last + b * hidden, count: hidden)
                }
            }
        }
        return reused.first(4)   // [states, cells, gates, aux]
    }

    func backward(_ p: BackwardPass) throws {
        if let unsupported {
            throw LatheError(.unsupportedOp, "\(label): the gradient does not support \(unsupported)")
        }
        let g = try shape(p.inputs)
        guard g.seq > 0 else { return }
        var saved = p.saved
        if saved.isEmpty {   // forward ran in inference mode: run it again, keeping the states
            let scratch = try p.outputs.map { try $0.map { try Tensor(.float32, shape: $0.shape) } }
            saved = try trainingForward(p.inputs, scratch, seed: 0) ?? []
        }
        let (states, cells, gates, aux) = (saved[0], saved[1], saved[2], saved[3])
        let x = p.inputs[0]!, w = p.inputs[1]!, r = p.inputs[2]!
        let dY = slot(p.outputGradients, 0), dYh = slot(p.outputGradients, 1)
        let dYc = cell == .lstm ? slot(p.outputGradients, 2) : nil
        let dX = slot(p.inputGradients, 0), dW = slot(p.inputGradients, 1), dR = slot(p.inputGradients, 2)
        let dB = slot(p.inputGradients, 3), dH0 = slot(p.inputGradients, 5)
        let dC0 = cell == .lstm ? slot(p.inputGradients, 6) : nil
        let hidden = g.hidden, width = cell.gates * hidden, rows = g.seq * g.batch
        let stateCount = (g.seq + 1) * g.batch * hidden
        // Per step: dInput = dLoss/d(pre-activations from X), dRecurrent = dLoss/d(recurrent products).
        // Every one is overwritten whole before it is read.
        let dInput = try reused.tensor(7, count: rows * width, shape: [rows, width])
        let dRecurrent = cell.isGRU ? try reused.tensor(8, count: rows * width, shape: [rows, width]) : dInput
        let dh = try reused.tensor(9, count: g.batch * hidden, shape: [g.batch, hidden])
        let dc = try reused.tensor(10, count: g.batch * hidden, shape: [g.batch, hidden])
        let dhPrev = try reused.tensor(11, count: g.batch * hidden, shape: [g.batch, hidden])
        let xs = try reused.tensor(12, count: rows * g.input, shape: [rows, g.input])
        let dxs = try reused.tensor(13, count: dX == nil ? 0 : rows * g.input, shape: dX == nil ? [0] : [rows, g.input])
        let lstmBackward = lts_recurrent_kernels_active().pointee.lstm_backward!
        for d in 0..<g.directions {
            let hs = states.floats + d * stateCount, acts = gates.floats + d * rows * width
            let cs = cells.floats + (cell == .lstm ? d * stateCount : 0)
            let rd = r.floats + d * width * hidden
            for state in 0..<2 {   // the hidden state, then the cell state
                let gradient = state == 0 ? dYh : dYc, target = state == 0 ? dh : dc
                for b in 0..<g.batch {
                    if let gradient {
                        (target.floats + b * hidden).update(from: gradient.floats + g.stateOffset(d, b), count: hidden)
                    } else {
                        (target.floats + b * hidden).update(repeating: 0, count: hidden)
                    }
                }
            }
            for s in (0..<g.seq).reversed() {
                let t = reversed(d) ? g.seq - 1 - s : s
                if let dY {
                    for b in 0..<g.batch { addInPlace(dh.floats + b * hidden, dY.floats + g.yOffset(t, d, b), hidden) }
                }
                let hPrev = hs + s * g.batch * hidden, stepGates = acts + s * g.batch * width
                let da = dInput.floats + s * g.batch * width, dq = dRecurrent.floats + s * g.batch * width
                switch cell {
                case .rnn:
                    let f = cellActivations[d]
                    for j in 0..<g.batch * hidden { da[j] = dh.floats[j] * f.derivative(output: stepGates[j]) }
                    packageSgemm(transA: false, transB: false, m: g.batch, n: hidden, k: hidden, alpha: 1, a: da,
                                 lda: hidden, b: rd, ldb: hidden, beta: 0, c: dhPrev.floats, ldc: hidden)
                case .lstm:
                    var step = lts_lstm_backward_step(
                        batch: g.batch, hidden: hidden, gates: stepGates,
                        tanh_c: aux.floats + (d * g.seq + s) * g.batch * hidden, c_prev: cs + s * g.batch * hidden,
                        dh: dh.floats, dc: dc.floats, d_pre: da)
                    lstmBackward(&step)
                    packageSgemm(transA: false, transB: false, m: g.batch, n: hidden, k: width, alpha: 1, a: da,
                                 lda: width, b: rd, ldb: hidden, beta: 0, c: dhPrev.floats, ldc: hidden)
                case .gru(let linearBeforeReset):
                    let keep = aux.floats + (d * g.seq + s) * g.batch * hidden
                    for b in 0..<g.batch {
                        let a = stepGates + b * width, e = da + b * width, q = dq + b * width
                        let dhb = dh.floats + b * hidden, hp = hPrev + b * hidden, k = keep + b * hidden
                        let dp = dhPrev.floats + b * hidden
                        for j in 0..<hidden {
                            let z = a[j], rg = a[hidden + j], hc = a[2 * hidden + j]
                            e[j] = dhb[j] * (hp[j] - hc) * z * (1 - z)
                            let dCandidate = dhb[j] * (1 - z) * (1 - hc * hc)
                            e[2 * hidden + j] = dCandidate
                            q[j] = e[j]
                            dp[j] = dhb[j] * z
                            if linearBeforeReset {
                                q[2 * hidden + j] = dCandidate * rg
                                e[hidden + j] = dCandidate * k[j] * rg * (1 - rg)
                                q[hidden + j] = e[hidden + j]
                            } else {
                                q[2 * hidden + j] = dCandidate
                            }
                        }
                    }
                    if !linearBeforeReset {
                        // d(r ⊙ h) = dCandidate · Rh, kept in dh (free until the step's end).
                        packageSgemm(transA: false, transB: false, m: g.batch, n: hidden, k: hidden, alpha: 1,
                                     a: dq + 2 * hidden, lda: width, b: rd + 2 * hidden * hidden, ldb: hidden,
                                     beta: 0, c: dh.floats, ldc: hidden)
                        for b in 0..<g.batch {
                            let a = stepGates + b * width, e = da + b * width, q = dq + b * width
                            let drh = dh.floats + b * hidden, hp = hPrev + b * hidden, dp = dhPrev.floats + b * hidden
                            for j in 0..<hidden {
                                let rg = a[hidden + j]
                                e[hidden + j] = drh[j] * hp[j] * rg * (1 - rg)
                                q[hidden + j] = e[hidden + j]
                                dp[j] += drh[j] * rg
                            }
                        }
                    }
                    packageSgemm(transA: false, transB: false, m: g.batch, n: hidden,
                                 k: linearBeforeReset ? width : 2 * hidden, alpha: 1, a: dq, lda: width, b: rd,
                                 ldb: hidden, beta: 1, c: dhPrev.floats, ldc: hidden)
                }
                dh.floats.update(from: dhPrev.floats, count: g.batch * hidden)
            }
            for (gradient, source) in [(dH0, dh), (dC0, dc)] {
                guard let gradient else { continue }
                for b in 0..<g.batch { addInPlace(gradient.floats + g.stateOffset(d, b), source.floats + b * hidden, hidden) }
            }
            if dW != nil || dX != nil { gatherInput(x, g, direction: d, into: xs.floats) }
            if let dW {
                gemmAccumulate(transA: true, transB: false, m: width, n: g.input, k: rows, a: dInput.floats, lda: width,
                               b: xs.floats, ldb: g.input, c: dW.floats + d * width * g.input, ldc: g.input)
            }
            if let dR {
                let target = dR.floats + d * width * hidden
                if case .gru(false) = cell {
                    gemmAccumulate(transA: true, transB: false, m: 2 * hidden, n: hidden, k: rows, a: dRecurrent.floats,
                                   lda: width, b: hs, ldb: hidden, c: target, ldc: hidden)
                    gemmAccumulate(transA: true, transB: false, m: hidden, n: hidden, k: rows,
                                   a: dRecurrent.floats + 2 * hidden, lda: width, b: aux.floats + d * rows * hidden,
                                   ldb: hidden, c: target + 2 * hidden * hidden, ldc: hidden)
                } else {
                    gemmAccumulate(transA: true, transB: false, m: width, n: hidden, k: rows, a: dRecurrent.floats,
                                   lda: width, b: hs, ldb: hidden, c: target, ldc: hidden)
                }
            }
            if let dB {
                let wb = dB.floats + d * 2 * width, rb = wb + width
                for row in 0..<rows {
                    addInPlace(wb, dInput.floats + row * width, width)
                    addInPlace(rb, dRecurrent.floats + row * width, width)
                }
            }
            if let dX {
                packageSgemm(transA: false, transB: false, m: rows, n: g.input, k: width, alpha: 1, a: dInput.floats,
                             lda: width, b: w.floats + d * width * g.input, ldb: g.input, beta: 0, c: dxs.floats, ldc: g.input)
                for s in 0..<g.seq {
                    let t = reversed(d) ? g.seq - 1 - s : s
                    for b in 0..<g.batch {
                        addInPlace(dX.floats + g.xRow(t, b) * g.input, dxs.floats + (s * g.batch + b) * g.input, g.input)
                    }
                }
            }
        }
    }
}

/// The logistic function.
@inline(__always) func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
