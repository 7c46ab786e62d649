"""Exports small CNNs with torch.onnx.export for pillar-nn's ONNX import tests.

For every model and exporter setting it writes NAME.onnx and NAME.json; the JSON holds a
fixed input and PyTorch's output for it (shapes with the batch dimension, values as f32
written in decimal), plus the exporter, opset and torch version. Usage:

    python make_onnx_fixtures.py OUT_DIR
"""

import json
import os
import sys
import warnings

import onnx
import torch
from torch import nn

class Poly(nn.Module):
    """The PILLAR polynomial for ReLU on [-5, 5] at 10 coefficient bits (`pillar fit`), as a
    training script writes it: plain tensor arithmetic."""

    def forward(self, x):
        return 0.314453125 + 0.5 * x + 0.15625 * x**2 - 0.0029296875 * x**4


def bn(c):
    """BatchNorm with running statistics that are not the identity."""
    b = nn.BatchNorm2d(c)
    with torch.no_grad():
        b.weight.uniform_(0.5, 1.5)
        b.bias.uniform_(-0.5, 0.5)
        b.running_mean.uniform_(-0.5, 0.5)
        b.running_var.uniform_(0.5, 1.5)
    return b


class ReluCnn(nn.Module):
    """conv + bn + relu + avgpool + flatten + linear, on 1x8x8."""

    shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = bn(4)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))


class Residual(nn.Module):
    """A residual block (Add of two activations); flattened with x.view(x.size(0), -1)."""

    shape = (2, 6, 6)

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn0 = bn(4)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn1 = bn(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = bn(4)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        x = torch.relu(self.bn0(self.conv0(x)))
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        x = torch.relu(x + y)
        return self.fc(x.view(x.size(0), -1))


class Pools(nn.Module):
    """maxpool, a strided conv without bias, global average pool, nn.Flatten."""

    shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv1 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.bn = bn(6)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv0(x)))
        x = torch.relu(self.bn(self.conv1(x)))
        return self.fc(self.flat(self.gap(x)))


class PolyCnn(nn.Module):
    """The ReLU CNN with the polynomial activation, twice."""

    shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = bn(4)
        self.act1 = Poly()
        self.pool = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(4 * 4 * 4, 16)
        self.act2 = Poly()
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.act1(self.bn(self.conv(x))))
        x = self.act2(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


class MatMulNet(nn.Module):
    """A linear layer written as x @ W + b (MatMul then Add), then the polynomial."""

    shape = (2, 4, 4)

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(32, 8) * 0.2)
        self.b = nn.Parameter(torch.randn(8) * 0.2)
        self.act = Poly()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = torch.flatten(x, 1) @ self.w + self.b
        return self.fc(self.act(x))


MODELS = {
    "relu_cnn": ReluCnn,
    "residual": Residual,
    "pools": Pools,
    "poly_cnn": PolyCnn,
    "matmul": MatMulNet,
}

# (suffix, opset, exporter, dynamic batch): the legacy TorchScript exporter at the oldest and
# newest opsets pillar targets, and the torch.export-based exporter that newer PyTorch uses by
# default. At opset 13 the batch is symbolic and constant folding is off, so BatchNormalization
# nodes and unfolded shape arithmetic stay in the graph; the others fold BatchNorm into the
# convolutions and fix the batch size.
SETTINGS = [
    ("op13", 13, "torchscript", True),
    ("op18", 18, "torchscript", False),
    ("dynamo18", 18, "dynamo", False),
]

BATCH = 2


def export(model, x, path, opset, exporter, dynamic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(
                model, (x,), path, opset_version=opset, dynamo=True,
                input_names=["input"], output_names=["output"], external_data=False,
            )
        else:
            torch.onnx.export(
                model, (x,), path, opset_version=opset, dynamo=False,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "N"}, "output": {0: "N"}} if dynamic else None,
                do_constant_folding=not dynamic,
            )
    onnx.checker.check_model(onnx.load(path))


def tensor_json(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().flatten().tolist()]}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for seed, (name, cls) in enumerate(MODELS.items()):
        torch.manual_seed(seed)
        model = cls().eval()
        x = torch.randn(BATCH, *cls.shape)
        with torch.no_grad():
            y = model(x)
        for suffix, opset, exporter, dynamic in SETTINGS:
            stem = f"{name}_{suffix}"
            path = os.path.join(out, stem + ".onnx")
            try:
                export(model, x, path, opset, exporter, dynamic)
            except Exception as e:  # the dynamo exporter needs onnxscript
                print(f"{stem}: skipped ({type(e).__name__}: {e})", file=sys.stderr)
                continue
            meta = {
                "model": name,
                "opset": opset,
                "exporter": exporter,
                "dynamic_batch": dynamic,
                "torch": torch.__version__,
                "input": tensor_json(x),
                "output": tensor_json(y),
            }
            with open(os.path.join(out, stem + ".json"), "w") as f:
                json.dump(meta, f, indent=1)
                f.write("\n")
            print(f"{stem}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
