import CLatheShims
import Lathe

/// Converts between Lathe tensors and DLPack 0.6 (`DLManagedTensor`) on the CPU.
enum DLPackBridge {
    /// DLPack ≥ 0.8's `kDLBool`, which numpy uses for bool arrays; absent from the 0.6 header.
    static let boolCode: UInt8 = 6

    /// The Lathe dtype of a DLPack dtype, or `.dtypeMismatch` naming it.
    static func dtype(_ t: DLDataType) throws -> DType {
        guard t.lanes == 1 else { throw LatheError.dtype("DLPack tensors with \(t.lanes) lanes are not supported") }
        switch (t.code, t.bits) {
        case (UInt8(kDLFloat.rawValue), 32): return .float32
        case (UInt8(kDLFloat.rawValue), 64): return .float64
        case (UInt8(kDLInt.rawValue), 64): return .int64
        case (UInt8(kDLInt.rawValue), 32): return .int32
        case (UInt8(kDLInt.rawValue), 8): return .int8
        case (UInt8(kDLUInt.rawValue), 8): return .uint8
        case (boolCode, 8): return .bool
        default: throw LatheError.dtype("unsupported DLPack dtype (code \(t.code), \(t.bits) bits)")
        }
    }

    /// The DLPack dtype of a Lathe dtype.
    static func dlType(_ d: DType) -> DLDataType {
        let (code, bits): (UInt8, UInt8) = switch d {
        case .float32: (UInt8(kDLFloat.rawValue), 32)
        case .float64: (UInt8(kDLFloat.rawValue), 64)
        case .int64: (UInt8(kDLInt.rawValue), 64)
        case .int32: (UInt8(kDLInt.rawValue), 32)
        case .int8: (UInt8(kDLInt.rawValue), 8)
        case .uint8: (UInt8(kDLUInt.rawValue), 8)
        case .bool: (boolCode, 8)
        }
        return DLDataType(code: code, bits: bits, lanes: 1)
    }

    /// Makes a tensor from a caller's DLPack tensor. `check` validates the type before ownership moves.
    /// Compact, aligned data is used in place and the deleter runs when the tensor is released;
    /// strided data is copied and the deleter runs at once. If this throws, the caller keeps ownership.
    static func tensor(adopting managed: UnsafeMutablePointer<DLManagedTensor>,
                       check: (TensorType) throws -> Void) throws -> Tensor {
        let dl = managed.pointee.dl_tensor
        guard dl.device.device_type == kDLCPU else {
            throw LatheError.invalid("DLPack tensor is on device type \(dl.device.device_type.rawValue); only CPU (1) is supported")
        }
        let dtype = try dtype(dl.dtype)
        guard dl.ndim >= 0 && dl.ndim <= 32 else { throw LatheError.invalid("DLPack tensor has ndim \(dl.ndim)") }
        let rank = Int(dl.ndim)
        if rank > 0 && dl.shape == nil { throw LatheError.invalid("DLPack tensor has a NULL shape") }
        let shape = (0..<rank).map { Int(dl.shape[$0]) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw LatheError.shape("DLPack tensor has negative dims \(shape)") }
        try check(TensorType(dtype, shape))
        let count = shape.reduce(1, *)
        if count > 0 && dl.data == nil { throw LatheError.invalid("DLPack tensor has NULL data") }
        let base = dl.data.map { $0 + Int(dl.byte_offset) }
        let compact = ShapeMath.strides(shape)
        let strides = dl.strides == nil ? compact : (0..<rank).map { Int(dl.strides[$0]) }
        let isCompact = (0..<rank).allSatisfy { shape[$0] <= 1 || strides[$0] == compact[$0] }
        let aligned = base.map { Int(bitPattern: $0) % dtype.size == 0 } ?? true

        if count > 0 && isCompact && aligned, let base {
            let owner = ManagedTensorRef(pointer: managed)
            let storage = Storage(borrowing: base, byteCount: count * dtype.size) { owner.release() }
            return try Tensor(dtype, shape: shape, storage: storage)
        }
        let copy = try Tensor(dtype, shape: shape)
        if count > 0, let base {
            let size = dtype.size
            for i in 0..<count {
                var r = i, offset = 0
                for d in stride(from: rank - 1, through: 0, by: -1) {
                    offset += (r % shape[d]) * strides[d]
                    r /= shape[d]
                }
                (copy.bytes + i * size).copyMemory(from: base + offset * size, byteCount: size)
            }
        }
        managed.pointee.deleter?(managed)
        return copy
    }

    /// Exports a tensor without copying; the returned tensor's deleter releases Lathe's reference.
    static func export(_ tensor: Tensor) -> UnsafeMutablePointer<DLManagedTensor> {
        let context = ExportContext(tensor)
        let managed = UnsafeMutablePointer<DLManagedTensor>.allocate(capacity: 1)
        let dl = DLTensor(data: tensor.bytes, device: DLDevice(device_type: kDLCPU, device_id: 0),
                          ndim: Int32(tensor.rank), dtype: dlType(tensor.dtype),
                          shape: context.shape.baseAddress, strides: nil, byte_offset: 0)
        managed.initialize(to: DLManagedTensor(dl_tensor: dl, manager_ctx: Unmanaged.passRetained(context).toOpaque(),
                                               deleter: { managed in
            guard let managed else { return }
            if let ctx = managed.pointee.manager_ctx { Unmanaged<ExportContext>.fromOpaque(ctx).release() }
            managed.deinitialize(count: 1)
            managed.deallocate()
        }))
        return managed
    }
}

/// A caller's `DLManagedTensor` whose deleter Lathe must call exactly once.
struct ManagedTensorRef: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<DLManagedTensor>
    func release() { pointer.pointee.deleter?(pointer) }
}

/// Keeps an exported tensor's storage and shape alive until the consumer calls the deleter.
final class ExportContext {
    let tensor: Tensor
    let shape: UnsafeMutableBufferPointer<Int64>

    init(_ tensor: Tensor) {
        self.tensor = tensor
        shape = .allocate(capacity: max(tensor.rank, 1))
        for (i, d) in tensor.shape.enumerated() { shape[i] = Int64(d) }
    }

    deinit { shape.deallocate() }
}
