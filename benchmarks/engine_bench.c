/*
 * engine_bench.c — times Lathe's engine through the C ABI alone, with no Python in the loop.
 *
 *     engine_bench MODEL.onnx [--runs N] [--warmup N] [--batch B] [--threads T]
 *         Loads the model, sets uniform random inputs in [-1, 1) once with
 *         lathe_session_set_input (symbolic dimensions = B, default 1), runs N untimed warm-up
 *         runs, then times N runs of lathe_session_run each with clock_gettime(CLOCK_MONOTONIC)
 *         and prints one JSON object: load time, p50/p90/p99/max/mean in microseconds, the CPU
 *         time per run (above 1x the wall time means more than one core was used) and the
 *         process's peak RSS (VmHWM). --threads needs session options (below).
 *
 *     engine_bench MODEL.onnx --serve
 *         For benchmarks/run.py, which interleaves this process with ONNX Runtime: loads the
 *         model, prepares one session at batch 1 and one at batch 64, prints a JSON line
 *         {"load_ms": ...}, then answers commands read from stdin, one JSON line each:
 *             latency N     N timed batch-1 runs: {"times_ns": [...], "cpu_ns": ...}
 *             throughput N  N batch-64 runs in one timed loop: {"wall_ns": ..., "cpu_ns": ...}
 *             throughput2 N the same on a 2-thread session (with session options only)
 *             rss           {"max_rss_kb": ...} (peak RSS, VmHWM), with each session's arena
 *                           size when the library reports it
 *             quit          exits
 *
 * Build (benchmarks/run.py does it):
 *     cc -O2 -std=c11 -Iinclude benchmarks/engine_bench.c -L.build/release -llathe \
 *        -Wl,-rpath,$PWD/.build/release -o .build/engine_bench
 * Add -DLATHE_BENCH_SESSION_OPTIONS when lathe.h declares lathe_session_options_set_threads and
 * lathe_session_arena_bytes (run.py checks the header): threads and arena sizes are then used.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "lathe.h"

/** Batch size of the throughput session in --serve mode. */
#define THROUGHPUT_BATCH 64

/** Upper bound on the rank of an input this program feeds. */
#define MAX_RANK 16

/** Exits with the library's message when a call fails. */
static void check(lathe_status status, const char *call) {
    if (status != LATHE_OK) {
        fprintf(stderr, "engine_bench: %s failed: %s: %s\n", call, lathe_status_name(status), lathe_last_error());
        exit(1);
    }
}

/** Nanoseconds on `clock`. */
static int64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/** Bytes of one element of `dtype`, or 0 for a type this program does not know. */
static size_t element_size(lathe_dtype dtype) {
    switch (dtype) {
    case LATHE_DTYPE_FLOAT32: case LATHE_DTYPE_INT32: return 4;
    case LATHE_DTYPE_INT64: case LATHE_DTYPE_FLOAT64: return 8;
    case LATHE_DTYPE_UINT8: case LATHE_DTYPE_INT8: case LATHE_DTYPE_BOOL: return 1;
    default: return 0;
    }
}

#ifdef LATHE_BENCH_SESSION_OPTIONS
/** Whether this build can set a session's threads and read its arena size. */
#define SESSION_OPTIONS 1

/** A session running on `threads` threads. */
static lathe_session *new_session(const lathe_model *model, int threads) {
    lathe_session_options *options = NULL;
    check(lathe_session_options_create(&options), "lathe_session_options_create");
    check(lathe_session_options_set_threads(options, threads), "lathe_session_options_set_threads");
    lathe_session *session = NULL;
    check(lathe_session_create_with_options(model, options, &session), "lathe_session_create_with_options");
    lathe_session_options_free(options);
    return session;
}

/** The session's arena size in bytes. */
static long long arena_bytes(const lathe_session *session) {
    size_t bytes = 0;
    check(lathe_session_arena_bytes(session, &bytes), "lathe_session_arena_bytes");
    return (long long)bytes;
}
#else
#define SESSION_OPTIONS 0

/** A session with the library's defaults (this build cannot set threads; callers pass 1). */
static lathe_session *new_session(const lathe_model *model, int threads) {
    (void)threads;
    lathe_session *session = NULL;
    check(lathe_session_create(model, &session), "lathe_session_create");
    return session;
}

/** Unknown without session options: -1. */
static long long arena_bytes(const lathe_session *session) {
    (void)session;
    return -1;
}
#endif

