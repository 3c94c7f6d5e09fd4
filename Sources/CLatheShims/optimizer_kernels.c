/* The Adam (and AdamW) parameter update, the inner loop of every training step over all weights,
 * compiled at the three levels of vector_kernels.c. Each element is computed exactly as
 * Optimizer.swift's scalar loop wrote it, without fused multiply-adds:
 *   m += (g − m)·(1 − β1);  v += (g·g − v)·(1 − β2);  w −= step·m / (√v + ε)
 * square root and division are correctly rounded, so every level gives the same bits as that loop. */

#include "lathe_shims.h"
#include "level_table.h"
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#pragma clang fp contract(off)
#pragma clang diagnostic ignored "-Wpsabi"

typedef float lts_o16f __attribute__((ext_vector_type(16)));
typedef float lts_o16f_unaligned __attribute__((ext_vector_type(16), aligned(4)));

#define LTS_O_BODY(level, target, sqrt16)                                                             \
    static target void lts_adam_update_##level(float *w, const float *g, float *m, float *v, size_t n,  \
                                               float step, float one_minus_beta1,                       \
                                               float one_minus_beta2, float epsilon) {                  \
        size_t i = 0;                                                                                   \
        for (; i + 16 <= n; i += 16) {                                                                  \
            lts_o16f gi = *(const lts_o16f_unaligned *)(g + i);                                         \
            lts_o16f mi = *(lts_o16f_unaligned *)(m + i);                                               \
            lts_o16f vi = *(lts_o16f_unaligned *)(v + i);                                               \
            mi += (gi - mi) * one_minus_beta1;                                                          \
            vi += (gi * gi - vi) * one_minus_beta2;                                                     \
            lts_o16f wi = *(lts_o16f_unaligned *)(w + i);                                               \
            wi -= step * mi / (sqrt16(vi) + epsilon);                                                   \
            *(lts_o16f_unaligned *)(m + i) = mi;                                                        \
            *(lts_o16f_unaligned *)(v + i) = vi;                                                        \
            *(lts_o16f_unaligned *)(w + i) = wi;                                                        \
        }                                                                                               \
        for (; i < n; i++) {                                                                            \
            m[i] += (g[i] - m[i]) * one_minus_beta1;                                                    \
            v[i] += (g[i] * g[i] - v[i]) * one_minus_beta2;                                             \
            w[i] -= step * m[i] / (__builtin_sqrtf(v[i]) + epsilon);                                    \
        }                                                                                               \
    }

/* Lane-wise correctly rounded square roots. */
static inline __attribute__((always_inline)) lts_o16f lts_o_sqrt_baseline(lts_o16f x) {
    lts_o16f r;
    for (int l = 0; l < 16; l++) r[l] = __builtin_sqrtf(x[l]);
    return r;
}
static inline __attribute__((always_inline, target("avx2,fma"))) lts_o16f lts_o_sqrt_avx2(lts_o16f x) {
    lts_o16f r;
    __m256 lo = _mm256_sqrt_ps(__builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7));
    __m256 hi = _mm256_sqrt_ps(__builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15));
    typedef float v8 __attribute__((ext_vector_type(8)));
    r = __builtin_shufflevector((v8)lo, (v8)hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return r;
}
static inline __attribute__((always_inline, target("avx512f"))) lts_o16f lts_o_sqrt_avx512(lts_o16f x) {
    return (lts_o16f)_mm512_sqrt_ps((__m512)x);
}

LTS_O_BODY(baseline, , lts_o_sqrt_baseline)
LTS_O_BODY(avx2, __attribute__((target("avx2,fma"))), lts_o_sqrt_avx2)
LTS_O_BODY(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))), lts_o_sqrt_avx512)

/* The index of the first NaN or infinity among `n` floats, or -1: 16 lanes at a time test the exponent
 * bits (all ones), then the block that has one is searched in order. */
typedef uint32_t lts_o16u __attribute__((ext_vector_type(16)));
typedef uint32_t lts_o16u_unaligned __attribute__((ext_vector_type(16), aligned(4)));
#define LTS_F_BODY(level, target)                                                                    \
    static target ptrdiff_t lts_first_non_finite_##level(const float *x, size_t n) {                  \
        const uint32_t *bits = (const uint32_t *)x;                                                    \
        size_t i = 0;                                                                                  \
        for (; i + 64 <= n; i += 64) {                                                                 \
            lts_o16u a = *(const lts_o16u_unaligned *)(bits + i) & 0x7F800000u;                        \
            lts_o16u b = *(const lts_o16u_unaligned *)(bits + i + 16) & 0x7F800000u;                   \
            lts_o16u c = *(const lts_o16u_unaligned *)(bits + i + 32) & 0x7F800000u;                   \
            lts_o16u d = *(const lts_o16u_unaligned *)(bits + i + 48) & 0x7F800000u;                   \
            lts_o16u hit = (lts_o16u)((a == 0x7F800000u) | (b == 0x7F800000u) | (c == 0x7F800000u)    \
                                     | (d == 0x7F800000u));                                            \
            uint32_t any = 0;                                                                          \
            for (int l = 0; l < 16; l++) any |= hit[l];                                                \
            if (any) break;                                                                            \
        }                                                                                              \
        for (; i < n; i++) {                                                                           \
            if ((bits[i] & 0x7F800000u) == 0x7F800000u) return (ptrdiff_t)i;                           \
        }                                                                                              \
        return -1;                                                                                     \
    }

LTS_F_BODY(baseline, )
LTS_F_BODY(avx2, __attribute__((target("avx2,fma"))))
LTS_F_BODY(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))))

typedef ptrdiff_t (*lts_first_non_finite_fn)(const float *x, size_t n);
LTS_LEVEL_TABLE(lts_first_non_finite_fn, lts_first_non_finite_kernel, lts_first_non_finite_baseline,
                lts_first_non_finite_avx2, lts_first_non_finite_avx512)

ptrdiff_t lts_first_non_finite(const float *x, size_t n) { return lts_first_non_finite_kernel_active()(x, n); }

LTS_LEVEL_TABLE(lts_adam_update_fn, lts_adam_update, lts_adam_update_baseline, lts_adam_update_avx2,
                lts_adam_update_avx512)

void lts_adam_update(float *w, const float *g, float *m, float *v, size_t n, float step, float one_minus_beta1,
                     float one_minus_beta2, float epsilon) {
    lts_adam_update_active()(w, g, m, v, n, step, one_minus_beta1, one_minus_beta2, epsilon);
}
