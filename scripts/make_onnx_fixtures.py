"""Exports small CNNs with torch.onnx.export for pillar-nn's ONNX import tests.

For every model and exporter setting it writes NAME.onnx and NAME.json; the JSON holds a
fixed input and PyTorch's output for it (shapes with the batch dimension, values as f32
written in decimal), plus the exporter, opset and torch version. The models users bring
(`USER_MODELS`: a torchvision-style ResNet, PyTorch's MNIST example, a MiniONN with PILLAR's
clamp) are exported as a user would, the dynamo exporter writing its weights to NAME.onnx.data
beside the model, and their JSON also holds onnxruntime's output, so that the tests need
neither torch nor onnxruntime. `pad_avgpool_op13` is built with onnx.helper: it is what torch
1.x writes for `nn.AvgPool2d`, and torch 1.x does not install on the Python torch 2.x needs.
Usage:

    python make_onnx_fixtures.py OUT_DIR
"""

import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
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


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, with the 1x1 strided downsample of its shortcut."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = bn(c_out)
        self.downsample = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), bn(c_out)
        )

    def forward(self, x):
        identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet layout, narrow: the 7x7 stride-2 stem with padding 3, BN, ReLU,
    `MaxPool2d(3, 2, padding=1)`, one BasicBlock, `AdaptiveAvgPool2d`, fc; on 3x16x16."""

    shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 7, stride=2, padding=3, bias=False)
        self.bn1 = bn(4)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = BasicBlock(4, 8, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layer1(x))
        return self.fc(torch.flatten(x, 1))


class MnistExample(nn.Module):
    """PyTorch's MNIST example (examples/mnist/main.py) with 4 and 8 channels instead of 32
    and 64, on 1x16x16: log_softmax at the end."""

    shape = (1, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(8 * 6 * 6, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


class ClampedPoly(nn.Module):
    """The polynomial as a PILLAR training script may leave it: the training clamp kept in
    forward, and the sum accumulated from `torch.zeros_like(x)`."""

    coeffs = (0.314453125, 0.5, 0.15625, 0.0, -0.0029296875)

    def forward(self, x):
        x = x.clamp(-5, 5)
        acc = torch.zeros_like(x)
        for k, c in enumerate(self.coeffs):
            acc = acc + c * x**k
        return acc


class MiniOnn(nn.Module):
    """A MiniONN-like MNIST net, narrow, with `ClampedPoly` activations, on 1x16x16; its
    input scaled so that the clamp cuts some of the first layer's outputs."""

    shape = (1, 16, 16)
    input_scale = 8.0

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 5)
        self.bn1 = bn(4)
        self.act1 = ClampedPoly()
        self.pool1 = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.act2 = ClampedPoly()
        self.pool2 = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(4 * 2 * 2, 10)

    def forward(self, x):
        x = self.pool1(self.act1(self.bn1(self.conv1(x))))
        x = self.pool2(self.act2(self.conv2(x)))
        return self.fc1(torch.flatten(x, 1))


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

# The models users bring, each exported as torch 2.x does by default (the dynamo exporter at
# its default opset, weights in NAME.onnx.data beside the model) and with the TorchScript
# exporter at opset 17 with a symbolic batch (`dynamic_axes`, so that `zeros_like` stays
# `ConstantOfShape` of the input's shape) and constant folding on, as by default.
USER_MODELS = {
    "resnet": ResNet,
    "mnist_example": MnistExample,
    "minionn_clamp": MiniOnn,
}
USER_SETTINGS = [
    ("op17", 17, "torchscript", True),
    ("dynamo", None, "dynamo_external", False),
]

BATCH = 2


def export(model, x, path, opset, exporter, dynamic, fold=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(
                model, (x,), path, opset_version=opset, dynamo=True,
                input_names=["input"], output_names=["output"], external_data=False,
            )
        elif exporter == "dynamo_external":
            # torch >= 2.9 writes large initializers to PATH.data by default; said explicitly
            # so that the fixture keeps covering external data.
            torch.onnx.export(
                model, (x,), path, dynamo=True,
                input_names=["input"], output_names=["output"], external_data=True,
            )
            assert os.path.exists(path + ".data"), "the exporter wrote no external data"
        else:
            torch.onnx.export(
                model, (x,), path, opset_version=opset, dynamo=False,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "N"}, "output": {0: "N"}} if dynamic else None,
                do_constant_folding=not dynamic if fold is None else fold,
            )
    onnx.checker.check_model(onnx.load(path))


