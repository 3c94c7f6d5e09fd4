import CLatheShims
import LatheCore

/// LSTM and GRU (float32, opsets 7 and later, `layout` from opset 14).
///
/// Both project every time step's input at once with one `sgemm` over all directions
/// (`[seq·batch, input] × [input, directions·gates·hidden]`). Per step, the default LSTM cell (when every
/// batch entry runs all steps) is one C kernel, `lts_recurrent_kernels.lstm_forward`: the recurrent
/// product `H·Rᵀ` over R packed once (at plan time when R is constant), register-tiled, with the gate math
/// applied to the accumulators, the batch rows split over the pool's lanes. Other cells run one `sgemm`
/// for `H·Rᵀ` (GRU without `linear_before_reset`: two) and the gate math after it.
enum RecurrentOps {
    /// Adds LSTM and GRU for opsets 7 and later.
    static func register(into registry: OpRegistry) throws {
        try registry.add("LSTM", since: 7) { try LSTMKernel($0) }
        try registry.add("GRU", since: 7) { try GRUKernel($0) }
    }
}

/// Which way(s) a recurrent op walks the sequence.
enum RecurrentDirection: String, Sendable {
    case forward, reverse, bidirectional

    /// `num_directions`: 2 when bidirectional, else 1.
    var count: Int { self == .bidirectional ? 2 : 1 }

    /// Whether direction index `d` walks from the last step to the first.
    func isReversed(_ d: Int) -> Bool { self == .reverse || d == 1 }
}

/// Sizes of one recurrent op run and the offsets of its tensors, for either `layout`.
struct RecurrentGeometry {
    /// Sequence length, batch size, input size, hidden size and `num_directions`.
    let seq: Int, batch: Int, input: Int, hidden: Int, directions: Int
    /// `layout = 1`: batch is the outer dimension of X, Y, the initial and final states.
    let batchMajor: Bool

    /// Row of X (of `input` values) holding step `t` of batch entry `b`.
    @inline(__always) func xRow(_ t: Int, _ b: Int) -> Int { batchMajor ? b * seq + t : t * batch + b }

    /// Offset in Y of the `hidden` values for step `t`, direction `d`, batch entry `b`.
    @inline(__always) func yOffset(_ t: Int, _ d: Int, _ b: Int) -> Int {
        (batchMajor ? (b * seq + t) * directions + d : (t * directions + d) * batch + b) * hidden
    }

    /// Offset in a state tensor (initial_h, initial_c, Y_h, Y_c) of direction `d`, batch entry `b`.
    @inline(__always) func stateOffset(_ d: Int, _ b: Int) -> Int {
        (batchMajor ? b * directions + d : d * batch + b) * hidden
    }

    /// Shape of Y.
    var outputShape: [Int] { batchMajor ? [batch, seq, directions, hidden] : [seq, directions, batch, hidden] }
    /// Shape of initial_h, initial_c, Y_h and Y_c.
    var stateShape: [Int] { batchMajor ? [batch, directions, hidden] : [directions, batch, hidden] }
}

/// Attributes and input checks shared by LSTM and GRU, validated when the model loads.
struct RecurrentConfig: Sendable {
    /// `gates · hidden` rows per direction in W and R: 4 for LSTM (i, o, f, c), 3 for GRU (z, r, h).
    let gates: Int
    /// The `direction` attribute.
    let direction: RecurrentDirection
    /// The `hidden_size` attribute; when absent, taken from R.
    let hiddenSize: Int?
    /// `layout = 1`.
    let batchMajor: Bool
    /// Bound applied to gate pre-activations, if any.
    let clip: Float?
    /// Activation functions per direction (LSTM: f, g, h; GRU: f, g).
    let activations: [[RecurrentActivation]]
    /// Which output slots are wired.
    let outputPresent: [Bool]
    /// Input slots of `sequence_lens` and `initial_h`, the same in both ops (LSTM's `initial_c` and `P` follow).
    static let sequenceLensSlot = 4, initialHSlot = 5

