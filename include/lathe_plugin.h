/*
 * lathe_plugin.h — custom ops for Lathe: C vtables, shared-library plugins, foreign C functions
 * bound through libffi, and the op registry listing. Included by lathe.h.
 *
 * Walk-through (a host program registering its own op):
 *
 *     static lathe_status my_infer(void *user_data, void *state,
 *                                  const lathe_tensor_type *inputs, size_t input_count,
 *                                  lathe_tensor_type *outputs, size_t output_count) {
 *         if (input_count != 1 || output_count != 1) {
 *             lathe_plugin_set_error("MyOp takes one input and one output");
 *             return LATHE_ERROR_INVALID_ARGUMENT;
 *         }
 *         outputs[0] = inputs[0];                        // same dtype and shape
 *         return LATHE_OK;
 *     }
 *     static lathe_status my_compute(void *user_data, void *state,
 *                                    const DLTensor *inputs, size_t input_count,
 *                                    DLTensor *outputs, size_t output_count) { ... }
 *
 *     lathe_custom_op op = {0};
 *     op.struct_size = sizeof op;
 *     op.abi_version = LATHE_ABI_VERSION;
 *     op.domain = "com.acme.vision";
 *     op.op_type = "MyOp";
 *     op.since_version = 1;
 *     op.infer = my_infer;
 *     op.compute = my_compute;
 *     if (lathe_register_op(&op) != LATHE_OK) fprintf(stderr, "%s\n", lathe_last_error());
 *
 * Models loaded afterwards bind nodes of (domain, op_type) whose model imports an opset of that
 * domain within [since_version, until_version] to this op.
 *
 * Lifetimes: Lathe copies the struct and its strings during lathe_register_op; the caller's
 * struct need not outlive the call. `user_data` and the callbacks must stay valid until Lathe
 * calls `release(user_data)`, which it does exactly once, when the op is unregistered AND no
 * loaded model still uses it. Without a `release` callback, they must
 * stay valid for the rest of the process.
 *
 * Threads: `infer`, `compute` and `backward` may be called from several threads at once (sessions
 * of one model share the node's state), so they must only read `user_data` and `state`.
 */
#ifndef LATHE_PLUGIN_H
#define LATHE_PLUGIN_H

#include "lathe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Custom ops from C
 * ------------------------------------------------------------------------------------------- */

/** Largest rank a custom op's input or output may have. */
#define LATHE_MAX_RANK 8

/** An element type and concrete shape, as shape inference sees it. */
typedef struct lathe_tensor_type {
    lathe_dtype dtype;              /**< A LATHE_DTYPE_* code. */
    int32_t rank;                   /**< Number of dimensions, 0...LATHE_MAX_RANK. */
    int64_t dims[LATHE_MAX_RANK];   /**< The first `rank` entries are the dimensions (>= 0). */
} lathe_tensor_type;

/** A node's attributes, readable with the lathe_attributes_get_* functions during create_state. */
typedef struct lathe_attributes lathe_attributes;

/**
 * Output types from input types; called when a session plans for new input shapes.
 * An omitted optional input (an empty input name in the ONNX node) arrives with dtype 0 and rank
 * -1; omitted outputs are refused when the model loads.
 * Lathe fills `outputs` with dtype 0 and rank -1 before the call; the op must set every output.
 * Lathe then checks what it wrote (known dtype, rank 0...LATHE_MAX_RANK, dims >= 0, size not
 * overflowing, agreement with the shape the model declares) and allocates outputs accordingly.
 */
typedef lathe_status (*lathe_op_infer_fn)(void *user_data, void *state,
                                          const lathe_tensor_type *inputs, size_t input_count,
                                          lathe_tensor_type *outputs, size_t output_count);

/**
 * Builds a node's state from its attributes when a model is loaded (optional; state is NULL
 * without it). Validate the attributes and the numbers of inputs and outputs here: a non-OK
 * status makes the model load fail naming the node. `attributes` is valid during the call only.
 */
typedef lathe_status (*lathe_op_create_state_fn)(void *user_data, const lathe_attributes *attributes,
                                                 size_t input_count, size_t output_count,
                                                 void **out_state);

/**
 * Computes outputs from inputs. Tensors are compact row-major CPU tensors (strides NULL); the
 * outputs are preallocated by Lathe with the inferred types, so the op writes exactly
 * `product(outputs[i].shape)` elements into `outputs[i].data`. An omitted optional input is a
 * DLTensor with data NULL, ndim 0 and an all-zero dtype. All pointers are valid during the call
 * only.
 */
