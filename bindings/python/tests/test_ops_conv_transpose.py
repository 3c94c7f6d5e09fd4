"""ConvTranspose through lathe, compared with onnxruntime on randomized inputs over 1-D, 2-D and 3-D
windows, strides, pads, auto_pad, dilations, groups, output_padding and output_shape.
Tolerance: max abs error <= 1e-4 * max(1, max|reference|)."""
import numpy as np
import pytest
from onnx import helper

from test_ops_basic import assert_close, run_both

CASES = [
    # (x shape, w shape, attributes)
    ((1, 2, 5), (2, 3, 3), {}),
    ((2, 2, 5), (2, 3, 3), {"strides": [2], "pads": [1, 0]}),
    ((1, 3, 4, 5), (3, 2, 3, 3), {}),
    ((1, 3, 4, 5), (3, 2, 3, 2), {"strides": [2, 3], "pads": [1, 0, 1, 1]}),
    ((1, 3, 4, 5), (3, 2, 3, 3), {"strides": [2, 2], "output_padding": [1, 1]}),
    ((1, 3, 4, 5), (3, 2, 2, 2), {"dilations": [2, 2]}),
    ((2, 4, 4, 4), (4, 3, 3, 3), {"group": 2, "strides": [2, 1]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ((1, 2, 3, 4), (2, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), {"strides": [2, 1, 2]}),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("opset", [11, 17])
def test_conv_transpose(case, bias, opset):
    xs, ws, attrs = CASES[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    feeds = {"x": x, "w": w}
    if bias:
        feeds["b"] = rng.standard_normal(ws[1] * attrs.get("group", 1)).astype(np.float32)
    node = helper.make_node("ConvTranspose", list(feeds), ["y"], **attrs)
    (got,), (ref,) = run_both(node, feeds, opset=opset)
    assert_close(got, ref)
