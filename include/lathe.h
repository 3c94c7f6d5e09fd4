/*
 * lathe.h — the C ABI of Lathe, a deep-learning runtime for the factory floor.
 *
 * Walk-through:
 *
 *     lathe_model *model = NULL;
 *     if (lathe_model_load_file("defect_cnn.onnx", &model) != LATHE_OK) {
 *         fprintf(stderr, "%s\n", lathe_last_error());
 *         return 1;
 *     }
 *     lathe_session *session = NULL;
 *     lathe_session_create(model, &session);
 *     int64_t shape[4] = {1, 1, 28, 28};
 *     lathe_session_set_input(session, "image", LATHE_DTYPE_FLOAT32, shape, 4,
 *                             pixels, sizeof pixels);
 *     lathe_session_run(session);
 *     float probs[10];
 *     lathe_session_copy_output(session, "probs", probs, sizeof probs);
 *     lathe_session_free(session);
 *     lathe_model_free(model);
 *
 * Conventions:
 *  - Every fallible function returns a lathe_status (LATHE_OK = 0) and writes results through
 *    out-parameters, which come last. On failure, out-parameters are left unchanged and
 *    lathe_last_error() describes the problem.
 *  - Every *_free function accepts NULL.
 *  - A lathe_model is immutable once loaded and may be shared by any number of threads. A
 *    lathe_session must be used by one thread at a time. Registering ops is thread-safe.
 *  - Lathe never keeps a pointer to caller memory beyond the call, except where a function
 *    says so (DLPack inputs).
 *  - Strings returned by Lathe are NUL-terminated UTF-8 and owned by Lathe; each function
 *    states how long they stay valid.
 */
#ifndef LATHE_H
#define LATHE_H

#include <stddef.h>
#include <stdint.h>
#include <dlpack/dlpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------------------------- */

/** ABI version of this header. Incremented on any incompatible change. */
#define LATHE_ABI_VERSION 1

/** The library's semantic version, e.g. "0.1.0". Static storage; never free it. */
const char *lathe_version(void);

/** The ABI version the loaded library implements; compare with LATHE_ABI_VERSION. */
uint32_t lathe_abi_version(void);

/* ---------------------------------------------------------------------------------------------
 * Status codes and errors. New codes may be added in later versions; treat unknown ones as errors.
 * ------------------------------------------------------------------------------------------- */

/** The result of every fallible call: LATHE_OK or one of the codes below. */
typedef int32_t lathe_status;

#define LATHE_OK                    0  /**< Success. */
#define LATHE_ERROR_INVALID_ARGUMENT 1 /**< A NULL pointer, an unknown name, a bad attribute, ... */
#define LATHE_ERROR_PARSE           2  /**< The model bytes are not a valid model. */
#define LATHE_ERROR_UNSUPPORTED_OP  3  /**< The model uses an op no registered entry serves. */
#define LATHE_ERROR_SHAPE_MISMATCH  4  /**< A tensor's shape does not fit. */
#define LATHE_ERROR_DTYPE_MISMATCH  5  /**< A tensor's element type does not fit or is unsupported. */
#define LATHE_ERROR_OUT_OF_MEMORY   6  /**< An allocation failed. */
#define LATHE_ERROR_PLUGIN          7  /**< A plugin op reported a failure. */
#define LATHE_ERROR_IO              8  /**< A file could not be read or written. */
#define LATHE_ERROR_INVALID_STATE   9  /**< The call is not valid now (e.g. run before inputs are set). */
#define LATHE_ERROR_INTERNAL        10 /**< A bug in Lathe; please report it with the message. */

/**
 * The message of the last failed call on the calling thread ("" if none).
 * Owned by Lathe; valid until the calling thread's next Lathe call.
 */
const char *lathe_last_error(void);

/** A short static name for a status code ("LATHE_ERROR_PARSE"); never NULL, never free it. */
const char *lathe_status_name(lathe_status status);

/* ---------------------------------------------------------------------------------------------
 * Element types (values are ONNX TensorProto.DataType codes)
 * ------------------------------------------------------------------------------------------- */

/** An element type. */
typedef int32_t lathe_dtype;

#define LATHE_DTYPE_FLOAT32 1
#define LATHE_DTYPE_UINT8   2
#define LATHE_DTYPE_INT8    3
#define LATHE_DTYPE_INT32   6
#define LATHE_DTYPE_INT64   7
#define LATHE_DTYPE_BOOL    9  /**< One byte per element, 0 or 1. */
#define LATHE_DTYPE_FLOAT64 11

/* ---------------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------------- */

/** A loaded network: immutable, shareable across threads. */
typedef struct lathe_model lathe_model;