typedef lathe_status (*lathe_op_compute_fn)(void *user_data, void *state,
                                            const DLTensor *inputs, size_t input_count,
                                            DLTensor *outputs, size_t output_count);

/**
 * Back-propagation through the op (optional): adds dLoss/dInput to the input gradients, given
 * dLoss/dOutput. Used when a graph holding the op is differentiated (training,
 * lathe_model_gradients); inference never calls it. Without it, differentiating through the op
 * fails with LATHE_ERROR_UNSUPPORTED_OP naming the op and node.
 *
 * - `inputs[0..input_count)` and `outputs[0..output_count)` are the node's tensors of the
 *   forward pass, as compute saw and wrote them (read-only).
 * - `output_grads[i]` is dLoss/d`outputs[i]`: float32, shaped like `outputs[i]`, always present
 *   (all zeros when no gradient flows back through that output). Read-only.
 * - `input_grads[i]` is dLoss/d`inputs[i]`: float32, shaped like `inputs[i]`. Its `data` is NULL
 *   when no gradient is wanted for that input (a constant, an integer input): skip it.
 *   **Accumulate, do not overwrite**: the buffers are zeroed once per backward pass for the whole
 *   graph, and each consumer of a value adds its share, so they may already hold the
 *   contributions of other nodes reading the same value. Write `dx[i] += ...`, never `dx[i] = ...`.
 *
 * All tensors are compact row-major CPU tensors (strides NULL), valid during the call only. On
 * failure, call lathe_plugin_set_error and return a non-OK status; the caller then gets
 * LATHE_ERROR_PLUGIN with a message naming the node. May be called from several threads at once
 * (one per gradient computation), like compute.
 */
typedef lathe_status (*lathe_op_backward_fn)(void *user_data, void *state,
                                             const DLTensor *inputs, size_t input_count,
                                             const DLTensor *outputs, size_t output_count,
                                             const DLTensor *output_grads, DLTensor *input_grads);

/** Frees a node's state when the last model using the node is freed (optional). */
typedef void (*lathe_op_destroy_state_fn)(void *user_data, void *state);

/** Called once when Lathe no longer uses the op's user_data or callbacks (optional). */
typedef void (*lathe_op_release_fn)(void *user_data);

/**
 * A custom op: what lathe_register_op copies. Set `struct_size = sizeof(lathe_custom_op)` and
 * `abi_version = LATHE_ABI_VERSION`. The struct only ever grows at the end; Lathe reads only the
 * fields that lie within `struct_size`, so a plugin built against an older header keeps working.
 */
typedef struct lathe_custom_op {
    uint32_t struct_size;           /**< sizeof(lathe_custom_op) as the plugin was compiled. */
    uint32_t abi_version;           /**< LATHE_ABI_VERSION as the plugin was compiled. */
    const char *domain;             /**< e.g. "com.acme.vision"; "" or "ai.onnx" is ONNX's own. */
    const char *op_type;            /**< e.g. "SobelEdges"; not empty. */
    int32_t since_version;          /**< First opset version of `domain` served (>= 1). */
    int32_t until_version;          /**< Last opset version served, inclusive; 0 = no limit. */
    const char *origin;             /**< Shown in the registry listing; NULL = "c" (or the
                                         plugin's path when registered from lathe_plugin_init). */
    void *user_data;                /**< Passed to every callback. */
    lathe_op_infer_fn infer;                 /**< Required. */
    lathe_op_create_state_fn create_state;   /**< Optional. */
    lathe_op_compute_fn compute;             /**< Required. */
    lathe_op_backward_fn backward;           /**< Optional. */
    lathe_op_destroy_state_fn destroy_state; /**< Optional. */
    lathe_op_release_fn release;             /**< Optional. */
} lathe_custom_op;

/**
 * Adds a custom op to the process-wide op table. Thread-safe.
 * @return LATHE_ERROR_PLUGIN if abi_version differs from the library's (the message names both
 *         numbers); LATHE_ERROR_INVALID_ARGUMENT for a missing required field or an op whose
 *         opset range overlaps an existing entry (the message names that entry's origin).
 *         On failure Lathe keeps nothing and never calls the op's callbacks, `release` included.
 */
