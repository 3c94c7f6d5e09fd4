/*
 * Counts heap allocations made by steady-state runs of a model through liblathe.
 *
 * usage: alloc_count MODEL.onnx BATCH RUNS [THREADS [replan]]
 *
 * With "replan", odd iterations use batch BATCH + 1 (so every run re-plans): a check that the
 * interposition sees liblathe's allocations.
 *
 * Every float32 input gets deterministic values (symbolic dims = BATCH). After warm-up runs, each
 * of RUNS iterations sets every input (lathe_session_set_input), runs, and borrows every output
 * (lathe_session_get_output). malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign
 * and valloc are interposed (this executable defines them, forwarding to glibc's __libc_*), and
 * every call made while counting, from any thread, is counted. Prints "allocations N runs R
 * arena B" and exits 0, or prints the failing call and exits 1. With ALLOC_COUNT_TRACE=N in the
 * environment, the stacks of the first N counted allocations go to stderr (to find their source).
 */
#define _GNU_SOURCE
#include "alloc_interpose.h"

/** One model input: its name, shape and a buffer of deterministic values. */
typedef struct {
    const char *name;
    lathe_dtype dtype;
    int64_t shape[8];
    size_t rank;
    void *data;
    size_t bytes;
} feed;

static size_t dtype_size(lathe_dtype dtype) {
    switch (dtype) {
    case LATHE_DTYPE_FLOAT32: case LATHE_DTYPE_INT32: return 4;
    case LATHE_DTYPE_INT64: case LATHE_DTYPE_FLOAT64: return 8;
    default: return 1;
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: alloc_count MODEL.onnx BATCH RUNS [THREADS]\n");
        return 2;
    }
    int64_t batch = atoll(argv[2]);
    long runs = atol(argv[3]);
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    int replan = argc > 5 && strcmp(argv[5], "replan") == 0;
    const char *trace = getenv("ALLOC_COUNT_TRACE");
    trace_limit = trace ? atol(trace) : 0;
    if (trace_limit > 0) {
        void *warm[1];
        backtrace(warm, 1); /* loads the unwinder now, not while counting */
    }

    lathe_model *model = NULL;
    CHECK(lathe_model_load_file(argv[1], &model));
    lathe_session_options *options = NULL;
    CHECK(lathe_session_options_create(&options));
    CHECK(lathe_session_options_set_threads(options, threads));
    lathe_session *session = NULL;
    CHECK(lathe_session_create_with_options(model, options, &session));
    lathe_session_options_free(options);

    size_t input_count = 0, output_count = 0;
    CHECK(lathe_model_input_count(model, &input_count));
    CHECK(lathe_model_output_count(model, &output_count));
    feed *feeds = calloc(input_count, sizeof(feed));
    for (size_t i = 0; i < input_count; i++) {
        feed *f = &feeds[i];
        CHECK(lathe_model_input_name(model, i, &f->name));
        CHECK(lathe_model_input_dtype(model, i, &f->dtype));
        CHECK(lathe_model_input_rank(model, i, &f->rank));
        size_t count = 1;
        for (size_t axis = 0; axis < f->rank; axis++) {
            CHECK(lathe_model_input_dim(model, i, axis, &f->shape[axis], NULL));
            if (f->shape[axis] < 0) f->shape[axis] = axis == 0 ? batch + replan : batch;
            count *= (size_t)f->shape[axis];
        }
        f->bytes = count * dtype_size(f->dtype);
        f->data = calloc(1, f->bytes ? f->bytes : 1);
        if (f->dtype == LATHE_DTYPE_FLOAT32)
            for (size_t k = 0; k < count; k++) ((float *)f->data)[k] = (float)((7 * k) % 17) / 8.0f - 1.0f;
    }
    const char **output_names = calloc(output_count, sizeof(char *));
    for (size_t i = 0; i < output_count; i++) CHECK(lathe_model_output_name(model, i, &output_names[i]));

    double checksum = 0;
    for (long r = -20; r < runs; r++) {
        if (r == 0) atomic_store(&counting, 1);
        for (size_t i = 0; i < input_count; i++) {
            feed *f = &feeds[i];
            size_t bytes = f->bytes;
            if (replan && f->rank > 0) {
                /* Odd runs drop one entry of the leading (batch) axis. */
                int64_t full = f->shape[0];
                if (r % 2 != 0) { bytes = bytes / (size_t)full * (size_t)(full - 1); f->shape[0] = full - 1; }
                CHECK(lathe_session_set_input(session, f->name, f->dtype, f->shape, f->rank, f->data, bytes));
                f->shape[0] = full;
                continue;
            }
            CHECK(lathe_session_set_input(session, f->name, f->dtype, f->shape, f->rank, f->data, bytes));
        }
        CHECK(lathe_session_run(session));
        for (size_t i = 0; i < output_count; i++) {
            const void *data = NULL;
            lathe_dtype dtype;
            const int64_t *shape = NULL;
            size_t rank = 0;
            CHECK(lathe_session_get_output(session, output_names[i], &data, &dtype, &shape, &rank));
            if (dtype == LATHE_DTYPE_FLOAT32 && rank > 0 && shape[0] > 0) checksum += ((const float *)data)[0];
        }
    }
    atomic_store(&counting, 0);
    size_t arena = 0;
    CHECK(lathe_session_arena_bytes(session, &arena));
    printf("allocations %ld runs %ld arena %zu checksum %g\n", atomic_load(&allocations) + atomic_load(&blas_allocations),
           runs, arena, checksum);

    lathe_session_free(session);
    lathe_model_free(model);
    for (size_t i = 0; i < input_count; i++) free(feeds[i].data);
    free(feeds);
    free(output_names);
    return 0;
}
