import CLatheShims

/// A block of tensor memory: 64-byte aligned when Lathe allocates it, or borrowed from a caller
/// (DLPack) with a release action run when the last tensor using it goes away.
public final class Storage: @unchecked Sendable {
    /// Start of the memory.
    public let pointer: UnsafeMutableRawPointer
    /// Size in bytes.
    public let byteCount: Int
    private let release: (@Sendable () -> Void)?
    /// The storage this one is a slice of, kept alive as long as the slice.
    private let parent: Storage?

    /// Allocates `byteCount` zeroed bytes, 64-byte aligned.
    public init(byteCount: Int) throws {
        guard byteCount >= 0, let p = lts_aligned_alloc(max(byteCount, 1)) else {
            throw LatheError(.outOfMemory, "cannot allocate \(byteCount) bytes")
        }
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        self.pointer = p
        self.byteCount = byteCount
        self.release = nil
        self.parent = nil
    }

    /// A slice of `parent`'s memory (no copy): `byteCount` bytes from `offset`.
    public init(slicing parent: Storage, offset: Int, byteCount: Int) {
        precondition(offset >= 0 && byteCount >= 0 && offset + byteCount <= max(parent.byteCount, 1))
        self.pointer = parent.pointer + offset
        self.byteCount = byteCount
        self.release = {}
        self.parent = parent
    }

    /// Wraps memory owned elsewhere; `release` runs once when this storage is freed.
    public init(borrowing pointer: UnsafeMutableRawPointer, byteCount: Int, release: (@Sendable () -> Void)?) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.release = release ?? {}
        self.parent = nil
    }

    deinit {
        if let release { release() } else { lts_aligned_free(pointer) }
    }
}

/// An n-dimensional, row-major, contiguous array of one element type.
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    /// Element type.
    public let dtype: DType
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// The memory holding the elements.
    public let storage: Storage

    /// A zero-filled tensor.
    public init(_ dtype: DType, shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw LatheError.shape("negative dimension in shape \(shape)") }
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let m = acc.0.multipliedReportingOverflow(by: d)
            return (m.partialValue, acc.1 || m.overflow)
        }
        let bytes = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, !bytes.overflow, bytes.partialValue < (1 << 40) else {
            throw LatheError(.outOfMemory, "tensor of shape \(shape) is too large")
        }
        self.dtype = dtype
        self.shape = shape
        self.storage = try Storage(byteCount: bytes.partialValue)
    }

    /// A tensor over existing storage (no copy); the storage must hold at least the elements.
    public init(_ dtype: DType, shape: [Int], storage: Storage) throws {
        let bytes = shape.reduce(1, *) * dtype.size
        guard bytes <= storage.byteCount else {
            throw LatheError.shape("storage of \(storage.byteCount) bytes cannot hold \(dtype)\(shape)")
        }
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
    }

    /// A float32 tensor with the given values.
    public init(shape: [Int], floats: [Float]) throws {
        try self.init(.float32, shape: shape)
        guard floats.count == count else { throw LatheError.shape("\(floats.count) values for shape \(shape)") }
        floats.withUnsafeBufferPointer { storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: byteCount) }
    }

    /// An int64 tensor with the given values.
    public init(shape: [Int], int64s: [Int64]) throws {
        try self.init(.int64, shape: shape)
        guard int64s.count == count else { throw LatheError.shape("\(int64s.count) values for shape \(shape)") }
        int64s.withUnsafeBufferPointer { storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: byteCount) }
    }

    /// A bool tensor with the given values.
    public init(shape: [Int], bools: [Bool]) throws {
        try self.init(.bool, shape: shape)
        guard bools.count == count else { throw LatheError.shape("\(bools.count) values for shape \(shape)") }
        let p = storage.pointer.assumingMemoryBound(to: UInt8.self)
        for (i, b) in bools.enumerated() { p[i] = b ? 1 : 0 }
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Size of the elements in bytes.
    public var byteCount: Int { count * dtype.size }
    /// Element type and shape.
    public var type: TensorType { TensorType(dtype, shape) }

    /// The elements as float32 (the caller has checked the dtype).
    public var floats: UnsafeMutablePointer<Float> { storage.pointer.assumingMemoryBound(to: Float.self) }
    /// The elements as int64 (the caller has checked the dtype).
    public var int64s: UnsafeMutablePointer<Int64> { storage.pointer.assumingMemoryBound(to: Int64.self) }
    /// The raw elements.
    public var bytes: UnsafeMutableRawPointer { storage.pointer }

    /// A copy of the elements as `[Float]` (float32 only).
    public func floatArray() -> [Float] {
        precondition(dtype == .float32)
        return Array(UnsafeBufferPointer(start: floats, count: count))
    }

    /// The elements converted to `Int` (integer and bool dtypes; float32 truncates).
    public func intArray() -> [Int] {
        switch dtype {
        case .int64: return (0..<count).map { Int(int64s[$0]) }
        case .int32: return (0..<count).map { Int(bytes.assumingMemoryBound(to: Int32.self)[$0]) }
        case .bool, .uint8: return (0..<count).map { Int(bytes.assumingMemoryBound(to: UInt8.self)[$0]) }
        case .int8: return (0..<count).map { Int(bytes.assumingMemoryBound(to: Int8.self)[$0]) }
        case .float32: return (0..<count).map { Int(floats[$0]) }
        case .float64: return (0..<count).map { Int(bytes.assumingMemoryBound(to: Double.self)[$0]) }
        }
    }

    /// The same elements viewed with another shape of equal element count (no copy).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.reduce(1, *) == count else {
            throw LatheError.shape("cannot view \(shape) as \(newShape)")
        }
        return try Tensor(dtype, shape: newShape, storage: storage)
    }

    /// A deep copy in fresh storage.
    public func copy() throws -> Tensor {
        let t = try Tensor(dtype, shape: shape)
        t.bytes.copyMemory(from: bytes, byteCount: byteCount)
        return t
    }

    public var description: String { "Tensor(\(dtype)\(shape))" }
}
