import LatheCore

/// Index arithmetic for the naive reference implementations of the op tests.
enum Naive {
    /// The multi-index of row-major position `i` in `shape`.
    static func unravel(_ i: Int, _ shape: [Int]) -> [Int] {
        var idx = [Int](repeating: 0, count: shape.count), r = i
        for d in stride(from: shape.count - 1, through: 0, by: -1) { idx[d] = r % shape[d]; r /= shape[d] }
        return idx
    }

    /// The row-major position of multi-index `idx` in `shape`.
    static func ravel(_ idx: [Int], _ shape: [Int]) -> Int {
        zip(idx, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }

    /// The position in an operand of shape `shape` that numpy broadcasting reads for output index `idx`.
    static func broadcastPosition(_ idx: [Int], _ shape: [Int]) -> Int {
        let lead = idx.count - shape.count
        return ravel((0..<shape.count).map { shape[$0] == 1 ? 0 : idx[lead + $0] }, shape)
    }

    /// The broadcast shape of several operands.
    static func broadcast(_ shapes: [[Int]]) throws -> [Int] {
        try shapes.dropFirst().reduce(shapes[0]) { try ShapeMath.broadcast($0, $1) }
    }
}