    /// Reads and checks the attributes common to both ops.
    /// - Parameters:
    ///   - gates: 4 for LSTM, 3 for GRU.
    ///   - maxInputs / maxOutputs: slot counts allowed by the schema.
    ///   - defaults: the default activation list of one direction.
    init(_ c: NodeContext, gates: Int, maxInputs: Int, maxOutputs: Int, defaults: [String]) throws {
        try c.expectInputs(3...maxInputs)
        guard c.outputPresent.count <= maxOutputs else {
            throw LatheError.invalid("\(c.label) has at most \(maxOutputs) outputs, got \(c.outputPresent.count)")
        }
        let a = c.attributes
        self.gates = gates
        let directionName = try a.string("direction", "forward")
        guard let direction = RecurrentDirection(rawValue: directionName) else {
            throw LatheError.invalid("\(c.label): direction must be forward, reverse or bidirectional, got '\(directionName)'")
        }
        self.direction = direction
        hiddenSize = try a.int("hidden_size")
        if let h = hiddenSize, h <= 0 || h > Int(Int32.max) {
            throw LatheError.invalid("\(c.label): hidden_size must be in 1...\(Int32.max), got \(h)")
        }
        let layout = try a.int("layout", 0)
        guard layout == 0 || layout == 1 else {
            throw LatheError.invalid("\(c.label): layout must be 0 or 1, got \(layout)")
        }
        guard layout == 0 || c.opset >= 14 else {
            throw LatheError.invalid("\(c.label): layout = 1 needs opset 14 or later (model imports opset \(c.opset))")
        }
        batchMajor = layout == 1
        clip = try a.float("clip")
        if let clip, !(clip > 0) {
            throw LatheError.invalid("\(c.label): clip must be positive, got \(clip)")
        }
        let names = try a.strings("activations") ?? defaults
        let perDirection = defaults.count
        let parsed = try RecurrentActivation.parse(names, alphas: try a.floats("activation_alpha") ?? [],
                                                   betas: try a.floats("activation_beta") ?? [], owner: c.label)
        if parsed.count == perDirection * direction.count {
            activations = (0..<direction.count).map { Array(parsed[$0 * perDirection..<($0 + 1) * perDirection]) }
        } else if parsed.count == perDirection {
            activations = Array(repeating: parsed, count: direction.count)
        } else {
            throw LatheError.invalid("\(c.label): activations must list \(perDirection * direction.count) functions (\(perDirection) per direction), got \(parsed.count)")
        }
        outputPresent = c.outputPresent
    }

    /// Checks every input's dtype and shape against X, `hidden_size` and `num_directions`.
    /// - Parameters:
    ///   - cellState: whether the op takes `initial_c` (slot 6) and peepholes `P` (slot 7).
    /// - Throws: `.dtypeMismatch` / `.shapeMismatch` naming the input and the expected shape.
    func geometry(_ inputs: [TensorType?], cellState: Bool) throws -> RecurrentGeometry {
        func slot(_ i: Int) -> TensorType? { i < inputs.count ? inputs[i] : nil }
        let x = try require(slot(0), "X", .float32)
        try requireRank(x, "X", 3...3)
        let w = try require(slot(1), "W", .float32)
        try requireRank(w, "W", 3...3)
        let r = try require(slot(2), "R", .float32)
        try requireRank(r, "R", 3...3)
        let hidden = hiddenSize ?? r.shape[2]
        let nd = direction.count
        let g = RecurrentGeometry(seq: batchMajor ? x.shape[1] : x.shape[0], batch: batchMajor ? x.shape[0] : x.shape[1],
                                  input: x.shape[2], hidden: hidden, directions: nd, batchMajor: batchMajor)
        func expect(_ t: TensorType, _ name: String, _ shape: [Int], _ meaning: String) throws {
            guard t.shape == shape else {
                throw LatheError.shape("\(name) must have shape \(shape) (\(meaning)), got \(t.shape)")
            }
        }
        try expect(w, "W", [nd, gates * hidden, g.input], "num_directions, \(gates)*hidden_size, input_size")
        try expect(r, "R", [nd, gates * hidden, hidden], "num_directions, \(gates)*hidden_size, hidden_size")
        if let b = slot(3) {
            try expect(try require(b, "B", .float32), "B", [nd, 2 * gates * hidden], "num_directions, \(2 * gates)*hidden_size")
        }
        if let s = slot(Self.sequenceLensSlot) {
            try expect(try require(s, "sequence_lens", .int32), "sequence_lens", [g.batch], "batch_size")
        }
        let stateMeaning = batchMajor ? "batch_size, num_directions, hidden_size" : "num_directions, batch_size, hidden_size"
        if let h = slot(Self.initialHSlot) {
            try expect(try require(h, "initial_h", .float32), "initial_h", g.stateShape, stateMeaning)
        }
        if cellState {
            if let c = slot(6) {
                try expect(try require(c, "initial_c", .float32), "initial_c", g.stateShape, stateMeaning)
            }
            if let p = slot(7) {
                try expect(try require(p, "P", .float32), "P", [nd, 3 * hidden], "num_directions, 3*hidden_size")
            }
        }
        return g
    }

