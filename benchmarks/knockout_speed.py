"""Batched random lesions vs a loop of forwards (modscope.knockout).

For one sub-module per hidden layer, the true lesion and ``N`` random same-size lesions
(``N + 1`` lesions) are scored twice in one process: by :class:`BatchedEvaluator` (one
stacked forward from the lesioned layer on) and by :class:`LoopEvaluator` (one full forward
per lesion, weights zeroed and restored). Prints both times, the ratio, and the largest
difference between the two paths' accuracies.

    OMP_NUM_THREADS=1 python benchmarks/knockout_speed.py            # 784-256x4-10, 10k, N=100
    python benchmarks/knockout_speed.py --examples 2000 --random 20   # quick
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from modscope.lesions import submodules
from modscope.lesions.evaluate import BatchedEvaluator, LoopEvaluator, Scorer
from modscope.lesions.knockout import _layer_lesions
from modscope.tasks.base import Task
from modscope.training.models import Architecture
from modscope.training.trainer import init_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="784,256,256,256,256,10")
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--random", type=int, default=100, help="random lesions per sub-module (N)")
    ap.add_argument("--clusters", type=int, default=12, help="sub-module size = width // clusters")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    widths = tuple(int(w) for w in args.widths.split(","))
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    model = init_model(Architecture(widths), gen).to(device).eval()
    x = torch.randn(args.examples, widths[0], generator=gen)
    y = torch.randint(0, widths[-1], (args.examples, 1), generator=gen)
    task = Task("bench", x, y, x, y, "ce", widths[0], widths[-1], (widths[-1],))
    scorer = Scorer(task)
    scorer.x, scorer.y = x.to(device), y.to(device)

    # contiguous blocks of width // clusters neurons: one cluster label per block
    hidden = [np.minimum(np.arange(w) // max(1, w // args.clusters), args.clusters - 1)
              for w in widths[1:-1]]
    subs = {s.layer: s for s in submodules(hidden, widths) if s.cluster == 0}
    labelled = {i + 1: np.arange(w) for i, w in enumerate(widths[1:-1])}

    print(f"knockout speed: MLP {'-'.join(map(str, widths))}, {args.examples} examples, "
          f"N = {args.random} random lesions (+1 true) per sub-module, device {device}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), {platform.machine()}")
    t0 = time.perf_counter()
    batched = BatchedEvaluator(model, scorer)
    loop = LoopEvaluator(model, scorer)
    print(f"intact activations (once per knockout run): {time.perf_counter() - t0:.2f} s")
    print(f"{'layer':>5} {'size':>5} {'batched s':>10} {'loop s':>10} {'ratio':>7} {'max |diff|':>11}")
    tot_b = tot_l = 0.0
    for layer, sub in sorted(subs.items()):
        rng = np.random.default_rng(np.random.SeedSequence([args.seed, layer]))
        keep = _layer_lesions(rng, [sub], labelled, widths, args.random)
        t0 = time.perf_counter()
        sb = batched.evaluate(keep)
        if device.type == "cuda":
            torch.cuda.synchronize()
        tb = time.perf_counter() - t0
        t0 = time.perf_counter()
        sl = loop.evaluate(keep)
        if device.type == "cuda":
            torch.cuda.synchronize()
        tl = time.perf_counter() - t0
        tot_b, tot_l = tot_b + tb, tot_l + tl
        diff = float(np.max(np.abs(sb.metric - sl.metric)))
        print(f"{layer:>5} {sub.size:>5} {tb:>10.3f} {tl:>10.3f} {tl / tb:>6.1f}x {diff:>11.2g}")
    print(f"{'all':>5} {'':>5} {tot_b:>10.3f} {tot_l:>10.3f} {tot_l / tot_b:>6.1f}x")


if __name__ == "__main__":
    main()
