/* Direct (implicit-GEMM) 2-D convolution for one group, compiled at three instruction-set levels from
 * one body (conv_kernels_body.h); the best level the CPU has is picked once per process.
 *
 * The product Y[m, q] = Σ_k W[m, k] · U[k, q] (U the unfolded input, k = (channel, tap)) runs in
 * register tiles of MR filters × NR output pixels over weights packed once (lts_conv_pack_weights).
 * U is never built whole:
 * - stride 1: pixels are numbered q = oy·width + ox over a zero-padded copy of the image (or the
 *   image itself when it has no padding), width = out_w + (kernel_w − 1)·dilation_w, so row k of U
 *   is the source shifted by one offset: tiles read the source directly and skip the columns
 *   ox >= out_w when storing;
 * - other strides, and small images: NR pixels of the batch at a time are packed (implicit im2col
 *   of one strip) into scratch.
 * Bias and the fused activation are applied as each tile is stored into NCHW Y. Levels differ only
 * in rounding (FMA, accumulation in registers). */

#include "lathe_shims.h"
#include "level_table.h"
#include <immintrin.h>
#include <string.h>

#pragma clang fp contract(fast)
/* The per-level helpers take 64-byte vectors by value but are always inlined. */
#pragma clang diagnostic ignored "-Wpsabi"

/* How a shape is numbered and where its unfolded rows come from. */
typedef struct {
    /* Stride 1: rows of U are shifted views of the source. */
    bool direct;
    /* `direct` over a zero-padded copy of the image (in scratch) rather than the image itself. */
    bool copies;
    /* Width of the pixel numbering q = oy·width + ox. */
    int64_t width;
    /* Rows of the padded copy. */
    int64_t height;
    /* Floats per channel of the source (direct). */
    int64_t plane;
    /* Pixels numbered: the last output pixel's q + 1. */
    int64_t count;
} lts_conv_layout;

/* Stride 1 reads the source directly when at least this share of the tiles' pixels are outputs;
 * smaller images are packed, several to a strip. */
#define LTS_CONV_DIRECT_SHARE 0.7

static lts_conv_layout lts_conv_layout_of(const lts_conv_shape *s, size_t nr) {
    lts_conv_layout l;
    l.width = s->out_w + (s->kernel_w - 1) * s->dilation_w;
    l.height = s->out_h + (s->kernel_h - 1) * s->dilation_h;
    l.count = (s->out_h - 1) * l.width + s->out_w;
    const int64_t strips = (l.count + (int64_t)nr - 1) / (int64_t)nr;
    l.direct = s->stride_h == 1 && s->stride_w == 1
        && (double)(s->out_h * s->out_w) >= LTS_CONV_DIRECT_SHARE * (double)(strips * (int64_t)nr);
    if (l.direct) {
        l.plane = l.width * l.height;
        const bool padded = s->pad_top != 0 || s->pad_left != 0 || l.width != s->in_w || l.height != s->in_h;
        l.copies = padded || l.count < (int64_t)nr;
    } else {
        l.copies = false;
        l.width = s->out_w;
        l.height = s->out_h;
        l.plane = 0;
        l.count = s->out_h * s->out_w;
    }
    return l;
}

static size_t lts_conv_offsets_bytes(size_t k_count) { return (k_count * sizeof(int32_t) + 63) / 64 * 64; }

/* The zero-padded image: buffer[c][yy][xx] = x[c][yy − pad_top][xx − pad_left], 0 outside; then
 * `slack` zeros for the reads of the last tile. */
