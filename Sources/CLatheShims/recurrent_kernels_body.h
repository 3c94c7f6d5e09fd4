/* The LSTM step kernels of recurrent_kernels.c, included once per instruction-set level by
 * vector_kernels.c after vector_kernels_body.h (whose vector helpers they use), with LTS_LEVEL,
 * LTS_TARGET and LTS_FMA(a, b, c) (= a·b + c, fused where the level has FMA) defined.
 *
 * lstm_forward: the recurrent product h·Rᵀ in register tiles of up to 4 batch rows × up to 4 hidden
 * chunks of 16 (all four gates of a chunk at once, over R packed by lts_lstm_pack_recurrence), then
 * the cell math on the accumulators before they leave the registers. lstm_backward: the elementwise
 * gate gradients of one step. */

#define LTS_CAT2(a, b) a##_##b
#define LTS_CAT(a, b) LTS_CAT2(a, b)
#define LTS_NAME(name) LTS_CAT(name, LTS_LEVEL)

/* The cell's activations, leaner than the vector kernels' (whose contract is Swift's bits): exp of an
 * argument clamped to ±87.3 (one scale, no overflow or subnormal path), multiply-adds through LTS_FMA.
 * Measured on avx512 against double precision: exp 1.0 ulp, tanh 1.3 ulp, sigmoid 2.5 ulp for
 * |x| < 87 (below −87.3 sigmoid stays at ≈1e-38 instead of going subnormal); NaN stays NaN. */
static inline __attribute__((always_inline)) LTS_TARGET lts_v16f LTS_NAME(lts_cell_exp)(lts_v16f x) {
    const float bound = 87.3f, magic = 12582912.0f;
    x = lts_select(x > bound, lts_splat(bound), x);
    x = lts_select(x < -bound, lts_splat(-bound), x);
    const lts_v16f t = LTS_FMA(x, lts_splat(1.44269504f), lts_splat(magic));
    const lts_v16f n = t - magic;
    const lts_v16f r = LTS_FMA(n, lts_splat(2.1219444e-4f), LTS_FMA(n, lts_splat(-0.693359375f), x));
    lts_v16f p = lts_splat(1.98756915e-4f);
    p = LTS_FMA(p, r, lts_splat(1.3981999507e-3f));
    p = LTS_FMA(p, r, lts_splat(8.3334519073e-3f));
    p = LTS_FMA(p, r, lts_splat(4.1665795894e-2f));
    p = LTS_FMA(p, r, lts_splat(1.6666665459e-1f));
    p = LTS_FMA(p, r, lts_splat(5.0000001201e-1f));
    const lts_v16f er = LTS_FMA(p, r * r, r) + 1.0f;
    const lts_v16f scale = (lts_v16f)(((lts_v16i)t - 0x4B400000 + 127) << 23);
    return er * scale;
}

static inline __attribute__((always_inline)) LTS_TARGET lts_v16f LTS_NAME(lts_cell_sigmoid)(lts_v16f x) {
    return 1.0f / (1.0f + LTS_NAME(lts_cell_exp)(-x));
}

/* tanh: an odd polynomial below |x| = 0.625, 1 − 2/(e^{2|x|} + 1) above, the sign of x put back. */
static inline __attribute__((always_inline)) LTS_TARGET lts_v16f LTS_NAME(lts_cell_tanh)(lts_v16f x) {
    const lts_v16f a = lts_abs(x), z = x * x;
    lts_v16f p = lts_splat(-5.70498872745e-3f);
    p = LTS_FMA(p, z, lts_splat(2.06390887954e-2f));
    p = LTS_FMA(p, z, lts_splat(-5.37397155531e-2f));
    p = LTS_FMA(p, z, lts_splat(1.33314422036e-1f));
    p = LTS_FMA(p, z, lts_splat(-3.33332819422e-1f));
    const lts_v16f small = LTS_FMA(p * z, a, a);
    const lts_v16f large = 1.0f - 2.0f / (LTS_NAME(lts_cell_exp)(a + a) + 1.0f);
    const lts_v16f magnitude = lts_select(a < 0.625f, small, large);
    return (lts_v16f)((lts_v16u)magnitude | ((lts_v16u)x & 0x80000000u));
}

