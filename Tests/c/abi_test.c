/*
 * abi_test.c — checks liblathe.so against the promises of include/lathe.h.
 *
 *     abi_test RELU.onnx
 *
 * RELU.onnx must declare input 'x' float32 [N, 3] and output 'y' float32 [N, 3] with y = Relu(x)
 * (bindings/python/tests/test_c_abi.py writes it). Prints each failure, then "N passed, M failed";
 * exits 0 only if nothing failed. Compile with -std=c99 -Wall -Wextra -Werror -pedantic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lathe.h"

static int passed, failed;

/** Records one check. */
static void expect(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL line %d: %s\n", line, what);
    }
}

#define EXPECT(condition) expect((condition) != 0, #condition, __LINE__)

/** Checks a call's status and, for failures, that lathe_last_error() explains it. */
static void expect_status(lathe_status got, lathe_status want, const char *call, int line) {
    char message[512];
    const char *last = lathe_last_error();
    snprintf(message, sizeof message, "%s", last ? last : "(NULL)");
    int ok = got == want && last != NULL && (want == LATHE_OK || message[0] != '\0');
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL line %d: %s\n    expected %s, got %s; lathe_last_error() = \"%s\"\n", line, call,
            lathe_status_name(want), lathe_status_name(got), message);
}

#define EXPECT_STATUS(call, want) expect_status((call), (want), #call, __LINE__)

/** Checks that a call failed (any status) with a message. */
#define EXPECT_FAILS(call)                                                                         \
    do {                                                                                           \
        lathe_status status_ = (call);                                                             \
        const char *message_ = lathe_last_error();                                                 \
        expect(status_ != LATHE_OK && message_ != NULL && message_[0] != '\0', #call " fails with a message", \
               __LINE__);                                                                          \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * DLPack tensors owned by the test, with a deleter that counts its calls
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    DLManagedTensor managed;
    int64_t shape[2];
    int64_t strides[2];
    int deleter_calls;
} test_tensor;

/** The deleter of test tensors: counts its calls. */
static void count_deleter_call(DLManagedTensor *self) {
    ((test_tensor *)self->manager_ctx)->deleter_calls++;
}

/** A float32 CPU tensor of shape [rows, 3] over `data` (strides NULL unless `strides` is given). */
static DLManagedTensor *make_tensor(test_tensor *t, float *data, int64_t rows, const int64_t *strides) {
    memset(t, 0, sizeof *t);
    t->shape[0] = rows;
    t->shape[1] = 3;
    t->managed.dl_tensor.data = data;
    t->managed.dl_tensor.device.device_type = kDLCPU;
    t->managed.dl_tensor.device.device_id = 0;
    t->managed.dl_tensor.ndim = 2;
    t->managed.dl_tensor.dtype.code = kDLFloat;
    t->managed.dl_tensor.dtype.bits = 32;
    t->managed.dl_tensor.dtype.lanes = 1;
    t->managed.dl_tensor.shape = t->shape;
    if (strides) {
        t->strides[0] = strides[0];
        t->strides[1] = strides[1];
        t->managed.dl_tensor.strides = t->strides;
    }
    t->managed.manager_ctx = t;
    t->managed.deleter = count_deleter_call;
    return &t->managed;
}

/** max(v, 0). */
static float relu(float v) { return v > 0 ? v : 0; }

/** Whether `y` (row-major [rows, 3]) is Relu of the given row-major values. */
static int is_relu_of(const float *y, const float *x, size_t count) {
    for (size_t i = 0; i < count; i++) {
        if (y[i] != relu(x[i])) return 0;
    }
    return 1;
}

/** Reads a whole file into a new buffer (NULL on failure). */
static void *read_file(const char *path, size_t *out_size) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    void *data = NULL;
    long size = -1;
    if (fseek(file, 0, SEEK_END) == 0 && (size = ftell(file)) > 0 && fseek(file, 0, SEEK_SET) == 0) {
        data = malloc((size_t)size);
        if (data && fread(data, 1, (size_t)size, file) != (size_t)size) {
            free(data);
            data = NULL;
        }
    }
    fclose(file);
    *out_size = size > 0 ? (size_t)size : 0;
    return data;
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

