/*
 * foreign_types.c — plain C functions over non-float32 element types, bound through libffi by
 * bindings/python/tests/test_plugins_foreign_types.py (no Lathe dependency).
 */
#include <stddef.h>
#include <stdint.h>

/** y = k * x in double precision. */
void scale_f64(const double *x, double *y, size_t n, double k) {
    for (size_t i = 0; i < n; i++) y[i] = k * x[i];
}

/** y = a + b over int32; fails (returns 1) on overflow. */
int add_i32(const int32_t *a, const int32_t *b, int32_t *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int64_t sum = (int64_t)a[i] + b[i];
        if (sum > INT32_MAX || sum < INT32_MIN) return 1;
        y[i] = (int32_t)sum;
    }
    return 0;
}

/** Running sum of int64 values. */
void cumsum_i64(const int64_t *x, int64_t *y, int64_t n) {
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++) y[i] = sum += x[i];
}

/** 255 where x > threshold, else 0: a float mask as bytes. */
void threshold_u8(const float *x, uint8_t *y, size_t n, float threshold) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > threshold ? 255 : 0;
}

/** Inverts uint8 pixels of the second input; the first input only gives the count. */
void invert_second(size_t n_first, const uint8_t *pixels, uint8_t *y, size_t n) {
    (void)n_first;
    for (size_t i = 0; i < n; i++) y[i] = (uint8_t)(255 - pixels[i]);
}
