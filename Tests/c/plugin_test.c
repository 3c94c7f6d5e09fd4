/*
 * plugin_test.c — the custom-op ABI of lathe_plugin.h from a host program.
 *
 *     plugin_test SCALE.onnx
 *
 * SCALE.onnx must declare input 'x' float32 [N, 4] and output 'y' float32 [N, 4], with
 * y = Relu(com.host:Scale(x)) where Scale has attributes factor=3 (int), gain=0.5 (float),
 * label="dbl" (string), sizes=[1, 2] (ints), weights=[0.25] (floats), table (a tensor of 2
 * float32); Scale computes factor * gain * x (bindings/python/tests/test_plugins.py writes it).
 * Prints each failure, then "N passed, M failed"; exits 0 only if nothing failed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lathe.h"

static int passed, failed;

#define EXPECT(condition) expect((condition) != 0, #condition, __LINE__)

static void expect(int ok, const char *what, int line) {
    if (ok) { passed++; return; }
    failed++;
    fprintf(stderr, "FAIL line %d: %s (last error: %s)\n", line, what, lathe_last_error());
}

/** What the callbacks saw, for the checks. */
static int releases, states_created, states_destroyed;
static int64_t seen_factor;
static float seen_gain, seen_weight, seen_table1;
static char seen_label[16];
static size_t seen_sizes;
static lathe_status seen_wrong_type, seen_absent;
static int user_token = 42;

typedef struct scale_state { float multiplier; } scale_state;
static scale_state states[8];

static lathe_status scale_create(void *user_data, const lathe_attributes *attributes, size_t input_count,
                                 size_t output_count, void **out_state) {
    if (user_data != &user_token || input_count != 1 || output_count != 1) return LATHE_ERROR_INVALID_ARGUMENT;
    const char *label = NULL;
    const int64_t *sizes = NULL;
    const float *weights = NULL;
    const DLTensor *table = NULL;
    size_t count = 0;
    if (lathe_attributes_get_int(attributes, "factor", &seen_factor) != LATHE_OK
        || lathe_attributes_get_float(attributes, "gain", &seen_gain) != LATHE_OK
        || lathe_attributes_get_string(attributes, "label", &label) != LATHE_OK
        || lathe_attributes_get_ints(attributes, "sizes", &sizes, &seen_sizes) != LATHE_OK
        || lathe_attributes_get_floats(attributes, "weights", &weights, &count) != LATHE_OK
        || lathe_attributes_get_tensor(attributes, "table", &table) != LATHE_OK) {
        lathe_plugin_set_error("an attribute is missing");
        return LATHE_ERROR_INVALID_ARGUMENT;
    }
    snprintf(seen_label, sizeof seen_label, "%s", label);
    seen_weight = count == 1 ? weights[0] : -1;
    seen_table1 = table->ndim == 1 && table->shape[0] == 2 ? ((const float *)table->data)[1] : -1;
    seen_sizes = seen_sizes == 2 && sizes[0] == 1 && sizes[1] == 2 ? 2 : 0;
    int64_t wrong;
    seen_wrong_type = lathe_attributes_get_int(attributes, "label", &wrong);
    seen_absent = lathe_attributes_get_int(attributes, "nonexistent", &wrong);
    scale_state *state = &states[states_created++ % 8];
    state->multiplier = (float)seen_factor * seen_gain;
    *out_state = state;
    return LATHE_OK;
}

static void scale_destroy(void *user_data, void *state) { (void)user_data; (void)state; states_destroyed++; }
static void scale_release(void *user_data) { if (user_data == &user_token) releases++; }

static lathe_status scale_infer(void *user_data, void *state, const lathe_tensor_type *inputs, size_t input_count,
                                lathe_tensor_type *outputs, size_t output_count) {
    (void)user_data; (void)state; (void)input_count; (void)output_count;
    outputs[0] = inputs[0];
    return LATHE_OK;
}