/** Version functions and every status name. */
static void test_versions_and_status_names(void) {
    static const char *names[] = {
        "LATHE_OK", "LATHE_ERROR_INVALID_ARGUMENT", "LATHE_ERROR_PARSE", "LATHE_ERROR_UNSUPPORTED_OP",
        "LATHE_ERROR_SHAPE_MISMATCH", "LATHE_ERROR_DTYPE_MISMATCH", "LATHE_ERROR_OUT_OF_MEMORY",
        "LATHE_ERROR_PLUGIN", "LATHE_ERROR_IO", "LATHE_ERROR_INVALID_STATE", "LATHE_ERROR_INTERNAL",
    };
    const char *version = lathe_version();
    EXPECT(version != NULL && strchr(version, '.') != NULL);
    EXPECT(lathe_abi_version() == LATHE_ABI_VERSION);
    for (lathe_status s = LATHE_OK; s <= LATHE_ERROR_INTERNAL; s++) {
        const char *name = lathe_status_name(s);
        expect(name != NULL && strcmp(name, names[s]) == 0, names[s], __LINE__);
    }
    const char *unknown = lathe_status_name(999);
    EXPECT(unknown != NULL && unknown[0] != '\0');
    unknown = lathe_status_name(-1);
    EXPECT(unknown != NULL && unknown[0] != '\0');
}

/** I/O and parse errors leave *out_model alone; a model loaded from memory does not keep the buffer. */
static void test_load_errors(const char *model_path) {
    lathe_model *model = (lathe_model *)&passed; /* a sentinel that must stay unchanged */
    lathe_model *const sentinel = model;
    EXPECT_STATUS(lathe_model_load_file("/nonexistent/lathe/model.onnx", &model), LATHE_ERROR_IO);
    EXPECT(model == sentinel);
    static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x13, 0x37};
    EXPECT_STATUS(lathe_model_load_memory(garbage, sizeof garbage, &model), LATHE_ERROR_PARSE);
    EXPECT(model == sentinel);

    size_t size = 0;
    unsigned char *bytes = read_file(model_path, &size);
    EXPECT(bytes != NULL);
    if (!bytes) return;
    EXPECT_STATUS(lathe_model_load_memory(bytes, size / 2, &model), LATHE_ERROR_PARSE);
    EXPECT(model == sentinel);
    model = NULL;
    EXPECT_STATUS(lathe_model_load_memory(bytes, size, &model), LATHE_OK);
    memset(bytes, 0, size); /* the model must not depend on the caller's buffer */
    free(bytes);
    lathe_session *session = NULL;
    EXPECT_STATUS(lathe_session_create(model, &session), LATHE_OK);
    float x[3] = {-1, 2, -3}, y[3] = {0};
    int64_t shape[2] = {1, 3};
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x), LATHE_OK);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, x, 3));
    lathe_session_free(session);
    lathe_model_free(model);
}

