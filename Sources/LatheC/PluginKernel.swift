import CLathe
import CLatheShims
import Lathe

/// A custom op registered from C: a copy of its `lathe_custom_op`. Kernels built from it hold a
/// reference, so it outlives its registry entry while any model uses it; the last reference
/// going away calls the op's `release(user_data)`.
final class CustomOp: @unchecked Sendable {
    let domain: String
    let opType: String
    let userData: UnsafeMutableRawPointer?
    let infer: lathe_op_infer_fn
    let createState: lathe_op_create_state_fn?
    let compute: lathe_op_compute_fn
    /// Back-propagation, bridged to the gradient engine by `CustomOpGradient`; nil: not differentiable.
    let backward: lathe_op_backward_fn?
    let destroyState: lathe_op_destroy_state_fn?
    /// Set to nil when the registration fails, so nothing of a refused op is ever called.
    var release: lathe_op_release_fn?
    /// The plugin library the callbacks live in, kept open while this op exists.
    let library: PluginLibrary?

    /// Smallest `struct_size` accepted: every field up to and including `compute`.
    static let minimumStructSize = MemoryLayout<lathe_custom_op>.offset(of: \lathe_custom_op.compute)!
        + MemoryLayout<lathe_op_compute_fn?>.size

    /// Copies a caller's struct, reading only the bytes within its `struct_size`.
    /// - Throws: `.pluginFailure` on an ABI mismatch (naming both versions), `.invalidArgument`
    ///   for a too-small struct or missing required fields.
    init(copying pointer: UnsafePointer<lathe_custom_op>, library: PluginLibrary?) throws {
        let raw = UnsafeRawPointer(pointer)
        let size = Int(raw.load(as: UInt32.self))
        let abi = raw.load(fromByteOffset: 4, as: UInt32.self)
        guard abi == UInt32(LATHE_ABI_VERSION) else {
            throw LatheError(.pluginFailure,
                             "custom op was built for Lathe ABI version \(abi), but this library implements ABI version \(LATHE_ABI_VERSION)")
        }
        guard size >= Self.minimumStructSize else {
            throw LatheError.invalid("lathe_custom_op.struct_size is \(size); it must be at least \(Self.minimumStructSize)")
        }
        var op = lathe_custom_op()
        withUnsafeMutableBytes(of: &op) { bytes in
            bytes.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(size, MemoryLayout<lathe_custom_op>.size)))
        }
        guard let domain = op.domain else { throw LatheError.invalid("lathe_custom_op.domain is NULL") }
        guard let opType = op.op_type, opType.pointee != 0 else { throw LatheError.invalid("lathe_custom_op.op_type is NULL or empty") }
        self.domain = OpRegistry.normalize(domain: String(cString: domain))
        self.opType = String(cString: opType)
        guard let infer = op.infer else { throw LatheError.invalid("custom op '\(self.opType)' has no infer callback") }
        guard let compute = op.compute else { throw LatheError.invalid("custom op '\(self.opType)' has no compute callback") }
        self.userData = op.user_data
        self.infer = infer
        self.compute = compute
        self.createState = op.create_state
        self.backward = op.backward
        self.destroyState = op.destroy_state
        self.release = op.release
        self.library = library
    }

    deinit { release?(userData) }

    /// "op 'Sobel' (domain 'com.acme')", for messages.
    var label: String { "plugin op '\(opType)' (domain '\(domain)')" }

    /// Turns a callback's non-OK status into `.pluginFailure` carrying the message it set.
    func check(_ status: lathe_status, _ callback: String) throws {
        guard status != LATHE_OK else { return }
        let message = lts_plugin_error().map { String(cString: $0) } ?? "no message given"
        lts_set_plugin_error(nil)
        let name = String(cString: lathe_status_name(status))
        throw LatheError(.pluginFailure, "\(label) \(callback) failed (\(name)): \(message)")
    }

    /// Forgets a message a callback set without failing, so it cannot be mistaken for a later one.
    func clearPendingError() {
        if lts_plugin_error() != nil { lts_set_plugin_error(nil) }
    }

    /// The registry entry whose kernels (and, with a `backward`, gradients) call this op.
    func entry(since: Int, until: Int, origin: String) -> OpEntry {
        let makeGradient: (@Sendable (NodeContext) throws -> any GradientKernel)? = backward == nil ? nil : {
            @Sendable [self] (context: NodeContext) throws -> any GradientKernel in
            try CustomOpGradient(kernel: CustomOpKernel(op: self, context: context))
        }
        return OpEntry(domain: domain, opType: opType, since: since, until: until, origin: origin,
                       makeKernel: { [self] context in try CustomOpKernel(op: self, context: context) },
                       makeGradient: makeGradient)
    }
}

