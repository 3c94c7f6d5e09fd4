/* The Winograd F(4×4, 3×3) input and output transforms of winograd.c, written once and included once
 * per instruction-set level with LTS_LEVEL (a name suffix) and LTS_TARGET (a function attribute)
 * defined. A block's tile rows are laid side by side, so every loop runs over all the block's tiles
 * in contiguous arrays and the compiler vectorises it for the level (with masked tails); contraction
 * is off, so every level gives the same bits. */

#define LTS_CAT2(a, b) a##_##b
#define LTS_CAT(a, b) LTS_CAT2(a, b)
#define LTS_NAME(name) LTS_CAT(name, LTS_LEVEL)
#define LTS_VECTORIZE _Pragma("clang loop vectorize(assume_safety) vectorize_predicate(enable)")

/* Bᵀ·(d0 … d5) for one column of six values (the rows of Bᵀ, lines 1–6). */
#define LTS_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) \
    do { \
        o0 = (4.0f * (d0) - 5.0f * (d2)) + (d4); \
        o1 = ((d3) + (d4)) - 4.0f * ((d1) + (d2)); \
        o2 = 4.0f * ((d1) - (d2)) + ((d4) - (d3)); \
        o3 = 2.0f * ((d3) - (d1)) + ((d4) - (d2)); \
        o4 = 2.0f * ((d1) - (d3)) + ((d4) - (d2)); \
        o5 = (4.0f * (d1) - 5.0f * (d3)) + (d5); \
    } while (0)

/* Aᵀ·(m0 … m5): four values. */
#define LTS_AT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3) \
    do { \
        float s12_ = (m1) + (m2), d12_ = (m1) - (m2), s34_ = (m3) + (m4), d34_ = (m3) - (m4); \
        o0 = ((m0) + s12_) + s34_; \
        o1 = d12_ + 2.0f * d34_; \
        o2 = s12_ + 4.0f * s34_; \
        o3 = (d12_ + 8.0f * d34_) + (m5); \
    } while (0)

static LTS_TARGET void LTS_NAME(lts_winograd_input)(const lts_winograd_geometry *g, size_t first_row, size_t rows,
                                                    const float *x, float *v, size_t ldv, float *scratch) {
    /* Six padded input rows per tile row, the tile rows' segments (4·tiles_x columns) side by side
     * (`span` wide), and each segment's two overhanging columns (4·tiles_x, 4·tiles_x + 1) apart in
     * `over`. Bᵀ·d down the columns gives `column`; its rows split by column mod 4 (column 4·i + j of
     * the block is e[j][i]) let the row transform of tile i read e[0..3][i], e[0][i + 1], e[1][i + 1]
     * contiguously; the last tile of each segment is redone with its overhang. */
    const size_t tx = g->tiles_x, seg = 4 * tx, tiles = rows * tx, span = rows * seg + 4;
    float *strip = scratch, *column = strip + 6 * span, *e = column + 6 * span, *over = e + 4 * (tiles + 1),
          *tover = over + 12 * rows;
    for (size_t c = 0; c < g->channels; c++) {
        for (size_t s = 0; s < rows; s++) {
            size_t row = first_row + s, n = row / g->tiles_y, ty = row % g->tiles_y;
            const float *plane = x + (n * g->channels + c) * g->height * g->width;
            ptrdiff_t left = -(ptrdiff_t)g->pad_left;
            ptrdiff_t lo = left < 0 ? -left : 0, hi = (ptrdiff_t)g->width - left;
            if (hi > (ptrdiff_t)seg + 2) hi = (ptrdiff_t)seg + 2;
            if (hi < lo) hi = lo;
            for (int r = 0; r < 6; r++) {
                float *dst = strip + r * span + s * seg, *tail = over + (r * rows + s) * 2;
                ptrdiff_t iy = (ptrdiff_t)(4 * ty) - (ptrdiff_t)g->pad_top + r;
                if (iy < 0 || iy >= (ptrdiff_t)g->height) {
                    for (size_t i = 0; i < seg; i++) dst[i] = 0;
                    tail[0] = tail[1] = 0;
                    continue;
                }
                const float *src = plane + iy * (ptrdiff_t)g->width + left;
                /* Window columns 0 ..< seg into the segment (lo ..< hi inside the image), seg and
                 * seg + 1 into the overhang. */
                ptrdiff_t end = hi < (ptrdiff_t)seg ? hi : (ptrdiff_t)seg;
                for (ptrdiff_t i = 0; i < lo && i < (ptrdiff_t)seg; i++) dst[i] = 0;
                for (ptrdiff_t i = lo; i < end; i++) dst[i] = src[i];
                for (ptrdiff_t i = end > lo ? end : lo; i < (ptrdiff_t)seg; i++) dst[i] = 0;
                for (ptrdiff_t i = (ptrdiff_t)seg; i < (ptrdiff_t)seg + 2; i++)
                    tail[i - (ptrdiff_t)seg] = i >= lo && i < hi ? src[i] : 0.0f;
            }
        }
        for (int r = 0; r < 6; r++) {
            float *pad = strip + r * span + rows * seg;
            pad[0] = pad[1] = pad[2] = pad[3] = 0;
        }
        /* Columns: Bᵀ·d over every column of the strip and the overhangs. */
        {
            const size_t n = span;
            const float *d0 = strip, *d1 = d0 + n, *d2 = d1 + n, *d3 = d2 + n, *d4 = d3 + n, *d5 = d4 + n;
            float *t0 = column, *t1 = t0 + n, *t2 = t1 + n, *t3 = t2 + n, *t4 = t3 + n, *t5 = t4 + n;
            LTS_VECTORIZE
            for (size_t i = 0; i < n; i++) LTS_BT(d0[i], d1[i], d2[i], d3[i], d4[i], d5[i], t0[i], t1[i], t2[i], t3[i], t4[i], t5[i]);
            const size_t m = 2 * rows;
            const float *q0 = over, *q1 = q0 + m, *q2 = q1 + m, *q3 = q2 + m, *q4 = q3 + m, *q5 = q4 + m;
            float *u0 = tover, *u1 = u0 + m, *u2 = u1 + m, *u3 = u2 + m, *u4 = u3 + m, *u5 = u4 + m;
            for (size_t i = 0; i < m; i++) LTS_BT(q0[i], q1[i], q2[i], q3[i], q4[i], q5[i], u0[i], u1[i], u2[i], u3[i], u4[i], u5[i]);
        }
        /* Rows: for each of the 6 column-transformed rows k, Bᵀ along the row gives V_{6k + l}. */
        for (int k = 0; k < 6; k++) {
            const float *t = column + k * span;
            float *e0 = e, *e1 = e0 + tiles + 1, *e2 = e1 + tiles + 1, *e3 = e2 + tiles + 1;
            /* Not predicated: the stride-4 loads vectorise as shuffles only with a scalar tail. */
            _Pragma("clang loop vectorize(assume_safety)")
            for (size_t i = 0; i < tiles + 1; i++) {
                e0[i] = t[4 * i];
                e1[i] = t[4 * i + 1];
                e2[i] = t[4 * i + 2];
                e3[i] = t[4 * i + 3];
            }
            float *o0 = v + (size_t)(6 * k) * g->channels * ldv + c * ldv, *o1 = o0 + g->channels * ldv,
                  *o2 = o1 + g->channels * ldv, *o3 = o2 + g->channels * ldv, *o4 = o3 + g->channels * ldv,
                  *o5 = o4 + g->channels * ldv;
            LTS_VECTORIZE
            for (size_t i = 0; i < tiles; i++)
                LTS_BT(e0[i], e1[i], e2[i], e3[i], e0[i + 1], e1[i + 1], o0[i], o1[i], o2[i], o3[i], o4[i], o5[i]);
            const float *u = tover + k * 2 * rows;
            for (size_t s = 0; s < rows; s++) {
                size_t i = s * tx + tx - 1;
                LTS_BT(e0[i], e1[i], e2[i], e3[i], u[2 * s], u[2 * s + 1], o0[i], o1[i], o2[i], o3[i], o4[i], o5[i]);
            }
        }
    }
}

