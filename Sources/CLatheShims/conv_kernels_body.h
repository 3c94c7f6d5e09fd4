/* The direct 2-D convolution of conv_kernels.c, written once and included once per instruction-set
 * level with LTS_LEVEL (a name suffix), LTS_TARGET (a function attribute), LTS_LEVEL_ID (the
 * lts_vector_level), LTS_VW (floats per vector), LTS_NV (vectors per tile row) and LTS_MR (filters
 * per tile) defined. A tile is LTS_MR filters × LTS_NR output pixels, accumulated in registers. */

#define LTS_CAT2(a, b) a##_##b
#define LTS_CAT(a, b) LTS_CAT2(a, b)
#define LTS_NAME(name) LTS_CAT(name, LTS_LEVEL)
#define LTS_NR (LTS_VW * LTS_NV)

typedef float LTS_NAME(lts_cv) __attribute__((ext_vector_type(LTS_VW)));
typedef float LTS_NAME(lts_cv_unaligned) __attribute__((ext_vector_type(LTS_VW), aligned(4)));
#define LTS_V LTS_NAME(lts_cv)
#define LTS_LOAD(p) (*(const LTS_NAME(lts_cv_unaligned) *)(p))
#define LTS_STORE(v, p) (*(LTS_NAME(lts_cv_unaligned) *)(p) = (v))

/* tile[i·NR + j] = Σ_k a[k·MR + i] · b[offsets[k] + j] for one MR × NR tile, then bias and the
 * piecewise-linear activations (sigmoid and tanh run afterwards, over the whole tile). */
static inline __attribute__((always_inline)) LTS_TARGET void LTS_NAME(lts_conv_tile)(
    const float *a, const float *b, const int32_t *offsets, size_t k_count, const float *bias,
    int32_t activation, float alpha, float beta, float *tile) {
    LTS_V acc[LTS_MR][LTS_NV];
    for (int i = 0; i < LTS_MR; i++)
        for (int j = 0; j < LTS_NV; j++) acc[i][j] = (LTS_V)(bias ? bias[i] : 0.0f);
    for (size_t k = 0; k < k_count; k++) {
        const float *bk = b + offsets[k];
        const float *ak = a + k * LTS_MR;
        LTS_V bv[LTS_NV];
        for (int j = 0; j < LTS_NV; j++) bv[j] = LTS_LOAD(bk + j * LTS_VW);
        for (int i = 0; i < LTS_MR; i++) {
            LTS_V ai = (LTS_V)(ak[i]);
            for (int j = 0; j < LTS_NV; j++) acc[i][j] += ai * bv[j];
        }
    }
    for (int i = 0; i < LTS_MR; i++) {
        for (int j = 0; j < LTS_NV; j++) {
            LTS_V v = acc[i][j];
            switch (activation) {
            case lts_conv_activation_relu: v = v <= 0.0f ? (LTS_V)(0.0f) : v; break;
            case lts_conv_activation_leaky_relu: v = v < 0.0f ? v * alpha : v; break;
            case lts_conv_activation_clip:
                v = v <= alpha ? (LTS_V)(alpha) : v;
                v = v > beta ? (LTS_V)(beta) : v;
                break;
            default: break;
            }
            LTS_STORE(v, tile + i * LTS_NR + j * LTS_VW);
        }
    }
}

/* Packs pixels q0 ..< q0 + NR (fewer at the end: zeros) of the unfolded input of the batch into
 * strip[k·NR + j] (pixel q = image·out_h·out_w + oy·out_w + ox): the implicit im2col of one strip. */
