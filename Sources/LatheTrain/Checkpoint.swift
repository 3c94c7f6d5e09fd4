#if canImport(Glibc)
import Glibc
#endif
import LatheCore

/// A training checkpoint: named float32 tensors, integers and texts, in one small binary file.
///
/// **Format** (version 1, all numbers little-endian):
/// ```
/// "LATHECKP"                      8 bytes
/// version: u32 = 1
/// entries: u32
/// per entry:
///   kind: u8                      1 = float32 tensor, 2 = int64, 3 = UTF-8 text
///   name: u32 byte count, bytes   UTF-8
///   kind 1: rank u32, dims i64 × rank, float32 × product(dims)
///   kind 2: i64
///   kind 3: u64 byte count, bytes
/// ```
/// What `Sequential.checkpoint()` writes: `weight/<name>` for every float32 weight of the graph
/// (trainable or not, e.g. BatchNorm's moving statistics); `train/epochs` (epochs trained: with `fit`'s
/// seed it fixes the next epoch's shuffling and dropout — the RNG state); when compiled,
/// `optimizer/class` (`SGD`, `Adam`, `AdamW`, `RMSprop`), `optimizer/iterations`,
/// `optimizer/learning_rate` (`[1]`) and `optimizer/slot<k>/<weight>` for each state array `k` of each
/// trainable weight (once the optimizer has stepped); and any texts the caller adds (the C ABI adds
/// `model/spec` and `model/compile`).
public struct Checkpoint {
    public var tensors: [String: Tensor] = [:]
    public var integers: [String: Int64] = [:]
    public var texts: [String: String] = [:]

    private static let magic = Array("LATHECKP".utf8)

    public init() {}

    /// The file's bytes (entries sorted by name, so equal checkpoints give equal bytes).
    public func bytes() -> [UInt8] {
        var out = Checkpoint.magic
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { out += $0 } }
        func i64(_ v: Int64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func name(_ kind: UInt8, _ s: String) { out.append(kind); u32(s.utf8.count); out += Array(s.utf8) }
        u32(1)
        u32(tensors.count + integers.count + texts.count)
        for (key, t) in tensors.sorted(by: { $0.key < $1.key }) {
            name(1, key)
            u32(t.rank)
            for d in t.shape { i64(Int64(d)) }
            for i in 0..<t.count { withUnsafeBytes(of: t.floats[i].bitPattern.littleEndian) { out += $0 } }
        }
        for (key, v) in integers.sorted(by: { $0.key < $1.key }) { name(2, key); i64(v) }
        for (key, s) in texts.sorted(by: { $0.key < $1.key }) { name(3, key); i64(Int64(s.utf8.count)); out += Array(s.utf8) }
        return out
    }

    /// Reads a checkpoint's bytes.
    /// - Throws: `.parseError` naming the byte offset of the first problem.
    public init(bytes: [UInt8]) throws {
        var offset = 0
        func fail(_ what: String) -> LatheError { LatheError(.parseError, "checkpoint: \(what) at byte \(offset)") }
        func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - offset else { throw fail("truncated (\(n) more bytes expected)") }
            defer { offset += n }
            return bytes[offset..<offset + n]
        }
        func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
            try take(MemoryLayout<T>.size).reversed().reduce(T(0)) { $0 << 8 | T($1) }
        }
        func count(_ limit: Int) throws -> Int {
            let v = Int(try integer(UInt32.self))
            guard v <= limit else { throw fail("count \(v) exceeds the file") }
            return v
        }
        guard try Array(take(8)) == Checkpoint.magic else { throw LatheError(.parseError, "checkpoint: not a Lathe checkpoint (no LATHECKP header)") }
        let version = try integer(UInt32.self)
        guard version == 1 else { throw LatheError(.parseError, "checkpoint: version \(version) is not supported (this Lathe reads version 1)") }
        let entries = try count(bytes.count)
        for _ in 0..<entries {
            let kind = try integer(UInt8.self)
            let key = String(decoding: try take(try count(bytes.count)), as: UTF8.self)
            switch kind {
            case 1:
                let rank = try count(16)
                let dims = try (0..<rank).map { _ in Int(try integer(Int64.self)) }
                guard dims.allSatisfy({ $0 >= 0 && $0 <= bytes.count }), dims.reduce(1, *) * 4 <= bytes.count - offset else {
                    throw fail("tensor '\(key)' has a bad shape \(dims)")
                }
                let data = try take(dims.reduce(1, *) * 4)
                let t = try Tensor(.float32, shape: dims)
                data.withUnsafeBytes { raw in
                    for i in 0..<t.count { t.floats[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                }
                tensors[key] = t
            case 2: integers[key] = try integer(Int64.self)
            case 3:
                let n = try integer(Int64.self)
                guard n >= 0, n <= Int64(bytes.count) else { throw fail("text '\(key)' has a bad length \(n)") }
                texts[key] = String(decoding: try take(Int(n)), as: UTF8.self)
            default: throw fail("unknown entry kind \(kind)")
            }
        }
        guard offset == bytes.count else { throw fail("unexpected bytes after the last entry") }
    }

    /// Writes `bytes()` to `path`.
    /// - Throws: `.io` when the file cannot be written.
    public func write(to path: String) throws {
        let data = bytes()
        guard let file = fopen(path, "wb") else { throw LatheError(.io, "cannot open '\(path)' for writing") }
        let written = fwrite(data, 1, data.count, file)
        guard fclose(file) == 0, written == data.count else { throw LatheError(.io, "cannot write '\(path)'") }
    }

    /// Reads the checkpoint at `path`.
    /// - Throws: `.io` when it cannot be read; `.parseError` when it is not a valid checkpoint.
    public init(contentsOf path: String) throws {
        guard let file = fopen(path, "rb") else { throw LatheError(.io, "cannot open '\(path)' for reading") }
        defer { fclose(file) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            data += chunk[0..<n]
            if n < chunk.count { break }
        }
        guard ferror(file) == 0 else { throw LatheError(.io, "cannot read '\(path)'") }
        try self.init(bytes: data)
    }
}

