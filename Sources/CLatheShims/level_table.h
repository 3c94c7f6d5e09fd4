/* The per-level dispatch every multi-level kernel file uses (one way to pick a level). Include after
 * lathe_shims.h; the check whether the CPU runs a level is `lts_vector_kernels_at(level) != NULL`. */
#ifndef LATHE_LEVEL_TABLE_H
#define LATHE_LEVEL_TABLE_H

/* Defines `type name_at(lts_vector_level level)`, giving `baseline`, `avx2` or `avx512` (0 when this CPU
 * lacks the level), and `type name_active(void)`, the value for `lts_best_vector_level()`, looked up once
 * per process (every thread then reads the same value). */
#define LTS_LEVEL_TABLE(type, name, baseline, avx2, avx512)                                            \
    type name##_at(lts_vector_level level) {                                                        \
        if (!lts_vector_kernels_at(level)) return 0;                                                \
        switch (level) {                                                                            \
        case lts_vector_level_baseline: return baseline;                                            \
        case lts_vector_level_avx2: return avx2;                                                    \
        case lts_vector_level_avx512: return avx512;                                                \
        }                                                                                           \
        return 0;                                                                                   \
    }                                                                                               \
    type name##_active(void) {                                                                      \
        static type active;                                                                         \
        type value = __atomic_load_n(&active, __ATOMIC_ACQUIRE);                                    \
        if (!value) {                                                                               \
            value = name##_at(lts_best_vector_level());                                             \
            __atomic_store_n(&active, value, __ATOMIC_RELEASE);                                     \
        }                                                                                           \
        return value;                                                                               \
    }

#endif