static LTS_TARGET void LTS_NAME(lts_winograd_output)(const lts_winograd_geometry *g, size_t first_row, size_t rows,
                                                     const float *p, size_t ldp, float *y, float *scratch) {
    /* Per filter: Aᵀ·M·A of every tile of the block into four output rows laid side by side like the
     * input strip (4·tiles_x per tile row), then each tile row's valid rows and columns into Y. */
    const size_t tx = g->tiles_x, tiles = rows * tx, span = 4 * tiles, stride = g->filters * ldp;
    const size_t plane = g->out_height * g->out_width;
    float *r0 = scratch, *r1 = r0 + span, *r2 = r1 + span, *r3 = r2 + span;
    for (size_t f = 0; f < g->filters; f++) {
        const float *m = p + f * ldp;
        LTS_VECTORIZE
        for (size_t i = 0; i < tiles; i++) {
            /* Along each row of M first: z[r][j] = (M[r] · A)[j], then down: (Aᵀ · z)[q][j]. */
            float z[6][4];
            for (int r = 0; r < 6; r++) {
                const float *mr = m + (size_t)(6 * r) * stride + i;
                LTS_AT(mr[0], mr[stride], mr[2 * stride], mr[3 * stride], mr[4 * stride], mr[5 * stride],
                       z[r][0], z[r][1], z[r][2], z[r][3]);
            }
            for (int j = 0; j < 4; j++)
                LTS_AT(z[0][j], z[1][j], z[2][j], z[3][j], z[4][j], z[5][j],
                       r0[4 * i + j], r1[4 * i + j], r2[4 * i + j], r3[4 * i + j]);
        }
        for (size_t s = 0; s < rows; s++) {
            size_t row = first_row + s, n = row / g->tiles_y, ty = row % g->tiles_y;
            size_t valid = g->out_height - 4 * ty < 4 ? g->out_height - 4 * ty : 4;
            float *dst = y + (n * g->filters + f) * plane + 4 * ty * g->out_width;
            for (size_t q = 0; q < valid; q++) {
                const float *src = scratch + q * span + s * 4 * tx;
                float *out = dst + q * g->out_width;
                for (size_t i = 0; i < g->out_width; i++) out[i] = src[i];
            }
        }
    }
}

static const lts_winograd_kernels LTS_NAME(lts_winograd) = {
    LTS_NAME(lts_winograd_input),
    LTS_NAME(lts_winograd_output),
};

#undef LTS_CAT2
#undef LTS_CAT
#undef LTS_NAME
#undef LTS_VECTORIZE
#undef LTS_BT
#undef LTS_AT