/// A node served by a C custom op: the op plus the node's state from `create_state`.
final class CustomOpKernel: Kernel, @unchecked Sendable {
    let op: CustomOp
    let state: UnsafeMutableRawPointer?
    let inputCount: Int
    let outputCount: Int
    /// What the model declares for each output, checked against the op's inference.
    let declared: [ValueInfo?]

    init(op: CustomOp, context: NodeContext) throws {
        guard context.outputPresent.allSatisfy({ $0 }) else {
            throw LatheError.invalid("\(context.label): \(op.label) does not take omitted outputs")
        }
        self.op = op
        let inputCount = context.inputPresent.count
        let outputCount = context.outputPresent.count
        self.inputCount = inputCount
        self.outputCount = outputCount
        declared = context.declaredOutputs
        var state: UnsafeMutableRawPointer? = nil
        if let create = op.createState {
            let attributes = AttributesHandle(context.attributes)
            let handle = OpaquePointer(Unmanaged.passUnretained(attributes).toOpaque())
            op.clearPendingError()
            let status = withExtendedLifetime(attributes) {
                create(op.userData, handle, inputCount, outputCount, &state)
            }
            do { try op.check(status, "create_state") } catch let error as LatheError {
                throw LatheError(error.status, "\(context.label): \(error.message)")
            }
        }
        self.state = state
    }

    deinit { op.destroyState?(op.userData, state) }

    func infer(_ inputs: [TensorType?], constants: [Tensor?]) throws -> [TensorType?] {
        var types = [lathe_tensor_type](repeating: lathe_tensor_type(), count: inputCount)
        for (i, input) in inputs.enumerated() {
            guard let input else {          // an omitted optional input: dtype 0, rank -1
                types[i].rank = -1
                continue
            }
            guard input.shape.count <= Int(LATHE_MAX_RANK) else {
                throw LatheError.shape("input \(i) of \(op.label) has rank \(input.shape.count); custom ops take at most \(LATHE_MAX_RANK)")
            }
            types[i].dtype = input.dtype.rawValue
            types[i].rank = Int32(input.shape.count)
            withUnsafeMutableBytes(of: &types[i].dims) { dims in
                for (d, size) in input.shape.enumerated() { dims.storeBytes(of: Int64(size), toByteOffset: d * 8, as: Int64.self) }
            }
        }
        var outputs = [lathe_tensor_type](repeating: lathe_tensor_type(), count: outputCount)
        for i in outputs.indices { outputs[i].rank = -1 }
        op.clearPendingError()
        let status = types.withUnsafeBufferPointer { ins in
            outputs.withUnsafeMutableBufferPointer { outs in
                op.infer(op.userData, state, ins.baseAddress, ins.count, outs.baseAddress, outs.count)
            }
        }
        try op.check(status, "infer")
        return try outputs.enumerated().map { try validated($1, slot: $0) }
    }

    /// The type an op's inference wrote for output `slot`, after checking it is one Lathe can allocate
    /// and that it fits what the model declares.
    private func validated(_ t: lathe_tensor_type, slot: Int) throws -> TensorType {
        guard let dtype = DType(rawValue: t.dtype) else {
            throw LatheError(.pluginFailure, "\(op.label) inferred unknown dtype code \(t.dtype) for output \(slot)")
        }
        guard t.rank >= 0 && t.rank <= Int32(LATHE_MAX_RANK) else {
            throw LatheError(.pluginFailure, "\(op.label) inferred rank \(t.rank) for output \(slot) (must be 0...\(LATHE_MAX_RANK))")
        }
        let shape = withUnsafeBytes(of: t.dims) { dims in
            (0..<Int(t.rank)).map { Int(dims.load(fromByteOffset: $0 * 8, as: Int64.self)) }
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw LatheError(.pluginFailure, "\(op.label) inferred negative dimensions \(shape) for output \(slot)")
        }
        var bytes = dtype.size
        for d in shape {
            let product = bytes.multipliedReportingOverflow(by: d)
            guard !product.overflow && product.partialValue < (1 << 40) else {
                throw LatheError(.pluginFailure, "\(op.label) inferred output \(slot) of shape \(shape), which is too large")
            }
            bytes = product.partialValue
        }
        if slot < declared.count, let info = declared[slot] {
            guard info.dtype == dtype && info.accepts(shape) else {
                let dims = info.dims.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "[?]"
                throw LatheError.shape("\(op.label) inferred \(dtype)\(shape) for output '\(info.name)', but the model declares \(info.dtype)\(dims)")
            }
        }
        return TensorType(dtype, shape)
    }