/** NULL in every pointer parameter: LATHE_ERROR_INVALID_ARGUMENT with a message; *_free(NULL) is a no-op. */
static void test_null_arguments(const char *model_path) {
    lathe_model *model = NULL;
    lathe_session *session = NULL;
    EXPECT_STATUS(lathe_model_load_file(model_path, &model), LATHE_OK);
    EXPECT_STATUS(lathe_session_create(model, &session), LATHE_OK);
    if (!model || !session) return;
    float x[6] = {1, -2, 3, -4, 5, -6};
    int64_t shape[2] = {2, 3};
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x), LATHE_OK);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);

    const int invalid = LATHE_ERROR_INVALID_ARGUMENT;
    unsigned char bytes[8] = {0};
    lathe_model *out_model = NULL;
    lathe_session *out_session = NULL;
    size_t count = 0;
    const char *name = NULL;
    lathe_dtype dtype = 0;
    int64_t dim = 0;
    const char *symbol = NULL;

    EXPECT_STATUS(lathe_model_load_file(NULL, &out_model), invalid);
    EXPECT_STATUS(lathe_model_load_file(model_path, NULL), invalid);
    EXPECT_STATUS(lathe_model_load_memory(NULL, sizeof bytes, &out_model), invalid);
    EXPECT_STATUS(lathe_model_load_memory(bytes, sizeof bytes, NULL), invalid);
    EXPECT(out_model == NULL);

    EXPECT_STATUS(lathe_model_input_count(NULL, &count), invalid);
    EXPECT_STATUS(lathe_model_input_count(model, NULL), invalid);
    EXPECT_STATUS(lathe_model_output_count(NULL, &count), invalid);
    EXPECT_STATUS(lathe_model_output_count(model, NULL), invalid);
    EXPECT_STATUS(lathe_model_input_name(NULL, 0, &name), invalid);
    EXPECT_STATUS(lathe_model_input_name(model, 0, NULL), invalid);
    EXPECT_STATUS(lathe_model_output_name(NULL, 0, &name), invalid);
    EXPECT_STATUS(lathe_model_output_name(model, 0, NULL), invalid);
    EXPECT_STATUS(lathe_model_input_dtype(NULL, 0, &dtype), invalid);
    EXPECT_STATUS(lathe_model_input_dtype(model, 0, NULL), invalid);
    EXPECT_STATUS(lathe_model_output_dtype(NULL, 0, &dtype), invalid);
    EXPECT_STATUS(lathe_model_output_dtype(model, 0, NULL), invalid);
    EXPECT_STATUS(lathe_model_input_rank(NULL, 0, &count), invalid);
    EXPECT_STATUS(lathe_model_input_rank(model, 0, NULL), invalid);
    EXPECT_STATUS(lathe_model_output_rank(NULL, 0, &count), invalid);
    EXPECT_STATUS(lathe_model_output_rank(model, 0, NULL), invalid);
    EXPECT_STATUS(lathe_model_input_dim(NULL, 0, 0, &dim, &symbol), invalid);
    EXPECT_STATUS(lathe_model_input_dim(model, 0, 0, NULL, &symbol), invalid);
    EXPECT_STATUS(lathe_model_output_dim(NULL, 0, 0, &dim, &symbol), invalid);
    EXPECT_STATUS(lathe_model_output_dim(model, 0, 0, NULL, &symbol), invalid);
    EXPECT(count == 0 && name == NULL && dtype == 0 && dim == 0 && symbol == NULL);
    /* out_symbol may be NULL by contract. */
    EXPECT_STATUS(lathe_model_input_dim(model, 0, 1, &dim, NULL), LATHE_OK);
    EXPECT(dim == 3);
    EXPECT_STATUS(lathe_model_output_dim(model, 0, 1, &dim, NULL), LATHE_OK);

    EXPECT_STATUS(lathe_session_create(NULL, &out_session), invalid);
    EXPECT_STATUS(lathe_session_create(model, NULL), invalid);
    EXPECT(out_session == NULL);

    EXPECT_STATUS(lathe_session_set_input(NULL, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x), invalid);
    EXPECT_STATUS(lathe_session_set_input(session, NULL, LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x), invalid);
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, NULL, 2, x, sizeof x), invalid);
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, NULL, sizeof x), invalid);

    test_tensor t;
    DLManagedTensor *managed = make_tensor(&t, x, 2, NULL);
    EXPECT_STATUS(lathe_session_set_input_dlpack(NULL, "x", managed), invalid);
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, NULL, managed), invalid);
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", NULL), invalid);
    EXPECT(t.deleter_calls == 0);

    EXPECT_STATUS(lathe_session_run(NULL), invalid);

    const void *data = NULL;
    const int64_t *out_shape = NULL;
    size_t rank = 0;
    float y[6];
    DLManagedTensor *out_tensor = NULL;
    EXPECT_STATUS(lathe_session_get_output(NULL, "y", &data, &dtype, &out_shape, &rank), invalid);
    EXPECT_STATUS(lathe_session_get_output(session, NULL, &data, &dtype, &out_shape, &rank), invalid);
    EXPECT(data == NULL && out_shape == NULL && rank == 0);
    /* Every out-parameter of get_output may be NULL by contract. */
    EXPECT_STATUS(lathe_session_get_output(session, "y", NULL, NULL, NULL, NULL), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(NULL, "y", y, sizeof y), invalid);
    EXPECT_STATUS(lathe_session_copy_output(session, NULL, y, sizeof y), invalid);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", NULL, sizeof y), invalid);
    EXPECT_STATUS(lathe_session_get_output_dlpack(NULL, "y", &out_tensor), invalid);
    EXPECT_STATUS(lathe_session_get_output_dlpack(session, NULL, &out_tensor), invalid);
    EXPECT_STATUS(lathe_session_get_output_dlpack(session, "y", NULL), invalid);
    EXPECT(out_tensor == NULL);

    lathe_model_free(NULL);
    lathe_session_free(NULL);
    passed++; /* the *_free(NULL) calls returned */

    /* The session still works after all that. */
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, x, 6));
    lathe_session_free(session);
    lathe_model_free(model);
}

