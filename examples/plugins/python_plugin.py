"""The three plugin paths from Python: a Python op (Swish), the C plugin library (SobelEdges) and a
foreign C function bound through libffi (dsp_highpass), each inside an ONNX model.

    make                                   # builds libsobel_plugin.so and libdsp.so here
    python3 make_models.py
    LATHE_LIBRARY=../../.build/debug/liblathe.so PYTHONPATH=../../bindings/python python3 python_plugin.py
"""

from pathlib import Path

import numpy as np

import lathe

HERE = Path(__file__).resolve().parent


class Swish:
    """com.acme.py:Swish — y = x * sigmoid(beta x), one instance per node."""

    def __init__(self, attributes):
        self.beta = attributes.float("beta", 1.0)

    def infer_shapes(self, input_shapes, input_dtypes):
        if len(input_shapes) != 1 or input_dtypes[0] != np.float32:
            raise ValueError("Swish takes one float32 input")
        return [(input_shapes[0], np.float32)]

    def forward(self, inputs, outputs):
        x = inputs[0]
        np.divide(x, 1 + np.exp(-self.beta * x), out=outputs[0])

    def backward(self, inputs, outputs, output_grads):
        """dL/dx = dL/dy * (s + beta x s (1 - s)), s = sigmoid(beta x): makes Swish trainable."""
        x = inputs[0]
        s = 1 / (1 + np.exp(-self.beta * x))
        return output_grads[0] * (s + self.beta * x * s * (1 - s))


def main(directory=HERE):
    directory = Path(directory)
    lathe.register_op("com.acme.py", "Swish", Swish)
    lathe.load_plugin(str(directory / "libsobel_plugin.so"))
    lathe.register_foreign_op("com.acme.dsp", "HighPass", str(directory / "libdsp.so"), "dsp_highpass",
                              "void(in0, out0, count0, float alpha)")

    x = np.linspace(-3, 3, 16, dtype=np.float32).reshape(2, 8)
    swish = lathe.Model(str(directory / "swish.onnx"))
    print("swish:", np.round(swish.predict(x), 4).tolist())
    print("d sum(swish) / dx:", np.round(swish.gradients(x, np.ones_like(x), swish.inputs[0].name)[0], 4).tolist())

    image = np.zeros((1, 1, 16, 16), np.float32)
    image[0, 0, 4:12, 4:12] = 1.0                     # a bright square: its edges light up
    print("defect probabilities:", np.round(lathe.Model(str(directory / "sobel_cnn.onnx")).predict(image), 4).tolist())

    signal = (np.sin(np.arange(64) / 3) + np.arange(64) / 16).astype(np.float32).reshape(1, 64)
    print("high-passed:", np.round(lathe.Model(str(directory / "highpass.onnx")).predict(signal)[0, :6], 4).tolist())

    for op in lathe.registered_ops():
        if op.domain.startswith("com.acme"):
            print("registered:", op.domain, op.op_type, op.origin)


if __name__ == "__main__":
    main()
