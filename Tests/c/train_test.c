/*
 * train_test.c — checks the training ABI of include/lathe_train.h from C.
 *
 *     train_test OUT.onnx
 *
 * Builds a small MLP from a JSON spec, trains it on a separable two-class problem with a per-epoch
 * callback that stops after 30 epochs, checks evaluate/predict/weights, writes the model to OUT.onnx
 * checks that a checkpoint resumes training bit for bit (with class weights, a learning-rate schedule,
 * clipping, L2 and JSON metric configs), and checks the error statuses and messages of bad specs and data. Prints each failure, then
 * "N passed, M failed"; exits 0 only if nothing failed. Compile with -std=c99 -Wall -Wextra -Werror -pedantic.
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
        fprintf(stderr, "FAIL line %d: %s (last error: %s)\n", line, what, lathe_last_error());
    }
}

#define EXPECT(condition) expect((condition) != 0, #condition, __LINE__)

/** Expects `status` to be `code` and the last error to contain `needle`. */
#define EXPECT_ERROR(status, code, needle) \
    expect((status) == (code) && strstr(lathe_last_error(), (needle)) != NULL, #status " -> " #code ": " needle, __LINE__)

enum { SAMPLES = 200, FEATURES = 2 };

/** Per-epoch callback: counts calls, checks the logs, asks to stop after 30 epochs. */
static int on_epoch_end(void *user_data, int epoch, const char *logs_json) {
    int *calls = (int *)user_data;
    EXPECT(epoch == *calls);
    EXPECT(strstr(logs_json, "\"loss\"") != NULL && strstr(logs_json, "\"val_accuracy\"") != NULL);
    *calls += 1;
    return *calls >= 30;
}

/** The checkpoint test's model: L2 on the first kernel, dropout, a sigmoid output. */
static const char *CHECKPOINT_SPEC =
    "{\"input_shape\": [2], \"seed\": 3, \"layers\": ["
    "{\"class_name\": \"Dense\", \"config\": {\"units\": 6, \"activation\": \"relu\", "
    "\"kernel_regularizer\": {\"class_name\": \"L2\", \"config\": {\"l2\": 0.001}}}},"
    "{\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.2}},"
    "{\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"activation\": \"sigmoid\"}}]}";

/** Nesterov SGD with an exponentially decaying learning rate and per-tensor clipping. */
static const char *CHECKPOINT_OPTIMIZER =
    "{\"class_name\": \"SGD\", \"config\": {\"momentum\": 0.9, \"nesterov\": true, \"clipnorm\": 1.0, "
    "\"learning_rate\": {\"class_name\": \"ExponentialDecay\", \"config\": "
    "{\"initial_learning_rate\": 0.1, \"decay_steps\": 10, \"decay_rate\": 0.5}}}}";

static lathe_sequential *make(const char *spec) {
    lathe_sequential *model = NULL;
    lathe_status status = lathe_sequential_create(spec, &model);
    if (status != LATHE_OK) fprintf(stderr, "create failed: %s\n", lathe_last_error());
    return model;
}

int main(int argc, char **argv) {
    static float x[SAMPLES * FEATURES], y[SAMPLES], probabilities[SAMPLES];
    int64_t x_shape[2] = {SAMPLES, FEATURES}, y_shape[2] = {SAMPLES, 1};
    const char *metrics[] = {"accuracy"};
    const char *history = NULL, *logs = NULL, *summary = NULL;
    lathe_sequential *model;
    int calls = 0, i, correct = 0;
    size_t count = 0, size = 0;
    float *weights;
    void *onnx = NULL;
    double rate = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: train_test OUT.onnx\n");
        return 2;
    }
    /* Two classes: the sign of x0 + x1, with points spread over [-1, 1]^2. */
    for (i = 0; i < SAMPLES; i++) {
        x[2 * i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
        x[2 * i + 1] = (float)((i * 53) % 97) / 48.0f - 1.0f;
        y[i] = x[2 * i] + x[2 * i + 1] > 0 ? 1.0f : 0.0f;
    }
    model = make("{\"input_shape\": [2], \"seed\": 7, \"layers\": ["
                 "{\"class_name\": \"Dense\", \"config\": {\"units\": 8, \"activation\": \"tanh\"}},"
                 "{\"class_name\": \"Dropout\", \"config\": {\"rate\": 0.1}},"
                 "{\"class_name\": \"Dense\", \"config\": {\"units\": 1, \"activation\": \"sigmoid\"}}]}");
    EXPECT(model != NULL);
    if (model == NULL) return 1;

    EXPECT_ERROR(lathe_sequential_fit(model, x, x_shape, 2, y, y_shape, 2, NULL, NULL, 0, NULL, NULL, 0,
                                      1, 32, 0.0, 1, 0, NULL, NULL, &history),
                 LATHE_ERROR_INVALID_STATE, "compile");
    EXPECT(lathe_sequential_compile(model, "{\"class_name\": \"Adam\", \"config\": {\"learning_rate\": 0.05}}",
                                    "binary_crossentropy", metrics, 1) == LATHE_OK);
    EXPECT(lathe_sequential_learning_rate(model, &rate) == LATHE_OK && rate > 0.0499 && rate < 0.0501);
    EXPECT(lathe_sequential_fit(model, x, x_shape, 2, y, y_shape, 2, NULL, NULL, 0, NULL, NULL, 0,
                                100, 16, 0.2, 1, 42, on_epoch_end, &calls, &history) == LATHE_OK);
    EXPECT(calls == 30);
    EXPECT(history != NULL && strstr(history, "\"val_loss\"") != NULL);

    EXPECT(lathe_sequential_evaluate(model, x, x_shape, 2, y, y_shape, 2, 32, &logs) == LATHE_OK);
    EXPECT(logs != NULL && strstr(logs, "\"accuracy\"") != NULL);
    EXPECT(lathe_sequential_predict(model, x, x_shape, 2, 64, probabilities, SAMPLES) == LATHE_OK);
    for (i = 0; i < SAMPLES; i++) correct += (probabilities[i] > 0.5f) == (y[i] > 0.5f);
    EXPECT(correct >= SAMPLES * 95 / 100);
    EXPECT_ERROR(lathe_sequential_predict(model, x, x_shape, 2, 64, probabilities, SAMPLES - 1),
                 LATHE_ERROR_SHAPE_MISMATCH, "out_count");

    EXPECT(lathe_sequential_summary(model, &summary) == LATHE_OK && strstr(summary, "\"output_shape\": [1]") != NULL);
    EXPECT(lathe_sequential_weight_count(model, &count) == LATHE_OK && count == 2 * 8 + 8 + 8 + 1);
    weights = (float *)malloc(count * sizeof *weights);
    EXPECT(lathe_sequential_get_weights(model, weights, count) == LATHE_OK);
    EXPECT(lathe_sequential_set_weights(model, weights, count) == LATHE_OK);
    EXPECT_ERROR(lathe_sequential_set_weights(model, weights, count - 1), LATHE_ERROR_SHAPE_MISMATCH, "weights");
    free(weights);

    EXPECT(lathe_sequential_save_onnx(model, argv[1]) == LATHE_OK);
    EXPECT(lathe_sequential_export_onnx(model, &onnx, &size) == LATHE_OK && onnx != NULL && size > 100);
    lathe_buffer_free(onnx);
    EXPECT_ERROR(lathe_sequential_save_onnx(model, "/nonexistent-dir/m.onnx"), LATHE_ERROR_IO, "nonexistent");

    /* Bad data. */
    y_shape[0] = SAMPLES - 1;
    EXPECT_ERROR(lathe_sequential_fit(model, x, x_shape, 2, y, y_shape, 2, NULL, NULL, 0, NULL, NULL, 0,
                                      1, 32, 0.0, 1, 0, NULL, NULL, NULL),
                 LATHE_ERROR_SHAPE_MISMATCH, "200 samples but y has 199");
    y_shape[0] = SAMPLES;
    x_shape[1] = 3;
    EXPECT_ERROR(lathe_sequential_predict(model, x, x_shape, 2, 32, probabilities, SAMPLES),
                 LATHE_ERROR_SHAPE_MISMATCH, "takes [N] + [2]");
    x_shape[1] = FEATURES;
    EXPECT_ERROR(lathe_sequential_compile(model, "adagrad", "mse", NULL, 0), LATHE_ERROR_INVALID_ARGUMENT, "adagrad");
    EXPECT_ERROR(lathe_sequential_compile(model, "adam", "hinge", NULL, 0), LATHE_ERROR_INVALID_ARGUMENT, "hinge");
    lathe_sequential_free(model);
    lathe_sequential_free(NULL);

    /* Checkpoints: fit(2 epochs) equals fit(1), save, load into a fresh model, fit(1), bit for bit. */
    {
        static const float class_weight[2] = {1.0f, 3.0f};
        const char *checkpoint_metrics[] = {"precision", "{\"class_name\": \"AUC\", \"config\": {\"num_thresholds\": 100}}",
                                            "{\"class_name\": \"F1Score\", \"config\": {\"average\": \"macro\", \"threshold\": 0.5}}"};
        char path[4096];
        float *straight, *resumed;
        lathe_sequential *a = make(CHECKPOINT_SPEC), *b = make(CHECKPOINT_SPEC), *c = make(CHECKPOINT_SPEC), *d = NULL;
        int restored = 0;
        snprintf(path, sizeof path, "%s.ckpt", argv[1]);
        EXPECT(a != NULL && b != NULL && c != NULL);
        if (a == NULL || b == NULL || c == NULL) return 1;
        EXPECT(lathe_sequential_compile(a, CHECKPOINT_OPTIMIZER, "binary_crossentropy", checkpoint_metrics, 3) == LATHE_OK);
        EXPECT(lathe_sequential_compile(b, CHECKPOINT_OPTIMIZER, "binary_crossentropy", checkpoint_metrics, 3) == LATHE_OK);
        EXPECT(lathe_sequential_compile(c, CHECKPOINT_OPTIMIZER, "binary_crossentropy", checkpoint_metrics, 3) == LATHE_OK);
        EXPECT(lathe_sequential_fit_weighted(a, x, x_shape, 2, y, y_shape, 2, NULL, NULL, 0, NULL, NULL, 0, NULL, class_weight, 2,
                                             2, 16, 0.0, 1, 5, NULL, NULL, &history) == LATHE_OK);
        EXPECT(history != NULL && strstr(history, "\"auc\"") != NULL && strstr(history, "\"precision\"") != NULL &&
               strstr(history, "\"f1_score\"") != NULL);
        EXPECT(lathe_sequential_fit_weighted(b, x, x_shape, 2, y, y_shape, 2, NULL, NULL, 0, NULL, NULL, 0, NULL, class_weight, 2,
                                             1, 16, 0.0, 1, 5, NULL, NULL, NULL) == LATHE_OK);
        EXPECT(lathe_sequential_save_checkpoint(b, path) == LATHE_OK);
        lathe_sequential_free(b);
        EXPECT(lathe_sequential_load_checkpoint(c, path, &restored) == LATHE_OK && restored == 1);
        EXPECT(lathe_sequential_fit_weighted(c, x, x_shape, 2, y, y_shape, 2, NULL, NULL, 0, NULL, NULL, 0, NULL, class_weight, 2,
                                             1, 16, 0.0, 1, 5, NULL, NULL, NULL) == LATHE_OK);
        EXPECT(lathe_sequential_load(path, &d) == LATHE_OK && d != NULL);
        EXPECT(d != NULL && lathe_sequential_fit_weighted(d, x, x_shape, 2, y, y_shape, 2, NULL, NULL, 0, NULL, NULL, 0, NULL,
                                                          class_weight, 2, 1, 16, 0.0, 1, 5, NULL, NULL, NULL) == LATHE_OK);
        EXPECT(lathe_sequential_weight_count(a, &count) == LATHE_OK);
        straight = (float *)malloc(count * sizeof *straight);
        resumed = (float *)malloc(count * sizeof *resumed);
        EXPECT(lathe_sequential_get_weights(a, straight, count) == LATHE_OK);
        EXPECT(lathe_sequential_get_weights(c, resumed, count) == LATHE_OK);
        EXPECT(memcmp(straight, resumed, count * sizeof *straight) == 0);
        EXPECT(d != NULL && lathe_sequential_get_weights(d, resumed, count) == LATHE_OK);
        EXPECT(memcmp(straight, resumed, count * sizeof *straight) == 0);
        free(straight);
        free(resumed);
        EXPECT_ERROR(lathe_sequential_set_learning_rate(a, 0.1), LATHE_ERROR_INVALID_STATE, "schedule");
        EXPECT_ERROR(lathe_sequential_fit_weighted(a, x, x_shape, 2, y, y_shape, 2, NULL, NULL, 0, NULL, NULL, 0, y, class_weight, 2,
                                                   1, 16, 0.0, 1, 5, NULL, NULL, NULL),
                     LATHE_ERROR_INVALID_ARGUMENT, "not both");
        EXPECT_ERROR(lathe_sequential_load_checkpoint(a, "/nonexistent-dir/m.ckpt", NULL), LATHE_ERROR_IO, "nonexistent");
        b = make("{\"input_shape\": [2], \"layers\": [{\"class_name\": \"Dense\", \"config\": {\"units\": 3}}]}");
        EXPECT_ERROR(lathe_sequential_load_checkpoint(b, path, NULL), LATHE_ERROR_SHAPE_MISMATCH, "dense");
        lathe_sequential_free(b);
        EXPECT_ERROR(lathe_sequential_load(argv[1], &d), LATHE_ERROR_PARSE, "not a Lathe checkpoint");
        lathe_sequential_free(a);
        lathe_sequential_free(c);
        lathe_sequential_free(d);
        remove(path);
    }

    /* Bad specs name the layer and the key. */
    model = NULL;
    EXPECT_ERROR(lathe_sequential_create("{\"layers\": [", &model), LATHE_ERROR_INVALID_ARGUMENT, "byte");
    EXPECT_ERROR(lathe_sequential_create("{\"input_shape\": [4], \"layers\": [{\"class_name\": \"Dense\", \"config\": {}}]}", &model),
                 LATHE_ERROR_INVALID_ARGUMENT, "layer 0 (Dense 'dense'): \"units\" is required");
    EXPECT_ERROR(lathe_sequential_create("{\"input_shape\": [4], \"layers\": [{\"class_name\": \"Dense\", \"config\": "
                                         "{\"units\": 2, \"bias_regularizer\": \"l2\"}}]}", &model),
                 LATHE_ERROR_UNSUPPORTED_OP, "unsupported key \"bias_regularizer\"");
    EXPECT_ERROR(lathe_sequential_create("{\"input_shape\": [10, 4], \"layers\": [{\"class_name\": \"Foo\"}]}", &model),
                 LATHE_ERROR_UNSUPPORTED_OP, "'Foo' is not supported");
    EXPECT_ERROR(lathe_sequential_create("{\"input_shape\": [4], \"layers\": [{\"class_name\": \"Flatten\"},"
                                         "{\"class_name\": \"Conv2D\", \"config\": {\"filters\": 2, \"kernel_size\": 3}}]}", &model),
                 LATHE_ERROR_SHAPE_MISMATCH, "layer 1 (Conv2D");
    EXPECT_ERROR(lathe_sequential_create("{\"layers\": [{\"class_name\": \"Dense\", \"config\": {\"units\": 1}}]}", &model),
                 LATHE_ERROR_INVALID_ARGUMENT, "input shape");
    EXPECT_ERROR(lathe_sequential_create(NULL, &model), LATHE_ERROR_INVALID_ARGUMENT, "spec_json");
    EXPECT(model == NULL);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
