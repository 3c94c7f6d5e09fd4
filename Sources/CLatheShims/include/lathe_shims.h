/* Internal C helpers for Lathe. Never installed; not part of the public ABI.
 * Names use the `lts_` prefix so the linker version script (lathe_*) does not export them. */
#ifndef LATHE_SHIMS_H
#define LATHE_SHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <dlpack/dlpack.h>
#include <x86_64-linux-gnu/cblas.h>
#include <dlfcn.h>
#include <x86_64-linux-gnu/ffi.h>

/* Not every cblas.h declares it. */
void openblas_set_num_threads(int num_threads);

/** Stores a copy of `message` as the calling thread's last error. */
void lts_set_last_error(const char *message);
/** The calling thread's last error message; "" when none. Valid until the thread's next set. */
const char *lts_last_error(void);

/** 64-byte aligned allocation (NULL on failure); release with `lts_aligned_free`. */
void *lts_aligned_alloc(size_t byte_count);
void lts_aligned_free(void *pointer);

/* Plugins (plugin_shims.c). */

/** Stores a copy of `message` as the calling thread's pending plugin error (NULL clears it). */
void lts_set_plugin_error(const char *message);
/** The calling thread's pending plugin error, or NULL; the next set or clear frees it. */
const char *lts_plugin_error(void);

/** The plugin load in progress on the calling thread (an opaque Lathe object), or NULL. */
void *lts_loading_plugin(void);
/** Marks a plugin load in progress on the calling thread (NULL when it ends). */
void lts_set_loading_plugin(void *plugin);

/* libffi's type descriptors, which Swift cannot take the address of directly. */
static inline ffi_type *lts_ffi_type_void(void) { return &ffi_type_void; }
static inline ffi_type *lts_ffi_type_pointer(void) { return &ffi_type_pointer; }
static inline ffi_type *lts_ffi_type_sint(void) { return &ffi_type_sint; }
static inline ffi_type *lts_ffi_type_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *lts_ffi_type_uint64(void) { return &ffi_type_uint64; }
static inline ffi_type *lts_ffi_type_float(void) { return &ffi_type_float; }
static inline ffi_type *lts_ffi_type_double(void) { return &ffi_type_double; }
/** FFI_DEFAULT_ABI, an enum constant Swift does not import. */
static inline ffi_abi lts_ffi_default_abi(void) { return FFI_DEFAULT_ABI; }

/* Float32 elementwise kernels at the CPU's instruction-set level (vector_kernels.c). Each level
 * computes the same bits as Swift's `VectorMath`; the level is fixed for the process. */

/** An instruction-set level the vector kernels are compiled for. */
typedef enum {
    /** x86-64 baseline (SSE2); every CPU. */
    lts_vector_level_baseline = 0,
    /** AVX2 and FMA (Haswell, Zen and later). */
    lts_vector_level_avx2 = 1,
    /** AVX-512 F, DQ, VL, BW (Skylake-SP, Zen 4 and later). */
    lts_vector_level_avx512 = 2,
} lts_vector_level;

/** The kernels of one level. Each `y[i] = f(x[i] + *bias)` (no add when `bias` is NULL) over `count`
 *  floats, `x` may equal `y`; `lstm_step` is one step of the default LSTM cell for one batch row
 *  (gates i, o, f, c of `hidden` each: `gate += projected + bias`, then
 *  `c = σ(f)·c + σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`). */
typedef struct {
    void (*exp)(const float *x, float *y, size_t count, const float *bias);
    void (*sigmoid)(const float *x, float *y, size_t count, const float *bias);
    void (*tanh)(const float *x, float *y, size_t count, const float *bias);
    void (*lstm_step)(float *gate, const float *projected, const float *bias, float *h, float *c,
                      size_t hidden);
} lts_vector_kernels;

