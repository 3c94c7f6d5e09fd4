/* Internal C helpers for Lathe. Never installed; not part of the public ABI.
 * Names use the `lts_` prefix so the linker version script (lathe_*) does not export them. */
#ifndef LATHE_SHIMS_H
#define LATHE_SHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <dlpack/dlpack.h>
#include <x86_64-linux-gnu/cblas.h>
#include <dlfcn.h>

/* Not every cblas.h declares it. */
void openblas_set_num_threads(int num_threads);

/** Stores a copy of `message` as the calling thread's last error. */
void lts_set_last_error(const char *message);
/** The calling thread's last error message; "" when none. Valid until the thread's next set. */
const char *lts_last_error(void);

/** 64-byte aligned allocation (NULL on failure); release with `lts_aligned_free`. */
void *lts_aligned_alloc(size_t byte_count);
void lts_aligned_free(void *pointer);

#endif
