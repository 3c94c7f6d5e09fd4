/*
 * plugin_threads.c — 4 threads, each with its own session over one model that mixes a C plugin
 * op (SobelEdges) with built-in ops, 1,000 runs each; every result must equal the first bit for
 * bit.
 *
 *     plugin_threads libsobel_plugin.so sobel_cnn.onnx
 *
 * Prints "N runs, M mismatches"; exits 0 only when every run succeeded and matched.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lathe.h"

#define THREADS 4
#define RUNS 1000
#define PIXELS (2 * 16 * 16)

static lathe_model *model;
static float image[PIXELS];
static float expected[6];

/** One thread's work: its own session, RUNS runs, counting failures and mismatches. */
static void *worker(void *arg) {
    long *bad = arg;
    lathe_session *session = NULL;
    if (lathe_session_create(model, &session) != LATHE_OK) { *bad = RUNS; return NULL; }
    const int64_t shape[4] = {2, 1, 16, 16};
    float probs[6];
    for (int run = 0; run < RUNS; run++) {
        if (lathe_session_set_input(session, "image", LATHE_DTYPE_FLOAT32, shape, 4, image, sizeof image) != LATHE_OK
            || lathe_session_run(session) != LATHE_OK
            || lathe_session_copy_output(session, "probs", probs, sizeof probs) != LATHE_OK
            || memcmp(probs, expected, sizeof probs) != 0) {
            (*bad)++;
        }
    }
    lathe_session_free(session);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s PLUGIN.so MODEL.onnx\n", argv[0]); return 2; }
    if (lathe_load_plugin(argv[1]) != LATHE_OK || lathe_model_load_file(argv[2], &model) != LATHE_OK) {
        fprintf(stderr, "%s\n", lathe_last_error());
        return 1;
    }
    for (int i = 0; i < PIXELS; i++) image[i] = (float)((i * 7) % 13) / 13.0f;
    lathe_session *session = NULL;
    const int64_t shape[4] = {2, 1, 16, 16};
    if (lathe_session_create(model, &session) != LATHE_OK
        || lathe_session_set_input(session, "image", LATHE_DTYPE_FLOAT32, shape, 4, image, sizeof image) != LATHE_OK
        || lathe_session_run(session) != LATHE_OK
        || lathe_session_copy_output(session, "probs", expected, sizeof expected) != LATHE_OK) {
        fprintf(stderr, "%s\n", lathe_last_error());
        return 1;
    }
    lathe_session_free(session);
    pthread_t threads[THREADS];
    long bad[THREADS] = {0};
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, worker, &bad[t]);
    long mismatches = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        mismatches += bad[t];
    }
    lathe_model_free(model);
    printf("%d runs, %ld mismatches\n", THREADS * RUNS, mismatches);
    printf("probs %.6f %.6f %.6f\n", expected[0], expected[1], expected[2]);
    return mismatches == 0 ? 0 : 1;
}
