/*
 * Counts heap allocations made by steady-state training steps through liblathe's training C ABI.
 *
 * usage: train_alloc_count MODEL MODE STEPS
 *   MODEL  cnn_a (Conv2D 32 3x3 relu, MaxPooling2D, Flatten, Dense 128 relu, Dense 10 softmax on
 *          [28, 28, 1]; sparse categorical cross-entropy) or lstm (LSTM 50 x3 with Dropout 0.2 between,
 *          Dense 1 on [50, 8]; MSE); Adam, batch 32, seed 7, as benchmarks/train_bench.py.
 *   MODE   batch: after 5 warm-up calls, STEPS calls of lathe_sequential_train_on_batch are counted
 *          (the ABI's own per-call work, copying x and y and writing the logs JSON, included).
 *          fit: after a warm-up fit, one fit of 1 epoch over 1 batch and one over STEPS batches (shuffled)
 *          are counted; their difference divided by STEPS - 1 is the cost of one steady-state step
 *          inside fit, free of what each fit call does once.
 * malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and valloc are interposed (this
 * executable defines them, forwarding to glibc's __libc_*). Calls made directly from the BLAS library
 * (OpenBLAS's small-matrix kernels allocate their packing buffers on some CPUs) are counted apart, as
 * blas_per_step: they are the BLAS's, not Lathe's. Prints
 *   batch: "allocations N steps S per_step P blas_per_step Q"
 *   fit:   "allocations N steps S base B per_step P blas_per_step Q"   (N over STEPS batches, B over one batch)
 * and exits 0, or prints the failing call and exits 1. With ALLOC_COUNT_TRACE=N in the environment
 * the stacks of the first N counted allocations go to stderr (to find their source).
 */
#define _GNU_SOURCE
#include "alloc_interpose.h"

enum { BATCH = 32 };

static const char *CNN_A =
    "{\"input_shape\": [28, 28, 1], \"seed\": 7, \"layers\": ["
    " {\"class_name\": \"Conv2D\", \"config\": {\"filters\": 32, \"kernel_size\": 3, \"activation\": \"relu\"}},"
    " {\"class_name\": \"MaxPooling2D\", \"config\": {\"pool_size\": 2}},"
    " {\"class_name\": \"Flatten\"},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 128, \"activation\": \"relu\"}},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 10, \"activation\": \"softmax\"}}]}";

static const char *LSTM =
    "{\"input_shape\": [50, 8], \"seed\": 7, \"layers\": ["
    " {\"class_name\": \"LSTM\", \"config\": {\"units\": 50, \"return_sequences\": true}},"
    " {\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.2}},"
    " {\"class_name\": \"LSTM\", \"config\": {\"units\": 50, \"return_sequences\": true}},"
    " {\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.2}},"
    " {\"class_name\": \"LSTM\", \"config\": {\"units\": 50}},"
    " {\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.2}},"
    " {\"class_name\": \"Dense\", \"config\": {\"units\": 1}}]}";

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: train_alloc_count cnn_a|lstm batch|fit STEPS\n");
        return 2;
    }
    int cnn = strcmp(argv[1], "cnn_a") == 0;
    if (!cnn && strcmp(argv[1], "lstm") != 0) { fprintf(stderr, "unknown model %s\n", argv[1]); return 2; }
    int fit = strcmp(argv[2], "fit") == 0;
    if (!fit && strcmp(argv[2], "batch") != 0) { fprintf(stderr, "unknown mode %s\n", argv[2]); return 2; }
    long steps = atol(argv[3]);
    if (steps < 2) { fprintf(stderr, "STEPS must be at least 2\n"); return 2; }
    const char *trace = getenv("ALLOC_COUNT_TRACE");
    trace_limit = trace ? atol(trace) : 0;
    if (trace_limit > 0) {
        void *warm[1];
        backtrace(warm, 1); /* loads the unwinder now, not while counting */
    }

    lathe_sequential *model = NULL;
    CHECK(lathe_sequential_create(cnn ? CNN_A : LSTM, &model));
    CHECK(lathe_sequential_compile(model, "adam", cnn ? "sparse_categorical_crossentropy" : "mse", NULL, 0));

    /* Samples: deterministic inputs; class labels 0...9 (cnn_a) or a regression target (lstm). */
    int64_t samples = fit ? steps * BATCH : BATCH;
    int64_t x_shape[4] = {samples, 28, 28, 1}, y_shape[2] = {samples, 1};
    size_t x_rank = 4, y_rank = 1;
    if (!cnn) { x_shape[1] = 50; x_shape[2] = 8; x_rank = 3; y_rank = 2; }
    size_t row = (size_t)(x_shape[1] * x_shape[2] * (cnn ? x_shape[3] : 1));
    float *x = malloc(sizeof(float) * row * (size_t)samples);
    float *y = malloc(sizeof(float) * (size_t)samples);
    for (size_t k = 0; k < row * (size_t)samples; k++) x[k] = (float)((7 * k) % 17) / 8.0f - 1.0f;
    for (int64_t i = 0; i < samples; i++) y[i] = cnn ? (float)(i % 10) : (float)(i % 5) / 4.0f;

    long base = 0;
    if (fit) {
        CHECK(lathe_sequential_fit(model, x, x_shape, x_rank, y, y_shape, y_rank, NULL, NULL, 0, NULL, NULL, 0,
                                   1, BATCH, 0.0, 1, 3, NULL, NULL, NULL));
        int64_t full = x_shape[0];
        x_shape[0] = y_shape[0] = BATCH;
        atomic_store(&counting, 1);
        CHECK(lathe_sequential_fit(model, x, x_shape, x_rank, y, y_shape, y_rank, NULL, NULL, 0, NULL, NULL, 0,
                                   1, BATCH, 0.0, 1, 3, NULL, NULL, NULL));
        atomic_store(&counting, 0);
        base = atomic_exchange(&allocations, 0);
        long blas_base = atomic_exchange(&blas_allocations, 0);
        x_shape[0] = y_shape[0] = full;
        atomic_store(&counting, 1);
        CHECK(lathe_sequential_fit(model, x, x_shape, x_rank, y, y_shape, y_rank, NULL, NULL, 0, NULL, NULL, 0,
                                   1, BATCH, 0.0, 1, 3, NULL, NULL, NULL));
        atomic_store(&counting, 0);
        long total = atomic_load(&allocations);
        printf("allocations %ld steps %ld base %ld per_step %g blas_per_step %g\n", total, steps, base,
               (double)(total - base) / (double)(steps - 1),
               (double)(atomic_load(&blas_allocations) - blas_base) / (double)(steps - 1));
    } else {
        const char *logs = NULL;
        for (long r = -5; r < steps; r++) {
            if (r == 0) atomic_store(&counting, 1);
            CHECK(lathe_sequential_train_on_batch(model, x, x_shape, x_rank, y, y_shape, y_rank, &logs));
        }
        atomic_store(&counting, 0);
        long total = atomic_load(&allocations);
        printf("allocations %ld steps %ld per_step %g blas_per_step %g logs %s\n", total, steps,
               (double)total / (double)steps, (double)atomic_load(&blas_allocations) / (double)steps, logs);
    }
    lathe_sequential_free(model);
    free(x);
    free(y);
    return 0;
}