/**
 * Loads an ONNX model from a file.
 * @param path      NUL-terminated path; borrowed for the call only.
 * @param out_model receives a new model; free it with lathe_model_free.
 * @return LATHE_ERROR_IO if the file cannot be read, LATHE_ERROR_PARSE if it is not a valid
 *         model, LATHE_ERROR_UNSUPPORTED_OP naming the first op no entry serves.
 */
lathe_status lathe_model_load_file(const char *path, lathe_model **out_model);

/**
 * Loads an ONNX model from memory.
 * @param data      the model bytes; borrowed for the call only (Lathe copies what it keeps).
 * @param size      number of bytes at data.
 * @param out_model receives a new model; free it with lathe_model_free.
 */
lathe_status lathe_model_load_memory(const void *data, size_t size, lathe_model **out_model);

/** Frees a model. Sessions created from it keep what they need and stay usable. NULL is a no-op. */
void lathe_model_free(lathe_model *model);

/**
 * The model's graph as loaded (not the optimised plan) serialized as ONNX bytes: nodes, domains,
 * attributes, initializers and opset imports are kept; float16/bfloat16 tensors, widened at load,
 * come back as float32.
 * @param out_data receives a new buffer owned by the caller; free it with lathe_buffer_free.
 * @param out_size receives its size in bytes.
 * @return LATHE_ERROR_INVALID_ARGUMENT for a NULL argument.
 */
lathe_status lathe_model_export_onnx(const lathe_model *model, void **out_data, size_t *out_size);

/**
 * Writes the model as ONNX (as lathe_model_export_onnx) to the file at `path`, replacing it.
 * @param path NUL-terminated path; borrowed for the call only.
 * @return LATHE_ERROR_IO, naming the path and the reason, when the file cannot be written.
 */
lathe_status lathe_model_save_onnx(const lathe_model *model, const char *path);

/** Number of inputs the caller feeds (weights excluded). */
lathe_status lathe_model_input_count(const lathe_model *model, size_t *out_count);

/** Number of outputs. */
lathe_status lathe_model_output_count(const lathe_model *model, size_t *out_count);

/** Name of input `index`. The string lives as long as the model. */
lathe_status lathe_model_input_name(const lathe_model *model, size_t index, const char **out_name);

/** Name of output `index`. The string lives as long as the model. */
lathe_status lathe_model_output_name(const lathe_model *model, size_t index, const char **out_name);

/** Declared element type of input `index`. */
lathe_status lathe_model_input_dtype(const lathe_model *model, size_t index, lathe_dtype *out_dtype);

/** Declared element type of output `index`. */
lathe_status lathe_model_output_dtype(const lathe_model *model, size_t index, lathe_dtype *out_dtype);

/**
 * Declared rank of input `index`; LATHE_ERROR_INVALID_STATE if the model does not declare it.
 */
lathe_status lathe_model_input_rank(const lathe_model *model, size_t index, size_t *out_rank);

/** Declared rank of output `index`; LATHE_ERROR_INVALID_STATE if the model does not declare it. */
lathe_status lathe_model_output_rank(const lathe_model *model, size_t index, size_t *out_rank);

/**
 * Declared dimension `axis` of input `index`.
 * @param out_dim    receives the size, or -1 for a symbolic dimension.
 * @param out_symbol receives the symbol ("N", or "" when unnamed) for a symbolic dimension,
 *                   else NULL; may itself be NULL if not wanted. Lives as long as the model.
 */
lathe_status lathe_model_input_dim(const lathe_model *model, size_t index, size_t axis,
                                   int64_t *out_dim, const char **out_symbol);

/** Declared dimension `axis` of output `index`; as lathe_model_input_dim. */
lathe_status lathe_model_output_dim(const lathe_model *model, size_t index, size_t axis,
                                    int64_t *out_dim, const char **out_symbol);

/* ---------------------------------------------------------------------------------------------
 * Sessions: one inference context (buffers) over a model, used by one thread at a time
 * ------------------------------------------------------------------------------------------- */

/** An inference context. */
typedef struct lathe_session lathe_session;

/**
 * Creates a session. The session keeps the model's contents alive by itself, so the model
 * may be freed before the session.
 * @param out_session receives a new session; free it with lathe_session_free.
 */
lathe_status lathe_session_create(const lathe_model *model, lathe_session **out_session);

/** Frees a session and releases any DLPack inputs it still holds. NULL is a no-op. */
void lathe_session_free(lathe_session *session);

