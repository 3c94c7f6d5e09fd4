/* The LSTM step kernels: R's packing and the per-level dispatch. The kernels themselves
 * (recurrent_kernels_body.h) are compiled in vector_kernels.c, next to the vector math they use. */

#include "lathe_shims.h"
#include "level_table.h"

extern const lts_recurrent_kernels lts_recurrent_kernels_baseline, lts_recurrent_kernels_avx2,
    lts_recurrent_kernels_avx512;

LTS_LEVEL_TABLE(const lts_recurrent_kernels *, lts_recurrent_kernels, &lts_recurrent_kernels_baseline,
                &lts_recurrent_kernels_avx2, &lts_recurrent_kernels_avx512)

/* Whether the last hidden % 16 units get the squeezed panel (4 lanes per gate). */
static bool lts_lstm_squeezed(size_t hidden) { return hidden % 16 != 0 && hidden % 16 <= 4; }

size_t lts_lstm_packed_count(size_t hidden) {
    return lts_lstm_squeezed(hidden) ? (hidden / 16 * 64 + 16) * hidden : (hidden + 15) / 16 * hidden * 64;
}

void lts_lstm_pack_recurrence(const float *r, size_t hidden, float *packed) {
    const bool squeezed = lts_lstm_squeezed(hidden);
    const size_t chunks = squeezed ? hidden / 16 : (hidden + 15) / 16;
    for (size_t q = 0; q < chunks; q++)
        for (size_t k = 0; k < hidden; k++)
            for (size_t g = 0; g < 4; g++)
                for (size_t l = 0; l < 16; l++) {
                    const size_t unit = 16 * q + l;
                    packed[((q * hidden + k) * 4 + g) * 16 + l] = unit < hidden ? r[(g * hidden + unit) * hidden + k] : 0.0f;
                }
    if (!squeezed) return;
    float *panel = packed + chunks * hidden * 64;
    for (size_t k = 0; k < hidden; k++)
        for (size_t g = 0; g < 4; g++)
            for (size_t u = 0; u < 4; u++) {
                const size_t unit = 16 * chunks + u;
                panel[k * 16 + 4 * g + u] = unit < hidden ? r[(g * hidden + unit) * hidden + k] : 0.0f;
            }
}
