extension Graph {
    /// Node indices in an order where every value is produced before it is read (Kahn's algorithm,
    /// keeping the graph's order among ready nodes). Shared by inference (`Model`) and training.
    /// - Throws: `.parseError` for an undefined value, a value produced twice, or a cycle.
    package func topologicalOrder() throws -> [Int] {
        let defined = Set(inputs.map(\.name)).union(initializers.keys)
        var producers: [String: Int] = [:]
        for (n, node) in nodes.enumerated() {
            for out in node.outputs where !out.isEmpty {
                if defined.contains(out) || producers[out] != nil {
                    throw LatheError(.parseError, "value '\(out)' is produced twice (at node '\(node.name)')")
                }
                producers[out] = n
            }
        }
        var waiting = [Int](repeating: 0, count: nodes.count)
        var consumers: [String: [Int]] = [:]
        for (n, node) in nodes.enumerated() {
            for input in Set(node.inputs) where !input.isEmpty && !defined.contains(input) {
                guard producers[input] != nil else {
                    throw LatheError(.parseError, "node '\(node.name)' (\(node.opType)) uses undefined value '\(input)'")
                }
                waiting[n] += 1
                consumers[input, default: []].append(n)
            }
        }
        var ready = (0..<nodes.count).filter { waiting[$0] == 0 }
        var order: [Int] = []
        var head = 0
        while head < ready.count {
            let n = ready[head]
            head += 1
            order.append(n)
            for out in nodes[n].outputs where !out.isEmpty {
                for c in consumers[out] ?? [] {
                    waiting[c] -= 1
                    if waiting[c] == 0 { ready.append(c) }
                }
            }
        }
        guard order.count == nodes.count else {
            let stuck = nodes.indices.first { waiting[$0] > 0 }.map { nodes[$0].name } ?? "?"
            throw LatheError(.parseError, "graph has a cycle (at node '\(stuck)')")
        }
        return order
    }
}
