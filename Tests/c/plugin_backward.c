/*
 * plugin_backward.c — a C op's backward driving gradients and training through the C ABI
 * (run by bindings/python/tests/test_plugins_backward.py).
 *
 *     plugin_backward MODEL_DIR
 *
 * MODEL_DIR holds three models of the shape  x[4,3], W[3,5], B[5] -> Gemm -> h -> OP(h, h) -> y[4,5]
 * (h feeds both inputs of OP, so the op's two input gradients are the same buffer and must be
 * accumulated): gemm_tanhmul.onnx (OP = com.test.grad:TanhMul, y = scale * tanh(h) * h with
 * scale = 0.5 from the node's attribute), gemm_failing.onnx (com.test.grad:FailingBackward, whose
 * backward fails) and gemm_nobackward.onnx (com.test.grad:NoBackward, registered without one).
 *
 * Checks: lathe_model_gradients for x, W and B against central finite differences of
 * L = sum(g * y) computed with sessions; the failing and missing backwards give clear errors;
 * gradient descent on W and B (graph inputs) through the op lowers an MSE loss 10-fold.
 * Prints "N passed, M failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lathe.h"

static int passed, failed;

static void expect(int condition, const char *what) {
    if (condition) {
        passed++;
    } else {
        failed++;
        printf("FAILED: %s (last error: %s)\n", what, lathe_last_error());
    }
}

static int64_t count_of(const DLTensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* ---- the op ------------------------------------------------------------------------------- */

typedef struct { float scale; } tanhmul_state;

static lathe_status tanhmul_create(void *user_data, const lathe_attributes *attributes, size_t input_count,
                                   size_t output_count, void **out_state) {
    (void)user_data;
    if (input_count != 2 || output_count != 1) {
        lathe_plugin_set_error("TanhMul takes two inputs and one output");
        return LATHE_ERROR_INVALID_ARGUMENT;
    }
    tanhmul_state *state = malloc(sizeof *state);
    if (state == NULL) return LATHE_ERROR_OUT_OF_MEMORY;
    if (lathe_attributes_get_float(attributes, "scale", &state->scale) != LATHE_OK) state->scale = 1;
    *out_state = state;
    return LATHE_OK;
}

static void tanhmul_destroy(void *user_data, void *state) {
    (void)user_data;
    free(state);
}

static lathe_status tanhmul_infer(void *user_data, void *state, const lathe_tensor_type *inputs,
                                  size_t input_count, lathe_tensor_type *outputs, size_t output_count) {
    (void)user_data; (void)state; (void)input_count; (void)output_count;
    if (inputs[0].dtype != LATHE_DTYPE_FLOAT32 || memcmp(&inputs[0], &inputs[1], sizeof inputs[0]) != 0) {
        lathe_plugin_set_error("TanhMul takes two float32 tensors of one shape");
        return LATHE_ERROR_SHAPE_MISMATCH;
    }
    outputs[0] = inputs[0];
    return LATHE_OK;
}

static lathe_status tanhmul_compute(void *user_data, void *state, const DLTensor *inputs, size_t input_count,
                                    DLTensor *outputs, size_t output_count) {
    (void)user_data; (void)input_count; (void)output_count;
    const float scale = ((const tanhmul_state *)state)->scale;
    const float *a = inputs[0].data, *b = inputs[1].data;
    float *y = outputs[0].data;
    for (int64_t i = 0; i < count_of(&inputs[0]); i++) y[i] = scale * tanhf(a[i]) * b[i];
    return LATHE_OK;
}