    /// Output types: Y, then one state-shaped type per remaining wired slot.
    func outputTypes(_ g: RecurrentGeometry) -> [TensorType?] {
        outputPresent.enumerated().map { slot, present in
            present ? TensorType(.float32, slot == 0 ? g.outputShape : g.stateShape) : nil
        }
    }

    /// Checks `sequence_lens` (when known): every length must be in `0...seq`.
    /// - Throws: `.invalidArgument` for a length outside `0...seq`.
    func checkSequenceLengths(_ t: Tensor, _ g: RecurrentGeometry) throws {
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: max(g.batch, 1))
        defer { lengths.deallocate() }
        try readSequenceLengths(t, g, into: lengths)
    }

    /// Writes each batch entry's sequence length into `lengths` (all `seq` when `sequence_lens` is
    /// absent) and returns the longest.
    /// - Throws: `.invalidArgument` for a length outside `0...seq`.
    @discardableResult
    func readSequenceLengths(_ t: Tensor?, _ g: RecurrentGeometry, into lengths: UnsafeMutablePointer<Int>) throws -> Int {
        guard let t else {
            lengths.update(repeating: g.seq, count: g.batch)
            return g.batch > 0 ? g.seq : 0
        }
        var longest = 0
        for b in 0..<g.batch {
            let n = t.dtype == .int32 ? Int(t.bytes.assumingMemoryBound(to: Int32.self)[b]) : Int(t.int64s[b])
            guard n >= 0 && n <= g.seq else {
                throw LatheError.invalid("sequence_lens[\(b)] = \(n) is outside 0...\(g.seq) (the sequence length of X)")
            }
            lengths[b] = n
            longest = max(longest, n)
        }
        return longest
    }

    /// Fills `state` (`[batch, hidden]`) with direction `d` of `initial` (zeros when absent).
    func loadState(_ initial: Tensor?, direction d: Int, into state: UnsafeMutablePointer<Float>, _ g: RecurrentGeometry) {
        guard let initial else {
            state.update(repeating: 0, count: g.batch * g.hidden)
            return
        }
        for b in 0..<g.batch {
            (state + b * g.hidden).update(from: initial.floats + g.stateOffset(d, b), count: g.hidden)
        }
    }

    /// Writes direction `d` of a final state into `output` (Y_h or Y_c); entries with length 0 get zeros
    /// (as onnxruntime does).
    func storeState(_ state: UnsafePointer<Float>, direction d: Int, lengths: UnsafePointer<Int>, into output: Tensor?,
                    _ g: RecurrentGeometry) {
        guard let output else { return }
        for b in 0..<g.batch {
            let target = output.floats + g.stateOffset(d, b)
            if lengths[b] == 0 {
                target.update(repeating: 0, count: g.hidden)
            } else {
                target.update(from: state + b * g.hidden, count: g.hidden)
            }
        }
    }

    /// Clamps `count` values to `[-clip, clip]` when a clip is set.
    @inline(__always) func applyClip(_ x: UnsafeMutablePointer<Float>, _ count: Int) {
        guard let clip else { return }
        for i in 0..<count { x[i] = min(max(x[i], -clip), clip) }
    }

    /// Projects every step's input through all directions' W at once:
    /// `projection[seq·batch, directions·gates·hidden] = X · Wᵀ`.
    func project(x: Tensor, w: Tensor, into projection: UnsafeMutablePointer<Float>, _ g: RecurrentGeometry) {
        let width = g.directions * gates * g.hidden
        sgemm(transA: false, transB: true, m: g.seq * g.batch, n: width, k: g.input, alpha: 1,
              a: x.floats, lda: g.input, b: w.floats, ldb: g.input, beta: 0, c: projection, ldc: width)
    }
}

