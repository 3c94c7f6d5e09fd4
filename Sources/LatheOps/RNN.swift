import LatheCore

/// RNN, the simple recurrent cell (float32, opsets 7 and later, `layout` from opset 14), on the shared
/// recurrent machinery of LSTM and GRU: one `sgemm` projects all steps' inputs, one per step the state.
enum RNNOps {
    static func register(into registry: OpRegistry) throws {
        try registry.add("RNN", since: 7) { try RNNKernel($0) }
    }
}

/// RNN: `H_t = f(X_t·Wᵀ + H_{t-1}·Rᵀ + Wb + Rb)`, with `clip`, per-direction activation, `sequence_lens`,
/// `initial_h` and both layouts; outputs Y and Y_h, each optional.
final class RNNKernel: RecurrentKernel {
    /// Attributes shared with LSTM and GRU (one gate).
    let config: RecurrentConfig
    let planned: RecurrentGeometry?
    var cellState: Bool { false }
    var packsRecurrence: Bool { false }

    init(_ c: NodeContext) throws {
        config = try RecurrentConfig(c, gates: 1, maxInputs: 6, maxOutputs: 2, defaults: ["Tanh"])
        planned = nil
    }

    private init(_ other: RNNKernel, _ g: RecurrentGeometry) {
        config = other.config
        planned = g
    }

    func specialized(for inputs: [TensorType?], constants: [Tensor?]) throws -> any Kernel {
        RNNKernel(self, try config.geometry(inputs, cellState: false))
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?], _ g: RecurrentGeometry, _ scratch: RecurrentScratch,
                 pool: ThreadPool) throws {
        func slot(_ list: [Tensor?], _ i: Int) -> Tensor? { i < list.count ? list[i] : nil }
        let lengths = scratch.lengths
        let steps = try config.readSequenceLengths(slot(inputs, RecurrentConfig.sequenceLensSlot), g, into: lengths)
        let x = inputs[0]!, w = inputs[1]!, r = inputs[2]!
        let bias = slot(inputs, 3)
        let y = slot(outputs, 0), yH = slot(outputs, 1)
        let hidden = g.hidden, projectionWidth = g.directions * hidden
        if let y { y.floats.update(repeating: 0, count: y.count) }

        // With one gate the scratch regions are: projection, pre-activations, h, (unused), step bias, (unused).
        let (projection, next, h, _, stepBias, _) = scratch.regions
        config.project(x: x, w: w, into: projection, g)

        for d in 0..<g.directions {
            let f = config.activations[d][0]
            let reversed = config.direction.isReversed(d)
            let recurrence = r.floats + d * hidden * hidden
            config.loadState(slot(inputs, RecurrentConfig.initialHSlot), direction: d, into: h, g)
            if let bias {
                let wb = bias.floats + d * 2 * hidden, rb = wb + hidden
                for j in 0..<hidden { stepBias[j] = wb[j] + rb[j] }
            } else {
                stepBias.update(repeating: 0, count: hidden)
            }
            for s in 0..<steps {
                sgemm(transA: false, transB: true, m: g.batch, n: hidden, k: hidden, alpha: 1,
                      a: h, lda: hidden, b: recurrence, ldb: hidden, beta: 0, c: next, ldc: hidden)
                for b in 0..<g.batch where s < lengths[b] {
                    let t = reversed ? lengths[b] - 1 - s : s
                    let pre = next + b * hidden
                    let xp = projection + g.xRow(t, b) * projectionWidth + d * hidden
                    for j in 0..<hidden { pre[j] += xp[j] + stepBias[j] }
                    config.applyClip(pre, hidden)
                    f.apply(pre, hidden)
                    (h + b * hidden).update(from: pre, count: hidden)
                    if let y { (y.floats + g.yOffset(t, d, b)).update(from: pre, count: hidden) }
                }
            }
            config.storeState(h, direction: d, lengths: lengths, into: yH, g)
        }
    }
}