static lathe_status scale_compute(void *user_data, void *state, const DLTensor *inputs, size_t input_count,
                                  DLTensor *outputs, size_t output_count) {
    (void)user_data; (void)input_count; (void)output_count;
    const float multiplier = ((const scale_state *)state)->multiplier;
    const float *x = inputs[0].data;
    float *y = outputs[0].data;
    int64_t count = inputs[0].shape[0] * inputs[0].shape[1];
    for (int64_t i = 0; i < count; i++) {
        if (isnan(x[i])) {
            lathe_plugin_set_error("NaN sample");
            return LATHE_ERROR_INVALID_ARGUMENT;
        }
        y[i] = multiplier * x[i];
    }
    return LATHE_OK;
}

/** The op as a plugin built against an older, shorter header would describe it. */
static lathe_custom_op scale_op(void) {
    lathe_custom_op op;
    memset(&op, 0, sizeof op);
    op.struct_size = sizeof op;
    op.abi_version = LATHE_ABI_VERSION;
    op.domain = "com.host";
    op.op_type = "Scale";
    op.since_version = 1;
    op.origin = "host-test";
    op.user_data = &user_token;
    op.infer = scale_infer;
    op.create_state = scale_create;
    op.compute = scale_compute;
    op.destroy_state = scale_destroy;
    op.release = scale_release;
    return op;
}

/** Index of (domain, op_type) in the registry listing, or -1; stores its origin. */
static long find(const char *domain, const char *op_type, const char **origin) {
    size_t count = 0;
    if (lathe_registry_count(&count) != LATHE_OK) return -2;
    for (size_t i = 0; i < count; i++) {
        const char *d, *o;
        int32_t since, until;
        if (lathe_registry_get(i, &d, &o, &since, &until, origin) != LATHE_OK) return -2;
        if (strcmp(d, domain) == 0 && strcmp(o, op_type) == 0) return (long)i;
    }
    return -1;
}