/// Scratch regions carved one after the other from a kernel's workspace: float regions, then one
/// `Int` per batch entry for the sequence lengths.
struct RecurrentScratch {
    /// Start of each float region, in request order.
    let regions: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                  UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)
    /// One direction's R packed for `lts_recurrent_kernels.lstm_forward` (empty unless `packsRecurrence`).
    let packedRecurrence: UnsafeMutablePointer<Float>
    /// Sequence length of each batch entry.
    let lengths: UnsafeMutablePointer<Int>

    /// Float counts of the regions: projection, gates, h, c (or reset·h), gate bias, recurrent h bias,
    /// packed recurrence (LSTM when R is packed per run).
    static func counts(_ g: RecurrentGeometry, gates: Int, packsRecurrence: Bool) -> [Int] {
        let width = gates * g.hidden
        return [g.seq * g.batch * g.directions * width, g.batch * width, g.batch * g.hidden, g.batch * g.hidden,
                width, g.hidden, packsRecurrence ? lts_lstm_packed_count(g.hidden) : 0]
    }

    /// Bytes of the whole scratch, or nil when the sizes overflow.
    static func byteCount(_ g: RecurrentGeometry, gates: Int, packsRecurrence: Bool) -> Int? {
        guard boundedProduct([g.seq, g.batch, g.directions, gates, g.hidden], limit: 1 << 36) != nil else { return nil }
        let floats = counts(g, gates: gates, packsRecurrence: packsRecurrence).reduce(0, +)
        return floats * MemoryLayout<Float>.size + g.batch * MemoryLayout<Int>.size
    }

    init(_ workspace: UnsafeMutableRawPointer, _ g: RecurrentGeometry, gates: Int, packsRecurrence: Bool) {
        let c = RecurrentScratch.counts(g, gates: gates, packsRecurrence: packsRecurrence)
        let p0 = workspace.assumingMemoryBound(to: Float.self)
        let p1 = p0 + c[0], p2 = p1 + c[1], p3 = p2 + c[2], p4 = p3 + c[3], p5 = p4 + c[4], p6 = p5 + c[5]
        regions = (p0, p1, p2, p3, p4, p5)
        packedRecurrence = p6
        lengths = UnsafeMutableRawPointer(p6 + c[6]).assumingMemoryBound(to: Int.self)
    }
}

/// What LSTM and GRU kernels share: shape checks, plan-time geometry, and workspace handling.
protocol RecurrentKernel: Kernel {
    /// Attributes shared by LSTM and GRU.
    var config: RecurrentConfig { get }
    /// Whether the op has a cell state (LSTM).
    var cellState: Bool { get }
    /// The geometry of the plan's input shapes (set by `specialized`).
    var planned: RecurrentGeometry? { get }
    /// Whether the scratch holds R packed per run (LSTM without R packed at plan time).
    var packsRecurrence: Bool { get }
    /// The step loop, given the geometry and scratch; `pool` may split the batch rows.
    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], _ g: RecurrentGeometry, _ scratch: RecurrentScratch,
                 pool: ThreadPool) throws
}

extension RecurrentKernel {
    /// Output types from the input shapes; constant `sequence_lens` are range-checked at plan time.
    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        let g = try config.geometry(inputs, cellState: cellState)
        if RecurrentConfig.sequenceLensSlot < constants.count, let lengths = constants[RecurrentConfig.sequenceLensSlot] {
            try config.checkSequenceLengths(lengths, g)
        }
        return config.outputTypes(g)
    }

    func workspaceSize(for inputs: [TensorType?]) -> Int {
        guard let g = planned ?? (try? config.geometry(inputs, cellState: cellState)) else { return 0 }
        return RecurrentScratch.byteCount(g, gates: config.gates, packsRecurrence: packsRecurrence) ?? Int.max
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        let g = try config.geometry(inputs.map { $0?.type }, cellState: cellState)
        guard let bytes = RecurrentScratch.byteCount(g, gates: config.gates, packsRecurrence: packsRecurrence) else {
            throw LatheError(.outOfMemory, "recurrent scratch for \(g) is too large")
        }
        try RunContext.withScratch(bytes) { context in
            try compute(inputs, outputs, g, RecurrentScratch(context.workspace, g, gates: config.gates, packsRecurrence: packsRecurrence), pool: .serial)
        }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], context: RunContext) throws {
        guard let g = planned else { return try compute(inputs, outputs) }
        try compute(inputs, outputs, g, RecurrentScratch(context.workspace, g, gates: config.gates, packsRecurrence: packsRecurrence), pool: context.pool)
    }
}

