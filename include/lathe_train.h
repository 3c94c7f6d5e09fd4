/*
 * lathe_train.h — training Keras-style models through the C ABI. Included by lathe.h.
 *
 * Walk-through:
 *
 *     const char *spec =
 *         "{\"input_shape\": [8, 8, 1], \"layers\": ["
 *         " {\"class_name\": \"Conv2D\", \"config\": {\"filters\": 8, \"kernel_size\": 3, \"activation\": \"relu\"}},"
 *         " {\"class_name\": \"Flatten\"},"
 *         " {\"class_name\": \"Dense\", \"config\": {\"units\": 10, \"activation\": \"softmax\"}}]}";
 *     lathe_sequential *model = NULL;
 *     lathe_sequential_create(spec, &model);
 *     const char *metrics[] = {"accuracy"};
 *     lathe_sequential_compile(model, "adam", "sparse_categorical_crossentropy", metrics, 1);
 *     int64_t x_shape[4] = {n, 8, 8, 1}, y_shape[1] = {n};
 *     const char *history = NULL;
 *     lathe_sequential_fit(model, x, x_shape, 4, y, y_shape, 1, NULL, NULL, 0, NULL, NULL, 0,
 *                          10, 32, 0.1, 1, 42, NULL, NULL, &history);
 *     lathe_sequential_save_onnx(model, "digits.onnx");
 *     lathe_sequential_free(model);
 *
 * Layout: as in Keras, images are channels-last (`[N, H, W, C]`); vectors are `[N, features]`.
 * Targets are float32: values shaped like the output, or one class index per sample (`[N]`) for
 * sparse categorical cross-entropy.
 *
 * The model spec is JSON, in Keras's own vocabulary: either Keras's `model.to_json()` form
 * (`{"class_name": "Sequential", "config": {"layers": [...]}}`) or `{"layers": [...]}`, with
 * optional top-level `"input_shape"` (without the batch axis) and `"seed"` (weight initialisation).
 * Each layer is `{"class_name": ..., "config": {...}}` with Keras's config keys:
 *   InputLayer(batch_shape | batch_input_shape | shape), Dense(units, activation, use_bias,
 *   kernel_initializer), Conv2D(filters, kernel_size, strides, padding, activation, use_bias = true,
 *   kernel_initializer), MaxPooling2D and AveragePooling2D(pool_size, strides, padding),
 *   GlobalAveragePooling2D, Flatten, Dropout(rate), Activation(activation),
 *   Conv2DTranspose(filters, kernel_size, strides, padding, output_padding, dilation_rate, activation;
 *   Keras's output sizes), SimpleRNN(units, activation = tanh | relu | sigmoid | linear,
 *   return_sequences), and ONNXModel(path, cut_at, trainable = false, freeze, unfreeze): an ONNX file
 *   as the first layer, for fine-tuning — its input is fed as the file declares it (e.g. [N, 1, 28, 28]);
 *   `cut_at` names the tensor where the imported graph ends; its float weights (of Conv, ConvTranspose,
 *   Gemm, MatMul, Add, BatchNormalization, LSTM/GRU/RNN) are trained when `trainable`, except those of the
 *   node or initializer names in `freeze`, plus those named in `unfreeze`; frozen weights stay
 *   bit-identical. Add and Concatenate(axis = -1; channels-last axes, batch axis 0) merge values in
 *   functional specs. Any layer may carry `input_shape` or `batch_input_shape`.
 *   `"trainable": false` freezes a layer (Keras's `layer.trainable = False`; for ONNXModel the key is
 *   its own default described above): its weights are not updated but stay in get_weights, and a
 *   frozen BatchNormalization runs in inference mode while training (its moving statistics are kept).
 *   lathe_sequential_set_trainable changes it later, taking effect at the next compile (as in Keras).
 * A functional spec (`{"class_name": "Functional", "config": {"layers": [...], "output_layers": [...]}}`)
 * wires one InputLayer through a directed acyclic graph: each other layer has `"inbound_nodes"` naming
 * the layers it reads — a list of names (`["dense", "dense_1"]`), Keras 2's `[[["dense", 0, 0, {}]]]` or
 * Keras 3's `[{"args": [{"config": {"keras_history": ["dense", 0, 0]}}]}]` — listed after them (so
 * there are no cycles); `"output_layers"` names the one output layer (default: the last). One input
 * and one output only.
 *   Layers with a kernel (Dense, Conv1D, Conv2D, LSTM, GRU) take `kernel_regularizer`: "l2" (factor
 *   0.01) or {"class_name": "L2", "config": {"l2": x}}; the penalty `x * sum(kernel^2)` joins the loss
 *   (and the reported loss, as in Keras). Keras bookkeeping keys (name, dtype, ...) and
 *   keys whose value is null or Keras's default are accepted; any other key is an error naming the
 *   layer and the key. Activations: linear, relu, sigmoid, tanh, softmax, leaky_relu.
 *   Initializers: glorot_uniform, he_normal, he_uniform, zeros.
 */