def tensor_json(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().flatten().tolist()]}


def array_json(a):
    """As `tensor_json`, each value the shortest decimal that reads back as the same f32."""
    a = np.asarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "data": [float(str(v)) for v in a.flatten()]}


def onnxruntime_output(path, x):
    """What onnxruntime computes for the model at `path` (external data read beside it)."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    return y


def write_json(out, stem, meta, path):
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    size = os.path.getsize(path)
    if os.path.exists(path + ".data"):
        size += os.path.getsize(path + ".data")
    print(f"{stem}: {size} bytes")


def pad_avgpool(out):
    """torch 1.x's `nn.AvgPool2d` (a `Pad` with all-zero pads, then `AveragePool`) after a
    conv, then flatten and a linear layer: opset 13, batch 2, on 2x8x8, random weights."""
    rng = np.random.default_rng(17)
    conv_w = (rng.standard_normal((3, 2, 3, 3)) * 0.3).astype(np.float32)
    conv_b = (rng.standard_normal(3) * 0.1).astype(np.float32)
    fc_w = (rng.standard_normal((5, 3 * 4 * 4)) * 0.2).astype(np.float32)
    fc_b = (rng.standard_normal(5) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv"], name="/conv/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Constant", [], ["pads"], name="/pool/Constant",
                         value=numpy_helper.from_array(np.zeros(8, dtype=np.int64), "pads")),
        helper.make_node("Pad", ["conv", "pads"], ["padded"], name="/pool/Pad", mode="constant"),
        helper.make_node("AveragePool", ["padded"], ["pooled"], name="/pool/AveragePool",
                         kernel_shape=[2, 2], pads=[0, 0, 0, 0], strides=[2, 2]),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="/Flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["output"], name="/fc/Gemm",
                         alpha=1.0, beta=1.0, transB=1),
    ]
    graph = helper.make_graph(
        nodes, "pad_avgpool",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [BATCH, 2, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [BATCH, 5])],
        [numpy_helper.from_array(a, n) for a, n in
         [(conv_w, "conv.weight"), (conv_b, "conv.bias"), (fc_w, "fc.weight"), (fc_b, "fc.bias")]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="onnx.helper (torch 1.x AvgPool2d layout)")
    model.ir_version = 7
    onnx.checker.check_model(model)
    stem = "pad_avgpool_op13"
    path = os.path.join(out, stem + ".onnx")
    onnx.save(model, path)
    x = rng.standard_normal((BATCH, 2, 8, 8)).astype(np.float32)
    meta = {
        "model": "pad_avgpool",
        "opset": 13,
        "exporter": "onnx.helper",
        "dynamic_batch": False,
        "input": array_json(x),
        "onnxruntime": array_json(onnxruntime_output(path, x)),
    }
    write_json(out, stem, meta, path)


def user_models(out):
    for seed, (name, cls) in enumerate(USER_MODELS.items(), start=100):
        torch.manual_seed(seed)
        model = cls().eval()
        x = torch.randn(BATCH, *cls.shape) * getattr(cls, "input_scale", 1.0)
        with torch.no_grad():
            y = model(x)
        for suffix, opset, exporter, dynamic in USER_SETTINGS:
            stem = f"{name}_{suffix}"
            path = os.path.join(out, stem + ".onnx")
            if os.path.exists(path + ".data"):
                os.remove(path + ".data")
            export(model, x, path, opset, exporter, dynamic, fold=True)
            exported = onnx.load(path, load_external_data=False)
            meta = {
                "model": name,
                "opset": exported.opset_import[0].version,
                "exporter": exporter,
                "dynamic_batch": dynamic,
                "torch": torch.__version__,
                "onnxruntime_version": ort.__version__,
                "input": array_json(x.numpy()),
                "output": array_json(y.numpy()),
                "onnxruntime": array_json(onnxruntime_output(path, x.numpy())),
            }
            write_json(out, stem, meta, path)


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
    user_models(out)
    pad_avgpool(out)


if __name__ == "__main__":
    main()