/// Reads input `i` when wired.
@inline(__always) private func slot(_ inputs: [Tensor?], _ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }

/// LSTM (ONNX gate order i, o, f, c): peepholes, `input_forget`, `clip`, per-direction activations,
/// `sequence_lens`, both layouts; outputs Y, Y_h, Y_c each optional.
final class LSTMKernel: RecurrentKernel {
    /// Attributes shared with GRU.
    let config: RecurrentConfig
    /// `input_forget`: the forget gate is `1 - i`.
    let inputForget: Bool
    let planned: RecurrentGeometry?
    /// A constant R packed at plan time for the fused step (`lts_lstm_pack_recurrence`, one direction after
    /// the other), else nil (R is packed per run).
    let packedR: Tensor?
    var cellState: Bool { true }
    var packsRecurrence: Bool { packedR == nil }

    init(_ c: NodeContext) throws {
        config = try RecurrentConfig(c, gates: 4, maxInputs: 8, maxOutputs: 3, defaults: ["Sigmoid", "Tanh", "Tanh"])
        inputForget = try c.attributes.int("input_forget", 0) != 0
        planned = nil
        packedR = nil
    }

    private init(_ other: LSTMKernel, _ g: RecurrentGeometry, packedR: Tensor?) {
        config = other.config
        inputForget = other.inputForget
        planned = g
        self.packedR = packedR
    }

    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel {
        let g = try config.geometry(inputs, cellState: true)
        var packed: Tensor?
        let peepholes = inputs.count > 7 && inputs[7] != nil
        if constants.count > 2, let r = constants[2],
           (0..<g.directions).contains(where: { isStandardCell($0, peepholes: peepholes) }) {
            let count = lts_lstm_packed_count(g.hidden)
            let p = try Tensor(.float32, shape: [g.directions * count])
            for d in 0..<g.directions { lts_lstm_pack_recurrence(r.floats + d * 4 * g.hidden * g.hidden, g.hidden, p.floats + d * count) }
            packed = p
        }
        return LSTMKernel(self, g, packedR: packed)
    }

    /// Whether direction `d` runs the default cell (Sigmoid, Tanh, Tanh; no peepholes, clip or input_forget).
    private func isStandardCell(_ d: Int, peepholes: Bool) -> Bool {
        let a = config.activations[d]
        return !peepholes && config.clip == nil && !inputForget && a[0] == .sigmoid && a[1] == .tanh && a[2] == .tanh
    }

    /// The whole sequence of direction `d` through the fused step kernel (every batch entry runs all `seq`
    /// steps): `h` and `c` hold the initial state on entry and the final one on return. The batch rows are
    /// split over `pool`'s lanes (at least 4 rows each), every lane running all steps for its rows.
    private func runFused(direction d: Int, projection: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                          packed: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>,
                          spare: UnsafeMutablePointer<Float>, y: Tensor?, _ g: RecurrentGeometry, pool: ThreadPool) {
        let lanes = min(pool.threadCount, g.batch / 4)
        guard lanes > 1 else {
            return runFused(direction: d, rows: 0..<g.batch, projection: projection, bias: bias, packed: packed,
                            h: h, c: c, spare: spare, y: y, g)
        }
        let perLane = (g.batch + lanes - 1) / lanes
        pool.parallelFor(lanes) { lane in
            let rows = min(lane * perLane, g.batch)..<min((lane + 1) * perLane, g.batch)
            runFused(direction: d, rows: rows, projection: projection, bias: bias, packed: packed, h: h, c: c,
                     spare: spare, y: y, g)
        }
    }