lathe_status lathe_register_op(const lathe_custom_op *op);

/**
 * Removes every entry for (domain, op_type), built-in or custom. Models already loaded keep
 * working; the op's `release` runs when the last of them is freed.
 * @return LATHE_ERROR_INVALID_ARGUMENT if nothing is registered under that name.
 */
lathe_status lathe_unregister_op(const char *domain, const char *op_type);

/**
 * Called by an op's callback before it returns a non-OK status: stores `message` (copied) for
 * the calling thread. Lathe reads it after the callback returns, and the caller of the Lathe
 * function then sees status LATHE_ERROR_PLUGIN and a lathe_last_error() naming the node and
 * carrying this message.
 */
void lathe_plugin_set_error(const char *message);

/**
 * Typed attribute accessors, valid on the `attributes` given to create_state during that call.
 * Each returns LATHE_ERROR_INVALID_ARGUMENT when the attribute is absent or of another type.
 * Returned pointers live as long as `attributes`.
 */
lathe_status lathe_attributes_get_int(const lathe_attributes *attributes, const char *name,
                                      int64_t *out_value);
/** A float attribute (an int attribute is converted). */
lathe_status lathe_attributes_get_float(const lathe_attributes *attributes, const char *name,
                                        float *out_value);
/** A string attribute, NUL-terminated. */
lathe_status lathe_attributes_get_string(const lathe_attributes *attributes, const char *name,
                                         const char **out_value);
/** A list of ints. */
lathe_status lathe_attributes_get_ints(const lathe_attributes *attributes, const char *name,
                                       const int64_t **out_values, size_t *out_count);
/** A list of floats. */
lathe_status lathe_attributes_get_floats(const lathe_attributes *attributes, const char *name,
                                         const float **out_values, size_t *out_count);
/** A tensor attribute as a compact CPU DLTensor. */
lathe_status lathe_attributes_get_tensor(const lathe_attributes *attributes, const char *name,
                                         const DLTensor **out_tensor);

/* ---------------------------------------------------------------------------------------------
 * Shared-library plugins
 * ------------------------------------------------------------------------------------------- */

/** The symbol lathe_load_plugin looks up in a plugin library. */
#define LATHE_PLUGIN_INIT_SYMBOL "lathe_plugin_init"

/**
 * The init function a plugin library exports under LATHE_PLUGIN_INIT_SYMBOL. It checks
 * `host_abi_version` and calls lathe_register_op for each of its ops (their origin defaults to
 * the library's path). A plugin library links against liblathe (-llathe).
 */
typedef lathe_status (*lathe_plugin_init_fn)(uint32_t host_abi_version);

/**
 * Loads a plugin library (dlopen with RTLD_NOW | RTLD_LOCAL) and calls its lathe_plugin_init.
 * If anything fails, the ops the init registered are unregistered and the library is closed.
 * The library stays loaded while any op it registered is in use.
 * @return LATHE_ERROR_IO if the library cannot be opened (the message carries dlerror()),
 *         LATHE_ERROR_PLUGIN if the init symbol is missing or the init fails (naming the path,
 *         the symbol and the init's status and message).
 */
lathe_status lathe_load_plugin(const char *path);

/* ---------------------------------------------------------------------------------------------
 * Foreign kernels: an unmodified C function bound through libffi
 * ------------------------------------------------------------------------------------------- */

/**
 * Registers an op that calls `symbol` from the library at `library_path` on the node's tensors.
 *
 * `signature` declares the function's C prototype in terms of what the node provides:
 *
 *     signature  := return "(" [ param { "," param } ] ")"
 *     return     := "void" | "int"             (int: nonzero means failure)
 *     param      := "in" K [ ":" TYPE ]        const T *   data of input K
 *                 | "out" K { ":" TYPE | ":in" J }
 *                                              T *         data of output K, whose shape is that
 *                                                          of input J (default 0)
 *                 | "count" K                  size_t      element count of input K
 *                 | "count64" K                int64_t     element count of input K
 *                 | "int" NAME                 int         attribute NAME (an int)
 *                 | "int64" NAME               int64_t     attribute NAME (an int)
 *                 | "float" NAME               float       attribute NAME (float or int)
 *                 | "double" NAME              double      attribute NAME (float or int)
 *     TYPE       := "f32" | "f64" | "i32" | "i64" | "u8" | "i8"
 *                   (float, double, int32_t, int64_t, uint8_t, int8_t; default f32)
 *
 * e.g. "void(in0, out0, count0, float alpha)" for
 * `void dsp_highpass(const float *in, float *out, size_t n, float alpha)`, or
 * "int(in0:f64, out0:u8:in0, count0)" for `int f(const double *x, uint8_t *y, size_t n)`.
 * Each suffix of an outK is given at most once, in either order. Spaces are optional except
 * between a type and an attribute name. The node must have exactly as many inputs as the largest
 * K or J referenced plus one (likewise outputs); each input passed as data must have the
 * declared element type (inputs passed only as counts may have any), and every named attribute
 * must be present with a numeric value; all are checked when the model is loaded or planned.
 * @return LATHE_ERROR_IO if the library cannot be opened, LATHE_ERROR_INVALID_ARGUMENT for a
 *         missing symbol, a malformed signature or an overlapping registration.
 */
