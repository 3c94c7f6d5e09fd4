#include "lathe_shims.h"
#include <stdlib.h>
#include <string.h>

static _Thread_local char *lts_error_text = NULL;

void lts_set_last_error(const char *message) {
    free(lts_error_text);
    lts_error_text = message ? strdup(message) : NULL;
}

const char *lts_last_error(void) { return lts_error_text ? lts_error_text : ""; }

void *lts_aligned_alloc(size_t byte_count) {
    void *pointer = NULL;
    if (posix_memalign(&pointer, 64, byte_count == 0 ? 64 : byte_count) != 0) return NULL;
    return pointer;
}

void lts_aligned_free(void *pointer) { free(pointer); }
