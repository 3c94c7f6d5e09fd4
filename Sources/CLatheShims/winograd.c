/* Winograd F(4×4, 3×3) convolution transforms (Lavin & Gray 2016, points 0, ±1, ±2, ∞): the weight
 * transform U = G·g·Gᵀ (in double, rounded once), and the input (V = Bᵀ·d·B) and output (Y = Aᵀ·M·A)
 * transforms compiled at three instruction-set levels from one body (winograd_body.h), the best level
 * the CPU has picked once per process. The element-wise stage is 36 GEMMs, run by the caller. */

#include "lathe_shims.h"
#include "level_table.h"

#pragma clang fp contract(off)

#define LTS_LEVEL baseline
#define LTS_TARGET
#include "winograd_body.h"
#undef LTS_LEVEL
#undef LTS_TARGET

#define LTS_LEVEL avx2
#define LTS_TARGET __attribute__((target("avx2,fma")))
#include "winograd_body.h"
#undef LTS_LEVEL
#undef LTS_TARGET

#define LTS_LEVEL avx512
#define LTS_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
#include "winograd_body.h"
#undef LTS_LEVEL
#undef LTS_TARGET

LTS_LEVEL_TABLE(const lts_winograd_kernels *, lts_winograd_kernels, &lts_winograd_baseline, &lts_winograd_avx2,
                &lts_winograd_avx512)

size_t lts_winograd_scratch_floats(size_t tiles, size_t rows) {
    size_t input = 12 * (4 * tiles + 4) + 4 * (tiles + 1) + 24 * rows;
    size_t output = 16 * tiles;
    return input > output ? input : output;
}

void lts_winograd_weights(const float *w, size_t filters, size_t channels, float *u) {
    static const double g[6][3] = {
        {1.0 / 4, 0, 0},
        {-1.0 / 6, -1.0 / 6, -1.0 / 6},
        {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6},
        {1.0 / 24, -1.0 / 12, 1.0 / 6},
        {0, 0, 1},
    };
    const size_t matrix = filters * channels;
    for (size_t f = 0; f < filters; f++) {
        for (size_t c = 0; c < channels; c++) {
            const float *k = w + (f * channels + c) * 9;
            double t[6][3];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 3; j++)
                    t[i][j] = g[i][0] * k[j] + g[i][1] * k[3 + j] + g[i][2] * k[6 + j];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++)
                    u[(size_t)(6 * i + j) * matrix + f * channels + c] =
                        (float)(t[i][0] * g[j][0] + t[i][1] * g[j][1] + t[i][2] * g[j][2]);
        }
    }
}