#ifndef LATHE_TRAIN_H
#define LATHE_TRAIN_H

#include "lathe.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A Keras-style stack of layers being trained. Use it from one thread at a time. */
typedef struct lathe_sequential lathe_sequential;

/**
 * Called after each epoch of lathe_sequential_fit.
 * @param user_data the pointer given to lathe_sequential_fit.
 * @param epoch     the epoch just finished, counted from 0 (as Keras's on_epoch_end).
 * @param logs_json that epoch's results, e.g. {"loss": 0.31, "accuracy": 0.9, "val_loss": 0.35};
 *                  valid during the call only.
 * @return 0 to go on, nonzero to stop training after this epoch (fit then returns LATHE_OK).
 */
typedef int (*lathe_epoch_callback)(void *user_data, int epoch, const char *logs_json);

/**
 * Builds a model from a JSON spec (see the top of this header) and initialises its weights.
 * @param spec_json  NUL-terminated JSON; borrowed for the call only.
 * @param out_model  receives a new model; free it with lathe_sequential_free.
 * @return LATHE_ERROR_INVALID_ARGUMENT for bad JSON (with its byte offset) or a bad layer setting
 *         (naming the layer and the key), LATHE_ERROR_UNSUPPORTED_OP for a layer kind or option the
 *         training engine does not have, LATHE_ERROR_SHAPE_MISMATCH when a layer cannot take its input.
 */
lathe_status lathe_sequential_create(const char *spec_json, lathe_sequential **out_model);

/** Frees a model. NULL is a no-op. */
void lathe_sequential_free(lathe_sequential *model);

/**
 * Sets the optimizer, loss and metrics (again at any time; optimizer state starts afresh).
 * @param optimizer     a Keras name ("sgd", "adam", "adamw", "rmsprop", with Keras's defaults) or a
 *                      Keras optimizer config as JSON: {"class_name": "SGD", "config":
 *                      {"learning_rate": 0.1, "momentum": 0.9, "nesterov": true}} (Adam: beta_1,
 *                      beta_2, epsilon; AdamW: also weight_decay; RMSprop: rho, epsilon, momentum,
 *                      centered; all: one of clipnorm (per tensor), clipvalue, global_clipnorm).
 *                      "learning_rate" may be a Keras schedule config, applied per step as Keras does:
 *                      {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1,
 *                      "decay_steps": 100, "decay_rate": 0.5, "staircase": false}}, likewise
 *                      InverseTimeDecay (same keys), PiecewiseConstantDecay (boundaries, values) and
 *                      CosineDecay (initial_learning_rate, decay_steps, alpha, warmup_target, warmup_steps).
 * @param loss          a Keras name ("mse", "mae", "huber", "binary_crossentropy",
 *                      "categorical_crossentropy", "sparse_categorical_crossentropy", ...) or
 *                      {"class_name": ..., "config": {"from_logits": true}} (Huber: {"delta": 1.0}).
 *                      Reduction as Keras's default: per-sample losses times sample weights, summed,
 *                      divided by the number of samples.
 * @param metrics       `metric_count` entries, each a name ("accuracy", "binary_accuracy", "mae",
 *                      "rmse", "precision", "recall", "f1_score", "auc") or a Keras metric config as
 *                      JSON: {"class_name": "Precision"|"Recall", "config": {"thresholds": 0.5}},
 *                      {"class_name": "F1Score", "config": {"average": "micro"|"macro"|"weighted",
 *                      "threshold": 0.5 or null for argmax}}, {"class_name": "AUC", "config":
 *                      {"num_thresholds": 200}}. Precision, recall, F1 and AUC treat every output as
 *                      a binary decision (p > threshold; the target > 0.5; class indices expanded to
 *                      one-hot rows), as Keras does; AUC is Keras's: ROC by the trapezoidal rule over
 *                      num_thresholds evenly spaced thresholds. May be NULL when metric_count is 0.
 */