/* One tile: batch rows row0..<row0+ROWS, hidden chunks chunk0..<chunk0+CHUNKS. */
static inline __attribute__((always_inline)) LTS_TARGET void LTS_NAME(lts_lstm_forward_tile)(
    const lts_lstm_forward_step *a, size_t row0, size_t chunk0, const int ROWS, const int CHUNKS) {
    const size_t hidden = a->hidden;
    lts_v16f acc[4][4][4];  /* [row][chunk][gate] */
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < CHUNKS; c++)
            for (int g = 0; g < 4; g++) acc[r][c][g] = lts_splat(0.0f);
    const float *h_rows[4];
    for (int r = 0; r < ROWS; r++) h_rows[r] = a->h_prev + (row0 + r) * a->h_prev_stride;
    const float *panel = a->packed_r + chunk0 * hidden * 64;
    for (size_t k = 0; k < hidden; k++) {
        for (int c = 0; c < CHUNKS; c++) {
            const float *p = panel + (c * hidden + k) * 64;
            const lts_v16f w0 = lts_load(p), w1 = lts_load(p + 16), w2 = lts_load(p + 32), w3 = lts_load(p + 48);
            for (int r = 0; r < ROWS; r++) {
                const lts_v16f hk = lts_splat(h_rows[r][k]);
                acc[r][c][0] = LTS_FMA(hk, w0, acc[r][c][0]);
                acc[r][c][1] = LTS_FMA(hk, w1, acc[r][c][1]);
                acc[r][c][2] = LTS_FMA(hk, w2, acc[r][c][2]);
                acc[r][c][3] = LTS_FMA(hk, w3, acc[r][c][3]);
            }
        }
    }
    for (int r = 0; r < ROWS; r++) {
        const size_t b = row0 + r;
        const float *pre = a->pre + b * a->pre_stride;
        const float *c_prev = a->c_prev + b * hidden;
        float *c_next = a->c_next + b * hidden, *h_next = a->h_next + b * a->h_next_stride;
        float *gates = a->gates ? a->gates + b * a->gates_stride : NULL;
        float *tanh_c = a->tanh_c ? a->tanh_c + b * hidden : NULL;
        for (int c = 0; c < CHUNKS; c++) {
            const size_t j = (chunk0 + c) * 16;
            const size_t n = hidden - j < 16 ? hidden - j : 16;
            lts_v16f v[4];
            for (int g = 0; g < 4; g++) {
                lts_v16f x = lts_load_n(pre + g * hidden + j, n);
                if (a->bias) x = x + lts_load_n(a->bias + g * hidden + j, n);
                v[g] = acc[r][c][g] + x;
            }
            const lts_v16f i = LTS_NAME(lts_cell_sigmoid)(v[0]), o = LTS_NAME(lts_cell_sigmoid)(v[1]);
            const lts_v16f f = LTS_NAME(lts_cell_sigmoid)(v[2]), candidate = LTS_NAME(lts_cell_tanh)(v[3]);
            const lts_v16f c_new = LTS_FMA(f, lts_load_n(c_prev + j, n), i * candidate);
            const lts_v16f t = LTS_NAME(lts_cell_tanh)(c_new);
            lts_store_n(c_new, c_next + j, n);
            lts_store_n(o * t, h_next + j, n);
            if (gates) {
                lts_store_n(i, gates + j, n);
                lts_store_n(o, gates + hidden + j, n);
                lts_store_n(f, gates + 2 * hidden + j, n);
                lts_store_n(candidate, gates + 3 * hidden + j, n);
            }
            if (tanh_c) lts_store_n(t, tanh_c + j, n);
        }
    }
}