lathe_status lathe_register_foreign_op(const char *domain, const char *op_type,
                                       int32_t since_version, int32_t until_version,
                                       const char *library_path, const char *symbol,
                                       const char *signature);

/* ---------------------------------------------------------------------------------------------
 * Gradients through a loaded model (checking a custom op's backward; custom training loops)
 * ------------------------------------------------------------------------------------------- */

/**
 * Back-propagates through a loaded model: runs it on `inputs`, then writes, for each value in
 * `names`, dLoss/dValue = sum over outputs k of output_grads[k] * d(output k)/dValue (a
 * vector-Jacobian product). The function differentiated is the one lathe_session_run computes
 * (inference mode: Dropout passes through, BatchNormalization uses its running statistics).
 * Gradients come from the op table: built-in ops' and custom ops' `backward`. The model is not
 * changed; weights to be trained can be graph inputs, updated by the caller between calls.
 * Thread-safe (each call builds its own backward pass, which is why it suits gradient checks and
 * small custom loops rather than fast training).
 *
 * @param inputs        one compact row-major CPU tensor per model input, in model order; borrowed
 *                      for the call only.
 * @param output_grads  one float32 tensor per model output, in model order, shaped like that
 *                      output for these inputs; borrowed for the call only.
 * @param names         `name_count` names of float32 graph inputs or initializers.
 * @param out_grads     receives `name_count` new float32 DLPack tensors, each shaped like its value.
 *                      The caller owns them and calls each one's deleter exactly once. On failure
 *                      nothing is written.
 * @return LATHE_ERROR_INVALID_ARGUMENT for a wrong count or an unknown name,
 *         LATHE_ERROR_SHAPE_MISMATCH / LATHE_ERROR_DTYPE_MISMATCH for a tensor that does not fit,
 *         LATHE_ERROR_UNSUPPORTED_OP when a differentiated value flows through an op without a
 *         backward (e.g. a foreign kernel; the message names the op and node),
 *         LATHE_ERROR_PLUGIN when a custom op's backward fails (naming the node).
 */
lathe_status lathe_model_gradients(const lathe_model *model,
                                   const DLTensor *inputs, size_t input_count,
                                   const DLTensor *output_grads, size_t output_count,
                                   const char *const *names, size_t name_count,
                                   DLManagedTensor **out_grads);

/* ---------------------------------------------------------------------------------------------
 * The op registry: built-in and custom ops alike
 * ------------------------------------------------------------------------------------------- */

/**
 * Number of entries in the op table, and a snapshot of the table for lathe_registry_get.
 */
lathe_status lathe_registry_count(size_t *out_count);

/**
 * Entry `index` (0 <= index < count) of the table, sorted by domain, op type and opset.
 * Any out-parameter may be NULL. `until` is INT32_MAX for "no limit"; domain "" is ONNX's own.
 * The strings are owned by Lathe and stay valid until the table next changes (a registration,
 * unregistration or plugin load on any thread) and, after that, until the next call of
 * lathe_registry_count or lathe_registry_get, which refreshes the snapshot.
 * @return LATHE_ERROR_INVALID_ARGUMENT for an index out of range.
 */
lathe_status lathe_registry_get(size_t index, const char **out_domain, const char **out_op_type,
                                int32_t *out_since, int32_t *out_until, const char **out_origin);

#ifdef __cplusplus
}
#endif

#endif /* LATHE_PLUGIN_H */