/* da += scale (1 - tanh²a) b dy;  db += scale tanh(a) dy — accumulated, as lathe_op_backward_fn says. */
static lathe_status tanhmul_backward(void *user_data, void *state, const DLTensor *inputs, size_t input_count,
                                     const DLTensor *outputs, size_t output_count,
                                     const DLTensor *output_grads, DLTensor *input_grads) {
    (void)user_data; (void)input_count; (void)outputs; (void)output_count;
    const float scale = ((const tanhmul_state *)state)->scale;
    const float *a = inputs[0].data, *b = inputs[1].data, *dy = output_grads[0].data;
    float *da = input_grads[0].data, *db = input_grads[1].data;
    for (int64_t i = 0; i < count_of(&inputs[0]); i++) {
        const float t = tanhf(a[i]);
        if (da != NULL) da[i] += scale * (1 - t * t) * b[i] * dy[i];
        if (db != NULL) db[i] += scale * t * dy[i];
    }
    return LATHE_OK;
}

static lathe_status failing_backward(void *user_data, void *state, const DLTensor *inputs, size_t input_count,
                                     const DLTensor *outputs, size_t output_count,
                                     const DLTensor *output_grads, DLTensor *input_grads) {
    (void)user_data; (void)state; (void)inputs; (void)input_count; (void)outputs; (void)output_count;
    (void)output_grads; (void)input_grads;
    lathe_plugin_set_error("the adjoint diverged");
    return LATHE_ERROR_INVALID_ARGUMENT;
}

static lathe_status register_op(const char *op_type, lathe_op_backward_fn backward) {
    lathe_custom_op op;
    memset(&op, 0, sizeof op);
    op.struct_size = sizeof op;
    op.abi_version = LATHE_ABI_VERSION;
    op.domain = "com.test.grad";
    op.op_type = op_type;
    op.since_version = 1;
    op.infer = tanhmul_infer;
    op.create_state = tanhmul_create;
    op.compute = tanhmul_compute;
    op.backward = backward;
    op.destroy_state = tanhmul_destroy;
    return lathe_register_op(&op);
}

/* ---- helpers ------------------------------------------------------------------------------ */

enum { N = 4, IN = 3, OUT = 5 };
static int64_t x_shape[2] = {N, IN}, w_shape[2] = {IN, OUT}, b_shape[1] = {OUT}, y_shape[2] = {N, OUT};

static DLTensor view(float *data, int64_t *shape, int32_t ndim) {
    DLTensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.device.device_type = kDLCPU;
    t.ndim = ndim;
    t.dtype.code = kDLFloat;
    t.dtype.bits = 32;
    t.dtype.lanes = 1;
    t.shape = shape;
    return t;
}

/** y = model(x, W, B) through a session. */
static int run(lathe_session *session, const float *x, const float *w, const float *b, float *y) {
    return lathe_session_set_input(session, "x", LATHE_DTYPE_FLOAT32, x_shape, 2, x, sizeof(float) * N * IN) == LATHE_OK
        && lathe_session_set_input(session, "W", LATHE_DTYPE_FLOAT32, w_shape, 2, w, sizeof(float) * IN * OUT) == LATHE_OK
        && lathe_session_set_input(session, "B", LATHE_DTYPE_FLOAT32, b_shape, 1, b, sizeof(float) * OUT) == LATHE_OK
        && lathe_session_run(session) == LATHE_OK
        && lathe_session_copy_output(session, "y", y, sizeof(float) * N * OUT) == LATHE_OK;
}

/** Gradients of sum(g * y) for x, W and B, copied into dx, dw, db; returns the status. */
static lathe_status gradients(lathe_model *model, float *x, float *w, float *b, float *g,
                              float *dx, float *dw, float *db) {
    DLTensor inputs[3] = {view(x, x_shape, 2), view(w, w_shape, 2), view(b, b_shape, 1)};
    DLTensor seed = view(g, y_shape, 2);
    const char *names[3] = {"x", "W", "B"};
    DLManagedTensor *out[3] = {NULL, NULL, NULL};
    lathe_status status = lathe_model_gradients(model, inputs, 3, &seed, 1, names, 3, out);
    if (status != LATHE_OK) return status;
    float *targets[3] = {dx, dw, db};
    for (int i = 0; i < 3; i++) {
        memcpy(targets[i], out[i]->dl_tensor.data, sizeof(float) * (size_t)count_of(&out[i]->dl_tensor));
        out[i]->deleter(out[i]);
    }
    return LATHE_OK;
}