lathe_status lathe_sequential_compile(lathe_sequential *model, const char *optimizer, const char *loss,
                                      const char *const *metrics, size_t metric_count);

/**
 * Trains the model on row-major float32 buffers (copied; borrowed for the call only).
 * @param x, x_shape, x_rank          inputs `[N, ...]` matching the model's input shape.
 * @param y, y_shape, y_rank          targets with N samples.
 * @param x_val, y_val (and shapes)   validation data evaluated after every epoch, or NULL.
 * @param epochs, batch_size          as Keras (epochs >= 0, batch_size > 0).
 * @param validation_split            fraction in [0, 1) of the samples, taken from the end before
 *                                    shuffling, held out for validation; ignored with x_val.
 * @param shuffle                     nonzero to shuffle the training samples every epoch.
 * @param seed                        fixes the shuffling and dropout masks: same seed, same weights.
 *                                    Epoch e (counted over all fit calls, and kept in checkpoints)
 *                                    draws them from seed and e, so fit(2 epochs) equals fit(1),
 *                                    save, load, fit(1) with the same seed, bit for bit.
 * @param on_epoch_end, user_data     an optional callback after every epoch (may be NULL).
 * @param out_history_json            receives (may be NULL) {"loss": [...], "accuracy": [...], ...},
 *                                    one number per epoch run; owned by the model, valid until the
 *                                    next fit or free.
 * @return shape errors for disagreeing sample counts or a wrong input shape; an error naming the
 *         epoch and batch for an out-of-range label, a non-finite input, loss or gradient (the
 *         weights are then those after the last good step).
 */
lathe_status lathe_sequential_fit(lathe_sequential *model,
                                  const float *x, const int64_t *x_shape, size_t x_rank,
                                  const float *y, const int64_t *y_shape, size_t y_rank,
                                  const float *x_val, const int64_t *x_val_shape, size_t x_val_rank,
                                  const float *y_val, const int64_t *y_val_shape, size_t y_val_rank,
                                  int epochs, int batch_size, double validation_split, int shuffle,
                                  uint64_t seed, lathe_epoch_callback on_epoch_end, void *user_data,
                                  const char **out_history_json);

/**
 * lathe_sequential_fit with Keras's `sample_weight` or `class_weight` (at most one of them).
 * @param sample_weight  N non-negative floats, one per sample of x (the held-out part of a
 *                       validation_split weighs val_loss), or NULL.
 * @param class_weight   `class_count` non-negative floats, the weight of class 0, 1, ...; classes
 *                       from class_count on weigh 1. A sample's class is its class index, the argmax
 *                       of its one-hot row, or its rounded single target. Or NULL.
 * Each sample's loss is multiplied by its weight before the mean over the batch's samples (Keras's
 * sum_over_batch_size); metrics are not weighted (as Keras's `metrics=`).
 */
lathe_status lathe_sequential_fit_weighted(lathe_sequential *model,
                                           const float *x, const int64_t *x_shape, size_t x_rank,
                                           const float *y, const int64_t *y_shape, size_t y_rank,
                                           const float *x_val, const int64_t *x_val_shape, size_t x_val_rank,
                                           const float *y_val, const int64_t *y_val_shape, size_t y_val_rank,
                                           const float *sample_weight, const float *class_weight, size_t class_count,
                                           int epochs, int batch_size, double validation_split, int shuffle,
                                           uint64_t seed, lathe_epoch_callback on_epoch_end, void *user_data,
                                           const char **out_history_json);

