/*
 * plugin_cases.c — plugin libraries for the failure tests, one per -D macro
 * (bindings/python/tests/test_plugins.py compiles each into a .so):
 *
 *   (none)             com.test:Flaky (y = 2x; compute fails when x[0] < 0, "negative first
 *                      sample"), com.test:WrongShape (infers one row more than its input),
 *                      com.test:NegativeDim (infers a dimension of -5)
 *   CASE_BAD_ABI       registers an op whose abi_version is 99
 *   CASE_NO_INIT       exports no lathe_plugin_init
 *   CASE_INIT_FAILS    registers com.test:Partial, then fails ("init gave up")
 *   CASE_DUPLICATE     registers com.test:Flaky again
 */
#include <string.h>

#include "lathe.h"

#if !defined(CASE_BAD_ABI) && !defined(CASE_NO_INIT) && !defined(CASE_INIT_FAILS) && !defined(CASE_DUPLICATE)
#define CASE_DEFAULT 1
#endif

#if defined(CASE_NO_INIT)
int plugin_cases_not_an_init(void) { return 0; }
#else

static lathe_status same_infer(void *user_data, void *state, const lathe_tensor_type *inputs, size_t input_count,
                               lathe_tensor_type *outputs, size_t output_count) {
    (void)user_data; (void)state; (void)input_count; (void)output_count;
    outputs[0] = inputs[0];
    return LATHE_OK;
}

#if defined(CASE_DEFAULT)
static lathe_status wrong_infer(void *user_data, void *state, const lathe_tensor_type *inputs, size_t input_count,
                                lathe_tensor_type *outputs, size_t output_count) {
    (void)user_data; (void)state; (void)input_count; (void)output_count;
    outputs[0] = inputs[0];
    outputs[0].dims[0] += 1;
    return LATHE_OK;
}

static lathe_status negative_infer(void *user_data, void *state, const lathe_tensor_type *inputs,
                                   size_t input_count, lathe_tensor_type *outputs, size_t output_count) {
    (void)user_data; (void)state; (void)input_count; (void)output_count;
    outputs[0] = inputs[0];
    outputs[0].dims[0] = -5;
    return LATHE_OK;
}

#endif

static lathe_status double_compute(void *user_data, void *state, const DLTensor *inputs, size_t input_count,
                                   DLTensor *outputs, size_t output_count) {
    (void)user_data; (void)state; (void)input_count; (void)output_count;
    int64_t count = 1;
    for (int d = 0; d < inputs[0].ndim; d++) count *= inputs[0].shape[d];
    const float *x = inputs[0].data;
    float *y = outputs[0].data;
    if (count > 0 && x[0] < 0) {
        lathe_plugin_set_error("negative first sample");
        return LATHE_ERROR_INVALID_ARGUMENT;
    }
    for (int64_t i = 0; i < count; i++) y[i] = 2 * x[i];
    return LATHE_OK;
}

/** Registers `op_type` in com.test with the given inference. */
static lathe_status add(const char *op_type, lathe_op_infer_fn infer, uint32_t abi_version) {
    lathe_custom_op op;
    memset(&op, 0, sizeof op);
    op.struct_size = sizeof op;
    op.abi_version = abi_version;
    op.domain = "com.test";
    op.op_type = op_type;
    op.since_version = 1;
    op.infer = infer;
    op.compute = double_compute;
    return lathe_register_op(&op);
}

lathe_status lathe_plugin_init(uint32_t host_abi_version) {
    (void)host_abi_version;
#if defined(CASE_BAD_ABI)
    return add("FromTheFuture", same_infer, 99);
#elif defined(CASE_INIT_FAILS)
    lathe_status status = add("Partial", same_infer, LATHE_ABI_VERSION);
    if (status != LATHE_OK) return status;
    lathe_plugin_set_error("init gave up");
    return LATHE_ERROR_PLUGIN;
#elif defined(CASE_DUPLICATE)
    return add("Flaky", same_infer, LATHE_ABI_VERSION);
#else
    lathe_status status = add("Flaky", same_infer, LATHE_ABI_VERSION);
    if (status == LATHE_OK) status = add("WrongShape", wrong_infer, LATHE_ABI_VERSION);
    if (status == LATHE_OK) status = add("NegativeDim", negative_infer, LATHE_ABI_VERSION);
    return status;
#endif
}
#endif
