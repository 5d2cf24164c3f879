"""Speed of one mask-training step: K masks together vs K separate steps vs a plain training step.

Usage: ``[OMP_NUM_THREADS=1] python benchmarks/masks_speed.py [--widths 42,256,256,256,256,20 ...]
[--k 3] [--batch 128] [--repeats 30]``. All three run side by side in one process on the same
model and batch size; the script prints the CPU and wall time per step and the ratios.

K masks are K different weight sets, so the arithmetic of a step grows with K whatever
the batching (K x the matmuls, K x the noise, K x the Adam state); one batched step saves
the per-step overheads (Python, dispatch, one small matmul per layer instead of K), which
dominate small models and GPUs, not the FLOPs of a large model on one CPU thread. The last
line runs the K mask sets split over ``--threads`` CPU threads (``fit_logits(threads=...)``,
the same logits): wall time only, since CPU time sums the threads.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from modscope.data.functions import Function
from modscope.masks.data import function_data
from modscope.masks.fit import _adam, fit_logits
from modscope.masks.frozen import FrozenNet, maskable_names
from modscope.tasks.base import Task
from modscope.training.models import MLP


def make_task(widths: list[int], k: int, n: int = 4096) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, widths[0], generator=g)
    y = torch.randint(widths[-1], (n, 1), generator=g)
    fns = {f"f{i}": Function(f"f{i}", train_index=torch.arange(i, n, k)) for i in range(k)}
    return Task("bench", x, y, x, y, "ce", widths[0], widths[-1], (widths[-1],), functions=fns)


def time_it(fn, repeats: int) -> tuple[float, float]:
    """``(CPU seconds, wall seconds)`` per step, each the best of 3 runs of ``repeats`` steps.

    CPU time (all threads summed) is robust to other load on a shared machine; wall time is
    what a user waits, and what torch's intra-op threads shorten.
    """
    fn(2)  # warm-up: allocator, vmap caches
    cpu = wall = float("inf")
    for _ in range(3):
        c0, w0 = time.process_time(), time.perf_counter()
        fn(repeats)
        cpu = min(cpu, (time.process_time() - c0) / repeats)
        wall = min(wall, (time.perf_counter() - w0) / repeats)
    return cpu, wall


def bench_model(widths: list[int], k: int, batch: int, repeats: int, threads: int) -> None:
    task = make_task(widths, k)
    model = MLP(widths).eval()
    net = FrozenNet(model, maskable_names(model), "cpu")
    data = [function_data(task, f, torch.device("cpu")) for f in task.functions.values()]

    def plain(steps: int) -> None:
        m = MLP(widths)
        opt = _adam(list(m.parameters()), 1e-3)  # same (fused) Adam as the masks
        g = torch.Generator().manual_seed(1)
        for _ in range(steps):
            idx = torch.randint(task.x_train.shape[0], (batch,), generator=g)
            loss = task.loss(m(task.x_train[idx]), task.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def together(steps: int) -> None:
        fit_logits(net, task, data, steps=steps, batch_size=batch)

    def one(steps: int) -> None:
        fit_logits(net, task, data[:1], steps=steps, batch_size=batch)

    def together_threads(steps: int) -> None:
        fit_logits(net, task, data, steps=steps, batch_size=batch, threads=threads)

    t_plain, t_one, t_together = time_it(plain, repeats), time_it(one, repeats), time_it(together, repeats)
    t_threads = time_it(together_threads, repeats)[1]
    print(f"model {widths}  ({net.n_weights} masked weights), batch {batch}, "
          f"{torch.get_num_threads()} torch thread(s), {repeats} steps x best of 3")
    for i, clock in enumerate(("CPU time", "wall time")):
        p, o, t = t_plain[i], t_one[i], t_together[i]
        print(f"  [{clock}]")
        print(f"    plain training step          {p * 1e3:8.3f} ms")
        print(f"    one mask step (K=1)          {o * 1e3:8.3f} ms   {o / p:5.2f} x plain")
        print(f"    K={k} separate mask steps      {k * o * 1e3:8.3f} ms")
        print(f"    K={k} masks together, 1 step   {t * 1e3:8.3f} ms   {t / (k * o):5.2f} x separate, "
              f"{t / p:5.2f} x plain")
    o = t_one[1]
    print(f"    K={k} together on {threads} threads   {t_threads * 1e3:8.3f} ms   "
          f"{t_threads / (k * o):5.2f} x separate (wall)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", action="append",
                    help="comma-separated layer widths; repeat for several models "
                    "(default: 42,256,256,256,256,20 (addmul) and 8,32,32,4)")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="CPU threads for the split run (default: all cores)")
    args = ap.parse_args()
    for w in args.widths or ["42,256,256,256,256,20", "8,32,32,4"]:
        bench_model([int(x) for x in w.split(",")], args.k, args.batch, args.repeats, args.threads)


if __name__ == "__main__":
    main()
