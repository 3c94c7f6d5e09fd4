/*
 * dsp.c — a plant's existing DSP routines, unmodified and unaware of Lathe. Lathe binds them as
 * ops through libffi (lathe_register_foreign_op), e.g.
 *
 *     lathe_register_foreign_op("com.acme.dsp", "HighPass", 1, 0, "./libdsp.so", "dsp_highpass",
 *                               "void(in0, out0, count0, float alpha)");
 *
 *     cc -std=c99 -O2 -fPIC -shared dsp.c -o libdsp.so
 */
#include <stddef.h>

/** First-order high-pass filter over n samples: y[0] = x[0], y[i] = alpha (y[i-1] + x[i] - x[i-1]). */
void dsp_highpass(const float *in, float *out, size_t n, float alpha) {
    if (n == 0) return;
    out[0] = in[0];
    for (size_t i = 1; i < n; i++) out[i] = alpha * (out[i - 1] + in[i] - in[i - 1]);
}

/** out = gain * in, refusing a negative gain: returns 0 on success, 1 on failure. */
int dsp_gain_checked(const float *in, float *out, long long n, double gain) {
    if (gain < 0) return 1;
    for (long long i = 0; i < n; i++) out[i] = (float)(gain * in[i]);
    return 0;
}
