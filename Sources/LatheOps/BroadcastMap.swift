import LatheCore

/// Strides of an input of `shape` read as if broadcast to `rank` dimensions: 0 along broadcast (size-1 or missing) dims.
func broadcastStrides(_ shape: [Int], rank: Int) -> [Int] {
    let padded = [Int](repeating: 1, count: rank - shape.count) + shape
    let strides = ShapeMath.strides(padded)
    return (0..<rank).map { padded[$0] == 1 ? 0 : strides[$0] }
}

/// Walks `shape` (the broadcast output) one innermost run at a time, calling
/// `body(outputOffset, runLength, inputOffsets, inputInnerStrides)` with the element offsets of every
/// input (whose shapes broadcast to `shape`) at the start of the run.
@inline(__always)
func broadcastRuns(_ shape: [Int], _ inputShapes: [[Int]], _ body: (Int, Int, [Int], [Int]) -> Void) {
    let total = shape.reduce(1, *)
    guard total > 0 else { return }
    let rank = shape.count
    if rank == 0 { body(0, 1, inputShapes.map { _ in 0 }, inputShapes.map { _ in 0 }); return }
    let strides = inputShapes.map { broadcastStrides($0, rank: rank) }
    let inner = shape[rank - 1]
    let innerStrides = strides.map { $0[rank - 1] }
    var index = [Int](repeating: 0, count: rank)
    var offsets = [Int](repeating: 0, count: inputShapes.count)
    var out = 0
    while out < total {
        body(out, inner, offsets, innerStrides)
        out += inner
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            for k in offsets.indices { offsets[k] += strides[k][d] }
            if index[d] < shape[d] { break }
            for k in offsets.indices { offsets[k] -= strides[k][d] * shape[d] }
            index[d] = 0
            d -= 1
        }
        if d < 0 { break }
    }
}

/// `c = f(a, b)` with `a` and `b` broadcast to `c`'s shape; the three element types may differ.
@inline(__always)
func broadcastMap<A, B, C>(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (A, B) -> C) {
    let pa = a.bytes.assumingMemoryBound(to: A.self), pb = b.bytes.assumingMemoryBound(to: B.self)
    let pc = c.bytes.assumingMemoryBound(to: C.self)
    broadcastRuns(c.shape, [a.shape, b.shape]) { out, n, offsets, steps in
        let oa = offsets[0], ob = offsets[1], sa = steps[0], sb = steps[1]
        for j in 0..<n { pc[out + j] = f(pa[oa + j * sa], pb[ob + j * sb]) }
    }
}

/// `d = f(a, b, c)` with the three inputs broadcast to `d`'s shape.
@inline(__always)
func broadcastMap3<A, B, C, D>(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ d: Tensor, _ f: (A, B, C) -> D) {
    let pa = a.bytes.assumingMemoryBound(to: A.self), pb = b.bytes.assumingMemoryBound(to: B.self)
    let pc = c.bytes.assumingMemoryBound(to: C.self), pd = d.bytes.assumingMemoryBound(to: D.self)
    broadcastRuns(d.shape, [a.shape, b.shape, c.shape]) { out, n, offsets, steps in
        let oa = offsets[0], ob = offsets[1], oc = offsets[2]
        let sa = steps[0], sb = steps[1], sc = steps[2]
        for j in 0..<n { pd[out + j] = f(pa[oa + j * sa], pb[ob + j * sb], pc[oc + j * sc]) }
    }
}

/// Copies `x` broadcast to `y`'s shape into `y`, element by element (any dtype).
func broadcastCopy(_ x: Tensor, into y: Tensor) {
    func run<T>(_: T.Type) {
        let px = x.bytes.assumingMemoryBound(to: T.self), py = y.bytes.assumingMemoryBound(to: T.self)
        broadcastRuns(y.shape, [x.shape]) { out, n, offsets, steps in
            let o = offsets[0], s = steps[0]
            for j in 0..<n { py[out + j] = px[o + j * s] }
        }
    }
    switch x.dtype.size {
    case 1: run(UInt8.self)
    case 4: run(UInt32.self)
    default: run(UInt64.self)
    }
}