/**
 * The loss and metrics over a data set, in inference mode.
 * @param out_logs_json receives {"loss": ..., "<metric>": ...}; owned by the model, valid until the
 *                      next evaluate or free.
 */
lathe_status lathe_sequential_evaluate(lathe_sequential *model,
                                       const float *x, const int64_t *x_shape, size_t x_rank,
                                       const float *y, const int64_t *y_shape, size_t y_rank,
                                       int batch_size, const char **out_logs_json);

/**
 * The model's outputs for x, computed batch_size samples at a time, written to `out`.
 * @param out        N times the product of the output shape (lathe_sequential_summary) floats.
 * @param out_count  the number of floats at `out`; LATHE_ERROR_SHAPE_MISMATCH (nothing written)
 *                   unless it equals the output's size.
 */
lathe_status lathe_sequential_predict(lathe_sequential *model,
                                      const float *x, const int64_t *x_shape, size_t x_rank,
                                      int batch_size, float *out, size_t out_count);

/**
 * The model as JSON: {"input_shape": [...], "output_shape": [...], "layers": [...],
 * "weights": [{"name": ..., "shape": [...], "trainable": true|false}, ...]} (shapes without the batch axis; weights in the
 * order of lathe_sequential_get_weights). Owned by the model, valid until the next call or free.
 */
lathe_status lathe_sequential_summary(lathe_sequential *model, const char **out_json);

/**
 * Freezes (`trainable` 0) or unfreezes the layer named `layer_name` (Keras's `layer.trainable`); takes
 * effect at the next lathe_sequential_compile, as in Keras. LATHE_ERROR_INVALID_ARGUMENT for an
 * unknown name.
 */
lathe_status lathe_sequential_set_trainable(lathe_sequential *model, const char *layer_name, int trainable);

/** The number of floats in all weights together (trained and frozen; not moving statistics). */
lathe_status lathe_sequential_weight_count(lathe_sequential *model, size_t *out_count);

/** Copies every weight (trained and frozen), one after another, into `buffer` of exactly `count` floats. */
lathe_status lathe_sequential_get_weights(lathe_sequential *model, float *buffer, size_t count);

/** Overwrites every weight (trained and frozen) from `buffer` of exactly `count` floats (as get_weights lays them out). */
lathe_status lathe_sequential_set_weights(lathe_sequential *model, const float *buffer, size_t count);

/**
 * lathe_sequential_evaluate with one weight per sample of x (`sample_weight`, N floats, or NULL)
 * multiplying each sample's loss.
 */
lathe_status lathe_sequential_evaluate_weighted(lathe_sequential *model,
                                                const float *x, const int64_t *x_shape, size_t x_rank,
                                                const float *y, const int64_t *y_shape, size_t y_rank,
                                                const float *sample_weight, int batch_size, const char **out_logs_json);

/**
 * Sets the optimizer's learning rate (for ReduceLROnPlateau and LearningRateScheduler); needs compile
 * first. LATHE_ERROR_INVALID_STATE when the optimizer follows a learning-rate schedule.
 */
lathe_status lathe_sequential_set_learning_rate(lathe_sequential *model, double learning_rate);

/** The learning rate of the optimizer's next step (a schedule's at the current step); needs compile first. */
lathe_status lathe_sequential_learning_rate(lathe_sequential *model, double *out_learning_rate);

/**
 * Writes the model as ONNX (inference graph: Dropout removed, channels-last input "input",
 * output "output") to `path`. LATHE_ERROR_IO when the file cannot be written.
 */
lathe_status lathe_sequential_save_onnx(lathe_sequential *model, const char *path);

/**
 * The model as ONNX bytes (as lathe_sequential_save_onnx).
 * @param out_data receives a new buffer owned by the caller; free it with lathe_buffer_free.
 * @param out_size receives its size in bytes.
 */
lathe_status lathe_sequential_export_onnx(lathe_sequential *model, void **out_data, size_t *out_size);

