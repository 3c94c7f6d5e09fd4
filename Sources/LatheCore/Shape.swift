/// One dimension of a declared shape: a number, or a name such as `N` for a batch size fixed at run time.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case symbolic(String)

    /// The number, when the dimension is fixed.
    public var value: Int? { if case .fixed(let v) = self { v } else { nil } }

    public var description: String {
        switch self {
        case .fixed(let v): "\(v)"
        case .symbolic(let s): s.isEmpty ? "?" : s
        }
    }
}

/// The declared type of a graph value: element type and (possibly symbolic) shape. `dims == nil` means unknown rank.
public struct ValueInfo: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var dims: [Dim]?

    public init(name: String, dtype: DType, dims: [Dim]?) {
        self.name = name
        self.dtype = dtype
        self.dims = dims
    }

    /// Whether a concrete shape fits this declaration (symbolic dimensions match anything).
    public func accepts(_ shape: [Int]) -> Bool {
        guard let dims else { return true }
        guard dims.count == shape.count else { return false }
        return zip(dims, shape).allSatisfy { d, s in d.value.map { $0 == s } ?? true }
    }
}

/// A concrete element type and shape, as known to the planner.
public struct TensorType: Sendable, Equatable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]

    public init(_ dtype: DType, _ shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    public var description: String { "\(dtype)\(shape)" }
}

/// Shape arithmetic shared by the ops.
public enum ShapeMath {
    /// Numpy-style broadcast of two shapes; throws naming both when they are incompatible.
    public static func broadcast(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let rank = max(a.count, b.count)
        var result = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            if da == db || db == 1 { result[i] = da }
            else if da == 1 { result[i] = db }
            else { throw LatheError.shape("cannot broadcast shapes \(a) and \(b)") }
        }
        return result
    }

    /// Row-major strides of a shape, in elements.
    public static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= shape[i]
        }
        return strides
    }

    /// Normalises a possibly negative axis for a given rank, or throws.
    public static func axis(_ axis: Int, rank: Int, op: String = "") throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else {
            throw LatheError.invalid("\(op.isEmpty ? "" : "\(op): ")axis \(axis) out of range for rank \(rank)")
        }
        return a
    }
}
