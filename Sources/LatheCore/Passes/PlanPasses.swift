/// A rewrite of a plan's steps after constant folding. Each pass keeps every graph output's value id
/// and its results (within float rounding); kernels take part only through `Kernel` protocol methods,
/// so custom ops are left as they are.
public enum PlanPass: Sendable, CaseIterable {
    /// Drops Identity and inference-mode Dropout steps, pointing their readers at the input.
    case removeIdentities
    /// Folds a per-channel affine consumer (BatchNormalization, Add of a constant bias) into the
    /// weights of the kernel producing its input (Conv, Gemm, MatMul).
    case absorbAffine
    /// Moves an activation (Relu, LeakyRelu, Clip, Sigmoid, Tanh) into its producer's output loop.
    case fuseActivations

    /// Every pass, in the order plans apply them.
    public static let standard: [PlanPass] = [.removeIdentities, .absorbAffine, .fuseActivations]

    /// Rewrites `plan`; `outputs` are the graph output ids, which must survive.
    func apply(to plan: inout Plan, outputs: [Int]) throws {
        switch self {
        case .removeIdentities: plan.removeIdentities(outputs: outputs)
        case .absorbAffine: try plan.absorbAffine(outputs: outputs)
        case .fuseActivations: plan.fuseActivations(outputs: outputs)
        }
    }
}

extension Plan {
    /// How many step input slots read each value id, plus one per graph output naming it.
    func readerCounts(outputs: [Int]) -> [Int] {
        var counts = [Int](repeating: 0, count: types.count)
        for step in steps { for case let id? in step.inputs { counts[id] += 1 } }
        for id in outputs { counts[id] += 1 }
        return counts
    }

    /// The step index producing each value id (nil for inputs and constants).
    func producers() -> [Int?] {
        var producer = [Int?](repeating: nil, count: types.count)
        for (i, step) in steps.enumerated() { for case let id? in step.outputs { producer[id] = i } }
        return producer
    }

    /// The producer of `value` when it can be rewritten to emit the consumer's result instead: it
    /// has exactly one wired output, nothing else reads `value`, and `value` is not a graph output.
    func soleProducer(of value: Int, readers: [Int], producers: [Int?], outputs: [Int]) -> Int? {
        guard readers[value] == 1, !outputs.contains(value), let p = producers[value] else { return nil }
        guard steps[p].outputs.compactMap({ $0 }).count == 1, steps[p].outputs.first == value else { return nil }
        return p
    }

    mutating func removeIdentities(outputs: [Int]) {
        var rename: [Int: Int] = [:]
        var kept: [Model.Step] = []
        for var step in steps {
            step.inputs = step.inputs.map { $0.map { rename[$0] ?? $0 } }
            let op = step.node.opType
            if step.node.domain.isEmpty, op == "Identity" || op == "Dropout", step.kernel.outputMemory == .viewOfInput,
               let input = step.inputs.first ?? nil, let output = step.outputs.first ?? nil,
               step.outputs.count == 1, !outputs.contains(output) {
                rename[output] = input
                continue
            }
            kept.append(step)
        }
        steps = kept
    }

    mutating func absorbAffine(outputs: [Int]) throws {
        var i = 0
        while i < steps.count {
            let consumer = steps[i]
            guard consumer.outputs.count >= 1, let output = consumer.outputs[0],
                  consumer.outputs.dropFirst().allSatisfy({ $0 == nil }),
                  let affine = consumer.kernel.channelAffine(argumentTypes(of: consumer), constants: argumentConstants(of: consumer)),
                  affine.input < consumer.inputs.count, let x = consumer.inputs[affine.input],
                  types[x] == types[output],
                  let p = soleProducer(of: x, readers: readerCounts(outputs: outputs), producers: producers(), outputs: outputs)
            else { i += 1; continue }
            let producer = steps[p]
            guard let (kernel, replaced) = try producer.kernel.absorbing(
                affine, argumentTypes(of: producer), constants: argumentConstants(of: producer)) else { i += 1; continue }
            var inputs = producer.inputs
            for (slot, tensor) in replaced.sorted(by: { $0.key < $1.key }) {
                while inputs.count <= slot { inputs.append(nil) }
                inputs[slot] = addConstant(tensor)
            }
            steps[p].kernel = kernel
            steps[p].inputs = inputs
            steps[p].outputs[0] = output
            steps.remove(at: i)
        }
    }

    mutating func fuseActivations(outputs: [Int]) {
        var i = 0
        while i < steps.count {
            let consumer = steps[i]
            guard consumer.outputs.count == 1, let output = consumer.outputs[0],
                  let activation = consumer.kernel.activation(constants: argumentConstants(of: consumer)),
                  let x = consumer.inputs.first ?? nil, types[x] == types[output],
                  let p = soleProducer(of: x, readers: readerCounts(outputs: outputs), producers: producers(), outputs: outputs),
                  let kernel = steps[p].kernel.fused(with: activation)
            else { i += 1; continue }
            steps[p].kernel = kernel
            steps[p].outputs[0] = output
            steps.remove(at: i)
        }
    }
}
