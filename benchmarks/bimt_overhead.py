"""What BIMT costs: a BIMT training step against a plain one, and the vectorised swap search
against the reference's brute force (recompute the whole cost per candidate).

Both trainings run through ``modscope.training.trainer.train`` on the same task, architecture and seed;
a BIMT step includes the connection-cost gradient and its share of the swap passes
(every ``swap_every`` steps). Repeats alternate plain / BIMT and the median is reported.

    OMP_NUM_THREADS=1 python benchmarks/bimt_overhead.py [--steps 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from modscope.tasks import get_task
from modscope.training.bimt import BIMT, BIMTConfig
from modscope.training.models import Architecture
from modscope.training.trainer import init_model, train


def step_times(task_name: str, steps: int, repeats: int) -> tuple[float, float, int]:
    task = get_task(task_name)
    plain, bimt, swaps = [], [], 0
    for r in range(repeats):
        res = train(task, steps=steps, seed=r, progress=False)
        plain.append(res.metrics["seconds"] / steps)
        res = train(task, steps=steps, seed=r, bimt=True, progress=False)
        bimt.append(res.metrics["seconds"] / steps)
        swaps = res.metrics["swaps"]
    return statistics.median(plain), statistics.median(bimt), swaps


def swap_pass_times(widths: tuple[int, ...], top_k: int, repeats: int,
                    input_shape=None) -> tuple[float, float, bool]:
    """Seconds per swap pass over all layers, vectorised and brute force, on one random net."""
    net = init_model(Architecture(widths), torch.Generator().manual_seed(0))
    cfg = BIMTConfig(top_k=top_k, A=2.0, y_star=0.5)
    fast_t, slow_t, same = [], [], True
    for _ in range(repeats):
        a, b = copy.deepcopy(net), copy.deepcopy(net)
        ba, bb = BIMT(cfg, widths, input_shape), BIMT(cfg, widths, input_shape)
        t0 = time.perf_counter()
        ba.swap_pass(a)
        fast_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        bb.swap_pass(b, method="bruteforce")
        slow_t.append(time.perf_counter() - t0)
        with torch.no_grad():
            same &= abs(float(ba.cost(a)) - float(bb.cost(b))) <= 1e-4 * float(bb.cost(b))
    return statistics.median(fast_t), statistics.median(slow_t), same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", default="formula-independence,modadd")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    print("\n== training step: BIMT (cost gradient + amortised swaps) vs plain ==")
    print(f"{'task':<22}{'plain ms/step':>15}{'BIMT ms/step':>15}{'ratio':>8}{'swaps':>8}")
    for name in args.tasks.split(","):
        p, b, swaps = step_times(name, args.steps, args.repeats)
        print(f"{name:<22}{1e3 * p:>15.3f}{1e3 * b:>15.3f}{b / p:>8.2f}{swaps:>8}")

    print("\n== one swap pass over all layers: vectorised vs brute force (reference) ==")
    print(f"{'network':<24}{'top-k':>6}{'vectorised s':>14}{'brute force s':>15}{'speed-up':>10}"
          f"{'same cost':>11}")
    cases = [((4, 20, 20, 2), 5, None), ((64, 50, 50, 59), 30, None),
             ((64, 100, 100, 10), 30, (8, 8))]
    for widths, k, shape in cases:
        fast, slow, same = swap_pass_times(widths, k, args.repeats, shape)
        name = "-".join(map(str, widths)) + (" (grid)" if shape else "")
        print(f"{name:<24}{k:>6}{fast:>14.5f}{slow:>15.4f}{slow / fast:>10.0f}{str(same):>11}")


if __name__ == "__main__":
    main()
