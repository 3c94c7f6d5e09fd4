/*
 * Heap-allocation counting for the allocation tests (alloc_count.c, train_alloc_count.c): defines
 * malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and valloc (forwarding to glibc's
 * __libc_*), so every call made by the process, from any thread, passes here. While `counting` is
 * set, each call is counted in `allocations`, or in `blas_allocations` when it comes straight from the
 * BLAS library (OpenBLAS's small-matrix kernels allocate packing buffers on some CPUs). With
 * `trace_limit` N > 0, the stacks of the first N counted allocations go to stderr.
 * Also the programs' shared includes and CHECK. Include it once, in the program's only translation unit,
 * after defining _GNU_SOURCE.
 */
#ifndef LATHE_TESTS_ALLOC_INTERPOSE_H
#define LATHE_TESTS_ALLOC_INTERPOSE_H

#include <dlfcn.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lathe.h"

/* Runs a lathe_* call; on failure prints the call, its status and lathe_last_error(), and exits 1. */
#define CHECK(call)                                                                        \
    do {                                                                                   \
        lathe_status status_ = (call);                                                     \
        if (status_ != LATHE_OK) {                                                         \
            fprintf(stderr, "%s failed (%d): %s\n", #call, status_, lathe_last_error());   \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static atomic_int counting;
static atomic_long allocations;
static atomic_long blas_allocations;

static long trace_limit;
static _Thread_local int tracing;

/* Whether `caller` (the code that called malloc) lies in the BLAS library (OpenBLAS's own buffers). */
static int in_blas(void *caller) {
    Dl_info info;
    return dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "blas") != NULL;
}

static void note(void *caller) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed) || tracing) return;
    if (in_blas(caller)) { atomic_fetch_add(&blas_allocations, 1); return; }
    long n = atomic_fetch_add(&allocations, 1);
    if (n < trace_limit) {
        void *frames[32];
        tracing = 1;
        int depth = backtrace(frames, 32);
        fprintf(stderr, "allocation %ld:\n", n);
        backtrace_symbols_fd(frames, depth, 2);
        tracing = 0;
    }
}

void *malloc(size_t size) { note(__builtin_return_address(0)); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note(__builtin_return_address(0)); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { note(__builtin_return_address(0)); return __libc_realloc(pointer, size); }
void free(void *pointer) { __libc_free(pointer); }
void *memalign(size_t alignment, size_t size) { note(__builtin_return_address(0)); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(__builtin_return_address(0)); return __libc_memalign(alignment, size); }
void *valloc(size_t size) { note(__builtin_return_address(0)); return __libc_memalign(4096, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    note(__builtin_return_address(0));
    void *p = __libc_memalign(alignment, size);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

#endif