/** A session on `threads` threads with every input set once: random floats in [-1, 1), zeros otherwise. */
static lathe_session *prepared_session(const lathe_model *model, int64_t batch, int threads) {
    lathe_session *session = new_session(model, threads);
    size_t count = 0;
    check(lathe_model_input_count(model, &count), "lathe_model_input_count");
    uint64_t state = 1;
    for (size_t index = 0; index < count; index++) {
        const char *name = NULL;
        lathe_dtype dtype = 0;
        size_t rank = 0;
        check(lathe_model_input_name(model, index, &name), "lathe_model_input_name");
        check(lathe_model_input_dtype(model, index, &dtype), "lathe_model_input_dtype");
        check(lathe_model_input_rank(model, index, &rank), "lathe_model_input_rank");
        if (rank > MAX_RANK || element_size(dtype) == 0) {
            fprintf(stderr, "engine_bench: input '%s' has rank %zu or element type %d this program cannot feed\n",
                    name, rank, (int)dtype);
            exit(1);
        }
        int64_t shape[MAX_RANK];
        size_t elements = 1;
        for (size_t axis = 0; axis < rank; axis++) {
            int64_t dim = 0;
            check(lathe_model_input_dim(model, index, axis, &dim, NULL), "lathe_model_input_dim");
            shape[axis] = dim < 0 ? batch : dim;
            elements *= (size_t)shape[axis];
        }
        size_t bytes = elements * element_size(dtype);
        unsigned char *data = calloc(bytes ? bytes : 1, 1);
        if (data == NULL) {
            fprintf(stderr, "engine_bench: out of memory for input '%s'\n", name);
            exit(1);
        }
        if (dtype == LATHE_DTYPE_FLOAT32) {
            float *values = (float *)data;
            for (size_t i = 0; i < elements; i++) {
                state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                values[i] = (float)(state >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
            }
        }
        check(lathe_session_set_input(session, name, dtype, shape, rank, data, bytes), "lathe_session_set_input");
        free(data);
    }
    return session;
}

/**
 * Peak resident set size of this program in KiB: VmHWM of /proc/self/status, which starts afresh
 * at exec. (getrusage's ru_maxrss keeps the forking parent's peak across exec on Linux, so it
 * would report the Python driver's memory.) Falls back to ru_maxrss without /proc.
 */
static long max_rss_kb(void) {
    FILE *status = fopen("/proc/self/status", "r");
    if (status != NULL) {
        char line[256];
        long peak = -1;
        while (fgets(line, sizeof line, status) != NULL) {
            if (sscanf(line, "VmHWM: %ld", &peak) == 1) break;
        }
        fclose(status);
        if (peak >= 0) return peak;
    }
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

/** Orders int64 values for qsort. */
static int compare_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/** Loads `path`, timing the call; prints the library's message and exits on failure. */
static lathe_model *load(const char *path, double *load_ms) {
    lathe_model *model = NULL;
    int64_t start = now_ns(CLOCK_MONOTONIC);
    check(lathe_model_load_file(path, &model), "lathe_model_load_file");
    *load_ms = (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e6;
    return model;
}

/** Standalone mode: warm-up, `runs` timed runs at `batch`, one JSON summary on stdout. */
static int run_standalone(const char *path, long runs, long warmup, int64_t batch, int threads) {
    double load_ms = 0;
    lathe_model *model = load(path, &load_ms);
    lathe_session *session = prepared_session(model, batch, threads);
    for (long i = 0; i < warmup; i++) check(lathe_session_run(session), "lathe_session_run");
    int64_t *times = malloc((size_t)runs * sizeof *times);
    if (times == NULL) {
        fprintf(stderr, "engine_bench: out of memory for %ld timings\n", runs);
        return 1;
    }
    int64_t cpu_start = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    int64_t total = 0;
    for (long i = 0; i < runs; i++) {
        int64_t start = now_ns(CLOCK_MONOTONIC);
        check(lathe_session_run(session), "lathe_session_run");
        times[i] = now_ns(CLOCK_MONOTONIC) - start;
        total += times[i];
    }
    int64_t cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
    qsort(times, (size_t)runs, sizeof *times, compare_int64);
#define PERCENTILE_US(p) ((double)times[(size_t)((double)(runs - 1) * (p))] / 1e3)
    printf("{\"model\": \"%s\", \"lathe\": \"%s\", \"batch\": %lld, \"threads\": %d, \"runs\": %ld, \"warmup\": %ld, "
           "\"load_ms\": %.3f, \"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.2f, "
           "\"mean_us\": %.2f, \"cpu_per_wall\": %.3f, \"samples_per_s\": %.1f, \"max_rss_kb\": %ld, "
           "\"arena_bytes\": %lld}\n",
           path, lathe_version(), (long long)batch, threads, runs, warmup, load_ms, PERCENTILE_US(0.5),
           PERCENTILE_US(0.9), PERCENTILE_US(0.99), (double)times[runs - 1] / 1e3,
           (double)total / (double)runs / 1e3, (double)cpu / (double)total,
           (double)batch * (double)runs / ((double)total / 1e9), max_rss_kb(), arena_bytes(session));
#undef PERCENTILE_US
    free(times);
    lathe_session_free(session);
    lathe_model_free(model);
    return 0;
}

/** Serve mode: answers run.py's commands on stdin (see the file comment). */
static int run_server(const char *path) {
    double load_ms = 0;
    lathe_model *model = load(path, &load_ms);
    lathe_session *single = prepared_session(model, 1, 1);
    lathe_session *batched = prepared_session(model, THROUGHPUT_BATCH, 1);
    lathe_session *threaded = SESSION_OPTIONS ? prepared_session(model, THROUGHPUT_BATCH, 2) : NULL;
    printf("{\"load_ms\": %.3f, \"lathe\": \"%s\", \"threads_option\": %s}\n", load_ms, lathe_version(),
           SESSION_OPTIONS ? "true" : "false");
    fflush(stdout);
    char line[128];
    int64_t *times = NULL;
    long capacity = 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        char command[32];
        long count = 0;
        int fields = sscanf(line, "%31s %ld", command, &count);
        if (fields >= 1 && strcmp(command, "quit") == 0) break;
        if (fields == 1 && strcmp(command, "rss") == 0) {
            printf("{\"max_rss_kb\": %ld, \"arena_bytes_1\": %lld, \"arena_bytes_64\": %lld}\n", max_rss_kb(),
                   arena_bytes(single), arena_bytes(batched));
        } else if (fields == 2 && count > 0 && strcmp(command, "latency") == 0) {
            if (count > capacity) {
                int64_t *grown = realloc(times, (size_t)count * sizeof *times);
                if (grown == NULL) {
                    fprintf(stderr, "engine_bench: out of memory for %ld timings\n", count);
                    return 1;
                }
                times = grown;
                capacity = count;
            }
            int64_t cpu_start = now_ns(CLOCK_PROCESS_CPUTIME_ID);
            for (long i = 0; i < count; i++) {
                int64_t start = now_ns(CLOCK_MONOTONIC);
                check(lathe_session_run(single), "lathe_session_run");
                times[i] = now_ns(CLOCK_MONOTONIC) - start;
            }
            int64_t cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
            printf("{\"cpu_ns\": %lld, \"times_ns\": [", (long long)cpu);
            for (long i = 0; i < count; i++) printf(i ? ",%lld" : "%lld", (long long)times[i]);
            printf("]}\n");
        } else if (fields == 2 && count > 0 && (strcmp(command, "throughput") == 0
                                                || (threaded != NULL && strcmp(command, "throughput2") == 0))) {
            lathe_session *session = strcmp(command, "throughput") == 0 ? batched : threaded;
            int64_t cpu_start = now_ns(CLOCK_PROCESS_CPUTIME_ID);
            int64_t start = now_ns(CLOCK_MONOTONIC);
            for (long i = 0; i < count; i++) check(lathe_session_run(session), "lathe_session_run");
            int64_t wall = now_ns(CLOCK_MONOTONIC) - start;
            int64_t cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
            printf("{\"wall_ns\": %lld, \"cpu_ns\": %lld, \"batch\": %d}\n", (long long)wall, (long long)cpu,
                   THROUGHPUT_BATCH);
        } else {
            printf("{\"error\": \"unknown command\"}\n");
        }
        fflush(stdout);
    }
    free(times);
    lathe_session_free(threaded);
    lathe_session_free(batched);
    lathe_session_free(single);
    lathe_model_free(model);
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    long runs = 2000, warmup = 200;
    long long batch = 1;
    long threads = 1;
    int serve = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--serve") == 0) {
            serve = 1;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) {
            warmup = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            batch = strtoll(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = strtol(argv[++i], NULL, 10);
        } else if (path == NULL && argv[i][0] != '-') {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (path == NULL || runs < 1 || warmup < 0 || batch < 1 || threads < 1 || threads > 256) {
        fprintf(stderr, "usage: engine_bench MODEL.onnx [--runs N] [--warmup N] [--batch B] [--threads T]"
                        " | MODEL.onnx --serve\n");
        return 2;
    }
    if (threads != 1 && !SESSION_OPTIONS) {
        fprintf(stderr, "engine_bench: built without session options (lathe.h had no threads option): --threads 1 only\n");
        return 2;
    }
    return serve ? run_server(path) : run_standalone(path, runs, warmup, (int64_t)batch, (int)threads);
}
