"""Speed of one mask-training step against a plain training step on the same net and batch (one
torch thread), and K masks together vs K separate mask steps.

All run side by side in one process on the same model and batch size (default: the 4x256 addmul
net 42-256x4-20, 212k masked weights, and a small 8-32-32-4, batch 128), on ``--torch-threads``
torch threads (default 1):

* a plain training step: ``MLP`` forward, the task loss, backward, a fused Adam step (the same
  Adam as the masks);
* one mask step (K = 1) and K masks in one batched step, by ``modscope.masks.fit.fit_logits``;
* the K mask sets split over ``--threads`` CPU threads (``fit_logits(threads=...)``, the same
  logits): wall time only, since CPU time sums the threads.

Each is timed over ``--rounds`` rounds of ``--repeats`` steps (after a 2-step warm-up); the CPU
(``time.process_time``) and wall (``time.perf_counter``) time per step of every round is kept and
the medians reported.

Writes ``benchmarks/results/masks_speed.json``:

    .venv/bin/python benchmarks/masks_speed.py --repeats 30 --rounds 5

Quick check: ``.venv/bin/python benchmarks/masks_speed.py --quick --out /tmp/masks_speed.json``.

K masks are K different weight sets, so the arithmetic of a step grows with K whatever
the batching (K x the matmuls, K x the noise, K x the Adam state); one batched step saves
the per-step overheads (Python, dispatch, one small matmul per layer instead of K), which
dominate small models and GPUs, not the FLOPs of a large model on one CPU thread; threads are
how K masks together cost less than K one-mask steps on a CPU.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from _common import add_output_flags, plain_steps, timing, widths_name, write

from modscope.data.functions import Function
from modscope.masks.data import StreamedData, streamed_function
from modscope.masks.fit import fit_logits
from modscope.masks.frozen import FrozenNet, maskable_names
from modscope.runtime.modules import torch_threads
from modscope.tasks.base import Task
from modscope.training.models import MLP


def make_task(widths: list[int], k: int, n: int = 4096) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, widths[0], generator=g)
    y = torch.randint(widths[-1], (n, 1), generator=g)
    fns = {f"f{i}": Function(f"f{i}", train_index=torch.arange(i, n, k)) for i in range(k)}
    return Task("bench", x, y, x, y, "ce", widths[0], widths[-1], (widths[-1],), functions=fns)


def time_it(fn, repeats: int, rounds: int) -> dict:
    """CPU and wall seconds per step of each of ``rounds`` rounds of ``repeats`` steps.

    CPU time (all threads summed) is robust to other load on a shared machine; wall time is
    what a user waits, and what torch's intra-op threads shorten.
    """
    fn(2)  # warm-up: allocator, vmap caches
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        fn(repeats)
        cpu.append((time.process_time() - c0) / repeats)
        wall.append((time.perf_counter() - w0) / repeats)
    return {"cpu_seconds_per_step": timing(cpu), "wall_seconds_per_step": timing(wall)}


def bench_model(widths: list[int], k: int, batch: int, repeats: int, rounds: int, threads: int) -> dict:
    task = make_task(widths, k)
    model = MLP(widths).eval()
    net = FrozenNet(model, maskable_names(model), "cpu")
    stream = StreamedData(task.to_data(), "train", tuple(task.output_groups))  # the task as masks read it
    data = [streamed_function(stream, f, torch.device("cpu")) for f in task.functions.values()]

    def plain(steps: int) -> None:
        plain_steps(MLP(widths), task, batch, steps)

    def one(steps: int) -> None:
        fit_logits(net, stream, data[:1], steps=steps, batch_size=batch)

    def together(steps: int) -> None:
        fit_logits(net, stream, data, steps=steps, batch_size=batch)

    def together_threads(steps: int) -> None:
        fit_logits(net, stream, data, steps=steps, batch_size=batch, threads=threads)

    t = {
        "plain_step": time_it(plain, repeats, rounds),
        "one_mask_step": time_it(one, repeats, rounds),
        f"k{k}_masks_one_step": time_it(together, repeats, rounds),
        f"k{k}_masks_on_{threads}_threads": time_it(together_threads, repeats, rounds),
    }

    def med(name: str, clock: str) -> float:
        return t[name][f"{clock}_seconds_per_step"]["median"]

    ratios = {}
    for clock in ("cpu", "wall"):
        p, o, kk = med("plain_step", clock), med("one_mask_step", clock), med(f"k{k}_masks_one_step", clock)
        ratios[clock] = {"one_mask_over_plain": o / p, "k_together_over_k_separate": kk / (k * o),
                         "k_together_over_plain": kk / p}
    ratios["wall"]["k_on_threads_over_k_separate"] = med(f"k{k}_masks_on_{threads}_threads", "wall") / (
        k * med("one_mask_step", "wall"))
    print(f"model {widths}  ({net.n_weights} masked weights), batch {batch}, "
          f"{torch.get_num_threads()} torch thread(s), median of {rounds} rounds of {repeats} steps")
    for clock in ("cpu", "wall"):
        r = ratios[clock]
        print(f"  [{clock} time]")
        print(f"    plain training step          {med('plain_step', clock) * 1e3:8.3f} ms")
        print(f"    one mask step (K=1)          {med('one_mask_step', clock) * 1e3:8.3f} ms   "
              f"{r['one_mask_over_plain']:5.2f} x plain")
        print(f"    K={k} masks together, 1 step   {med(f'k{k}_masks_one_step', clock) * 1e3:8.3f} ms   "
              f"{r['k_together_over_k_separate']:5.2f} x separate, {r['k_together_over_plain']:5.2f} x plain")
    print(f"    K={k} together on {threads} threads   "
          f"{med(f'k{k}_masks_on_{threads}_threads', 'wall') * 1e3:8.3f} ms   "
          f"{ratios['wall']['k_on_threads_over_k_separate']:5.2f} x separate (wall)")
    return {"widths": widths, "masked_weights": net.n_weights, "batch": batch, "k": k,
            "steps": t, "ratios": ratios}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", action="append",
                    help="comma-separated layer widths; repeat for several models "
                    "(default: 42,256,256,256,256,20 (addmul) and 8,32,32,4)")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=30, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (the median is reported)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="CPU threads for the split run (default: all cores)")
    ap.add_argument("--quick", action="store_true", help="a check that the script runs: 5 steps x 2 rounds")
    add_output_flags(ap, "masks_speed")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.rounds = 5, 2
    args.widths = args.widths or ["42,256,256,256,256,20", "8,32,32,4"]
    models = []
    with torch_threads(args.torch_threads):
        for w in args.widths:
            models.append(bench_model([int(x) for x in w.split(",")], args.k, args.batch, args.repeats,
                                      args.rounds, args.threads))
    summary = {widths_name(m["widths"]): m["ratios"] for m in models}
    write(args, {"models": models, "ratios": summary})


if __name__ == "__main__":
    main()
