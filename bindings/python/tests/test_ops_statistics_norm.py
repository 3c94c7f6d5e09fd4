"""InstanceNormalization, LayerNormalization (with its Mean and InvStdDev outputs) and
GroupNormalization (opset 18 per-group and opset 21 per-channel scale) through lathe, compared with
onnxruntime. Tolerance: max abs error <= 1e-4 * max(1, max|reference|)."""
import numpy as np
import pytest
from onnx import helper

from test_ops_basic import assert_close, run_both


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 3), (2, 2, 2, 3, 2)])
@pytest.mark.parametrize("epsilon", [1e-5, 0.1])
def test_instance_norm(shape, epsilon):
    rng = np.random.default_rng(len(shape))
    feeds = {"x": rng.standard_normal(shape).astype(np.float32) * 3 + 1,
             "s": rng.standard_normal(shape[1]).astype(np.float32),
             "b": rng.standard_normal(shape[1]).astype(np.float32)}
    (got,), (ref,) = run_both(helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=epsilon), feeds)
    assert_close(got, ref)


@pytest.mark.parametrize("shape,axis", [((4, 6), -1), ((4, 6), 0), ((2, 3, 5), 1), ((2, 3, 5), -2), ((2, 3, 4, 2), 2)])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("broadcast_scale", [False, True])
def test_layer_norm(shape, axis, with_bias, broadcast_scale):
    rng = np.random.default_rng(len(shape) + axis)
    normalized = list(shape[axis:])
    scale_shape = [1] + normalized[1:] if broadcast_scale and len(normalized) > 1 else normalized
    feeds = {"x": rng.standard_normal(shape).astype(np.float32),
             "s": rng.standard_normal(scale_shape).astype(np.float32)}
    if with_bias:
        feeds["b"] = rng.standard_normal(normalized).astype(np.float32)
    node = helper.make_node("LayerNormalization", list(feeds), ["y", "mean", "inv"], axis=axis, epsilon=1e-3)
    got, ref = run_both(node, feeds)
    for g, r in zip(got, ref):
        assert_close(g, r)


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("shape,groups", [((2, 4, 3), 2), ((1, 6, 2, 3), 3), ((2, 4, 5), 1), ((1, 4, 2, 2), 4)])
def test_group_norm(opset, shape, groups):
    rng = np.random.default_rng(groups)
    n = groups if opset == 18 else shape[1]
    feeds = {"x": rng.standard_normal(shape).astype(np.float32),
             "s": rng.standard_normal(n).astype(np.float32),
             "b": rng.standard_normal(n).astype(np.float32)}
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups, epsilon=1e-4)
    try:
        (got,), (ref,) = run_both(node, feeds, opset=opset)
    except Exception as error:  # onnxruntime may lack a kernel for this opset
        if "lathe" in type(error).__module__:
            raise
        pytest.skip(f"onnxruntime cannot run GroupNormalization-{opset}: {error}")
    assert_close(got, ref)