    /// `runFused` for the batch rows `rows` only.
    private func runFused(direction d: Int, rows: Range<Int>, projection: UnsafePointer<Float>,
                          bias: UnsafePointer<Float>, packed: UnsafePointer<Float>, h: UnsafeMutablePointer<Float>,
                          c: UnsafeMutablePointer<Float>, spare: UnsafeMutablePointer<Float>, y: Tensor?,
                          _ g: RecurrentGeometry) {
        guard !rows.isEmpty else { return }
        let hidden = g.hidden, width = 4 * hidden, projectionWidth = g.directions * width
        let forward = lts_recurrent_kernels_active().pointee.lstm_forward!
        let reversed = config.direction.isReversed(d)
        let first = rows.lowerBound, h = h + first * hidden, spare = spare + first * hidden
        // Y's rows of one step are `yStride` apart; without Y the state alternates between h and spare.
        let yStride = g.batchMajor ? g.seq * g.directions * hidden : hidden
        var step = lts_lstm_forward_step()
        step.batch = rows.count
        step.hidden = hidden
        step.packed_r = packed
        step.pre_stride = (g.batchMajor ? g.seq : 1) * projectionWidth
        step.bias = bias
        step.c_prev = UnsafePointer(c + first * hidden)
        step.c_next = c + first * hidden
        var previous = h, previousStride = hidden
        for s in 0..<g.seq {
            let t = reversed ? g.seq - 1 - s : s
            let next = y.map { $0.floats + g.yOffset(t, d, first) } ?? (previous == h ? spare : h)
            let nextStride = y == nil ? hidden : yStride
            step.h_prev = UnsafePointer(previous)
            step.h_prev_stride = previousStride
            step.pre = projection + g.xRow(t, first) * projectionWidth + d * width
            step.h_next = next
            step.h_next_stride = nextStride
            withUnsafePointer(to: step) { forward($0) }
            (previous, previousStride) = (next, nextStride)
        }
        if previous != h {
            for b in 0..<rows.count { (h + b * hidden).update(from: previous + b * previousStride, count: hidden) }
        }
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], _ g: RecurrentGeometry, _ scratch: RecurrentScratch,
                 pool: ThreadPool) throws {
        let lengths = scratch.lengths
        let steps = try config.readSequenceLengths(slot(inputs, RecurrentConfig.sequenceLensSlot), g, into: lengths)
        let x = inputs[0]!, w = inputs[1]!, r = inputs[2]!
        let bias = slot(inputs, 3), peephole = slot(inputs, 7)
        let y = slot(outputs, 0), yH = slot(outputs, 1), yC = slot(outputs, 2)
        let hidden = g.hidden, width = 4 * hidden, projectionWidth = g.directions * width
        let fullLengths = (0..<g.batch).allSatisfy { lengths[$0] == g.seq }
        if let y, !fullLengths { y.floats.update(repeating: 0, count: y.count) }

        let (projection, gates, h, c, gateBias, _) = scratch.regions
        config.project(x: x, w: w, into: projection, g)

        for d in 0..<g.directions {
            let (f, gAct, hAct) = (config.activations[d][0], config.activations[d][1], config.activations[d][2])
            let reversed = config.direction.isReversed(d)
            let recurrence = r.floats + d * width * hidden
            config.loadState(slot(inputs, RecurrentConfig.initialHSlot), direction: d, into: h, g)
            config.loadState(slot(inputs, 6), direction: d, into: c, g)
            if let bias {
                let wb = bias.floats + d * 2 * width, rb = wb + width
                for j in 0..<width { gateBias[j] = wb[j] + rb[j] }
            } else {
                gateBias.update(repeating: 0, count: width)
            }
            let pI = peephole.map { $0.floats + d * 3 * hidden }
            let pO = pI.map { $0 + hidden }, pF = pI.map { $0 + 2 * hidden }
            let standardCell = isStandardCell(d, peepholes: pI != nil)
            if standardCell && fullLengths {   // product and cell in one kernel per step
                let count = lts_lstm_packed_count(hidden)
                let packed: UnsafePointer<Float>
                if let packedR {
                    packed = UnsafePointer(packedR.floats + d * count)
                } else {
                    lts_lstm_pack_recurrence(recurrence, hidden, scratch.packedRecurrence)
                    packed = UnsafePointer(scratch.packedRecurrence)
                }
                runFused(direction: d, projection: projection, bias: gateBias, packed: packed, h: h, c: c,
                         spare: gates, y: y, g, pool: pool)
                config.storeState(h, direction: d, lengths: lengths, into: yH, g)
                config.storeState(c, direction: d, lengths: lengths, into: yC, g)
                continue
            }

            for s in 0..<steps {
                sgemm(transA: false, transB: true, m: g.batch, n: width, k: hidden, alpha: 1,
                      a: h, lda: hidden, b: recurrence, ldb: hidden, beta: 0, c: gates, ldc: width)
                for b in 0..<g.batch where s < lengths[b] {
                    let t = reversed ? lengths[b] - 1 - s : s
                    let gate = gates + b * width
                    let xp = projection + g.xRow(t, b) * projectionWidth + d * width
                    let hb = h + b * hidden, cb = c + b * hidden
                    if standardCell {
                        lts_vector_lstm_step(gate, xp, gateBias, hb, cb, hidden)
                        if let y { (y.floats + g.yOffset(t, d, b)).update(from: hb, count: hidden) }
                        continue
                    }
                    for j in 0..<width { gate[j] += xp[j] + gateBias[j] }
                    let i = gate, o = gate + hidden, fg = gate + 2 * hidden, cand = gate + 3 * hidden
                    if let pI, let pF {
                        for j in 0..<hidden { i[j] += pI[j] * cb[j]; fg[j] += pF[j] * cb[j] }
                    }
                    config.applyClip(i, hidden)
                    f.apply(i, hidden)
                    if inputForget {
                        for j in 0..<hidden { fg[j] = 1 - i[j] }
                    } else {
                        config.applyClip(fg, hidden)
                        f.apply(fg, hidden)
                    }
                    config.applyClip(cand, hidden)
                    gAct.apply(cand, hidden)
                    for j in 0..<hidden { cb[j] = fg[j] * cb[j] + i[j] * cand[j] }
                    if let pO {
                        for j in 0..<hidden { o[j] += pO[j] * cb[j] }
                    }
                    config.applyClip(o, hidden)
                    f.apply(o, hidden)
                    cand.update(from: cb, count: hidden)
                    hAct.apply(cand, hidden)
                    for j in 0..<hidden { hb[j] = o[j] * cand[j] }
                    if let y { (y.floats + g.yOffset(t, d, b)).update(from: hb, count: hidden) }
                }
            }
            config.storeState(h, direction: d, lengths: lengths, into: yH, g)
            config.storeState(c, direction: d, lengths: lengths, into: yC, g)
        }
    }
}