/** Names, dtypes, ranks and (symbolic) dims of 'x' and 'y'; out-of-range indices and axes. */
static void test_introspection(lathe_model *model) {
    size_t count = 0, rank = 0;
    const char *name = NULL, *symbol = NULL;
    lathe_dtype dtype = 0;
    int64_t dim = 0;
    EXPECT_STATUS(lathe_model_input_count(model, &count), LATHE_OK);
    EXPECT(count == 1);
    EXPECT_STATUS(lathe_model_output_count(model, &count), LATHE_OK);
    EXPECT(count == 1);
    EXPECT_STATUS(lathe_model_input_name(model, 0, &name), LATHE_OK);
    EXPECT(name != NULL && strcmp(name, "x") == 0);
    EXPECT_STATUS(lathe_model_output_name(model, 0, &name), LATHE_OK);
    EXPECT(name != NULL && strcmp(name, "y") == 0);
    EXPECT_STATUS(lathe_model_input_dtype(model, 0, &dtype), LATHE_OK);
    EXPECT(dtype == LATHE_DTYPE_FLOAT32);
    EXPECT_STATUS(lathe_model_output_dtype(model, 0, &dtype), LATHE_OK);
    EXPECT(dtype == LATHE_DTYPE_FLOAT32);
    EXPECT_STATUS(lathe_model_input_rank(model, 0, &rank), LATHE_OK);
    EXPECT(rank == 2);
    EXPECT_STATUS(lathe_model_output_rank(model, 0, &rank), LATHE_OK);
    EXPECT(rank == 2);
    EXPECT_STATUS(lathe_model_input_dim(model, 0, 0, &dim, &symbol), LATHE_OK);
    EXPECT(dim == -1 && symbol != NULL && strcmp(symbol, "N") == 0);
    EXPECT_STATUS(lathe_model_input_dim(model, 0, 1, &dim, &symbol), LATHE_OK);
    EXPECT(dim == 3 && symbol == NULL);
    EXPECT_STATUS(lathe_model_output_dim(model, 0, 0, &dim, &symbol), LATHE_OK);
    EXPECT(dim == -1 && symbol != NULL && strcmp(symbol, "N") == 0);

    /* Out-of-range indices and axes. */
    name = NULL;
    EXPECT_STATUS(lathe_model_input_name(model, 1, &name), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(lathe_model_output_name(model, 1, &name), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT(name == NULL);
    EXPECT_STATUS(lathe_model_input_dtype(model, 7, &dtype), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(lathe_model_output_rank(model, 7, &rank), LATHE_ERROR_INVALID_ARGUMENT);
    dim = 42;
    EXPECT_STATUS(lathe_model_input_dim(model, 0, 2, &dim, &symbol), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(lathe_model_output_dim(model, 3, 0, &dim, &symbol), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT(dim == 42);
}

/** Run before inputs, wrong names/dtypes/shapes/sizes, borrowed and copied outputs. */
static void test_session_errors(lathe_model *model) {
    lathe_session *session = NULL;
    EXPECT_STATUS(lathe_session_create(model, &session), LATHE_OK);
    if (!session) return;
    float x[6] = {1, -2, 3, -4, 5, -6}, y[6], eight[8] = {0};
    int64_t shape[2] = {2, 3}, wrong_dim[2] = {2, 4}, rank3[3] = {1, 2, 3};

    EXPECT_STATUS(lathe_session_run(session), LATHE_ERROR_INVALID_STATE);
    EXPECT(strstr(lathe_last_error(), "x") != NULL);
    EXPECT_FAILS(lathe_session_get_output(session, "y", NULL, NULL, NULL, NULL));
    EXPECT_FAILS(lathe_session_copy_output(session, "y", y, sizeof y));

    EXPECT_STATUS(lathe_session_set_input(session, "nope", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x),
                  LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT(strstr(lathe_last_error(), "nope") != NULL);
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_INT32, shape, 2, x, sizeof x),
                  LATHE_ERROR_DTYPE_MISMATCH);
    EXPECT_STATUS(lathe_session_set_input(session, "x", 12345, shape, 2, x, sizeof x),
                  LATHE_ERROR_DTYPE_MISMATCH);
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, wrong_dim, 2, eight, sizeof eight),
                  LATHE_ERROR_SHAPE_MISMATCH);
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, rank3, 3, x, sizeof x),
                  LATHE_ERROR_SHAPE_MISMATCH);
    EXPECT_FAILS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x - 4));
    EXPECT_STATUS(lathe_session_run(session), LATHE_ERROR_INVALID_STATE);

    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x), LATHE_OK);
    memset(x, 0, sizeof x); /* set_input copied: the buffer is the caller's again */
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    float expected_x[6] = {1, -2, 3, -4, 5, -6};
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, expected_x, 6));

    const void *data = NULL;
    lathe_dtype dtype = 0;
    const int64_t *out_shape = NULL;
    size_t rank = 0;
    EXPECT_STATUS(lathe_session_get_output(session, "y", &data, &dtype, &out_shape, &rank), LATHE_OK);
    EXPECT(dtype == LATHE_DTYPE_FLOAT32 && rank == 2 && out_shape && out_shape[0] == 2 && out_shape[1] == 3);
    EXPECT(data && is_relu_of(data, expected_x, 6));
    EXPECT_STATUS(lathe_session_get_output(session, "nope", &data, &dtype, &out_shape, &rank),
                  LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(lathe_session_copy_output(session, "nope", y, sizeof y), LATHE_ERROR_INVALID_ARGUMENT);

    float small[5] = {7, 7, 7, 7, 7};
    EXPECT_STATUS(lathe_session_copy_output(session, "y", small, sizeof small), LATHE_ERROR_SHAPE_MISMATCH);
    EXPECT(small[0] == 7 && small[4] == 7);
    float large[8];
    large[6] = 9;
    EXPECT_STATUS(lathe_session_copy_output(session, "y", large, sizeof large), LATHE_OK);
    EXPECT(is_relu_of(large, expected_x, 6) && large[6] == 9);

    lathe_session_free(session);
}