/**
 * Writes a checkpoint to `path`: every weight (incl. BatchNorm statistics), the optimizer's state
 * (class, step count, learning rate, moment/velocity arrays), the number of epochs trained (which
 * with fit's seed fixes the next epoch's shuffling and dropout), the spec and the compile arguments.
 * Loading it into the same architecture, compiled with the same optimizer class, resumes training
 * exactly. The format (little-endian binary: "LATHECKP", version, named float32 tensors, int64s and
 * texts) is described in Sources/LatheTrain/Checkpoint.swift. LATHE_ERROR_IO when it cannot be written.
 */
lathe_status lathe_sequential_save_checkpoint(lathe_sequential *model, const char *path);

/**
 * Restores a checkpoint written by lathe_sequential_save_checkpoint into a model of the same
 * architecture: its weights and epoch count, and, when the model is compiled with the same optimizer
 * class, the optimizer state. Nothing changes on failure.
 * @param out_optimizer_restored receives (may be NULL) 1 when optimizer state was restored, else 0
 *                               (the model is not compiled, or the checkpoint holds none).
 * @return LATHE_ERROR_IO / LATHE_ERROR_PARSE for an unreadable or invalid file; LATHE_ERROR_SHAPE_MISMATCH
 *         naming a weight the model lacks or shapes differently; LATHE_ERROR_INVALID_ARGUMENT when
 *         the checkpoint's optimizer is of another class.
 */
lathe_status lathe_sequential_load_checkpoint(lathe_sequential *model, const char *path, int *out_optimizer_restored);

/**
 * A new model from a checkpoint: built from its spec, compiled as it was when saved (if it was), and
 * restored, ready to predict or to resume training.
 * @param out_model receives a new model; free it with lathe_sequential_free.
 */
lathe_status lathe_sequential_load(const char *path, lathe_sequential **out_model);

/**
 * One optimizer step on one batch, in training mode (Keras's train_on_batch); needs compile first.
 * Buffers as lathe_sequential_fit's (copied; borrowed for the call only).
 * @param out_logs_json receives (may be NULL) {"loss": ..., "<metric>": ...} for the batch, computed before
 *                      the step; owned by the model, valid until the next train_on_batch or free.
 * @return shape errors as fit's; LATHE_ERROR_INVALID_ARGUMENT for a non-finite input, loss or gradient
 *         (the weights are then unchanged).
 */
lathe_status lathe_sequential_train_on_batch(lathe_sequential *model,
                                             const float *x, const int64_t *x_shape, size_t x_rank,
                                             const float *y, const int64_t *y_shape, size_t y_rank,
                                             const char **out_logs_json);

/**
 * The gradient of the compiled loss (the batch mean) with targets y with respect to the input x, computed
 * in inference mode; nothing in the model changes. Chained with lathe_sequential_train_on_output_gradient
 * of another model, it trains that model through this one (a GAN's generator through its discriminator).
 * @param out        receives dLoss/dx, as many floats as x holds.
 * @param out_count  the number of floats at `out`; LATHE_ERROR_SHAPE_MISMATCH unless it equals x's size.
 */
lathe_status lathe_sequential_input_gradient(lathe_sequential *model,
                                             const float *x, const int64_t *x_shape, size_t x_rank,
                                             const float *y, const int64_t *y_shape, size_t y_rank,
                                             float *out, size_t out_count);

/**
 * One optimizer step in training mode where dLoss/d(output) for x is given instead of computed from the
 * compiled loss (which is not used); needs compile first (for the optimizer).
 * @param output_gradient  `gradient_count` floats shaped like the model's output for x, row-major;
 *                         borrowed for the call only.
 * @return LATHE_ERROR_SHAPE_MISMATCH when gradient_count is not N times the output size;
 *         LATHE_ERROR_INVALID_ARGUMENT for non-finite values (the weights are then unchanged).
 */
lathe_status lathe_sequential_train_on_output_gradient(lathe_sequential *model,
                                                       const float *x, const int64_t *x_shape, size_t x_rank,
                                                       const float *output_gradient, size_t gradient_count);

/** Frees a buffer Lathe handed to the caller (lathe_sequential_export_onnx). NULL is a no-op. */
void lathe_buffer_free(void *data);

#ifdef __cplusplus
}
#endif

#endif /* LATHE_TRAIN_H */
