/*
 * run_plugins.c — the C plugin library and a foreign C function, each inside an ONNX model, from C.
 *
 *     run_plugins PLUGIN.so DSP.so SOBEL_CNN.onnx HIGHPASS.onnx [OUT.raw]
 *
 * Loads the SobelEdges plugin and binds dsp_highpass through libffi, runs sobel_cnn.onnx on a
 * deterministic 2x1x16x16 image and highpass.onnx on a deterministic 1x64 signal, prints both
 * results, and (with OUT.raw) writes the probabilities then the filtered signal as raw float32.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lathe.h"

#define CHECK(call)                                                                          \
    do {                                                                                     \
        lathe_status status_ = (call);                                                       \
        if (status_ != LATHE_OK) {                                                           \
            fprintf(stderr, "%s: %s: %s\n", #call, lathe_status_name(status_), lathe_last_error()); \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

/** Runs a one-input, one-output model on `input`, copying `output_count` floats into `output`. */
static void run_model(const char *path, const char *input_name, const int64_t *shape, size_t rank,
                      const float *input, size_t input_count, const char *output_name,
                      float *output, size_t output_count) {
    lathe_model *model = NULL;
    lathe_session *session = NULL;
    CHECK(lathe_model_load_file(path, &model));
    CHECK(lathe_session_create(model, &session));
    CHECK(lathe_session_set_input(session, input_name, LATHE_DTYPE_FLOAT32, shape, rank, input,
                                  input_count * sizeof(float)));
    CHECK(lathe_session_run(session));
    CHECK(lathe_session_copy_output(session, output_name, output, output_count * sizeof(float)));
    lathe_session_free(session);
    lathe_model_free(model);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s PLUGIN.so DSP.so SOBEL_CNN.onnx HIGHPASS.onnx [OUT.raw]\n", argv[0]);
        return 2;
    }
    CHECK(lathe_load_plugin(argv[1]));
    CHECK(lathe_register_foreign_op("com.acme.dsp", "HighPass", 1, 0, argv[2], "dsp_highpass",
                                    "void(in0, out0, count0, float alpha)"));

    static float image[2 * 16 * 16];
    for (int i = 0; i < 2 * 16 * 16; i++) image[i] = (float)((i * 7) % 13) / 13.0f;
    float probs[2 * 3];
    const int64_t image_shape[4] = {2, 1, 16, 16};
    run_model(argv[3], "image", image_shape, 4, image, 2 * 16 * 16, "probs", probs, 6);
    for (int n = 0; n < 2; n++) printf("image %d: probs %.5f %.5f %.5f\n", n, probs[3 * n], probs[3 * n + 1], probs[3 * n + 2]);

    float signal[64], filtered[64];
    for (int i = 0; i < 64; i++) signal[i] = sinf((float)i / 3.0f) + (float)i / 16.0f;
    const int64_t signal_shape[2] = {1, 64};
    run_model(argv[4], "signal", signal_shape, 2, signal, 64, "y", filtered, 64);
    printf("high-passed: %.5f %.5f %.5f %.5f\n", filtered[0], filtered[1], filtered[2], filtered[3]);

    size_t count = 0;
    CHECK(lathe_registry_count(&count));
    for (size_t i = 0; i < count; i++) {
        const char *domain, *op_type, *origin;
        int32_t since, until;
        CHECK(lathe_registry_get(i, &domain, &op_type, &since, &until, &origin));
        if (domain[0] != '\0') printf("registered: %s %s %d %s\n", domain, op_type, since, origin);
    }

    if (argc > 5) {
        FILE *out = fopen(argv[5], "wb");
        if (out == NULL || fwrite(probs, sizeof probs, 1, out) != 1 || fwrite(filtered, sizeof filtered, 1, out) != 1) {
            fprintf(stderr, "cannot write %s\n", argv[5]);
            return 1;
        }
        fclose(out);
    }
    return 0;
}
