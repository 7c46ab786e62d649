"""PyTorch's side of `pillar bench train`: the same MiniONN(+BN) training step on CPU.

Same model (7 convs with bias -> BN -> activation, avg-pools after the 2nd and 4th, Linear),
same batch, random images, cross-entropy (+ PILLAR's penalty and clamp for `poly`), SGD with
momentum 0.9 and weight decay. Prints the median step time and images/s as JSON.

    python scripts/bench_torch_train.py --activation poly --batch 128 --steps 20
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn

COEFFS = [322 / 1024, 512 / 1024, 160 / 1024, 0.0, -3 / 1024]


class PolyReLU(nn.Module):
    def __init__(self, clamp, penalty):
        super().__init__()
        self.clamp, self.penalty = clamp, penalty
        self.terms = []

    def forward(self, x):
        if self.penalty:
            self.terms.append((x / 4.4).abs().pow(10).sum())
        if self.clamp and self.training:
            x = x.clamp(-5.0, 5.0)
        y = torch.full_like(x, COEFFS[-1])
        for c in reversed(COEFFS[:-1]):
            y = y * x + c
        return y


def minionn(act, in_ch, side, classes):
    layers, plan = [], [(in_ch, 64, 3, False), (64, 64, 3, True), (64, 64, 3, False),
                        (64, 64, 3, True), (64, 64, 3, False), (64, 64, 1, False), (64, 16, 1, False)]
    for c_in, c_out, k, pool in plan:
        layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.BatchNorm2d(c_out), act()]
        if pool:
            layers.append(nn.AvgPool2d(2))
    layers += [nn.Flatten(), nn.Linear(16 * (side // 4) ** 2, classes)]
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--activation", default="poly", choices=["relu", "poly", "naive-poly"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--shape", default="1,28,28")
    a = p.parse_args()
    c, h, _ = map(int, a.shape.split(","))
    acts = []

    def act():
        if a.activation == "relu":
            return nn.ReLU()
        m = PolyReLU(clamp=a.activation == "poly", penalty=a.activation == "poly")
        acts.append(m)
        return m

    torch.manual_seed(1)
    model = minionn(act, c, h, 10)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    y = torch.arange(a.batch) % 10
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        x = torch.randn(a.batch, c, h, h)
        loss = nn.functional.cross_entropy(model(x), y)
        if acts and acts[0].penalty:
            loss = loss + 5e-5 * torch.stack([t for m in acts for t in m.terms]).mean()
            for m in acts:
                m.terms.clear()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"framework": "pytorch " + torch.__version__, "activation": a.activation,
                      "batch": a.batch, "steps": a.steps, "median_step_s": med,
                      "images_per_second": a.batch / med, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