/// GRU (ONNX gate order z, r, h): `linear_before_reset` 0 and 1, `clip`, per-direction activations,
/// `sequence_lens`, both layouts; outputs Y and Y_h, each optional.
final class GRUKernel: RecurrentKernel {
    /// Attributes shared with LSTM.
    let config: RecurrentConfig
    /// `linear_before_reset`: the reset gate multiplies `H·Rhᵀ + Rbh` rather than `H` before the product.
    let linearBeforeReset: Bool
    let planned: RecurrentGeometry?
    var cellState: Bool { false }
    var packsRecurrence: Bool { false }

    init(_ c: NodeContext) throws {
        config = try RecurrentConfig(c, gates: 3, maxInputs: 6, maxOutputs: 2, defaults: ["Sigmoid", "Tanh"])
        linearBeforeReset = try c.attributes.int("linear_before_reset", 0) != 0
        planned = nil
    }

    private init(_ other: GRUKernel, _ g: RecurrentGeometry) {
        config = other.config
        linearBeforeReset = other.linearBeforeReset
        planned = g
    }

    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel {
        GRUKernel(self, try config.geometry(inputs, cellState: false))
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], _ g: RecurrentGeometry, _ scratch: RecurrentScratch,
                 pool: ThreadPool) throws {
        let lengths = scratch.lengths
        let steps = try config.readSequenceLengths(slot(inputs, RecurrentConfig.sequenceLensSlot), g, into: lengths)
        let x = inputs[0]!, w = inputs[1]!, r = inputs[2]!
        let bias = slot(inputs, 3)
        let y = slot(outputs, 0), yH = slot(outputs, 1)
        let hidden = g.hidden, width = 3 * hidden, projectionWidth = g.directions * width
        if let y { y.floats.update(repeating: 0, count: y.count) }

        // gateBias: added to every gate's pre-activation; recurrentHBias: Rbh kept apart for linear_before_reset.
        let (projection, gates, h, resetH, gateBias, recurrentHBias) = scratch.regions
        config.project(x: x, w: w, into: projection, g)

        for d in 0..<g.directions {
            let (f, gAct) = (config.activations[d][0], config.activations[d][1])
            let reversed = config.direction.isReversed(d)
            let recurrence = r.floats + d * width * hidden
            config.loadState(slot(inputs, RecurrentConfig.initialHSlot), direction: d, into: h, g)
            if let bias {
                let wb = bias.floats + d * 2 * width, rb = wb + width
                for j in 0..<2 * hidden { gateBias[j] = wb[j] + rb[j] }
                for j in 2 * hidden..<width { gateBias[j] = linearBeforeReset ? wb[j] : wb[j] + rb[j] }
                recurrentHBias.update(from: rb + 2 * hidden, count: hidden)
            } else {
                gateBias.update(repeating: 0, count: width)
                recurrentHBias.update(repeating: 0, count: hidden)
            }

            for s in 0..<steps {
                // z and r (and h's recurrent product, when it precedes the reset).
                sgemm(transA: false, transB: true, m: g.batch, n: linearBeforeReset ? width : 2 * hidden, k: hidden,
                      alpha: 1, a: h, lda: hidden, b: recurrence, ldb: hidden, beta: 0, c: gates, ldc: width)
                for b in 0..<g.batch where s < lengths[b] {
                    let t = reversed ? lengths[b] - 1 - s : s
                    let z = gates + b * width, reset = z + hidden
                    let xp = projection + g.xRow(t, b) * projectionWidth + d * width
                    for j in 0..<2 * hidden { z[j] += xp[j] + gateBias[j] }
                    config.applyClip(z, 2 * hidden)
                    f.apply(z, 2 * hidden)
                    let hb = h + b * hidden
                    if linearBeforeReset {
                        let candidate = z + 2 * hidden, xh = xp + 2 * hidden, bh = gateBias + 2 * hidden
                        for j in 0..<hidden { candidate[j] = xh[j] + bh[j] + reset[j] * (candidate[j] + recurrentHBias[j]) }
                        finishStep(z: z, candidate: candidate, state: hb, activation: gAct, hidden: hidden)
                        if let y { (y.floats + g.yOffset(t, d, b)).update(from: hb, count: hidden) }
                    } else {
                        let rb = resetH + b * hidden
                        for j in 0..<hidden { rb[j] = reset[j] * hb[j] }
                    }
                }
                if linearBeforeReset { continue }
                sgemm(transA: false, transB: true, m: g.batch, n: hidden, k: hidden, alpha: 1,
                      a: resetH, lda: hidden, b: recurrence + 2 * hidden * hidden, ldb: hidden,
                      beta: 0, c: gates + 2 * hidden, ldc: width)
                for b in 0..<g.batch where s < lengths[b] {
                    let t = reversed ? lengths[b] - 1 - s : s
                    let z = gates + b * width, candidate = z + 2 * hidden
                    let xh = projection + g.xRow(t, b) * projectionWidth + d * width + 2 * hidden
                    let bh = gateBias + 2 * hidden
                    for j in 0..<hidden { candidate[j] += xh[j] + bh[j] }
                    let hb = h + b * hidden
                    finishStep(z: z, candidate: candidate, state: hb, activation: gAct, hidden: hidden)
                    if let y { (y.floats + g.yOffset(t, d, b)).update(from: hb, count: hidden) }
                }
            }
            config.storeState(h, direction: d, lengths: lengths, into: yH, g)
        }
    }

    /// `H = (1 - z) ⊙ g(clip(candidate)) + z ⊙ H`, for one batch entry.
    @inline(__always) private func finishStep(z: UnsafeMutablePointer<Float>, candidate: UnsafeMutablePointer<Float>,
                                              state: UnsafeMutablePointer<Float>, activation: RecurrentActivation,
                                              hidden: Int) {
        config.applyClip(candidate, hidden)
        activation.apply(candidate, hidden)
        for j in 0..<hidden { state[j] = (1 - z[j]) * candidate[j] + z[j] * state[j] }
    }
}
