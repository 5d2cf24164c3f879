"""Training step times (plain and BIMT, one torch thread and torch's default) and the BIMT swap search
(vectorised against the reference's brute force), one process.

**Steps.** ``modscope.train(task, steps=--steps, seed=r, threads=T, bimt=B)`` on formula-independence
(4-20-20-2, full batch of 100), modadd (64-50-50-59, full batch of 2785 pairs) and digits
(64-64-64-10, batch 128), each plain and BIMT (the task's BIMT defaults; a BIMT step includes the
connection-cost gradient and its share of the swap passes, every ``swap_every`` = 200 steps), each
with ``T = 1`` and ``T =`` torch's default thread count (the machine's cores). Per run: wall ms per
step (the trainer's own clock around the loop) and CPU seconds per wall second
(``time.process_time`` against ``time.perf_counter`` around the whole ``train`` call, which adds
only the set-up and one evaluation). The runs are interleaved and every repeat kept; medians
reported. Beside them: the multiply-adds per step of each task and what the automatic choice
(``modscope.runtime.modules.threads_for``: one thread below ``SMALL_WORK``, torch's default above)
picks, and whether that is the faster setting here.

**Swap search.** One swap pass over every layer (``BIMT.swap_pass``) with the vectorised search
against ``method="bruteforce"`` (the reference's: swap, recompute the whole connection cost, swap
back, for every candidate), on random-init 4-20-20-2 (formula-independence's BIMT settings, top-k
5), 64-50-50-59 (modadd's, top-k 30) and 784-100-100-10 (MNIST's: 28x28 input grid, ring output,
top-k 30); and one ``BIMT.swap_layer`` on the 784-input layer (layer 0) of the MNIST net, top-k 30.
Both searches start from copies of the same net and must end at the same cost (and the same
permutations). Run on ``--swap-threads`` torch threads (default 1: these nets train on one thread).

Writes ``benchmarks/results/training_steps.json``:

    .venv/bin/python benchmarks/training_steps.py --steps 2000 --repeats 3

Quick check: ``.venv/bin/python benchmarks/training_steps.py --quick --out /tmp/training_steps.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from types import SimpleNamespace

import torch
from _common import add_output_flags, timing, write

import modscope
from modscope.runtime.modules import SMALL_WORK, threads_for, torch_threads
from modscope.tasks.images import MNIST_DEFAULTS
from modscope.training.bimt import BIMT, BIMTConfig
from modscope.training.models import Architecture
from modscope.training.trainer import architecture_for, init_model

TASKS = ("formula-independence", "modadd", "digits")


def step_work(task, bimt: bool) -> tuple[tuple[int, ...], int]:
    """The Linear widths and the multiply-adds per step, as ``modscope.train`` counts them."""
    cfg = modscope.TrainConfig(bimt=bimt or None).resolve(task)
    widths = architecture_for(task, cfg.hidden).widths
    work = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=False))
    return widths, work * (cfg.batch_size or task.x_train.shape[0])


def train_once(task, steps: int, seed: int, threads: int, bimt: bool) -> dict:
    c0, w0 = time.process_time(), time.perf_counter()
    res = modscope.train(task, steps=steps, seed=seed, threads=threads, bimt=bimt, progress=False)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"ms_per_step": 1e3 * res.metrics["seconds"] / steps, "cpu_per_wall": cpu / wall,
            "swaps": res.metrics.get("swaps")}


def step_times(args, default_threads: int) -> dict:
    tasks = {name: modscope.get_task(name) for name in args.tasks}
    settings = sorted({1, default_threads})
    runs: dict[tuple, list[dict]] = {}
    for r in range(args.repeats):
        for name, task in tasks.items():
            for bimt in (False, True):
                for t in settings:
                    runs.setdefault((name, bimt, t), []).append(train_once(task, args.steps, r, t, bimt))
        print(f"  steps repeat {r} done", flush=True)
    out = {}
    print(f"{'task':<22}{'mode':<7}{'threads':>8}{'ms/step':>10}{'CPU s / wall s':>16}")
    for name, task in tasks.items():
        row = {}
        for bimt in (False, True):
            mode = "bimt" if bimt else "plain"
            widths, work = step_work(task, bimt)
            auto = threads_for(work)
            per = {}
            for t in settings:
                rs = runs[(name, bimt, t)]
                per[str(t)] = {
                    "ms_per_step": timing([x["ms_per_step"] for x in rs]),
                    "cpu_per_wall": timing([x["cpu_per_wall"] for x in rs]),
                    "swaps": rs[-1]["swaps"],
                }
                print(f"{name:<22}{mode:<7}{t:>8}{per[str(t)]['ms_per_step']['median']:>10.3f}"
                      f"{per[str(t)]['cpu_per_wall']['median']:>16.2f}")
            fastest = min(settings, key=lambda t: per[str(t)]["ms_per_step"]["median"])
            chosen = 1 if auto == 1 else default_threads
            row[mode] = {
                "widths": list(widths),
                "multiply_adds_per_step": work,
                "by_threads": per,
                "auto_threads": chosen,
                "auto_is_torch_default": auto is None,
                "fastest_threads": fastest,
                "auto_picks_fastest": chosen == fastest,
                "auto_over_fastest": per[str(chosen)]["ms_per_step"]["median"]
                / per[str(fastest)]["ms_per_step"]["median"],
            }
        p1 = row["plain"]["by_threads"][str(settings[0])]["ms_per_step"]["median"]
        b1 = row["bimt"]["by_threads"][str(settings[0])]["ms_per_step"]["median"]
        row["bimt_over_plain_one_thread"] = b1 / p1
        out[name] = row
    return {"small_work": SMALL_WORK, "default_threads": default_threads, "tasks": out}


def swap_cases(quick: bool) -> list[tuple[str, tuple[int, ...], BIMTConfig, tuple[int, int] | None]]:
    mnist = SimpleNamespace(defaults=MNIST_DEFAULTS)
    cases = [
        ("4-20-20-2", (4, 20, 20, 2), BIMTConfig.from_task(modscope.get_task("formula-independence")), None),
        ("64-50-50-59", (64, 50, 50, 59), BIMTConfig.from_task(modscope.get_task("modadd")), None),
        ("784-100-100-10 (28x28 grid)", (784, 100, 100, 10), BIMTConfig.from_task(mnist), (28, 28)),
    ]
    if quick:  # the brute force on the 784-input layer takes a while: fewer top neurons
        name, widths, cfg, shape = cases[-1]
        cases[-1] = (name + ", top-k 5", widths, BIMTConfig.from_task(mnist, top_k=5), shape)
    return cases


def swap_search(args) -> dict:
    out = {}
    print(f"{'network':<42}{'what':<14}{'vectorised s':>14}{'brute force s':>15}{'speed-up':>10}"
          f"{'same cost':>11}")
    for name, widths, cfg, shape in swap_cases(args.quick):
        net = init_model(Architecture(widths), torch.Generator().manual_seed(args.seed))
        jobs = [("swap_pass", None)]
        if widths[0] == 784:
            jobs.append(("swap_layer_0", 0))
        for what, layer in jobs:
            fast_t, slow_t, checks = [], [], []
            for _ in range(args.swap_repeats):
                a, b = copy.deepcopy(net), copy.deepcopy(net)
                ba, bb = BIMT(cfg, widths, shape), BIMT(cfg, widths, shape)
                t = time.perf_counter()
                sa = ba.swap_pass(a) if layer is None else ba.swap_layer(a, layer)
                fast_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                sb = bb.swap_pass(b, method="bruteforce") if layer is None else bb.swap_layer(
                    b, layer, method="bruteforce")
                slow_t.append(time.perf_counter() - t)
                with torch.no_grad():
                    ca, cb = float(ba.cost(a)), float(bb.cost(b))
                checks.append({
                    "cost_vectorised": ca, "cost_bruteforce": cb,
                    "same_cost": abs(ca - cb) <= 1e-5 * abs(cb),
                    "same_permutations": all(
                        torch.equal(p, q) for p, q in zip(ba.perms, bb.perms, strict=True)),
                    "swaps": [sa.swaps, sb.swaps],
                })
            same = all(c["same_cost"] for c in checks)
            row = {
                "widths": list(widths), "top_k": cfg.top_k, "input_shape": shape,
                "vectorised_seconds": timing(fast_t), "bruteforce_seconds": timing(slow_t),
                "speed_up": statistics.median(slow_t) / statistics.median(fast_t),
                "same_cost": same, "same_permutations": all(c["same_permutations"] for c in checks),
                "checks": checks,
            }
            out[f"{name}: {what}"] = row
            print(f"{name:<42}{what:<14}{row['vectorised_seconds']['median']:>14.5f}"
                  f"{row['bruteforce_seconds']['median']:>15.4f}{row['speed_up']:>10.0f}{str(same):>11}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="training steps per run (a multiple of 200)")
    ap.add_argument("--repeats", type=int, default=3, help="training runs per task, mode and thread count")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--swap-repeats", type=int, default=3)
    ap.add_argument("--swap-threads", type=int, default=1, help="torch threads of the swap search")
    ap.add_argument("--seed", type=int, default=0, help="seed of the swap benchmark's random nets")
    ap.add_argument("--skip-steps", action="store_true", help="only the swap search")
    ap.add_argument("--quick", action="store_true", help="a check that the script runs: 100 steps "
                    "(no swap pass inside training), 1 repeat, 1 swap repeat, top-k 5 on the 784-input layer")
    add_output_flags(ap, "training_steps")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats, args.swap_repeats = 100, 1, 1
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    default_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, default {default_threads} thread(s), {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}, {args.steps} steps x {args.repeats} repeats")
    results: dict = {"torch_default_threads": default_threads}
    if not args.skip_steps:
        results["steps"] = step_times(args, default_threads)
    print(f"\nswap search on {args.swap_threads} torch thread(s), median of {args.swap_repeats}")
    with torch_threads(args.swap_threads):
        results["swap_search"] = swap_search(args)
    write(args, results)


if __name__ == "__main__":
    main()
