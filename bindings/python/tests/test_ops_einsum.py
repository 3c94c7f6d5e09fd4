"""Einsum through lathe, compared with onnxruntime on float32 operands: matrix products, batched and
broadcast ('...') products, transposes, traces and diagonals, reductions, outer and inner products,
implicit outputs and three-operand contractions.
Tolerance: max abs error <= 1e-4 * max(1, max|reference|)."""
import numpy as np
import pytest
from onnx import helper

import lathe
from test_ops_basic import assert_close, run_both

CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 3, 4, 2)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("bii->bi", [(2, 3, 3)]),
    ("...ii->...i", [(2, 3, 3, 3)]),
    ("ij->", [(3, 4)]),
    ("ijk->j", [(2, 3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i", [(5,)] * 2),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ij,kj", [(3, 4), (5, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("iij,jk->ik", [(3, 3, 4), (4, 2)]),
    ("...,...->...", [(2, 3), (1, 3)]),
    ("b i d , b j d -> b i j", [(2, 3, 4), (2, 5, 4)]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_einsum(case):
    equation, shapes = CASES[case]
    rng = np.random.default_rng(case)
    feeds = {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    (got,), (ref,) = run_both(helper.make_node("Einsum", list(feeds), ["y"], equation=equation), feeds, opset=12)
    assert_close(got, ref)


@pytest.mark.parametrize("equation", ["ij,jk->iz", "ij->ii", "i..j..->ij", "ij,jk"])
def test_einsum_rejects(equation):
    feeds = {"x0": np.ones((2, 2), np.float32)}
    node = helper.make_node("Einsum", ["x0"], ["y"], equation=equation)
    from onnx import TensorProto
    graph = helper.make_graph([node], "e", [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    with pytest.raises(lathe.LatheError):
        lathe.Model(model.SerializeToString()).predict(feeds)