static LTS_TARGET void LTS_NAME(lts_conv_pack_strip)(const lts_conv_shape *s, const float *x, int64_t q0,
                                                    int64_t count, float *strip) {
    const int64_t ow = s->out_w, ih = s->in_h, iw = s->in_w, sh = s->stride_h, sw = s->stride_w;
    const int64_t image_pixels = s->out_h * ow, image_floats = s->channels * ih * iw;
    const int64_t n_pixels = count - q0 < LTS_NR ? count - q0 : LTS_NR;
    float *dst = strip;
    for (int64_t c = 0; c < s->channels; c++) {
        for (int64_t ky = 0; ky < s->kernel_h; ky++) {
            for (int64_t kx = 0; kx < s->kernel_w; kx++, dst += LTS_NR) {
                const int64_t offset = kx * s->dilation_w - s->pad_left;
                /* Output columns lo..<hi read inside the row; the others are padding. */
                const int64_t lo = offset >= 0 ? 0 : (sw - 1 - offset) / sw;
                const int64_t hi = iw - 1 - offset < 0 ? 0 : ((iw - 1 - offset) / sw + 1 < ow ? (iw - 1 - offset) / sw + 1 : ow);
                int64_t j = 0, image = q0 / image_pixels, oy = q0 % image_pixels / ow, ox = q0 % ow;
                while (j < n_pixels) {
                    const int64_t run = ow - ox < n_pixels - j ? ow - ox : n_pixels - j;
                    const int64_t y = oy * sh + ky * s->dilation_h - s->pad_top;
                    float *d = dst + j - ox;
                    if (y < 0 || y >= ih || lo >= hi) {
                        for (int64_t o = ox; o < ox + run; o++) d[o] = 0.0f;
                    } else {
                        const float *row = x + image * image_floats + (c * ih + y) * iw + offset;
                        const int64_t a = ox > lo ? ox : lo, e = ox + run < hi ? ox + run : hi;
                        int64_t o = ox;
                        for (; o < a && o < ox + run; o++) d[o] = 0.0f;
                        /* Whole vectors, the last one ending at e (overlapping the one before). */
                        if (sw == 1 && e - a >= LTS_VW) {
                            for (; o + LTS_VW <= e; o += LTS_VW) LTS_STORE(LTS_LOAD(row + o), d + o);
                            if (o < e) LTS_STORE(LTS_LOAD(row + e - LTS_VW), d + e - LTS_VW);
                            o = e;
                        } else if (sw == 2 && e - a >= LTS_VW && 2 * e - 1 <= iw - 1 - offset) {
                            /* Two vectors of the row hold one vector of even columns. */
                            for (;; o += LTS_VW) {
                                if (o + LTS_VW > e) o = e - LTS_VW;
                                LTS_V v0 = LTS_LOAD(row + 2 * o), v1 = LTS_LOAD(row + 2 * o + LTS_VW);
                                LTS_STORE(__builtin_shufflevector(v0, v1, LTS_EVEN_LANES), d + o);
                                if (o + LTS_VW == e) break;
                            }
                            o = e;
                        }
                        for (; o < e; o++) d[o] = row[o * sw];
                        for (; o < ox + run; o++) d[o] = 0.0f;
                    }
                    j += run;
                    ox = 0;
                    if (++oy == s->out_h) { oy = 0; image++; }
                }
                for (; j < LTS_NR; j++) dst[j] = 0.0f;
            }
        }
    }
}

/* dst[0..<n] = src[0..<n], inline (the runs are short: a call to memcpy costs more). */
static inline __attribute__((always_inline)) LTS_TARGET void LTS_NAME(lts_conv_copy)(float *dst, const float *src,
                                                                                      int64_t n) {
    int64_t i = 0;
    for (; i + LTS_VW <= n; i += LTS_VW) LTS_STORE(LTS_LOAD(src + i), dst + i);
    if (i < n) LTS_COPY_TAIL(dst + i, src + i, n - i);
}

/* Stores rows 0..<rows of `tile` (pixels q0 ..< q0 + NR) into Y from filter m0 on, for pixels
 * from ..< min(q0 + NR, count); sigmoid and tanh are applied first. Direct layouts number one image's pixels in rows `l->width`
 * wide (columns from out_w on are not outputs); packed ones number the batch's pixels densely. */
static LTS_TARGET void LTS_NAME(lts_conv_store)(const lts_conv_shape *s, const lts_conv_layout *l, float *tile,
                                               size_t rows, size_t m0, int64_t q0, int64_t from, int64_t count,
                                               float *y) {
    const lts_vector_kernels *vk = lts_vector_kernels_at(LTS_LEVEL_ID);
    if (s->activation == lts_conv_activation_sigmoid) vk->sigmoid(tile, tile, rows * LTS_NR, NULL);
    if (s->activation == lts_conv_activation_tanh) vk->tanh(tile, tile, rows * LTS_NR, NULL);
    const int64_t plane = s->out_h * s->out_w, ow = s->out_w;
    const int64_t end = q0 + LTS_NR < count ? q0 + LTS_NR : count;
    int64_t q = from;
    while (q < end) {
        /* A run of pixels contiguous in Y, `valid` of them outputs, at `target` in filter 0's plane. */
        int64_t run, valid, target;
        if (l->direct) {
            const int64_t oy = q / l->width, ox = q % l->width;
            run = l->width - ox < end - q ? l->width - ox : end - q;
            valid = ox >= ow ? 0 : (ow - ox < run ? ow - ox : run);
            target = oy * ow + ox;
        } else {
            const int64_t image = q / plane, p = q % plane;
            run = valid = plane - p < end - q ? plane - p : end - q;
            target = image * s->filters * plane + p;
        }
        if (valid > 0) {
            for (size_t i = 0; i < rows; i++)
                LTS_NAME(lts_conv_copy)(y + target + (int64_t)(m0 + i) * plane, tile + i * LTS_NR + (q - q0), valid);
        }
        q += run;
    }
}

