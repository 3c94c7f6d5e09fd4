/* Internal C helpers for Lathe. Never installed; not part of the public ABI.
 * Names use the `lts_` prefix so the linker version script (lathe_*) does not export them. */
#ifndef LATHE_SHIMS_H
#define LATHE_SHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <dlpack/dlpack.h>
#include <x86_64-linux-gnu/cblas.h>
#include <dlfcn.h>
#include <x86_64-linux-gnu/ffi.h>

/* Not every cblas.h declares it. */
void openblas_set_num_threads(int num_threads);

/** Stores a copy of `message` as the calling thread's last error. */
void lts_set_last_error(const char *message);
/** The calling thread's last error message; "" when none. Valid until the thread's next set. */
const char *lts_last_error(void);

/** 64-byte aligned allocation (NULL on failure); release with `lts_aligned_free`. */
void *lts_aligned_alloc(size_t byte_count);
void lts_aligned_free(void *pointer);

/* Plugins (plugin_shims.c). */

/** Stores a copy of `message` as the calling thread's pending plugin error (NULL clears it). */
void lts_set_plugin_error(const char *message);
/** The calling thread's pending plugin error, or NULL; the next set or clear frees it. */
const char *lts_plugin_error(void);

/** The plugin load in progress on the calling thread (an opaque Lathe object), or NULL. */
void *lts_loading_plugin(void);
/** Marks a plugin load in progress on the calling thread (NULL when it ends). */
void lts_set_loading_plugin(void *plugin);

/* libffi's type descriptors, which Swift cannot take the address of directly. */
static inline ffi_type *lts_ffi_type_void(void) { return &ffi_type_void; }
static inline ffi_type *lts_ffi_type_pointer(void) { return &ffi_type_pointer; }
static inline ffi_type *lts_ffi_type_sint(void) { return &ffi_type_sint; }
static inline ffi_type *lts_ffi_type_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *lts_ffi_type_uint64(void) { return &ffi_type_uint64; }
static inline ffi_type *lts_ffi_type_float(void) { return &ffi_type_float; }
static inline ffi_type *lts_ffi_type_double(void) { return &ffi_type_double; }
/** FFI_DEFAULT_ABI, an enum constant Swift does not import. */
static inline ffi_abi lts_ffi_default_abi(void) { return FFI_DEFAULT_ABI; }

#endif