/**
 * Sets an input by copying the caller's buffer (the buffer may be reused right after the call).
 * @param name       the input's name.
 * @param dtype      element type of the data; must equal the declared one.
 * @param shape      `rank` dimensions; must fit the declared shape (symbolic dims match any size).
 * @param data       row-major contiguous elements.
 * @param byte_size  bytes at data; must equal the product of shape times the element size.
 */
lathe_status lathe_session_set_input(lathe_session *session, const char *name, lathe_dtype dtype,
                                     const int64_t *shape, size_t rank,
                                     const void *data, size_t byte_size);

/**
 * Sets an input from a DLPack tensor without copying when it is compact row-major on the CPU.
 * A strided (non-contiguous) CPU tensor is copied into a compact buffer instead.
 *
 * Ownership: on LATHE_OK, Lathe owns `tensor` and calls its deleter when it no longer needs the
 * data (when the input is replaced or the session is freed, or at once if it was copied); the
 * caller must not write the data until then. On failure, ownership stays with the caller.
 */
lathe_status lathe_session_set_input_dlpack(lathe_session *session, const char *name,
                                            DLManagedTensor *tensor);

/**
 * Runs the model on the inputs set so far.
 * @return LATHE_ERROR_INVALID_STATE if an input has not been set; shape/dtype errors naming the
 *         node when the inputs do not fit the network.
 */
lathe_status lathe_session_run(lathe_session *session);

/**
 * Borrows output `name` of the last run.
 * @param out_data  receives a pointer to the elements; valid until the next run or free of this
 *                  session. Any out-parameter may be NULL if not wanted.
 * @param out_dtype receives the element type.
 * @param out_shape receives a pointer to `*out_rank` dimensions, valid as long as out_data.
 * @param out_rank  receives the rank.
 */
lathe_status lathe_session_get_output(lathe_session *session, const char *name,
                                      const void **out_data, lathe_dtype *out_dtype,
                                      const int64_t **out_shape, size_t *out_rank);

/**
 * Copies output `name` of the last run into the caller's buffer.
 * @param byte_size size of `buffer`; must be at least the output's size in bytes
 *                  (LATHE_ERROR_SHAPE_MISMATCH otherwise, with nothing written).
 */
lathe_status lathe_session_copy_output(lathe_session *session, const char *name,
                                       void *buffer, size_t byte_size);

/**
 * Exports output `name` of the last run as a DLPack tensor holding a copy of it (the session's
 * own buffers live in its arena and are rewritten by every run).
 * The caller owns `*out_tensor` and must call its deleter exactly once; the data stays valid
 * until then, independent of later runs or of freeing the session.
 */
lathe_status lathe_session_get_output_dlpack(lathe_session *session, const char *name,
                                             DLManagedTensor **out_tensor);


/* ---------------------------------------------------------------------------------------------
 * Session options and memory
 * ------------------------------------------------------------------------------------------- */

/** How a session plans and runs; create, set, pass to lathe_session_create_with_options, free. */
typedef struct lathe_session_options lathe_session_options;

/**
 * Creates session options with the defaults: 1 thread, every graph optimisation on.
 * @param out_options receives new options; free them with lathe_session_options_free.
 */
lathe_status lathe_session_options_create(lathe_session_options **out_options);

/** Frees session options. NULL is a no-op. Sessions created from them are unaffected. */
void lathe_session_options_free(lathe_session_options *options);

/**
 * Sets the number of threads a run may use, counting the caller (1 to 256; default 1).
 * 1 runs everything on the calling thread, bit-for-bit deterministic; more split each batch
 * between a persistent pool of sleeping (not spinning) worker threads.
 */
lathe_status lathe_session_options_set_threads(lathe_session_options *options, int32_t threads);

/**
 * Sets whether plan-time graph optimisations (Identity/Dropout removal, BatchNormalization and
 * bias folding, activation fusion) are applied (default 1). Constant folding always is.
 */
lathe_status lathe_session_options_set_optimize(lathe_session_options *options, int32_t optimize);

/** Creates a session with options (NULL options: the defaults). Otherwise as lathe_session_create. */
lathe_status lathe_session_create_with_options(const lathe_model *model, const lathe_session_options *options,
                                               lathe_session **out_session);

/**
 * The size of the session's arena: the one 64-byte-aligned block holding every intermediate
 * value and kernel scratch of the current plan (0 before the first run or reshape). A run
 * allocates nothing once planned.
 */
lathe_status lathe_session_arena_bytes(const lathe_session *session, size_t *out_bytes);

#ifdef __cplusplus
}
#endif

/* Custom ops, plugins, foreign kernels and the registry listing. */
#include "lathe_plugin.h"

/* Training Keras-style models. */
#include "lathe_train.h"

#endif /* LATHE_H */