static LTS_TARGET void LTS_NAME(lts_conv_run)(const lts_conv_shape *s, const float *x, const float *packed_w,
                                             const float *bias, float *y, size_t images, size_t strip_first,
                                             size_t strip_end, void *scratch) {
    const lts_conv_layout l = lts_conv_layout_of(s, LTS_NR);
    const size_t k_count = (size_t)(s->channels * s->kernel_h * s->kernel_w);
    const int64_t image_in = s->channels * s->in_h * s->in_w, image_out = s->filters * s->out_h * s->out_w;
    int32_t *offsets = (int32_t *)scratch;
    float *buffer = (float *)((char *)scratch + lts_conv_offsets_bytes(k_count));
    /* Offsets of each unfolded row in the source (direct) or the packed strip. */
    for (size_t k = 0; k < k_count; k++) {
        if (l.direct) {
            const int64_t c = (int64_t)k / (s->kernel_h * s->kernel_w), t = (int64_t)k % (s->kernel_h * s->kernel_w);
            offsets[k] = (int32_t)(c * l.plane + (t / s->kernel_w) * s->dilation_h * l.width + (t % s->kernel_w) * s->dilation_w);
        } else {
            offsets[k] = (int32_t)(k * LTS_NR);
        }
    }
    float tile[LTS_MR * LTS_NR] __attribute__((aligned(64)));
    float bias_tile[LTS_MR];
    const size_t m_tiles = ((size_t)s->filters + LTS_MR - 1) / LTS_MR;
    const int64_t image_strips = (l.count + LTS_NR - 1) / LTS_NR;
    const int64_t batch_count = l.direct ? l.count : (int64_t)images * l.count;
    int64_t copied = -1;
    for (size_t strip = strip_first; strip < strip_end; strip++) {
        /* Direct strips are per image, packed ones run over the batch. A last strip computes from
         * the last pixel back (overlapping its neighbour) when there are enough pixels, and stores
         * only its own. */
        const int64_t image = l.direct ? (int64_t)strip / image_strips : 0;
        const int64_t from = l.direct ? (int64_t)strip % image_strips * LTS_NR : (int64_t)strip * LTS_NR;
        const int64_t q0 = from + LTS_NR > batch_count && batch_count >= LTS_NR ? batch_count - LTS_NR : from;
        const float *b = buffer;
        float *target = y + image * image_out;
        if (!l.direct) {
            LTS_NAME(lts_conv_pack_strip)(s, x, q0, batch_count, buffer);
        } else if (l.copies) {
            if (image != copied) lts_conv_pad_copy(s, &l, x + image * image_in, buffer, LTS_NR);
            copied = image;
            b = buffer + q0;
        } else {
            b = x + image * image_in + q0;
        }
        for (size_t mt = 0; mt < m_tiles; mt++) {
            const size_t m0 = mt * LTS_MR;
            const size_t rows = (size_t)s->filters - m0 < LTS_MR ? (size_t)s->filters - m0 : LTS_MR;
            const float *tile_bias = NULL;
            if (bias) {
                for (size_t i = 0; i < LTS_MR; i++) bias_tile[i] = i < rows ? bias[m0 + i] : 0.0f;
                tile_bias = bias_tile;
            }
            LTS_NAME(lts_conv_tile)(packed_w + mt * k_count * LTS_MR, b, offsets, k_count, tile_bias,
                                    s->activation, s->alpha, s->beta, tile);
            LTS_NAME(lts_conv_store)(s, &l, tile, rows, m0, q0, from, batch_count, target);
        }
    }
}

static const lts_conv_kernels LTS_NAME(lts_conv_kernels) = {
    .mr = LTS_MR,
    .nr = LTS_NR,
    .run = LTS_NAME(lts_conv_run),
};

#undef LTS_LOAD
#undef LTS_STORE
#undef LTS_V
#undef LTS_NR
#undef LTS_NAME
#undef LTS_CAT
#undef LTS_CAT2
/* The includer's parameters of this level, undefined here so the next level defines them afresh. */
#undef LTS_LEVEL
#undef LTS_TARGET
#undef LTS_LEVEL_ID
#undef LTS_VW
#undef LTS_NV
#undef LTS_MR
#undef LTS_EVEN_LANES
