/* Row-panel products for the tiny matrices of small dense layers at small batch (an MLP at batch 1):
 * C = alpha·A·B + beta·C with B row-major and not transposed, vectorised over C's columns with the
 * running sums held in registers. A BLAS call's set-up costs more than these products.
 *
 * Compiled at the three levels of vector_kernels.c; every level computes the same bits: each output is
 * Σ_p A[i,p]·B[p,j] summed in order of p with separate multiplies and adds (no fused multiply-add),
 * then alpha·sum (+ beta·C). */

#include "lathe_shims.h"
#include "level_table.h"
#include <immintrin.h>

#pragma clang fp contract(off)
#pragma clang diagnostic ignored "-Wpsabi"

typedef float lts_g16f __attribute__((ext_vector_type(16)));
typedef float lts_g16f_unaligned __attribute__((ext_vector_type(16), aligned(4)));

#define LTS_G_BODY(level, target, load_n, store_n)                                                     \
    static target void lts_gemm_rows_##level(size_t m, size_t n, size_t k, float alpha, const float *a,  \
                                             size_t a_row, size_t a_col, const float *b, size_t ldb,     \
                                             float beta, float *c, size_t ldc) {                         \
        for (size_t i = 0; i < m; i++) {                                                                 \
            const float *ai = a + i * a_row;                                                             \
            float *ci = c + i * ldc;                                                                     \
            size_t j = 0;                                                                                \
            /* Four vectors of columns at a time, then one at a time, then the ragged end. */            \
            for (; j + 64 <= n; j += 64) {                                                               \
                lts_g16f s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                 \
                for (size_t p = 0; p < k; p++) {                                                         \
                    const float *bp = b + p * ldb + j;                                                   \
                    lts_g16f x = ai[p * a_col];                                                          \
                    s0 += x * *(const lts_g16f_unaligned *)(bp);                                         \
                    s1 += x * *(const lts_g16f_unaligned *)(bp + 16);                                    \
                    s2 += x * *(const lts_g16f_unaligned *)(bp + 32);                                    \
                    s3 += x * *(const lts_g16f_unaligned *)(bp + 48);                                    \
                }                                                                                        \
                lts_g16f r[4] = {s0, s1, s2, s3};                                                        \
                for (int v = 0; v < 4; v++) {                                                            \
                    lts_g16f y = alpha * r[v];                                                           \
                    if (beta != 0) y += beta * *(const lts_g16f_unaligned *)(ci + j + 16 * v);           \
                    *(lts_g16f_unaligned *)(ci + j + 16 * v) = y;                                        \
                }                                                                                        \
            }                                                                                            \
            for (; j < n; j += 16) {                                                                     \
                size_t w = n - j < 16 ? n - j : 16;                                                      \
                lts_g16f s = 0;                                                                          \
                for (size_t p = 0; p < k; p++) {                                                         \
                    lts_g16f x = ai[p * a_col];                                                          \
                    s += x * load_n(b + p * ldb + j, w);                                                 \
                }                                                                                        \
                lts_g16f y = alpha * s;                                                                  \
                if (beta != 0) y += beta * load_n(ci + j, w);                                            \
                store_n(y, ci + j, w);                                                                   \
            }                                                                                            \
        }                                                                                                \
    }

/* Portable partial loads and stores through memcpy (no read or write past `n`). */
#define LTS_G_LOAD_COPY(p, n)                                                                          \
    ({ lts_g16f v_ = 0; __builtin_memcpy(&v_, (p), (n) * sizeof(float)); v_; })
#define LTS_G_STORE_COPY(v, p, n) ({ lts_g16f v_ = (v); __builtin_memcpy((p), &v_, (n) * sizeof(float)); })
/* AVX-512 masked loads and stores. */
#define LTS_G_LOAD_MASK(p, n) ((lts_g16f)_mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), (p)))
#define LTS_G_STORE_MASK(v, p, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1), (__m512)(v))

LTS_G_BODY(baseline, , LTS_G_LOAD_COPY, LTS_G_STORE_COPY)
LTS_G_BODY(avx2, __attribute__((target("avx2,fma"))), LTS_G_LOAD_COPY, LTS_G_STORE_COPY)
LTS_G_BODY(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))), LTS_G_LOAD_MASK,
           LTS_G_STORE_MASK)

LTS_LEVEL_TABLE(lts_gemm_rows_fn, lts_gemm_rows, lts_gemm_rows_baseline, lts_gemm_rows_avx2, lts_gemm_rows_avx512)

void lts_gemm_rows(size_t m, size_t n, size_t k, float alpha, const float *a, size_t a_row, size_t a_col,
                   const float *b, size_t ldb, float beta, float *c, size_t ldc) {
    lts_gemm_rows_active()(m, n, k, alpha, a, a_row, a_col, b, ldb, beta, c, ldc);
}