/** A session keeps working after its model is freed. */
static void test_session_outlives_model(const char *model_path) {
    lathe_model *model = NULL;
    lathe_session *session = NULL;
    EXPECT_STATUS(lathe_model_load_file(model_path, &model), LATHE_OK);
    EXPECT_STATUS(lathe_session_create(model, &session), LATHE_OK);
    lathe_model_free(model);
    float x[3] = {-5, 0.5f, 2}, y[3] = {0};
    int64_t shape[2] = {1, 3};
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x), LATHE_OK);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, x, 3));
    lathe_session_free(session);
}

/** Runs Relu on three values through a fresh session of `model`; 1 when the result is right. */
static int runs_relu(const lathe_model *model) {
    lathe_session *session = NULL;
    if (lathe_session_create(model, &session) != LATHE_OK) return 0;
    float x[3] = {-1.5f, 0, 4}, y[3] = {0};
    int64_t shape[2] = {1, 3};
    int ok = lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x) == LATHE_OK
             && lathe_session_run(session) == LATHE_OK
             && lathe_session_copy_output(session, "y", y, sizeof y) == LATHE_OK && is_relu_of(y, x, 3);
    lathe_session_free(session);
    return ok;
}

/** Export to bytes and to a file, each loaded back; NULL arguments and unwritable paths. */
static void test_export(lathe_model *model, const char *model_path) {
    void *data = NULL;
    size_t size = 0;
    EXPECT_STATUS(lathe_model_export_onnx(NULL, &data, &size), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(lathe_model_export_onnx(model, NULL, &size), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(lathe_model_export_onnx(model, &data, NULL), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT(data == NULL && size == 0);
    EXPECT_STATUS(lathe_model_export_onnx(model, &data, &size), LATHE_OK);
    EXPECT(data != NULL && size > 0);
    lathe_model *copy = NULL;
    EXPECT_STATUS(lathe_model_load_memory(data, size, &copy), LATHE_OK);
    EXPECT(copy != NULL && runs_relu(copy));
    lathe_model_free(copy);
    lathe_buffer_free(data);
    lathe_buffer_free(NULL);

    char path[4096];
    snprintf(path, sizeof path, "%s.exported.onnx", model_path);
    EXPECT_STATUS(lathe_model_save_onnx(NULL, path), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(lathe_model_save_onnx(model, NULL), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(lathe_model_save_onnx(model, "/nonexistent-lathe-dir/model.onnx"), LATHE_ERROR_IO);
    EXPECT(strstr(lathe_last_error(), "/nonexistent-lathe-dir/model.onnx") != NULL);
    EXPECT_STATUS(lathe_model_save_onnx(model, path), LATHE_OK);
    copy = NULL;
    EXPECT_STATUS(lathe_model_load_file(path, &copy), LATHE_OK);
    EXPECT(copy != NULL && runs_relu(copy));
    lathe_model_free(copy);
    remove(path);
}

/** DLPack inputs: in place when compact, copied when strided, deleter timing, rejected tensors stay the caller's. */
static void test_dlpack_inputs(lathe_model *model) {
    lathe_session *session = NULL;
    EXPECT_STATUS(lathe_session_create(model, &session), LATHE_OK);
    if (!session) return;
    float y[6];

    /* Compact: used in place, released when replaced. */
    float compact[6] = {1, -2, 3, -4, 5, -6};
    test_tensor a;
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", make_tensor(&a, compact, 2, NULL)), LATHE_OK);
    EXPECT(a.deleter_calls == 0);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, compact, 6));
    EXPECT(a.deleter_calls == 0);

    /* Explicit compact strides count as compact too. */
    float compact2[6] = {-1, 2, -3, 4, -5, 6};
    int64_t row_major[2] = {3, 1};
    test_tensor b;
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", make_tensor(&b, compact2, 2, row_major)), LATHE_OK);
    EXPECT(a.deleter_calls == 1);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, compact2, 6));

    /* Strided (column-major [2, 3]): copied, so released at once. */
    float column_major[6] = {1, -4, -2, 5, 3, -6}; /* the matrix [[1, -2, 3], [-4, 5, -6]] */
    float as_rows[6] = {1, -2, 3, -4, 5, -6};
    int64_t strides[2] = {1, 2};
    test_tensor c;
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", make_tensor(&c, column_major, 2, strides)),
                  LATHE_OK);
    EXPECT(b.deleter_calls == 1);
    EXPECT(c.deleter_calls == 1);
    memset(column_major, 0, sizeof column_major);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, as_rows, 6));

    /* byte_offset is honoured. */
    float padded[7] = {99, -1, 1, -2, 2, -3, 3};
    test_tensor d;
    DLManagedTensor *offset = make_tensor(&d, padded, 2, NULL);
    offset->dl_tensor.byte_offset = sizeof(float);
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", offset), LATHE_OK);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, padded + 1, 6));

    /* Rejected tensors stay the caller's: their deleter is not called. */
    float data[12] = {0}; /* room for the wrong shapes below */
    test_tensor e;
    DLManagedTensor *wrong = make_tensor(&e, data, 2, NULL);
    wrong->dl_tensor.dtype.code = kDLInt;
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", wrong), LATHE_ERROR_DTYPE_MISMATCH);
    wrong->dl_tensor.dtype.code = kDLFloat;
    wrong->dl_tensor.dtype.bits = 64;
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", wrong), LATHE_ERROR_DTYPE_MISMATCH);
    wrong->dl_tensor.dtype.bits = 32;
    wrong->dl_tensor.dtype.lanes = 4;
    EXPECT_FAILS(lathe_session_set_input_dlpack(session, "x", wrong));
    wrong->dl_tensor.dtype.lanes = 1;
    wrong->dl_tensor.device.device_type = kDLCUDA;
    EXPECT_FAILS(lathe_session_set_input_dlpack(session, "x", wrong));
    wrong->dl_tensor.device.device_type = kDLCPU;
    wrong->dl_tensor.shape[1] = 4;
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", wrong), LATHE_ERROR_SHAPE_MISMATCH);
    wrong->dl_tensor.shape[1] = 3;
    wrong->dl_tensor.ndim = 3;
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "x", wrong), LATHE_ERROR_SHAPE_MISMATCH);
    wrong->dl_tensor.ndim = 2;
    EXPECT_STATUS(lathe_session_set_input_dlpack(session, "nope", wrong), LATHE_ERROR_INVALID_ARGUMENT);
    wrong->dl_tensor.data = NULL;
    EXPECT_FAILS(lathe_session_set_input_dlpack(session, "x", wrong));
    EXPECT(e.deleter_calls == 0);
    EXPECT(d.deleter_calls == 0);

    /* The held input survives the failures; freeing the session releases it exactly once. */
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_copy_output(session, "y", y, sizeof y), LATHE_OK);
    EXPECT(is_relu_of(y, padded + 1, 6));
    lathe_session_free(session);
    EXPECT(a.deleter_calls == 1 && b.deleter_calls == 1 && c.deleter_calls == 1 && d.deleter_calls == 1);
    EXPECT(e.deleter_calls == 0);
}

