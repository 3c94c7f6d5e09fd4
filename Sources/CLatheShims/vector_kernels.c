/* The hot float32 elementwise kernels (exp, sigmoid, tanh, the standard LSTM cell step) compiled at
 * three instruction-set levels from one body (vector_kernels_body.h), the best level the CPU has
 * picked once per process. Every level computes the same bits (see the body). The LSTM step kernels
 * of recurrent_kernels.c (recurrent_kernels_body.h) are compiled here too, for the same vector math;
 * LTS_FMA is their multiply-add (fused at the levels with FMA). */

#include "lathe_shims.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#pragma clang fp contract(off)
/* The per-level vector helpers take 64-byte vectors by value but are always inlined, so no call with
 * that ABI is ever made. */
#pragma clang diagnostic ignored "-Wpsabi"

typedef float lts_v16f __attribute__((ext_vector_type(16)));
typedef int32_t lts_v16i __attribute__((ext_vector_type(16)));
typedef uint32_t lts_v16u __attribute__((ext_vector_type(16)));
/* The same vector at float alignment, for unaligned loads and stores. */
typedef float lts_v16f_unaligned __attribute__((ext_vector_type(16), aligned(4)));

#define lts_splat(value) ((lts_v16f)(value))
/* Lanes of `a` where `mask` is set (all ones), of `b` elsewhere. */
#define lts_select(mask, a, b) \
    ((lts_v16f)(((lts_v16u)(mask) & (lts_v16u)(a)) | (~(lts_v16u)(mask) & (lts_v16u)(b))))
#define lts_abs(v) ((lts_v16f)((lts_v16u)(v) & 0x7FFFFFFFu))
#define lts_load(p) (*(const lts_v16f_unaligned *)(p))
#define lts_store(v, p) (*(lts_v16f_unaligned *)(p) = (v))
/* The first `n` (< 16) floats of `p`, the other lanes 0. */
#define lts_load_partial(p, n) \
    ({ lts_v16f v_ = lts_splat(0.0f); __builtin_memcpy(&v_, (p), (n) * sizeof(float)); v_; })
#define lts_store_partial(v, p, n) \
    ({ lts_v16f v_ = (v); __builtin_memcpy((p), &v_, (n) * sizeof(float)); })
#define lts_load_n(p, n) ((n) == 16 ? lts_load(p) : lts_load_partial(p, n))
#define lts_store_n(v, p, n) \
    do { if ((n) == 16) lts_store(v, p); else lts_store_partial(v, p, n); } while (0)

#define LTS_LEVEL baseline
#define LTS_TARGET
#define LTS_FMA(a, b, c) ((a) * (b) + (c))
#include "vector_kernels_body.h"
#include "recurrent_kernels_body.h"
#undef LTS_FMA
#undef LTS_LEVEL
#undef LTS_TARGET

#define LTS_LEVEL avx2
#define LTS_TARGET __attribute__((target("avx2,fma")))
#define LTS_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#include "vector_kernels_body.h"
#include "recurrent_kernels_body.h"
#undef LTS_FMA
#undef LTS_LEVEL
#undef LTS_TARGET

/* AVX-512 has masked loads and stores (no fault past the mask): partial vectors without memcpy. */
#undef lts_load_partial
#undef lts_store_partial
#define lts_load_partial(p, n) ((lts_v16f)_mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), (p)))
#define lts_store_partial(v, p, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1), (__m512)(v))
#define LTS_LEVEL avx512
#define LTS_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
#define LTS_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#include "vector_kernels_body.h"
#include "recurrent_kernels_body.h"
#undef LTS_FMA
#undef LTS_LEVEL
#undef LTS_TARGET

static bool lts_cpu_has_level(lts_vector_level level) {
    __builtin_cpu_init();
    switch (level) {
    case lts_vector_level_baseline: return true;
    case lts_vector_level_avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case lts_vector_level_avx512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
    }
    return false;
}

const lts_vector_kernels *lts_vector_kernels_at(lts_vector_level level) {
    if (!lts_cpu_has_level(level)) return NULL;
    switch (level) {
    case lts_vector_level_baseline: return &lts_kernels_baseline;
    case lts_vector_level_avx2: return &lts_kernels_avx2;
    case lts_vector_level_avx512: return &lts_kernels_avx512;
    }
    return NULL;
}

lts_vector_level lts_best_vector_level(void) {
    if (lts_cpu_has_level(lts_vector_level_avx512)) return lts_vector_level_avx512;
    if (lts_cpu_has_level(lts_vector_level_avx2)) return lts_vector_level_avx2;
    return lts_vector_level_baseline;
}

/* Set once, before main (a constructor) or on first use; every thread then reads the same table. */
static const lts_vector_kernels *lts_active_kernels;

__attribute__((constructor)) static void lts_pick_vector_kernels(void) {
    __atomic_store_n(&lts_active_kernels, lts_vector_kernels_at(lts_best_vector_level()), __ATOMIC_RELEASE);
}

const lts_vector_kernels *lts_vector_kernels_active(void) {
    const lts_vector_kernels *k = __atomic_load_n(&lts_active_kernels, __ATOMIC_ACQUIRE);
    if (!k) {
        lts_pick_vector_kernels();
        k = __atomic_load_n(&lts_active_kernels, __ATOMIC_ACQUIRE);
    }
    return k;
}

void lts_vector_sigmoid(const float *x, float *y, size_t count, const float *bias) {
    lts_vector_kernels_active()->sigmoid(x, y, count, bias);
}

void lts_vector_tanh(const float *x, float *y, size_t count, const float *bias) {
    lts_vector_kernels_active()->tanh(x, y, count, bias);
}

void lts_vector_lstm_step(float *gate, const float *projected, const float *bias, float *h, float *c,
                          size_t hidden) {
    lts_vector_kernels_active()->lstm_step(gate, projected, bias, h, c, hidden);
}