    func compute(_ inputs: [Tensor?], _ outputs: [Tensor?]) throws {
        var rankSum = 0
        for t in inputs { rankSum += t?.rank ?? 0 }
        for t in outputs { rankSum += t?.rank ?? 0 }
        let status = try withUnsafeTemporaryAllocation(of: Int64.self, capacity: max(rankSum, 1)) { dims in
            try withUnsafeTemporaryAllocation(of: DLTensor.self, capacity: max(inputCount + outputCount, 1)) { tensors in
                var nextDim = 0
                func describe(_ tensor: Tensor?, at index: Int) throws {
                    guard let tensor else {     // an omitted optional input: data NULL, ndim 0
                        (tensors.baseAddress! + index).initialize(to: DLTensor(
                            data: nil, device: DLDevice(device_type: kDLCPU, device_id: 0), ndim: 0,
                            dtype: DLDataType(code: 0, bits: 0, lanes: 0), shape: nil, strides: nil, byte_offset: 0))
                        return
                    }
                    let shape = dims.baseAddress! + nextDim
                    for (d, size) in tensor.shape.enumerated() { shape[d] = Int64(size) }
                    nextDim += tensor.rank
                    (tensors.baseAddress! + index).initialize(to: DLTensor(
                        data: tensor.bytes, device: DLDevice(device_type: kDLCPU, device_id: 0),
                        ndim: Int32(tensor.rank), dtype: DLPackBridge.dlType(tensor.dtype),
                        shape: shape, strides: nil, byte_offset: 0))
                }
                for (i, t) in inputs.enumerated() { try describe(t, at: i) }
                for (i, t) in outputs.enumerated() { try describe(t, at: inputCount + i) }
                op.clearPendingError()
                return op.compute(op.userData, state, UnsafePointer(tensors.baseAddress), inputCount,
                                  tensors.baseAddress! + inputCount, outputCount)
            }
        }
        try op.check(status, "compute")
    }
}

/// A node's backward served by a C op's `backward` callback, with a node state of its own.
///
/// The engine hands over gradient buffers to accumulate into (zeroed once per pass); they go to the
/// callback as they are, so it adds its share (`+=`) as `lathe_op_backward_fn` documents. An output
/// without a gradient gets a zero tensor; an input without one gets a DLTensor whose data is NULL.
final class CustomOpGradient: GradientKernel, @unchecked Sendable {
    let kernel: CustomOpKernel

    init(kernel: CustomOpKernel) { self.kernel = kernel }

    func backward(_ pass: BackwardPass) throws {
        let op = kernel.op
        guard let callback = op.backward else { throw LatheError(.internal, "\(op.label) has no backward") }
        var views: [DLView] = []
        for tensor in pass.inputs {
            views.append(tensor.map { DLView($0) } ?? .absent)
        }
        var outputs: [Tensor] = []
        for (slot, tensor) in pass.outputs.enumerated() {
            guard let tensor else { throw LatheError(.internal, "output \(slot) of \(op.label) is absent") }
            outputs.append(tensor)
            views.append(DLView(tensor))
        }
        for (slot, output) in outputs.enumerated() {
            let gradient = slot < pass.outputGradients.count ? pass.outputGradients[slot] : nil
            views.append(DLView(try gradient ?? Tensor(.float32, shape: output.shape)))
        }
        for (slot, tensor) in pass.inputs.enumerated() {
            let gradient = slot < pass.inputGradients.count ? pass.inputGradients[slot] : nil
            views.append(gradient.map { DLView($0) } ?? tensor.map { DLView(data: nil, dtype: .float32, shape: $0.shape) } ?? .absent)
        }
        let (n, m) = (pass.inputs.count, outputs.count)
        op.clearPendingError()
        let status = withDLTensors(views) { t in
            callback(op.userData, kernel.state, t, n, t + n, m, t + n + m, t + n + 2 * m)
        }
        try op.check(status, "backward")
    }
}