static float uniform(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return (float)((*seed >> 8) & 0xFFFF) / 65535.0f * 2 - 1;
}

static lathe_model *load(const char *directory, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, file);
    lathe_model *model = NULL;
    expect(lathe_model_load_file(path, &model) == LATHE_OK, file);
    return model;
}

/* ---- the checks --------------------------------------------------------------------------- */

static void gradient_check(lathe_model *model) {
    unsigned seed = 7;
    float x[N * IN], w[IN * OUT], b[OUT], g[N * OUT], y[N * OUT];
    for (int i = 0; i < N * IN; i++) x[i] = uniform(&seed);
    for (int i = 0; i < IN * OUT; i++) w[i] = uniform(&seed);
    for (int i = 0; i < OUT; i++) b[i] = 0.5f * uniform(&seed);
    for (int i = 0; i < N * OUT; i++) g[i] = uniform(&seed);
    float dx[N * IN], dw[IN * OUT], db[OUT];
    expect(gradients(model, x, w, b, g, dx, dw, db) == LATHE_OK, "lathe_model_gradients through TanhMul");

    lathe_session *session = NULL;
    expect(lathe_session_create(model, &session) == LATHE_OK, "session");
    float *values[3] = {x, w, b}, *analytic[3] = {dx, dw, db};
    int counts[3] = {N * IN, IN * OUT, OUT};
    const float eps = 1e-2f;
    double worst = 0;
    for (int v = 0; v < 3; v++) {
        for (int i = 0; i < counts[v]; i++) {
            const float keep = values[v][i];
            double loss[2];
            for (int side = 0; side < 2; side++) {
                values[v][i] = keep + (side ? -eps : eps);
                expect(run(session, x, w, b, y), "finite-difference run");
                loss[side] = 0;
                for (int k = 0; k < N * OUT; k++) loss[side] += (double)g[k] * y[k];
            }
            values[v][i] = keep;
            const double numeric = (loss[0] - loss[1]) / (2 * eps);
            const double error = fabs(numeric - analytic[v][i]) / fmax(1.0, fabs(numeric));
            if (error > worst) worst = error;
        }
    }
    printf("TanhMul gradient check: worst relative error %.2e (tolerance 2e-3)\n", worst);
    expect(worst < 2e-3, "analytic gradients match central differences");
    lathe_session_free(session);
}

static void failures(lathe_model *failing, lathe_model *missing) {
    float x[N * IN] = {0}, w[IN * OUT] = {0}, b[OUT] = {0}, g[N * OUT], dx[N * IN], dw[IN * OUT], db[OUT];
    for (int i = 0; i < N * OUT; i++) g[i] = 1;
    lathe_status status = gradients(failing, x, w, b, g, dx, dw, db);
    expect(status == LATHE_ERROR_PLUGIN, "a failing backward gives LATHE_ERROR_PLUGIN");
    expect(strstr(lathe_last_error(), "the adjoint diverged") != NULL, "its message reaches the caller");
    expect(strstr(lathe_last_error(), "'op'") != NULL, "the message names the node");
    printf("failing backward: %s\n", lathe_last_error());

    status = gradients(missing, x, w, b, g, dx, dw, db);
    expect(status == LATHE_ERROR_UNSUPPORTED_OP, "an op without backward gives LATHE_ERROR_UNSUPPORTED_OP");
    expect(strstr(lathe_last_error(), "NoBackward") != NULL, "the message names the op");
    printf("missing backward: %s\n", lathe_last_error());

    /* The model still runs, and bad arguments are refused. */
    lathe_session *session = NULL;
    float y[N * OUT];
    expect(lathe_session_create(failing, &session) == LATHE_OK && run(session, x, w, b, y), "model still runs");
    lathe_session_free(session);
    DLTensor inputs[3] = {view(x, x_shape, 2), view(w, w_shape, 2), view(b, b_shape, 1)};
    DLTensor seed = view(g, x_shape, 2);                  /* wrong shape */
    const char *names[1] = {"W"};
    DLManagedTensor *out[1] = {NULL};
    expect(lathe_model_gradients(missing, inputs, 3, &seed, 1, names, 1, out) != LATHE_OK && out[0] == NULL,
           "a seed of the wrong shape is refused");
    const char *unknown[1] = {"nonexistent"};
    seed = view(g, y_shape, 2);
    expect(lathe_model_gradients(failing, inputs, 3, &seed, 1, unknown, 1, out) == LATHE_ERROR_INVALID_ARGUMENT
           && strstr(lathe_last_error(), "nonexistent") != NULL, "an unknown name is refused, named");
    expect(lathe_model_gradients(failing, inputs, 2, &seed, 1, names, 1, out) == LATHE_ERROR_INVALID_ARGUMENT,
           "a wrong input count is refused");
}