static void lts_conv_pad_copy(const lts_conv_shape *s, const lts_conv_layout *l, const float *x, float *buffer,
                              size_t slack) {
    const int64_t ih = s->in_h, iw = s->in_w, width = l->width;
    /* Columns of the copy that come from the image. */
    const int64_t lo = s->pad_left, hi = s->pad_left + iw < width ? s->pad_left + iw : width;
    float *dst = buffer;
    for (int64_t c = 0; c < s->channels; c++) {
        const float *plane = x + c * ih * iw;
        for (int64_t yy = 0; yy < l->height; yy++, dst += width) {
            const int64_t y = yy - s->pad_top;
            if (y < 0 || y >= ih || lo >= hi) {
                memset(dst, 0, (size_t)width * sizeof(float));
                continue;
            }
            memset(dst, 0, (size_t)lo * sizeof(float));
            memcpy(dst + lo, plane + y * iw, (size_t)(hi - lo) * sizeof(float));
            memset(dst + hi, 0, (size_t)(width - hi) * sizeof(float));
        }
    }
    memset(dst, 0, slack * sizeof(float));
}

size_t lts_conv_strip_count(const lts_conv_shape *shape, size_t nr, size_t images) {
    const lts_conv_layout l = lts_conv_layout_of(shape, nr);
    return l.direct ? images * (((size_t)l.count + nr - 1) / nr) : (images * (size_t)l.count + nr - 1) / nr;
}

size_t lts_conv_scratch_bytes(const lts_conv_shape *shape, size_t nr) {
    const lts_conv_layout l = lts_conv_layout_of(shape, nr);
    const size_t k_count = (size_t)(shape->channels * shape->kernel_h * shape->kernel_w);
    size_t floats = 0;
    if (!l.direct) floats = k_count * nr;
    else if (l.copies) floats = (size_t)(shape->channels * l.plane) + nr;
    return lts_conv_offsets_bytes(k_count) + floats * sizeof(float);
}

void lts_conv_pack_weights(const float *w, size_t filters, size_t k_count, size_t mr, float *packed) {
    const size_t tiles = (filters + mr - 1) / mr;
    for (size_t t = 0; t < tiles; t++) {
        for (size_t k = 0; k < k_count; k++) {
            for (size_t i = 0; i < mr; i++) {
                const size_t m = t * mr + i;
                packed[(t * k_count + k) * mr + i] = m < filters ? w[m * k_count + k] : 0.0f;
            }
        }
    }
}

/* The last n (< LTS_VW) floats of a copy: one at a time, or one masked move on AVX-512. */
#define LTS_COPY_TAIL(dst, src, n) for (int64_t t_ = 0; t_ < (n); t_++) (dst)[t_] = (src)[t_]

#define LTS_LEVEL baseline
#define LTS_TARGET
#define LTS_LEVEL_ID lts_vector_level_baseline
#define LTS_VW 4
#define LTS_NV 2
#define LTS_MR 4
#define LTS_EVEN_LANES 0, 2, 4, 6
#include "conv_kernels_body.h"

#define LTS_LEVEL avx2
#define LTS_TARGET __attribute__((target("avx2,fma")))
#define LTS_LEVEL_ID lts_vector_level_avx2
#define LTS_VW 8
#define LTS_NV 2
#define LTS_MR 6
#define LTS_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14
#include "conv_kernels_body.h"

#undef LTS_COPY_TAIL
#define LTS_COPY_TAIL(dst, src, n) \
    _mm512_mask_storeu_ps((dst), (__mmask16)((1u << (n)) - 1), _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), (src)))
#define LTS_LEVEL avx512
#define LTS_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
#define LTS_LEVEL_ID lts_vector_level_avx512
/* 8 filters × 48 pixels (24 accumulators): measured fastest of 8×32, 8×48, 16×16, 4×64, 6×64, 4×96
 * on the seed CNNs' convolutions (Zen 4). */
#define LTS_VW 16
#define LTS_NV 3
#define LTS_MR 8
#define LTS_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#include "conv_kernels_body.h"

LTS_LEVEL_TABLE(const lts_conv_kernels *, lts_conv_kernels, &lts_conv_kernels_baseline, &lts_conv_kernels_avx2,
                &lts_conv_kernels_avx512)