/// Where a DLTensor points: data (nil allowed), element type and shape.
struct DLView {
    let data: UnsafeMutableRawPointer?
    let dtype: DType
    let shape: [Int]
    /// Keeps the viewed tensor's storage alive while the view is in use.
    let tensor: Tensor?
    /// Whether this stands for an omitted optional input (data NULL, ndim 0, dtype all zero).
    var isAbsent = false

    /// An omitted optional input.
    static var absent: DLView {
        var view = DLView(data: nil, dtype: .float32, shape: [])
        view.isAbsent = true
        return view
    }

    init(_ tensor: Tensor) {
        data = tensor.bytes
        dtype = tensor.dtype
        shape = tensor.shape
        self.tensor = tensor
    }

    init(data: UnsafeMutableRawPointer?, dtype: DType, shape: [Int]) {
        self.data = data
        self.dtype = dtype
        self.shape = shape
        tensor = nil
    }
}

/// Calls `body` with compact CPU DLTensors for `views`, laid out one after another; they (and their
/// shape arrays) are valid during the call only.
func withDLTensors<R>(_ views: [DLView], _ body: (UnsafeMutablePointer<DLTensor>) throws -> R) rethrows -> R {
    let dims = views.flatMap { $0.shape.map { Int64($0) } }
    return try dims.withUnsafeBufferPointer { dims in
        try withUnsafeTemporaryAllocation(of: DLTensor.self, capacity: max(views.count, 1)) { tensors in
            var next = 0
            for (i, view) in views.enumerated() {
                let shape = UnsafeMutablePointer(mutating: dims.baseAddress.map { $0 + next })
                next += view.shape.count
                (tensors.baseAddress! + i).initialize(to: DLTensor(
                    data: view.data, device: DLDevice(device_type: kDLCPU, device_id: 0),
                    ndim: Int32(view.shape.count),
                    dtype: view.isAbsent ? DLDataType(code: 0, bits: 0, lanes: 0) : DLPackBridge.dlType(view.dtype),
                    shape: view.shape.isEmpty ? nil : shape, strides: nil, byte_offset: 0))
            }
            return try withExtendedLifetime(views) { try body(tensors.baseAddress!) }
        }
    }
}

/// What `lathe_attributes*` points at during `create_state`: the node's attributes plus the C
/// copies handed out, freed when the call is over.
final class AttributesHandle {
    let attributes: Attributes
    private var allocations: [UnsafeMutableRawPointer] = []
    /// Tensors handed out as DLTensors, kept alive with the handle.
    private var tensors: [Tensor] = []

    init(_ attributes: Attributes) { self.attributes = attributes }

    deinit { for p in allocations { p.deallocate() } }

    /// A copy of `values` that lives as long as the handle.
    func keep<T>(_ values: [T]) -> UnsafePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
        p.initialize(from: values, count: values.count)
        allocations.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    /// A DLTensor over `tensor`'s elements that lives as long as the handle.
    func keep(_ tensor: Tensor) -> UnsafePointer<DLTensor> {
        tensors.append(tensor)
        let shape = UnsafeMutablePointer(mutating: keep(tensor.shape.map { Int64($0) }))
        let dl = DLTensor(data: tensor.bytes, device: DLDevice(device_type: kDLCPU, device_id: 0),
                          ndim: Int32(tensor.rank), dtype: DLPackBridge.dlType(tensor.dtype),
                          shape: shape, strides: nil, byte_offset: 0)
        return keep([dl])
    }

    /// The handle behind an opaque pointer, and the attribute `name`, which must be present.
    static func lookup(_ pointer: OpaquePointer?, _ name: UnsafePointer<CChar>?) throws -> (AttributesHandle, String) {
        let handle = Unmanaged<AttributesHandle>.fromOpaque(UnsafeRawPointer(try required(pointer, "attributes"))).takeUnretainedValue()
        let name = try string(name, "name")
        guard handle.attributes.has(name) else {
            throw LatheError.invalid("\(handle.attributes.owner): attribute '\(name)' is absent")
        }
        return (handle, name)
    }
}