/** Runs the model on 2 rows: returns the status; y receives the output. */
static lathe_status run(lathe_session *session, const float *x, float *y) {
    const int64_t shape[2] = {2, 4};
    lathe_status status = lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, shape, 2, x, 8 * sizeof(float));
    if (status == LATHE_OK) status = lathe_session_run(session);
    if (status == LATHE_OK) status = lathe_session_copy_output(session, "y", y, 8 * sizeof(float));
    return status;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s SCALE.onnx\n", argv[0]); return 2; }
    const char *origin = NULL;
    lathe_model *model = NULL;

    /* Before registration the model names the missing op. */
    EXPECT(lathe_model_load_file(argv[1], &model) == LATHE_ERROR_UNSUPPORTED_OP);
    EXPECT(strstr(lathe_last_error(), "unsupported op 'Scale' (domain 'com.host', opset 1) at node 'scale'") != NULL);

    /* Refusals: ABI mismatch (both numbers named), struct too small, missing compute, NULL. */
    lathe_custom_op op = scale_op();
    op.abi_version = 7;
    EXPECT(lathe_register_op(&op) == LATHE_ERROR_PLUGIN);
    EXPECT(strstr(lathe_last_error(), "ABI version 7") != NULL && strstr(lathe_last_error(), "ABI version 1") != NULL);
    op = scale_op();
    op.struct_size = 8;
    EXPECT(lathe_register_op(&op) == LATHE_ERROR_INVALID_ARGUMENT);
    op = scale_op();
    op.compute = NULL;
    EXPECT(lathe_register_op(&op) == LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT(strstr(lathe_last_error(), "compute") != NULL);
    EXPECT(lathe_register_op(NULL) == LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT(releases == 0);

    /* An older plugin's shorter struct (ending after `backward`) registers; Lathe ignores the rest. */
    size_t before = 0, after = 0;
    EXPECT(lathe_registry_count(&before) == LATHE_OK && before > 20);
    op = scale_op();
    op.struct_size = (uint32_t)offsetof(lathe_custom_op, destroy_state);
    EXPECT(lathe_register_op(&op) == LATHE_OK);
    EXPECT(lathe_registry_count(&after) == LATHE_OK && after == before + 1);
    EXPECT(find("com.host", "Scale", &origin) >= 0 && strcmp(origin, "host-test") == 0);
    EXPECT(lathe_unregister_op("com.host", "Scale") == LATHE_OK);
    EXPECT(releases == 0); /* that struct had no release field */
    EXPECT(find("com.host", "Scale", &origin) == -1);
    EXPECT(lathe_unregister_op("com.host", "Scale") == LATHE_ERROR_INVALID_ARGUMENT);

    /* The full struct; a duplicate is refused naming the existing origin. */
    op = scale_op();
    EXPECT(lathe_register_op(&op) == LATHE_OK);
    lathe_custom_op clash = scale_op();
    clash.origin = "someone-else";
    clash.since_version = 1;
    clash.until_version = 3;
    EXPECT(lathe_register_op(&clash) == LATHE_ERROR_INVALID_ARGUMENT);
    EXPECT(strstr(lathe_last_error(), "host-test") != NULL);
    EXPECT(releases == 0);
    EXPECT(find("", "Relu", &origin) >= 0 && strcmp(origin, "builtin") == 0);

    /* Load and run: attributes reached create_state; results are 1.5 x, through Relu. */
    EXPECT(lathe_model_load_file(argv[1], &model) == LATHE_OK);
    EXPECT(states_created == 1);
    EXPECT(seen_factor == 3 && fabsf(seen_gain - 0.5f) < 1e-6f && strcmp(seen_label, "dbl") == 0);
    EXPECT(seen_sizes == 2 && fabsf(seen_weight - 0.25f) < 1e-6f && fabsf(seen_table1 - 7.0f) < 1e-6f);
    EXPECT(seen_wrong_type == LATHE_ERROR_INVALID_ARGUMENT && seen_absent == LATHE_ERROR_INVALID_ARGUMENT);
    lathe_session *session = NULL;
    EXPECT(lathe_session_create(model, &session) == LATHE_OK);
    float x[8] = {1, -2, 3, -4, 0.5f, 6, -7, 8}, y[8];
    EXPECT(run(session, x, y) == LATHE_OK);
    int right = 1;
    for (int i = 0; i < 8; i++) right &= fabsf(y[i] - (x[i] > 0 ? 1.5f * x[i] : 0)) < 1e-6f;
    EXPECT(right);

    /* A failing compute: LATHE_ERROR_PLUGIN naming the node with the plugin's message ... */
    float bad[8] = {1, 2, NAN, 4, 5, 6, 7, 8};
    EXPECT(run(session, bad, y) == LATHE_ERROR_PLUGIN);
    EXPECT(strstr(lathe_last_error(), "'scale'") != NULL && strstr(lathe_last_error(), "NaN sample") != NULL);
    /* ... and the session stays usable. */
    EXPECT(run(session, x, y) == LATHE_OK && fabsf(y[0] - 1.5f) < 1e-6f);

    /* Unregistering while the model is loaded: the model keeps working; release waits for it. */
    EXPECT(lathe_unregister_op("com.host", "Scale") == LATHE_OK);
    EXPECT(run(session, x, y) == LATHE_OK && fabsf(y[2] - 4.5f) < 1e-6f);
    lathe_model *again = NULL;
    EXPECT(lathe_model_load_file(argv[1], &again) == LATHE_ERROR_UNSUPPORTED_OP);
    EXPECT(releases == 0 && states_destroyed == 0);
    lathe_model_free(model);
    EXPECT(releases == 0); /* the session still holds the model's kernels */
    lathe_session_free(session);
    EXPECT(states_destroyed == 1 && releases == 1);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