/** DLPack outputs: layout, values kept across runs and after the session is freed, deleter called once. */
static void test_dlpack_outputs(lathe_model *model) {
    lathe_session *session = NULL;
    EXPECT_STATUS(lathe_session_create(model, &session), LATHE_OK);
    if (!session) return;
    float x[6] = {1, -2, 3, -4, 5, -6}, x2[6] = {-9, 9, -9, 9, -9, 9};
    int64_t shape[2] = {2, 3};
    DLManagedTensor *first = NULL, *second = NULL;

    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, sizeof x), LATHE_OK);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT_STATUS(lathe_session_get_output_dlpack(session, "nope", &first), LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT(first == NULL);
    EXPECT_STATUS(lathe_session_get_output_dlpack(session, "y", &first), LATHE_OK);
    if (!first) {
        lathe_session_free(session);
        return;
    }
    const DLTensor *t = &first->dl_tensor;
    EXPECT(t->device.device_type == kDLCPU && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    EXPECT(t->dtype.code == kDLFloat && t->dtype.bits == 32 && t->dtype.lanes == 1);
    EXPECT(t->strides == NULL || (t->strides[0] == 3 && t->strides[1] == 1));
    EXPECT(first->deleter != NULL);
    const float *values = (const float *)((const char *)t->data + t->byte_offset);
    EXPECT(is_relu_of(values, x, 6));

    /* The next run writes elsewhere; the exported tensor keeps its values. */
    EXPECT_STATUS(lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x2, sizeof x2), LATHE_OK);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    EXPECT(is_relu_of(values, x, 6));
    EXPECT_STATUS(lathe_session_get_output_dlpack(session, "y", &second), LATHE_OK);
    EXPECT(second != NULL && second != first);
    EXPECT_STATUS(lathe_session_run(session), LATHE_OK);
    if (second) {
        EXPECT(is_relu_of((const float *)((const char *)second->dl_tensor.data + second->dl_tensor.byte_offset),
                          x2, 6));
    }

    /* Freeing the session leaves exported tensors valid until their deleters run (once each). */
    lathe_session_free(session);
    EXPECT(is_relu_of(values, x, 6));
    first->deleter(first);
    if (second) second->deleter(second);
    passed++;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s RELU.onnx\n", argv[0]);
        return 2;
    }
    const char *start = lathe_last_error();
    EXPECT(start != NULL && start[0] == '\0');

    test_versions_and_status_names();
    test_load_errors(argv[1]);
    test_null_arguments(argv[1]);
    test_session_outlives_model(argv[1]);

    lathe_model *model = NULL;
    EXPECT_STATUS(lathe_model_load_file(argv[1], &model), LATHE_OK);
    if (model) {
        test_introspection(model);
        test_session_errors(model);
        test_dlpack_inputs(model);
        test_dlpack_outputs(model);
        test_export(model, argv[1]);
        lathe_model_free(model);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