/** The kernels of `level`, or NULL when this CPU lacks it. */
const lts_vector_kernels *lts_vector_kernels_at(lts_vector_level level);
/** The best level this CPU runs. */
lts_vector_level lts_best_vector_level(void);
/** The kernels every Lathe op uses: those of `lts_best_vector_level()`. */
const lts_vector_kernels *lts_vector_kernels_active(void);
/** The active level's kernels (`lts_vector_kernels_active()`), one call per array. */
void lts_vector_sigmoid(const float *x, float *y, size_t count, const float *bias);
void lts_vector_tanh(const float *x, float *y, size_t count, const float *bias);
void lts_vector_lstm_step(float *gate, const float *projected, const float *bias, float *h, float *c,
                          size_t hidden);

/** `C = alpha·A·B + beta·C` for small products (gemm_small.c): A is m×k with element (i, p) at
 *  `a[i·a_row + p·a_col]` (so either layout), B is k×n row-major with leading dimension `ldb`, C is m×n
 *  with leading dimension `ldc`; C is not read when beta is 0. Every level computes the same bits. */
typedef void (*lts_gemm_rows_fn)(size_t m, size_t n, size_t k, float alpha, const float *a, size_t a_row,
                                 size_t a_col, const float *b, size_t ldb, float beta, float *c, size_t ldc);
