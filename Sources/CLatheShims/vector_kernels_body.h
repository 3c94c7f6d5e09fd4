/* The float32 array kernels of vector_kernels.c, written once and included once per instruction-set
 * level with LTS_LEVEL (a name suffix) and LTS_TARGET (a function attribute) defined.
 *
 * The arithmetic is exactly that of Swift's `VectorMath` (SIMDKernels.swift), operation by operation,
 * on 16-float vectors; floating-point contraction is off, so no level fuses a multiply and an add and
 * every level gives the same bits. Tails go through one zero-padded vector, like the Swift maps. */

#define LTS_CAT2(a, b) a##_##b
#define LTS_CAT(a, b) LTS_CAT2(a, b)
#define LTS_NAME(name) LTS_CAT(name, LTS_LEVEL)

static inline __attribute__((always_inline)) LTS_TARGET lts_v16f LTS_NAME(lts_v_exp)(lts_v16f x) {
    const float overflow = 88.72283935546875f, underflow = -103.97208f, magic = 12582912.0f;
    lts_v16f clamped = lts_select(x > overflow, lts_splat(overflow), x);
    clamped = lts_select(clamped < underflow, lts_splat(underflow), clamped);
    lts_v16f t = clamped * 1.44269504f + magic;
    lts_v16f n = t - magic;
    lts_v16f r = (clamped - n * 0.693359375f) - n * -2.1219444e-4f;
    lts_v16f r2 = r * r;
    lts_v16f p = lts_splat(1.98756915e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    lts_v16f er = p * r2 + r + 1.0f;
    lts_v16i ni = (lts_v16i)t - 0x4B400000;
    lts_v16i half = ni >> 1;
    lts_v16f scale1 = (lts_v16f)((lts_v16u)(half + 127) << 23);
    lts_v16f scale2 = (lts_v16f)((lts_v16u)(ni - half + 127) << 23);
    lts_v16f y = er * scale1 * scale2;
    y = lts_select(x > overflow, lts_splat(__builtin_inff()), y);
    return lts_select(x < underflow, lts_splat(0.0f), y);
}

static inline __attribute__((always_inline)) LTS_TARGET lts_v16f LTS_NAME(lts_v_sigmoid)(lts_v16f x) {
    lts_v16f e = LTS_NAME(lts_v_exp)(-lts_abs(x));
    return lts_select(x < 0.0f, e, lts_splat(1.0f)) / (1.0f + e);
}

static inline __attribute__((always_inline)) LTS_TARGET lts_v16f LTS_NAME(lts_v_tanh)(lts_v16f x) {
    lts_v16f a = lts_abs(x);
    lts_v16f z = x * x;
    lts_v16f p = lts_splat(-5.70498872745e-3f);
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    lts_v16f small = p * z * x + x;
    lts_v16f large = 1.0f - 2.0f / (LTS_NAME(lts_v_exp)(a + a) + 1.0f);
    lts_v16f magnitude = lts_abs(lts_select(a < 0.625f, small, large));
    return (lts_v16f)((lts_v16u)magnitude | ((lts_v16u)x & 0x80000000u));
}

/* y[i] = f(x[i] (+ *bias)) for one of the three functions; `x` may equal `y`. */
#define LTS_MAP(function)                                                                               \
    static LTS_TARGET void LTS_NAME(lts_##function)(const float *x, float *y, size_t count,               \
                                                    const float *bias) {                                \
        size_t i = 0;                                                                                   \
        for (; i + 16 <= count; i += 16) {                                                              \
            lts_v16f v = lts_load(x + i);                                                               \
            if (bias) v = v + *bias;                                                                    \
            lts_store(LTS_NAME(lts_v_##function)(v), y + i);                                            \
        }                                                                                               \
        if (i < count) {                                                                                \
            lts_v16f v = lts_load_partial(x + i, count - i);                                            \
            if (bias) v = v + *bias;                                                                    \
            lts_store_partial(LTS_NAME(lts_v_##function)(v), y + i, count - i);                         \
        }                                                                                               \
    }
LTS_MAP(exp)
LTS_MAP(sigmoid)
LTS_MAP(tanh)
#undef LTS_MAP

static LTS_TARGET void LTS_NAME(lts_lstm_step)(float *gate, const float *projected, const float *bias,
                                               float *h, float *c, size_t hidden) {
    for (size_t j = 0; j < hidden; j += 16) {
        size_t n = hidden - j < 16 ? hidden - j : 16;
#define LTS_PRE(offset)                                                                                 \
    (lts_load_n(gate + (offset) + j, n)                                                                \
     + (lts_load_n(projected + (offset) + j, n) + lts_load_n(bias + (offset) + j, n)))
        lts_v16f i = LTS_NAME(lts_v_sigmoid)(LTS_PRE(0));
        lts_v16f o = LTS_NAME(lts_v_sigmoid)(LTS_PRE(hidden));
        lts_v16f f = LTS_NAME(lts_v_sigmoid)(LTS_PRE(2 * hidden));
        lts_v16f candidate = LTS_NAME(lts_v_tanh)(LTS_PRE(3 * hidden));
#undef LTS_PRE
        lts_v16f c_new = f * lts_load_n(c + j, n) + i * candidate;
        lts_v16f h_new = o * LTS_NAME(lts_v_tanh)(c_new);
        lts_store_n(c_new, c + j, n);
        lts_store_n(h_new, h + j, n);
    }
}

static const lts_vector_kernels LTS_NAME(lts_kernels) = {
    .exp = LTS_NAME(lts_exp),
    .sigmoid = LTS_NAME(lts_sigmoid),
    .tanh = LTS_NAME(lts_tanh),
    .lstm_step = LTS_NAME(lts_lstm_step),
};

#undef LTS_NAME
#undef LTS_CAT
#undef LTS_CAT2
