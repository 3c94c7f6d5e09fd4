import LatheCore
import LatheOps

// # Training on the shared IR
//
// A model being trained is an ordinary `Graph` — the same IR an ONNX file imports to and exports from.
// Trainable weights are the graph's initializers; training updates their storage in place.
//
// **Gradients live in the op table.** `OpEntry` carries an optional `makeGradient` factory beside
// `makeKernel`. A plugin that wants its op trainable passes one when it registers; the built-in ops
// register without one (LatheOps knows nothing of training) and `TrainingOps.register(into:)` attaches
// theirs with `OpRegistry.setGradient(opType:_:)`. Nothing in the trainer knows built-in from plugin.
// A `GradientKernel` is built per node from the same `NodeContext` as its forward kernel, so attributes
// are read once and the two can never disagree. Each family's gradients are in `Gradients/`.
//
// **Conventions** (those of llm.c): gradients are float32 with the shape of their value; the engine
// zeroes every gradient buffer, then each node *adds* its contribution to its inputs' gradients, so a
// value read by several nodes gets the sum. Ops that behave differently in training (Dropout) implement
// `trainingForward`, which may save tensors for their backward; the others reuse the inference kernel.
//
// **Engine.** `GradientEngine` sorts the graph, binds kernels and gradients, and, per input-shape
// signature, allocates every value and gradient buffer once, specialises each kernel for those shapes (as
// the inference planner does) and gives them one scratch workspace; later steps with the same shapes reuse
// them. Gradient kernels keep their saved tensors and scratch (`ReusedTensors`) and shape-derived tables
// (`ShapeCache`), and `fit` keeps its batch slices and weight backups, so a steady-state step allocates
// nothing (bindings/python/tests/test_train_alloc_free.py). Constant sub-graphs (shape arithmetic) are
// folded as in inference. A Conv whose value only a Relu reads runs fused with it (`fusingRelus`): the
// Relu is applied in the convolution's output loop and its gradient is a mask the Conv backward applies
// as it reads dY, so the pair makes no separate pass and keeps no pre-activation buffer. The Conv backward
// runs over chunks of samples with their gradients side by side, so its GEMMs stay long on small maps.
//
// **Losses** are computed outside the graph, in Swift, from the model output (`Loss`). When the
// model ends in Softmax (Sigmoid) and the loss is categorical (binary) cross-entropy from probabilities,
// the trainer fuses them: the loss is computed from the activation's input (the logits) with
// log-sum-exp, and back-propagation starts at the logits with `p − y`, never dividing by a probability.
//
// **Keras layer.** `Sequential` builds the graph from layers. Users give channels-last tensors
// (`[N, H, W, C]`, as in Keras); inside, convolution and pooling run channels-first (`[N, C, H, W]`, ONNX's
// layout): the graph starts with a Transpose to NCHW and `Flatten` transposes back to NHWC order first,
// so a flattened feature vector (and hence every Dense kernel) means what it means in Keras. Kernels are
// stored in ONNX layout: Dense `[in, out]` (as Keras), Conv2D `[filters, C, kh, kw]` (Keras: `[kh, kw, C, filters]`).
// Sequences are `[N, T, F]` as in Keras; LSTM/GRU run time-major between Transposes (`SequenceLayers.swift`).
//
// **Reproducibility.** One `SeededGenerator` (SplitMix64) seeded from the model's seed initializes the
// weights; `fit`'s seed drives shuffling and dropout masks. Single-threaded runs are bit-for-bit repeatable.

/// Registers the gradients of the built-in ops into an op table that already holds the built-ins.
public enum TrainingOps {
    /// Attaches a gradient to every built-in op that has one (see the families in `Gradients/`).
    /// - Throws: `.invalidArgument` when a built-in op is not registered in `registry`.
    public static func register(into registry: OpRegistry) throws {
        try ElementwiseGradients.register(into: registry)
        try ActivationGradients.register(into: registry)
        try SoftmaxGradients.register(into: registry)
        try LinearGradients.register(into: registry)
        try ShapeGradients.register(into: registry)
        try ConvGradients.register(into: registry)
        try ConvTransposeGradients.register(into: registry)
        try PoolingGradients.register(into: registry)
        try RecurrentGradients.register(into: registry)
        try NormalizationGradients.register(into: registry)
    }

    /// A fresh op table with the built-in ops and their gradients.
    public static func makeRegistry() throws -> OpRegistry {
        let registry = OpRegistry()
        try BuiltinOps.register(into: registry)
        try register(into: registry)
        return registry
    }

    /// `OpRegistry.shared` with the built-ins and their gradients, registered once per process.
    public static var sharedRegistry: OpRegistry {
        _ = registeredOnce
        return .shared
    }

    private static let registeredOnce: Bool = {
        BuiltinOps.ensureRegistered()
        do { try register(into: .shared) } catch { fatalError("built-in gradient registration failed: \(error)") }
        return true
    }()
}