extension Functional {
    /// The model's training state: every weight, the epoch count and (when compiled) the optimizer's
    /// state, plus `texts` (see `Checkpoint` for the entries).
    public func checkpoint(texts: [String: String] = [:]) throws -> Checkpoint {
        let graph = try build()
        var c = Checkpoint()
        c.texts = texts
        for (name, w) in graph.initializers where w.dtype == .float32 { c.tensors["weight/" + name] = try w.copy() }
        c.integers["train/epochs"] = Int64(epochsTrained)
        if let optimizer {
            c.texts["optimizer/class"] = optimizer.algorithm.className
            c.integers["optimizer/iterations"] = Int64(optimizer.iterations)
            c.tensors["optimizer/learning_rate"] = try Tensor(shape: [1], floats: [optimizer.learningRate])
            for (k, kind) in optimizer.slots.enumerated() {
                for (name, values) in zip(trainableWeights, kind) {
                    c.tensors["optimizer/slot\(k)/\(name)"] = try Tensor(shape: [values.count], floats: values)
                }
            }
        }
        return c
    }

    /// Puts a checkpoint's state back: all weights (the architecture must match: every float32 weight
    /// present with its shape), the epoch count, and — when the model is compiled with the same
    /// optimizer class — the optimizer's step count, learning rate and state arrays.
    /// - Returns: whether optimizer state was restored (false when the model is not compiled or the
    ///   checkpoint has none).
    /// - Throws: `.shapeMismatch` naming a missing, extra or differently shaped weight; `.invalidArgument`
    ///   when the checkpoint's optimizer is of another class. Nothing is changed when it throws.
    @discardableResult
    public func restore(_ checkpoint: Checkpoint) throws -> Bool {
        let graph = try build()
        let mine = graph.initializers.filter { $0.value.dtype == .float32 }
        let theirs = checkpoint.tensors.filter { $0.key.hasPrefix("weight/") }
        for (name, w) in mine {
            guard let t = theirs["weight/" + name] else { throw LatheError.shape("checkpoint has no weight '\(name)' (a different model?)") }
            guard t.shape == w.shape else { throw LatheError.shape("checkpoint weight '\(name)' has shape \(t.shape), the model's has \(w.shape)") }
        }
        if let extra = theirs.keys.sorted().first(where: { mine[String($0.dropFirst("weight/".count))] == nil }) {
            throw LatheError.shape("checkpoint weight '\(extra.dropFirst("weight/".count))' is not in this model (a different model?)")
        }
        guard let epochs = checkpoint.integers["train/epochs"], epochs >= 0 else { throw LatheError.invalid("checkpoint has no train/epochs") }
        var restoredOptimizer = false
        if let optimizer, let className = checkpoint.texts["optimizer/class"] {
            guard className == optimizer.algorithm.className else {
                throw LatheError.invalid("checkpoint holds \(className) state but the model is compiled with \(optimizer.algorithm.className)")
            }
            let sizes = trainableWeights.map { graph.initializers[$0]!.count }
            var slots: [[[Float]]] = []
            for k in 0..<optimizer.algorithm.slotCount where checkpoint.tensors["optimizer/slot\(k)/\(trainableWeights.first ?? "")"] != nil {
                slots.append(try trainableWeights.map { name in
                    guard let t = checkpoint.tensors["optimizer/slot\(k)/\(name)"] else { throw LatheError.shape("checkpoint lacks optimizer/slot\(k)/\(name)") }
                    return t.floatArray()
                })
            }
            try optimizer.restore(iterations: Int(checkpoint.integers["optimizer/iterations"] ?? 0), slots: slots, parameterSizes: sizes)
            if let rate = checkpoint.tensors["optimizer/learning_rate"], rate.count == 1 { optimizer.learningRate = rate.floats[0] }
            restoredOptimizer = true
        }
        for (name, w) in mine { w.bytes.copyMemory(from: theirs["weight/" + name]!.bytes, byteCount: w.byteCount) }
        epochsTrained = Int(epochs)
        return restoredOptimizer
    }
}
