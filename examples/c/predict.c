/*
 * predict.c — load an ONNX model with Lathe's C ABI, show its inputs and outputs, run it once.
 *
 *     predict MODEL.onnx [INPUT.f32|-] [OUTPUT.raw]
 *
 * Every input must be float32. Without INPUT.f32 (or with "-"), input k gets the deterministic
 * values  x[i] = ((7 * i + 3 * k) % 17) / 8 - 1  (i = flat row-major index). With INPUT.f32, the
 * single input is read from that file of raw native-endian float32 values; if the input has exactly
 * one symbolic dimension, its size is taken from the file's length. Other symbolic dimensions are 1.
 * With OUTPUT.raw, the raw bytes of every output are written there, one after another, in the
 * model's output order.
 *
 * Build (from the repository root, after `swift build --product lathe`):
 *     cc -std=c99 -Wall -Wextra -Werror -Iinclude examples/c/predict.c -o predict \
 *        -L.build/debug -Wl,-rpath,"$PWD/.build/debug" -llathe
 * or `make -C examples/c`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lathe.h"

/** The most dimensions this example handles per tensor. */
#define MAX_RANK 16

/** On failure, prints the failed call and Lathe's message (unless already reported: -1), then jumps to cleanup. */
#define CHECK(call)                                                                       \
    do {                                                                                  \
        lathe_status check_status_ = (call);                                              \
        if (check_status_ > LATHE_OK) {                                                   \
            fprintf(stderr, "%s failed: %s: %s\n", #call, lathe_status_name(check_status_), \
                    lathe_last_error());                                                  \
            goto cleanup;                                                                 \
        }                                                                                 \
        if (check_status_ != LATHE_OK) goto cleanup; /* already reported */               \
    } while (0)

/** The spelling of an element type. */
static const char *dtype_name(lathe_dtype dtype) {
    switch (dtype) {
    case LATHE_DTYPE_FLOAT32: return "float32";
    case LATHE_DTYPE_UINT8: return "uint8";
    case LATHE_DTYPE_INT8: return "int8";
    case LATHE_DTYPE_INT32: return "int32";
    case LATHE_DTYPE_INT64: return "int64";
    case LATHE_DTYPE_BOOL: return "bool";
    case LATHE_DTYPE_FLOAT64: return "float64";
    default: return "unknown";
    }
}