/* The last `hidden % 16` (1–4) units of rows row0..<row0+ROWS, all four gates in one vector: lane
 * 4·g + u holds gate g of unit 16·q + u (the packing's squeezed panel). Two accumulator chains per row
 * (even and odd k) hide the multiply-add latency. */
static inline __attribute__((always_inline)) LTS_TARGET void LTS_NAME(lts_lstm_forward_tail)(
    const lts_lstm_forward_step *a, size_t row0, const int ROWS) {
    const size_t hidden = a->hidden, j = hidden / 16 * 16, n = hidden - j;
    const float *panel = a->packed_r + j * hidden * 4;
    lts_v16f acc[4][2];
    const float *h_rows[4];
    for (int r = 0; r < ROWS; r++) {
        acc[r][0] = acc[r][1] = lts_splat(0.0f);
        h_rows[r] = a->h_prev + (row0 + r) * a->h_prev_stride;
    }
    size_t k = 0;
    for (; k + 2 <= hidden; k += 2) {
        const lts_v16f w0 = lts_load(panel + k * 16), w1 = lts_load(panel + k * 16 + 16);
        for (int r = 0; r < ROWS; r++) {
            acc[r][0] = LTS_FMA(lts_splat(h_rows[r][k]), w0, acc[r][0]);
            acc[r][1] = LTS_FMA(lts_splat(h_rows[r][k + 1]), w1, acc[r][1]);
        }
    }
    if (k < hidden) {
        const lts_v16f w0 = lts_load(panel + k * 16);
        for (int r = 0; r < ROWS; r++) acc[r][0] = LTS_FMA(lts_splat(h_rows[r][k]), w0, acc[r][0]);
    }
    for (int r = 0; r < ROWS; r++) {
        const size_t b = row0 + r;
        const float *pre = a->pre + b * a->pre_stride;
        float squeezed[16] = {0};
        for (int g = 0; g < 4; g++)
            for (size_t u = 0; u < n; u++)
                squeezed[4 * g + u] = pre[g * hidden + j + u] + (a->bias ? a->bias[g * hidden + j + u] : 0.0f);
        const lts_v16f v = acc[r][0] + acc[r][1] + lts_load(squeezed);
        const lts_v16f sig = LTS_NAME(lts_cell_sigmoid)(v), th = LTS_NAME(lts_cell_tanh)(v);
        /* Gate g's units to lanes 0..<n. */
        const lts_v16f i = sig, o = __builtin_shufflevector(sig, sig, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
        const lts_v16f f = __builtin_shufflevector(sig, sig, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11);
        const lts_v16f candidate =
            __builtin_shufflevector(th, th, 12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15);
        const lts_v16f c_new = LTS_FMA(f, lts_load_partial(a->c_prev + b * hidden + j, n), i * candidate);
        const lts_v16f t = LTS_NAME(lts_cell_tanh)(c_new);
        lts_store_partial(c_new, a->c_next + b * hidden + j, n);
        lts_store_partial(o * t, a->h_next + b * a->h_next_stride + j, n);
        if (a->gates) {
            float *gates = a->gates + b * a->gates_stride + j;
            lts_store_partial(i, gates, n);
            lts_store_partial(o, gates + hidden, n);
            lts_store_partial(f, gates + 2 * hidden, n);
            lts_store_partial(candidate, gates + 3 * hidden, n);
        }
        if (a->tanh_c) lts_store_partial(t, a->tanh_c + b * hidden + j, n);
    }
}

static LTS_TARGET void LTS_NAME(lts_lstm_forward)(const lts_lstm_forward_step *a) {
    /* Chunks of 16 units in full panels; a remainder of 1–4 units has its own squeezed panel. */
    const size_t remainder = a->hidden % 16, squeezed = remainder != 0 && remainder <= 4;
    const size_t chunks = squeezed ? a->hidden / 16 : (a->hidden + 15) / 16;
    if (squeezed) {
        size_t row0 = 0;
        for (; row0 + 4 <= a->batch; row0 += 4) LTS_NAME(lts_lstm_forward_tail)(a, row0, 4);
        switch (a->batch - row0) {
        case 1: LTS_NAME(lts_lstm_forward_tail)(a, row0, 1); break;
        case 2: LTS_NAME(lts_lstm_forward_tail)(a, row0, 2); break;
        case 3: LTS_NAME(lts_lstm_forward_tail)(a, row0, 3); break;
        default: break;
        }
    }
    size_t row0 = 0;
    for (; row0 + 4 <= a->batch; row0 += 4)
        for (size_t c = 0; c < chunks; c++) LTS_NAME(lts_lstm_forward_tile)(a, row0, c, 4, 1);
    const size_t rows = a->batch - row0;
    if (rows == 0 || chunks == 0) return;
    /* Fewer rows: more chunks per tile, so there are enough independent accumulators. */
    const size_t per_tile = rows == 1 ? 4 : rows == 2 ? 2 : 1;
    for (size_t c = 0; c < chunks; c += per_tile) {
        const size_t count = chunks - c < per_tile ? chunks - c : per_tile;
        switch (rows * 8 + count) {
        case 1 * 8 + 1: LTS_NAME(lts_lstm_forward_tile)(a, row0, c, 1, 1); break;
        case 1 * 8 + 2: LTS_NAME(lts_lstm_forward_tile)(a, row0, c, 1, 2); break;
        case 1 * 8 + 3: LTS_NAME(lts_lstm_forward_tile)(a, row0, c, 1, 3); break;
        case 1 * 8 + 4: LTS_NAME(lts_lstm_forward_tile)(a, row0, c, 1, 4); break;
        case 2 * 8 + 1: LTS_NAME(lts_lstm_forward_tile)(a, row0, c, 2, 1); break;
        case 2 * 8 + 2: LTS_NAME(lts_lstm_forward_tile)(a, row0, c, 2, 2); break;
        default: LTS_NAME(lts_lstm_forward_tile)(a, row0, c, 3, 1); break;
        }
    }
}

static LTS_TARGET void LTS_NAME(lts_lstm_backward)(const lts_lstm_backward_step *a) {
    const size_t hidden = a->hidden;
    for (size_t b = 0; b < a->batch; b++) {
        const float *gates = a->gates + b * 4 * hidden;
        const float *tanh_c = a->tanh_c + b * hidden, *c_prev = a->c_prev + b * hidden;
        const float *dh = a->dh + b * hidden;
        float *dc = a->dc + b * hidden, *d_pre = a->d_pre + b * 4 * hidden;
        for (size_t j = 0; j < hidden; j += 16) {
            const size_t n = hidden - j < 16 ? hidden - j : 16;
            const lts_v16f i = lts_load_n(gates + j, n), o = lts_load_n(gates + hidden + j, n);
            const lts_v16f f = lts_load_n(gates + 2 * hidden + j, n);
            const lts_v16f candidate = lts_load_n(gates + 3 * hidden + j, n);
            const lts_v16f t = lts_load_n(tanh_c + j, n), dhv = lts_load_n(dh + j, n);
            const lts_v16f dct = lts_load_n(dc + j, n) + dhv * o * (1.0f - t * t);
            lts_store_n(dct * candidate * i * (1.0f - i), d_pre + j, n);
            lts_store_n(dhv * t * o * (1.0f - o), d_pre + hidden + j, n);
            lts_store_n(dct * lts_load_n(c_prev + j, n) * f * (1.0f - f), d_pre + 2 * hidden + j, n);
            lts_store_n(dct * i * (1.0f - candidate * candidate), d_pre + 3 * hidden + j, n);
            lts_store_n(dct * f, dc + j, n);
        }
    }
}

const lts_recurrent_kernels LTS_NAME(lts_recurrent_kernels) = {
    .lstm_forward = LTS_NAME(lts_lstm_forward),
    .lstm_backward = LTS_NAME(lts_lstm_backward),
};

#undef LTS_NAME
#undef LTS_CAT
#undef LTS_CAT2
