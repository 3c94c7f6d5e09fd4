#!/usr/bin/env python3
"""Exports the six seed workloads as torch.nn modules with torch.onnx.export.

Each model goes to models/torch/<name>/model.onnx (opset 17, dynamic batch axis "N") with
reference data in the ONNX backend-test layout: test_data_set_b1/ and test_data_set_b64/,
each holding input_0.pb and output_0.pb (outputs computed with onnxruntime and checked
against PyTorch itself). Uses the TorchScript-based exporter (dynamo=False), the one that
produced most ONNX files in circulation. Weights are seeded and rounded to a 2**-12 grid.

Usage: python3 scripts/export_torch_models.py [--out models]
"""

import argparse
import io
import pathlib
import sys

import onnx
import torch
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_seed_models import write_exported_model  # noqa: E402

OPSET = 17


class CnnA(nn.Module):
    """MNIST CNN: Conv32 3x3, ReLU, MaxPool, Flatten, Linear128, ReLU, Linear10, Softmax."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * 13 * 13, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(dim=1))

    def forward(self, x):
        return self.layers(x)


class CnnB(nn.Module):
    """Three-conv CNN on 1x28x28: Conv32, Conv64, Conv64, Linear64, Linear10, Softmax."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(64 * 3 * 3, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(dim=1))

    def forward(self, x):
        return self.layers(x)


class Lstm3x50(nn.Module):
    """Three stacked batch-first LSTM(50) layers with dropout, last step, Linear to 1."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 50, num_layers=3, batch_first=True, dropout=0.2)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(50, 1)

    def forward(self, x):
        sequence, _ = self.lstm(x)
        return self.head(self.dropout(sequence[:, -1, :]))


def mlp(*widths, final=None):
    """Linear layers with ReLU between them and an optional final activation."""
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    layers.pop()
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block; a strided 1x1 projection on the skip path when the shape changes."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.project = None
        if stride != 1 or c_in != c_out:
            self.project = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                         nn.BatchNorm2d(c_out))

    def forward(self, x):
        r = torch.relu(self.bn1(self.conv1(x)))
        r = self.bn2(self.conv2(r))
        skip = x if self.project is None else self.project(x)
        return torch.relu(skip + r)


class ResNetSmall(nn.Module):
    """Narrow ResNet on 3x64x64: stem, identity block, strided block, global pool, Linear10."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(32, 32, 1), BasicBlock(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


TORCH_MODELS = {
    "cnn_a": (CnnA, (1, 28, 28)),
    "cnn_b": (CnnB, (1, 28, 28)),
    "lstm_3x50": (Lstm3x50, (50, 8)),
    "mlp_8_12_8_1": (lambda: mlp(8, 12, 8, 1, final=nn.Sigmoid()), (8,)),
    "mlp_16_32_16_1": (lambda: mlp(16, 32, 16, 1), (16,)),
    "resnet_small": (ResNetSmall, (3, 64, 64)),
}


def seeded_module(factory, seed):
    """Builds the module in eval mode with seeded parameters and BatchNorm statistics."""
    torch.manual_seed(seed)
    module = factory()
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.normal_(0.0, 0.1)
                layer.running_mean.normal_(0.0, 0.1)
                layer.running_var.uniform_(0.5, 2.0)
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(torch.round(tensor * 4096.0) / 4096.0)
    return module.eval()


def export(module, input_shape):
    """Exports `module` to ONNX bytes with input `input`, output `output` and batch axis N."""
    buffer = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(2, *input_shape),), buffer, dynamo=False,
                      opset_version=OPSET, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def torch_reference(module, x):
    """`module`'s own output for the numpy input `x`."""
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models", type=pathlib.Path, help="models directory")
    args = parser.parse_args()
    for seed, (name, (factory, input_shape)) in enumerate(TORCH_MODELS.items(), start=11):
        module = seeded_module(factory, seed)
        model_bytes = export(module, input_shape)
        write_exported_model(args.out / "torch" / name, name, model_bytes, input_shape, 2000,
                             lambda x, module=module: torch_reference(module, x))


if __name__ == "__main__":
    main()
