/// Where every value of a plan lives during a run: one 64-byte-aligned arena holds every intermediate,
/// with buffers of values whose lifetimes do not overlap sharing bytes; shape-only ops view their
/// input's buffer and in-place kernels write over an input nothing reads afterwards.
struct MemoryPlan {
    /// Where a value's elements are.
    enum Placement: Equatable {
        /// Not produced by a step: a graph input, a constant, or never computed.
        case external
        /// At this byte offset of the arena.
        case arena(Int)
        /// The same bytes as another value (a view), resolved to a value that is not a view.
        case view(of: Int)
    }

    /// Alignment of every buffer in the arena.
    static let alignment = 64

    /// Placement of every value id.
    var placements: [Placement]
    /// Arena offset of each step's workspace (0 when it needs none).
    var workspaceOffsets: [Int]
    /// Whether each step is skipped at run time because its output is a view of its input.
    var skipped: [Bool]
    /// Total arena size in bytes.
    var arenaBytes: Int

    /// Bytes between the workspaces of consecutive lanes of each step.
    var workspaceStrides: [Int]

    /// Lays out the buffers of `plan`. `inputs` and `outputs` are the graph's input and output ids;
    /// each step's workspace is reserved once per lane (thread).
    init(plan: Plan, inputs: [Int], outputs: [Int], lanes: Int) {
        let valueCount = plan.types.count
        let steps = plan.steps
        let end = steps.count   // "live until after the last step"
        func bytes(_ id: Int) -> Int { plan.types[id].map { $0.count * $0.dtype.size } ?? 0 }
        var external = [Bool](repeating: true, count: valueCount)
        for step in steps { for case let id? in step.outputs { external[id] = false } }
        var isGraphInput = [Bool](repeating: false, count: valueCount)
        for id in inputs { isGraphInput[id] = true }
        var isGraphOutput = [Bool](repeating: false, count: valueCount)
        for id in outputs { isGraphOutput[id] = true }

        // Views: output 0 of a shape-only kernel shares input 0's bytes. A graph output never views a
        // graph input, so a borrowed output does not change when the caller replaces the input.
        var viewParent = [Int?](repeating: nil, count: valueCount)
        var skipped = [Bool](repeating: false, count: steps.count)
        func viewRoot(_ id: Int) -> Int { var r = id; while let p = viewParent[r] { r = p }; return r }
        for (s, step) in steps.enumerated() where step.kernel.outputMemory == .viewOfInput {
            guard let x = step.inputs.first ?? nil, let y = step.outputs.first ?? nil,
                  step.outputs.dropFirst().allSatisfy({ $0 == nil }), bytes(x) == bytes(y),
                  !(isGraphOutput[y] && isGraphInput[viewRoot(x)]) else { continue }
            viewParent[y] = x
            skipped[s] = true
        }

        // Last step reading each view group (graph outputs: past the end).
        var lastUse = [Int](repeating: -1, count: valueCount)
        for (s, step) in steps.enumerated() {
            for case let id? in step.inputs { let r = viewRoot(id); lastUse[r] = max(lastUse[r], s) }
        }
        for id in outputs { lastUse[viewRoot(id)] = end }

        // In place: output 0 takes over input 0's buffer when that buffer dies at this step.
        var bufferParent = [Int?](repeating: nil, count: valueCount)
        func buffer(_ id: Int) -> Int { var r = viewRoot(id); while let p = bufferParent[r] { r = viewRoot(p) }; return r }
        var bufferLast = lastUse
        for (s, step) in steps.enumerated() where step.kernel.outputMemory == .inPlace && !skipped[s] {
            guard let x = step.inputs.first ?? nil, let y = step.outputs.first ?? nil, viewParent[y] == nil else { continue }
            let b = buffer(x)
            guard !external[b], bufferLast[b] == s, bytes(b) == bytes(y),
                  !step.inputs.dropFirst().contains(where: { $0 != nil && buffer($0!) == b }) else { continue }
            bufferParent[y] = b
            bufferLast[b] = max(bufferLast[b], lastUse[y])
        }

        // Lifetimes of the arena buffers and workspaces, then first-fit by decreasing size.
        struct Interval { let key: Int; let first: Int; let last: Int; let bytes: Int }
        var intervals: [Interval] = []
        var firstDef = [Int](repeating: Int.max, count: valueCount)
        for (s, step) in steps.enumerated() where !skipped[s] {
            for case let id? in step.outputs where viewParent[id] == nil { firstDef[buffer(id)] = min(firstDef[buffer(id)], s) }
        }
        func rounded(_ n: Int) -> Int { (n + MemoryPlan.alignment - 1) / MemoryPlan.alignment * MemoryPlan.alignment }
        for id in 0..<valueCount where !external[id] && viewParent[id] == nil && bufferParent[id] == nil && firstDef[id] != Int.max {
            intervals.append(Interval(key: id, first: firstDef[id], last: max(firstDef[id], bufferLast[id]), bytes: rounded(bytes(id))))
        }
        for (s, size) in plan.workspaceBytes.enumerated() where size > 0 && !skipped[s] {
            intervals.append(Interval(key: valueCount + s, first: s, last: s, bytes: rounded(size) * lanes))
        }
        intervals.sort { ($0.bytes, $1.first) > ($1.bytes, $0.first) }
        var placed: [(offset: Int, interval: Interval)] = []
        var offsetOf: [Int: Int] = [:]
        var total = 0
        for interval in intervals {
            let overlapping = placed.filter { $0.interval.first <= interval.last && interval.first <= $0.interval.last }
                .sorted { $0.offset < $1.offset }
            var offset = 0
            for other in overlapping where offset + interval.bytes > other.offset {
                offset = max(offset, other.offset + other.interval.bytes)
            }
            placed.append((offset, interval))
            offsetOf[interval.key] = offset
            total = max(total, offset + interval.bytes)
        }

        var placements = [Placement](repeating: .external, count: valueCount)
        for id in 0..<valueCount where !external[id] || viewParent[id] != nil {
            if viewParent[id] != nil {
                placements[id] = .view(of: buffer(id))
            } else if bufferParent[id] != nil {
                placements[id] = .view(of: buffer(id))
            } else if let offset = offsetOf[id] {
                placements[id] = .arena(offset)
            }
        }
        self.placements = placements
        self.workspaceOffsets = steps.indices.map { offsetOf[valueCount + $0] ?? 0 }
        self.workspaceStrides = plan.workspaceBytes.map { rounded($0) }
        self.skipped = skipped
        self.arenaBytes = total
    }
}