/** The product of `level`, or NULL when this CPU lacks it. */
lts_gemm_rows_fn lts_gemm_rows_at(lts_vector_level level);
/** The product at `lts_best_vector_level()`. */
void lts_gemm_rows(size_t m, size_t n, size_t k, float alpha, const float *a, size_t a_row, size_t a_col,
                   const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* LSTM step kernels (recurrent_kernels.c), per instruction-set level like the vector kernels; levels
 * differ only in float32 rounding (the recurrent product fuses multiply-adds where the level has FMA).
 * Gates are in ONNX order i, o, f, c, `hidden` values each. */

/** One forward step of the default LSTM cell (σ, tanh, tanh) for `batch` rows:
 *  `a = pre + bias + h_prev·Rᵀ`, `c_next = σ(a_f)·c_prev + σ(a_i)·tanh(a_c)`, `h_next = σ(a_o)·tanh(c_next)`.
 *  Row b of a strided array starts at `pointer + b·stride`; unstrided ones have `hidden` per row. */
typedef struct {
    size_t batch, hidden;
    /** R packed by `lts_lstm_pack_recurrence`. */
    const float *packed_r;
    /** The state the step reads; must not overlap `h_next`. */
    const float *h_prev;
    size_t h_prev_stride;
    /** x·Wᵀ of this step (4·hidden per row). */
    const float *pre;
    size_t pre_stride;
    /** 4·hidden values added to every row of `pre`, or NULL. */
    const float *bias;
    /** The cell state before and after the step (may be the same array). */
    const float *c_prev;
    float *c_next;
    float *h_next;
    size_t h_next_stride;
    /** Where the activated gates are stored (4·hidden per row; may be `pre`), or NULL. */
    float *gates;
    size_t gates_stride;
    /** Where tanh(c_next) is stored, or NULL. */
    float *tanh_c;
} lts_lstm_forward_step;

/** One backward step of the default LSTM cell for `batch` rows, from the forward's activated `gates`
 *  (4·hidden per row), `tanh_c` = tanh(c_next) and `c_prev`: with `dh` = dLoss/dh_next and `dc` =
 *  dLoss/dc_next on entry, writes `d_pre` = dLoss/d(pre-activations) (4·hidden per row) and leaves
 *  dLoss/dc_prev (through the cell path only) in `dc`. */
typedef struct {
    size_t batch, hidden;
    const float *gates, *tanh_c, *c_prev, *dh;
    float *dc, *d_pre;
} lts_lstm_backward_step;

/** The LSTM kernels of one level. */
typedef struct {
    void (*lstm_forward)(const lts_lstm_forward_step *step);
    void (*lstm_backward)(const lts_lstm_backward_step *step);
} lts_recurrent_kernels;

/** The LSTM kernels of `level`, or NULL when this CPU lacks it. */
const lts_recurrent_kernels *lts_recurrent_kernels_at(lts_vector_level level);
/** The LSTM kernels of `lts_best_vector_level()`. */
const lts_recurrent_kernels *lts_recurrent_kernels_active(void);
/** Floats `lts_lstm_pack_recurrence` writes for `hidden`. */
size_t lts_lstm_packed_count(size_t hidden);
/** Packs one direction's R `[4·hidden, hidden]` for `lstm_forward`: chunk q of 16 hidden units, column k,
 *  gate g, lane l at `packed[((q·hidden + k)·4 + g)·16 + l] = R[g·hidden + 16·q + l, k]` (0 past `hidden`);
 *  when hidden % 16 is 1–4, those last units instead follow in one squeezed panel of 16 floats per k,
 *  lane 4·g + u holding gate g of unit 16·⌊hidden/16⌋ + u. */
void lts_lstm_pack_recurrence(const float *r, size_t hidden, float *packed);

/* Direct 2-D convolution of one group (conv_kernels.c), per instruction-set level like the vector
 * kernels; levels differ only in float32 rounding. */

/** The activation a convolution applies as it stores its output (after the bias). */
typedef enum {
    lts_conv_activation_none = 0,
    lts_conv_activation_relu = 1,
    /** `x < 0 ? alpha·x : x`. */
    lts_conv_activation_leaky_relu = 2,
    /** `min(max(x, alpha), beta)`. */
    lts_conv_activation_clip = 3,
    lts_conv_activation_sigmoid = 4,
    lts_conv_activation_tanh = 5,
} lts_conv_activation;

/** One image's convolution: X `[channels, in_h, in_w]`, W `[filters, channels, kernel_h, kernel_w]`,
 *  Y `[filters, out_h, out_w]` (out_h/out_w as ONNX Conv computes them from these pads). */
typedef struct {
    int64_t channels, in_h, in_w, filters;
    int64_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    int64_t out_h, out_w;
    /** An `lts_conv_activation`, with its parameters. */
    int32_t activation;
    float alpha, beta;
} lts_conv_shape;

/** The convolution of one level. `run` computes output strips `strip_first..<strip_end` (of
 *  `lts_conv_strip_count(shape, nr, images)`) of the batch of `images` at `x` (NCHW, into NCHW `y`):
 *  `y = act(W ⋆ x + bias)` (bias may be NULL), with W packed by `lts_conv_pack_weights(…, mr, …)` and
 *  `lts_conv_scratch_bytes(shape, nr)` bytes of 64-byte aligned `scratch`. Different strips write
 *  disjoint outputs, so strip ranges may run on different threads (each with its own scratch). */
typedef struct {
    /** Filters per register tile (the weight packing's `mr`). */
    size_t mr;
    /** Output pixels per register tile. */
    size_t nr;
    void (*run)(const lts_conv_shape *shape, const float *x, const float *packed_w, const float *bias, float *y,
                size_t images, size_t strip_first, size_t strip_end, void *scratch);
} lts_conv_kernels;

/** The convolution of `level`, or NULL when this CPU lacks it. */
const lts_conv_kernels *lts_conv_kernels_at(lts_vector_level level);
/** The convolution of `lts_best_vector_level()`. */
const lts_conv_kernels *lts_conv_kernels_active(void);
/** Output strips of a batch of `images` for tiles of `nr` pixels. */
size_t lts_conv_strip_count(const lts_conv_shape *shape, size_t nr, size_t images);
/** Scratch bytes one `run` call needs for tiles of `nr` pixels. */
size_t lts_conv_scratch_bytes(const lts_conv_shape *shape, size_t nr);
/** Packs row-major W `[filters, k_count]` into `ceil(filters / mr)·k_count·mr` floats: tile t holds
 *  `packed[(t·k_count + k)·mr + i] = W[t·mr + i, k]` (0 past the last filter). */
void lts_conv_pack_weights(const float *w, size_t filters, size_t k_count, size_t mr, float *packed);

/* Winograd F(4×4, 3×3) convolution (winograd.c). A 6×6 input tile d gives 36 transformed values
 * V = Bᵀ·d·B, a 3×3 kernel g gives U = G·g·Gᵀ, and the 4×4 output tile is Aᵀ·(U ⊙ V)·A; summed over
 * channels, U ⊙ V is 36 matrix products U_k[filters × channels] · V_k[channels × tiles]. Matrices are
 * row-major. */

/** U = G·g·Gᵀ of W[filters, channels, 3, 3] into 36 matrices u[k][filters][channels] (k = 6·row + column),
 *  computed in double and rounded once. */
void lts_winograd_weights(const float *w, size_t filters, size_t channels, float *u);

/** The shape of one Winograd convolution: X is [batch, channels, height, width], Y is
 *  [batch, filters, out_height, out_width] (out = in + pads − 2), cut into tiles_y × tiles_x tiles of
 *  4×4 outputs; "tile row" r counts across the batch (image r / tiles_y, row r % tiles_y). */
typedef struct {
    size_t channels, filters, height, width, pad_top, pad_left, out_height, out_width, tiles_x, tiles_y;
} lts_winograd_geometry;

/** The transforms of one instruction-set level, for the `rows` tile rows from `first_row` (a block of
 *  rows·tiles_x tiles, tile t of the block in column t).
 *  `input`: V_k[channel][t] of each tile's 6×6 window of X (zero outside) into
 *  `v[(k·channels + channel)·ldv + t]`.
 *  `output`: from the products `p[(k·filters + filter)·ldp + t]`, Aᵀ·M·A of each tile into Y's valid
 *  positions. Both need `lts_winograd_scratch_floats(rows·tiles_x, rows)` floats of `scratch`. */
typedef struct {
    void (*input)(const lts_winograd_geometry *g, size_t first_row, size_t rows, const float *x, float *v,
                  size_t ldv, float *scratch);
    void (*output)(const lts_winograd_geometry *g, size_t first_row, size_t rows, const float *p, size_t ldp,
                   float *y, float *scratch);
} lts_winograd_kernels;

/** Floats of scratch the transforms need for a block of `tiles` tiles in `rows` tile rows. */
size_t lts_winograd_scratch_floats(size_t tiles, size_t rows);
/** The transforms of `level`, or NULL when this CPU lacks it. */
const lts_winograd_kernels *lts_winograd_kernels_at(lts_vector_level level);
/** The transforms of `lts_best_vector_level()`. */
const lts_winograd_kernels *lts_winograd_kernels_active(void);

/** One Adam step over `n` weights (optimizer_kernels.c): `m += (g − m)·(1 − β1)`,
 *  `v += (g·g − v)·(1 − β2)`, `w −= step·m / (√v + ε)` per element, in that order and without fused
 *  multiply-adds, so every level gives the bits of the scalar loop. */
typedef void (*lts_adam_update_fn)(float *w, const float *g, float *m, float *v, size_t n, float step,
                                   float one_minus_beta1, float one_minus_beta2, float epsilon);
/** The update of `level`, or NULL when this CPU lacks it. */
lts_adam_update_fn lts_adam_update_at(lts_vector_level level);
/** The update at `lts_best_vector_level()`. */
void lts_adam_update(float *w, const float *g, float *m, float *v, size_t n, float step, float one_minus_beta1,
                     float one_minus_beta2, float epsilon);

/** The index of the first NaN or infinity among `n` floats, or -1 (optimizer_kernels.c; the training
 *  loop's checks of inputs, gradients and updated weights). */
ptrdiff_t lts_first_non_finite(const float *x, size_t n);

#endif
