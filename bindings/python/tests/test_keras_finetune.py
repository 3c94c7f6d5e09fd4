"""Transfer learning with lathe.keras.models.load_onnx: the README's defect CNN (models/defect_cnn.onnx,
input (N, 1, 28, 28)) cut at its 128-feature layer `relu_10`, frozen, with a new Dense head, fitted on 300
synthetic "scratch" images (a new defect type) and checked on 200 others.

Asserted: the frozen backbone's weights are bit-identical after fit (read from the exported ONNX), the head
learns (held-out accuracy >= 0.85; chance is 0.5), and the exported model equals onnxruntime within 1e-5."""

from pathlib import Path

import numpy as np
import pytest

from lathe import LatheError
from lathe.keras.layers import Dense
from lathe.keras.models import load_onnx

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

DEFECT_CNN = Path(__file__).resolve().parents[3] / "models" / "defect_cnn.onnx"


def scratches(n, seed):
    """Noisy 28×28 images; every other one carries a bright straight scratch of 10–18 pixels."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.4, (n, 1, 28, 28)).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.float32)
    for i in np.flatnonzero(y):
        r, c = rng.integers(4, 24, 2).astype(float)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(10, 19)):
            ri, ci = int(round(r)), int(round(c))
            if 0 <= ri < 28 and 0 <= ci < 28:
                x[i, 0, ri, ci] = 1
            r, c = r + np.sin(angle), c + np.cos(angle)
    return x, y


def initializers(model_bytes):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(model_bytes).graph.initializer}


def test_frozen_backbone_new_head_learns_scratches(tmp_path):
    model = load_onnx(DEFECT_CNN, cut_at="relu_10")
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    assert [w.shape for w in model.trainable_weights] == [(128, 1), (1,)]   # only the head trains
    assert len(model.get_weights()) == 6   # frozen backbone weights are listed too, as in Keras
    backbone = {k: v for k, v in initializers(model.to_onnx()).items() if k.startswith("imported/")}
    assert sorted(backbone) == ["imported/conv_b_2", "imported/conv_w_1", "imported/fc_b_8", "imported/fc_w_7"]
    x_train, y_train = scratches(300, 1)
    x_test, y_test = scratches(200, 2)
    history = model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = initializers(model.to_onnx())
    for name, before in backbone.items():
        assert after[name].tobytes() == before.tobytes(), f"frozen {name} changed"
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"\nscratch detector on a frozen defect-CNN backbone: held-out accuracy {accuracy:.3f}")
    assert accuracy >= 0.85

    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "scratch.onnx"
    model.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input": x_test})[0]
    np.testing.assert_allclose(model.predict(x_test), theirs, atol=1e-5)


def test_the_backbone_computes_what_the_original_computes():
    """Uncut and untrained, the layer is the imported model: same output as onnxruntime on the file."""
    ort = pytest.importorskip("onnxruntime")
    model = load_onnx(DEFECT_CNN)
    model.compile(optimizer="sgd", loss="mse")
    x, _ = scratches(16, 3)
    reference = ort.InferenceSession(str(DEFECT_CNN), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.testing.assert_allclose(model.predict(x), reference, atol=1e-5)


def test_freeze_and_unfreeze_by_name():
    model = load_onnx(DEFECT_CNN, trainable=True, freeze=["conv_3"], cut_at="relu_10")
    model.add(Dense(4, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = initializers(model.to_onnx())
    x, y = scratches(64, 4)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    after = initializers(model.to_onnx())
    assert after["imported/conv_w_1"].tobytes() == before["imported/conv_w_1"].tobytes()
    assert not np.array_equal(after["imported/fc_w_7"], before["imported/fc_w_7"])

    base = load_onnx(DEFECT_CNN, unfreeze=["fc_b_8"], cut_at="relu_10")
    base.add(Dense(1))
    base.compile(optimizer="adam", loss="mse")
    assert [w.shape for w in base.trainable_weights] == [(128,), (128, 1), (1,)]


def test_bad_names_are_reported():
    with pytest.raises(LatheError, match="cut_at 'features' is not a tensor computed by the graph"):
        model = load_onnx(DEFECT_CNN, cut_at="features")
        model.compile(optimizer="adam", loss="mse")
    with pytest.raises(LatheError, match="'conv_9' \\(to freeze or unfreeze\\) is neither a node nor an initializer"):
        load_onnx(DEFECT_CNN, freeze=["conv_9"]).build()
    with pytest.raises(LatheError):
        load_onnx(DEFECT_CNN.parent / "missing.onnx")