/** Bytes per element of a type (0 if unknown). */
static size_t dtype_size(lathe_dtype dtype) {
    switch (dtype) {
    case LATHE_DTYPE_UINT8: case LATHE_DTYPE_INT8: case LATHE_DTYPE_BOOL: return 1;
    case LATHE_DTYPE_FLOAT32: case LATHE_DTYPE_INT32: return 4;
    case LATHE_DTYPE_INT64: case LATHE_DTYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/** Prints the declared inputs or outputs ("input"/"output") of a model, e.g. `input 0: 'x' float32 [N, 4]`. */
static lathe_status print_declared(const lathe_model *model, int outputs) {
    const char *kind = outputs ? "output" : "input";
    size_t count = 0;
    lathe_status status = outputs ? lathe_model_output_count(model, &count) : lathe_model_input_count(model, &count);
    for (size_t i = 0; status == LATHE_OK && i < count; i++) {
        const char *name = NULL;
        lathe_dtype dtype = 0;
        size_t rank = 0;
        status = outputs ? lathe_model_output_name(model, i, &name) : lathe_model_input_name(model, i, &name);
        if (status != LATHE_OK) break;
        status = outputs ? lathe_model_output_dtype(model, i, &dtype) : lathe_model_input_dtype(model, i, &dtype);
        if (status != LATHE_OK) break;
        printf("%-6s %zu: '%s' %s ", kind, i, name, dtype_name(dtype));
        status = outputs ? lathe_model_output_rank(model, i, &rank) : lathe_model_input_rank(model, i, &rank);
        if (status == LATHE_ERROR_INVALID_STATE) {
            printf("(rank not declared)\n");
            status = LATHE_OK;
            continue;
        }
        if (status != LATHE_OK) break;
        printf("[");
        for (size_t axis = 0; axis < rank; axis++) {
            int64_t dim = 0;
            const char *symbol = NULL;
            status = outputs ? lathe_model_output_dim(model, i, axis, &dim, &symbol)
                             : lathe_model_input_dim(model, i, axis, &dim, &symbol);
            if (status != LATHE_OK) break;
            if (dim < 0) printf("%s%s", axis ? ", " : "", symbol && *symbol ? symbol : "?");
            else printf("%s%lld", axis ? ", " : "", (long long)dim);
        }
        printf("]\n");
    }
    return status;
}

/** Reads a whole file; returns NULL (with a message) on failure. */
static void *read_file(const char *path, size_t *out_size) {
    FILE *file = fopen(path, "rb");
    if (!file) {
        perror(path);
        return NULL;
    }
    size_t capacity = 1 << 16, size = 0, got;
    char *data = malloc(capacity);
    while (data && (got = fread(data + size, 1, capacity - size, file)) > 0) {
        size += got;
        if (size == capacity) {
            char *grown = realloc(data, capacity *= 2);
            if (!grown) free(data);
            data = grown;
        }
    }
    if (!data || ferror(file)) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(data);
        data = NULL;
    }
    fclose(file);
    *out_size = size;
    return data;
}

/**
 * Sets input `index` (float32): from `file_data` (`file_size` bytes) if given, else deterministic values.
 * Returns LATHE_OK, a status from Lathe (message in lathe_last_error()), or -1 after printing its own message.
 */
static lathe_status feed_input(const lathe_model *model, lathe_session *session, size_t index,
                               const float *file_data, size_t file_size) {
    const char *name = NULL;
    lathe_dtype dtype = 0;
    size_t rank = 0;
    int64_t shape[MAX_RANK];
    int symbolic_axis = -1, symbolic_count = 0;
    lathe_status status;
    if ((status = lathe_model_input_name(model, index, &name)) != LATHE_OK) return status;
    if ((status = lathe_model_input_dtype(model, index, &dtype)) != LATHE_OK) return status;
    if ((status = lathe_model_input_rank(model, index, &rank)) != LATHE_OK) return status;
    if (dtype != LATHE_DTYPE_FLOAT32 || rank > MAX_RANK) {
        fprintf(stderr, "input '%s': this example feeds float32 tensors of rank <= %d only\n", name, MAX_RANK);
        return -1;
    }
    size_t count = 1;
    for (size_t axis = 0; axis < rank; axis++) {
        if ((status = lathe_model_input_dim(model, index, axis, &shape[axis], NULL)) != LATHE_OK) return status;
        if (shape[axis] < 0) {
            shape[axis] = 1;
            symbolic_axis = (int)axis;
            symbolic_count++;
        }
        count *= (size_t)shape[axis];
    }
    if (file_data) {
        size_t file_count = file_size / sizeof(float);
        if (symbolic_count == 1 && count > 0 && file_count % count == 0) {
            shape[symbolic_axis] = (int64_t)(file_count / count);
            count = file_count;
        }
        if (file_count != count || file_size % sizeof(float) != 0) {
            fprintf(stderr, "input '%s': file has %zu bytes, the input needs %zu float32 values\n",
                    name, file_size, count);
            return -1;
        }
        return lathe_session_set_input(session, name, dtype, shape, rank, file_data, file_size);
    }
    float *values = malloc((count ? count : 1) * sizeof(float));
    if (!values) {
        fprintf(stderr, "input '%s': out of memory\n", name);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        values[i] = (float)((7 * i + 3 * index) % 17) / 8.0f - 1.0f;
    }
    status = lathe_session_set_input(session, name, dtype, shape, rank, values, count * sizeof(float));
    free(values);
    return status;
}

/** Prints an output: its type and shape, then per row (last axis) the first values and, for float32, the argmax. */
static void print_output(const char *name, const void *data, lathe_dtype dtype, const int64_t *shape, size_t rank) {
    size_t count = 1;
    printf("output '%s' %s [", name, dtype_name(dtype));
    for (size_t axis = 0; axis < rank; axis++) {
        printf("%s%lld", axis ? ", " : "", (long long)shape[axis]);
        count *= (size_t)shape[axis];
    }
    printf("]\n");
    if (dtype != LATHE_DTYPE_FLOAT32 || count == 0) return;
    const float *values = data;
    size_t row_length = rank ? (size_t)shape[rank - 1] : 1;
    size_t rows = count / row_length;
    for (size_t row = 0; row < rows && row < 8; row++) {
        const float *r = values + row * row_length;
        size_t best = 0;
        printf("  row %zu:", row);
        for (size_t j = 0; j < row_length; j++) {
            if (j < 10) printf(" %.6g", r[j]);
            if (r[j] > r[best]) best = j;
        }
        printf("%s  argmax %zu\n", row_length > 10 ? " ..." : "", best);
    }
    if (rows > 8) printf("  (%zu more rows)\n", rows - 8);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.onnx [INPUT.f32|-] [OUTPUT.raw]\n", argv[0]);
        return 2;
    }
    int exit_code = 1;
    lathe_model *model = NULL;
    lathe_session *session = NULL;
    float *file_data = NULL;
    size_t file_size = 0, input_count = 0, output_count = 0;
    FILE *output_file = NULL;

    printf("Lathe %s (C ABI %u)\n", lathe_version(), (unsigned)lathe_abi_version());
    if (lathe_abi_version() != LATHE_ABI_VERSION) {
        fprintf(stderr, "liblathe implements ABI %u, this program was built for %d\n",
                (unsigned)lathe_abi_version(), LATHE_ABI_VERSION);
        return 1;
    }
    CHECK(lathe_model_load_file(argv[1], &model));
    CHECK(print_declared(model, 0));
    CHECK(print_declared(model, 1));
    CHECK(lathe_model_input_count(model, &input_count));
    CHECK(lathe_model_output_count(model, &output_count));

    if (argc > 2 && strcmp(argv[2], "-") != 0) {
        if (input_count != 1) {
            fprintf(stderr, "an input file needs a single-input model; this one has %zu inputs\n", input_count);
            goto cleanup;
        }
        file_data = read_file(argv[2], &file_size);
        if (!file_data) goto cleanup;
    }
    if (argc > 3 && !(output_file = fopen(argv[3], "wb"))) {
        perror(argv[3]);
        goto cleanup;
    }

    CHECK(lathe_session_create(model, &session));
    for (size_t i = 0; i < input_count; i++) {
        CHECK(feed_input(model, session, i, file_data, file_size));
    }
    CHECK(lathe_session_run(session));

    for (size_t i = 0; i < output_count; i++) {
        const char *name = NULL;
        const void *data = NULL;
        lathe_dtype dtype = 0;
        const int64_t *shape = NULL;
        size_t rank = 0, count = 1;
        CHECK(lathe_model_output_name(model, i, &name));
        CHECK(lathe_session_get_output(session, name, &data, &dtype, &shape, &rank));
        print_output(name, data, dtype, shape, rank);
        for (size_t axis = 0; axis < rank; axis++) count *= (size_t)shape[axis];
        if (output_file && fwrite(data, dtype_size(dtype), count, output_file) != count) {
            perror(argv[3]);
            goto cleanup;
        }
    }
    exit_code = 0;

cleanup:
    if (output_file && fclose(output_file) != 0) {
        perror(argv[3]);
        exit_code = 1;
    }
    free(file_data);
    lathe_session_free(session);
    lathe_model_free(model);
    return exit_code;
}
