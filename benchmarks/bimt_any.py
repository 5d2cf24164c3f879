"""BIMT on any architecture: a BIMT training step against a plain one on a residual CNN and a
transformer, and one swap pass, one process.

**Models.** `ResidualCNN` (1 x 28 x 28 input, widths 16-32, one block per stage, BatchNorm, 10
classes) and `DigitTransformer` (d 32, 4 heads, 2 layers, MLP 64, LayerNorm, residual stream),
torch's initialisation under ``torch.manual_seed(0)``, float32, random inputs and labels, batch
``--batch``.

**Steps.** A plain step is forward, cross-entropy, backward and AdamW's step; a BIMT step adds the
connection cost's gradient (``GraphBIMT.add_penalty_grad``) after backward. Each is timed over
``--steps`` steps, ``--repeats`` times, the two interleaved; medians reported. The swap pass
(``GraphBIMT.swap_pass``, top-k 5) is timed on its own; ``amortised`` adds its share at
``swap_every`` = 200 (the paper's S) to the BIMT step, and ``ratio`` divides that by the plain step
(the issue's target: at most 1.5). The set-up (one trace, groups, positions) is timed once. Torch
runs on ``--threads`` threads; the load average before and after is recorded, as the machine may
be shared.

Writes ``benchmarks/results/bimt_any.json``:

    .venv/bin/python benchmarks/bimt_any.py

Quick check: ``.venv/bin/python benchmarks/bimt_any.py --quick --out /tmp/bimt_any.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _common import add_output_flags, timing, write

from modscope.training.architectures import DigitTransformer, ResidualCNN
from modscope.training.bimt import BIMTConfig
from modscope.training.bimt_graph import GraphBIMT

SWAP_EVERY = 200


def model_and_batch(name: str, batch: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    if name == "cnn":
        model = ResidualCNN(image=(1, 28, 28), widths=(16, 32), blocks=1, classes=10)
        x = torch.randn(batch, 784, generator=gen)
        return model, x, torch.randint(0, 10, (batch,), generator=gen)
    model = DigitTransformer(digits=4, flag=2, groups=2, d=32, heads=4, layers=2, ff=64)
    x = torch.zeros(batch, 42)
    digits = torch.randint(0, 10, (batch, 4), generator=gen)
    for i in range(4):
        x[torch.arange(batch), 10 * i + digits[:, i]] = 1.0
    x[torch.arange(batch), 40 + torch.randint(0, 2, (batch,), generator=gen)] = 1.0
    return model, x, torch.randint(0, 10, (batch * 2,), generator=gen).reshape(batch, 2)


def loss_of(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.ndim == 2:  # the transformer's two 10-way output groups
        return torch.nn.functional.cross_entropy(out.reshape(-1, 10), y.reshape(-1))
    return torch.nn.functional.cross_entropy(out, y)


def run_steps(model, x, y, opt, steps: int, bimt: GraphBIMT | None) -> float:
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_of(model(x), y).backward()
        if bimt is not None:
            bimt.add_penalty_grad(model, step, steps)
        opt.step()
    return (time.perf_counter() - t0) / steps


def bench(name: str, args) -> dict:
    model, x, y = model_and_batch(name, args.batch)
    t0 = time.perf_counter()
    b = GraphBIMT(BIMTConfig(top_k=5), model, x[:1])
    setup = time.perf_counter() - t0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    run_steps(model, x, y, opt, 3, None)  # warm-up
    run_steps(model, x, y, opt, 3, b)
    plain, with_bimt, swaps = [], [], []
    for _ in range(args.repeats):
        plain.append(run_steps(model, x, y, opt, args.steps, None))
        with_bimt.append(run_steps(model, x, y, opt, args.steps, b))
        t0 = time.perf_counter()
        b.swap_pass(model, opt)
        swaps.append(time.perf_counter() - t0)
    p, s, w = statistics.median(plain), statistics.median(with_bimt), statistics.median(swaps)
    amortised = s + w / SWAP_EVERY
    out = {
        "groups": [{"name": g.name, "units": g.size, "heads": g.heads} for g in b.groups],
        "nodes": int(b.units.graph.n_nodes),
        "parameters": int(sum(q.numel() for q in model.parameters())),
        "setup_s": setup,
        "plain_step_s": timing(plain),
        "bimt_step_s": timing(with_bimt),
        "swap_pass_s": timing(swaps),
        "amortised_bimt_step_s": amortised,
        "ratio": amortised / p,
        "target_ratio": 1.5,
        "target_met": amortised / p <= 1.5,
    }
    print(f"{name:<12} plain {1e3 * p:7.2f} ms  bimt {1e3 * s:7.2f} ms  swap pass {1e3 * w:7.1f} ms  "
          f"ratio {amortised / p:.2f}  (set-up {setup:.1f} s)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="5 steps, 1 repeat")
    add_output_flags(ap, "bimt_any")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats = 5, 1
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    results = {name: bench(name, args) for name in ("cnn", "transformer")}
    results["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
    results["cpu_count"] = os.cpu_count()
    write(args, results)


if __name__ == "__main__":
    main()
