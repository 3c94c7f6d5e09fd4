/*
 * sobel_plugin.c — a Lathe plugin library with one op, com.acme.vision:SobelEdges (opset 1+):
 * the Sobel gradient magnitude of each channel of an NCHW float32 image, zero-padded, times the
 * node's `scale` attribute (default 1). Used in front of a defect CNN (see make_models.py).
 *
 *     cc -std=c99 -O2 -fPIC -shared -I../../include sobel_plugin.c -o libsobel_plugin.so \
 *        -L../../.build/debug -llathe -lm
 *     lathe_load_plugin("./libsobel_plugin.so");
 */
#include <math.h>
#include <stdlib.h>

#include "lathe.h"

/** Per-node state: the attributes, read once at model load. */
typedef struct sobel_state {
    float scale;
} sobel_state;

static lathe_status sobel_create(void *user_data, const lathe_attributes *attributes,
                                 size_t input_count, size_t output_count, void **out_state) {
    (void)user_data;
    if (input_count != 1 || output_count != 1) {
        lathe_plugin_set_error("SobelEdges takes one input and gives one output");
        return LATHE_ERROR_INVALID_ARGUMENT;
    }
    sobel_state *state = malloc(sizeof *state);
    if (state == NULL) return LATHE_ERROR_OUT_OF_MEMORY;
    if (lathe_attributes_get_float(attributes, "scale", &state->scale) != LATHE_OK) state->scale = 1.0f;
    *out_state = state;
    return LATHE_OK;
}

static void sobel_destroy(void *user_data, void *state) {
    (void)user_data;
    free(state);
}

static lathe_status sobel_infer(void *user_data, void *state, const lathe_tensor_type *inputs,
                                size_t input_count, lathe_tensor_type *outputs, size_t output_count) {
    (void)user_data; (void)state; (void)input_count; (void)output_count;
    if (inputs[0].dtype != LATHE_DTYPE_FLOAT32 || inputs[0].rank != 4) {
        lathe_plugin_set_error("SobelEdges needs a float32 NCHW tensor");
        return LATHE_ERROR_INVALID_ARGUMENT;
    }
    outputs[0] = inputs[0];
    return LATHE_OK;
}

static lathe_status sobel_compute(void *user_data, void *state, const DLTensor *inputs, size_t input_count,
                                  DLTensor *outputs, size_t output_count) {
    (void)user_data; (void)input_count; (void)output_count;
    const float scale = ((const sobel_state *)state)->scale;
    const int64_t planes = inputs[0].shape[0] * inputs[0].shape[1];
    const int64_t h = inputs[0].shape[2], w = inputs[0].shape[3];
    const float *in = inputs[0].data;
    float *out = outputs[0].data;
    for (int64_t p = 0; p < planes; p++) {
        const float *x = in + p * h * w;
        float *y = out + p * h * w;
        for (int64_t i = 0; i < h; i++) {
            for (int64_t j = 0; j < w; j++) {
                float v[3][3];
                for (int di = -1; di <= 1; di++)
                    for (int dj = -1; dj <= 1; dj++) {
                        int64_t r = i + di, c = j + dj;
                        v[di + 1][dj + 1] = (r < 0 || r >= h || c < 0 || c >= w) ? 0.0f : x[r * w + c];
                    }
                float gx = (v[0][2] + 2 * v[1][2] + v[2][2]) - (v[0][0] + 2 * v[1][0] + v[2][0]);
                float gy = (v[2][0] + 2 * v[2][1] + v[2][2]) - (v[0][0] + 2 * v[0][1] + v[0][2]);
                y[i * w + j] = scale * sqrtf(gx * gx + gy * gy);
            }
        }
    }
    return LATHE_OK;
}

/** The plugin's entry point: registers SobelEdges. */
lathe_status lathe_plugin_init(uint32_t host_abi_version) {
    if (host_abi_version != LATHE_ABI_VERSION) {
        lathe_plugin_set_error("sobel_plugin was built for a different Lathe ABI");
        return LATHE_ERROR_PLUGIN;
    }
    lathe_custom_op op = {0};
    op.struct_size = sizeof op;
    op.abi_version = LATHE_ABI_VERSION;
    op.domain = "com.acme.vision";
    op.op_type = "SobelEdges";
    op.since_version = 1;
    op.infer = sobel_infer;
    op.create_state = sobel_create;
    op.compute = sobel_compute;
    op.destroy_state = sobel_destroy;
    return lathe_register_op(&op);
}