/** Gradient descent on W and B (graph inputs) towards a teacher's outputs: the MSE falls. */
static void training(lathe_model *model) {
    unsigned seed = 11;
    float x[N * IN], w[IN * OUT], b[OUT], target[N * OUT], teacher_w[IN * OUT], teacher_b[OUT];
    for (int i = 0; i < N * IN; i++) x[i] = uniform(&seed);
    for (int i = 0; i < IN * OUT; i++) { teacher_w[i] = 1.5f * uniform(&seed); w[i] = 0.1f * uniform(&seed); }
    for (int i = 0; i < OUT; i++) { teacher_b[i] = 0.5f * uniform(&seed); b[i] = 0; }
    lathe_session *session = NULL;
    expect(lathe_session_create(model, &session) == LATHE_OK, "training session");
    expect(run(session, x, teacher_w, teacher_b, target), "teacher run");
    float y[N * OUT], g[N * OUT], dx[N * IN], dw[IN * OUT], db[OUT];
    double first = 0, last = 0;
    for (int step = 0; step < 300; step++) {
        if (!run(session, x, w, b, y)) { expect(0, "training run"); break; }
        double loss = 0;
        for (int k = 0; k < N * OUT; k++) {
            const float d = y[k] - target[k];
            loss += (double)d * d / (N * OUT);
            g[k] = 2 * d / (N * OUT);
        }
        if (step == 0) first = loss;
        last = loss;
        if (gradients(model, x, w, b, g, dx, dw, db) != LATHE_OK) { expect(0, "training gradients"); break; }
        for (int i = 0; i < IN * OUT; i++) w[i] -= 0.5f * dw[i];
        for (int i = 0; i < OUT; i++) b[i] -= 0.5f * db[i];
    }
    printf("training through TanhMul: MSE %.5f -> %.5f\n", first, last);
    expect(last < 0.1 * first, "the loss falls at least 10-fold in 300 steps");
    lathe_session_free(session);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    expect(register_op("TanhMul", tanhmul_backward) == LATHE_OK, "register TanhMul");
    expect(register_op("FailingBackward", failing_backward) == LATHE_OK, "register FailingBackward");
    expect(register_op("NoBackward", NULL) == LATHE_OK, "register NoBackward");
    lathe_model *model = load(argv[1], "gemm_tanhmul.onnx");
    lathe_model *failing = load(argv[1], "gemm_failing.onnx");
    lathe_model *missing = load(argv[1], "gemm_nobackward.onnx");
    if (model != NULL && failing != NULL && missing != NULL) {
        gradient_check(model);
        failures(failing, missing);
        training(model);
    }
    lathe_model_free(model);
    lathe_model_free(failing);
    lathe_model_free(missing);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
