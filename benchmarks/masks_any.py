"""Masks on any architecture, on streamed data: the cost of a mask step on a CNN and on an LSTM, and
the memory of a run streaming a memory-mapped dataset.

Three measurements, each kept per repeat (medians and ratios reported):

* **CNN step**: one mask step (``modscope.masks.fit.fit_logits``, K = 1) on a ~1M-parameter CNN
  (conv 3->32->64->64, 3x3, two 2x2 max-pools, Linear 4096->240->10; every weight masked)
  against one plain training step of the same network at the same batch (forward,
  cross-entropy, backward, a fused Adam step), on one torch thread. Target: <= 2x. Also K masks
  in one step (on the CPU a conv net's K masks run as a loop of K forwards; the same K masks in
  one ``vmap`` forward, a grouped convolution, are timed beside it), and the K mask sets split
  over all cores (``threads=``, wall time) against K one-mask steps.
* **LSTM loop path**: ``vmap`` cannot batch ``aten::lstm``, so K masks of a recurrent network run
  as a loop of K forwards inside one step: its cost against K single-mask steps (~1x expected:
  the loop saves only the per-step overheads).
* **Memory**: in a child process, a mask run (2 functions + control, an MLP) whose data is an
  uncompressed ``.npz`` of N examples (default 200k train + 200k test, 784 uint8 features each),
  memory-mapped by ``modscope.data.load_data``: training reads the rows it draws, evaluation
  streams the whole test split. Reported: the peak of the process's anonymous memory (RssAnon,
  sampled every 2 ms) above its level before the run, against the data's size on disk, and the
  peak total RSS (which also counts the mapped file's pages the kernel keeps resident: page
  cache, not copies).

Writes ``benchmarks/results/masks_any.json``:

    .venv/bin/python benchmarks/masks_any.py --note "idle machine"

Quick check: ``.venv/bin/python benchmarks/masks_any.py --quick --out /tmp/masks_any.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import add_output_flags, plain_steps, ratio, timing, write
from torch import nn

from modscope.data.functions import Function
from modscope.masks.data import StreamedData, streamed_function
from modscope.masks.fit import fit_logits
from modscope.masks.frozen import FrozenNet, maskable_names, recurrent
from modscope.runtime.modules import torch_threads
from modscope.tasks.base import Task


class CNN(nn.Module):
    """conv 3->32->64->64 (3x3, padding 1; max-pool after the first two), Linear 4096->240->10."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.c3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 8 * 8, 240)
        self.fc2 = nn.Linear(240, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
        h = nn.functional.max_pool2d(torch.relu(self.c2(h)), 2)
        h = torch.relu(self.c3(h)).flatten(1)
        return self.fc2(torch.relu(self.fc1(h)))


class LSTMNet(nn.Module):
    def __init__(self, n_in: int = 32, hidden: int = 128, layers: int = 2, out: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.lstm(x)[0][:, -1])


def make_task(shape: tuple[int, ...], k: int, n: int = 1024) -> Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(10, (n, 1), generator=g)
    fns = {f"f{i}": Function(f"f{i}", train_index=torch.arange(i, n, k)) for i in range(k)}
    return Task("bench", x, y, x, y, "ce", int(np.prod(shape)), 10, (10,), functions=fns)


def time_steps(fn, repeats: int, rounds: int) -> dict:
    """CPU and wall seconds per step of each of ``rounds`` rounds of ``repeats`` steps (after one
    warm-up step)."""
    fn(1)
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        fn(repeats)
        cpu.append((time.process_time() - c0) / repeats)
        wall.append((time.perf_counter() - w0) / repeats)
    return {"cpu_seconds_per_step": timing(cpu), "wall_seconds_per_step": timing(wall)}


def med(t: dict, clock: str = "cpu") -> list[float]:
    return t[f"{clock}_seconds_per_step"]["runs"]


def bench_steps(name: str, model: nn.Module, shape: tuple[int, ...], k: int, batch: int, repeats: int,
                rounds: int, threads: int) -> dict:
    model = model.eval()
    task = make_task(shape, k)
    net = FrozenNet(model, maskable_names(model), "cpu")
    stream = StreamedData(task.to_data(), "train", tuple(task.output_groups))  # the task as masks read it
    data = [streamed_function(stream, f, torch.device("cpu")) for f in task.functions.values()]

    def plain(steps: int) -> None:
        m = type(model)()
        m.load_state_dict(model.state_dict())
        plain_steps(m, task, batch, steps)

    def one(steps: int) -> None:
        fit_logits(net, stream, data[:1], steps=steps, batch_size=batch)

    def together(steps: int) -> None:
        fit_logits(net, stream, data, steps=steps, batch_size=batch)

    def split(steps: int) -> None:
        fit_logits(net, stream, data, steps=steps, batch_size=batch, threads=threads)

    vmapped = None if recurrent(model) or not net.loop else FrozenNet(model, net.names, "cpu", loop=False)

    def together_vmap(steps: int) -> None:
        fit_logits(vmapped, stream, data, steps=steps, batch_size=batch)

    with torch_threads(1):
        t = {
            "plain_step": time_steps(plain, repeats, rounds),
            "one_mask_step": time_steps(one, repeats, rounds),
            f"k{k}_masks_one_step": time_steps(together, repeats, rounds),
            f"k{k}_masks_on_{threads}_threads": time_steps(split, repeats, rounds),
        }
        if vmapped is not None:  # what the loop saves: the same K masks in one vmap forward
            t[f"k{k}_masks_one_step_vmap"] = time_steps(together_vmap, repeats, rounds)
    r = {
        "one_mask_over_plain_cpu": ratio(med(t["one_mask_step"]), med(t["plain_step"])),
        "one_mask_over_plain_wall": ratio(med(t["one_mask_step"], "wall"), med(t["plain_step"], "wall")),
        "k_together_over_k_single_cpu": ratio(med(t[f"k{k}_masks_one_step"]), [k * v for v in med(
            t["one_mask_step"])]),
        "k_on_threads_over_k_single_wall": ratio(med(t[f"k{k}_masks_on_{threads}_threads"], "wall"),
                                                 [k * v for v in med(t["one_mask_step"], "wall")]),
    }
    if vmapped is not None:
        r["k_vmap_over_k_single_cpu"] = ratio(med(t[f"k{k}_masks_one_step_vmap"]), [k * v for v in med(
            t["one_mask_step"])])
    print(f"{name}: {net.n_weights:,} masked weights, batch {batch}, K = {k}, "
          f"{'loop' if net.loop else 'batched'} path (median of {rounds} rounds of {repeats} steps)")
    for key, v in t.items():
        cpu, wall = np.median(med(v)) * 1e3, np.median(med(v, "wall")) * 1e3
        print(f"  {key:28s} {cpu:9.2f} ms cpu  {wall:9.2f} ms wall")
    for key, v in r.items():
        print(f"  {key:36s} {v:6.2f}")
    return {"model": name, "masked_weights": net.n_weights, "batch": batch, "k": k,
            "path": "loop" if net.loop else "batched", "threads": threads, "steps": t, "ratios": r}


# -- memory -----------------------------------------------------------------------------------------

CHILD = r'''
import json, os, resource, sys, threading, time
import numpy as np, torch
from modscope.data import load_data
from modscope.masks import train_masks
from modscope.training.models import MLP

path, steps, eval_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, v = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(v.split()[0]) * 1024
    return out

torch.set_num_threads(1)
model = MLP([784, 64, 10]).eval()
data = load_data(path)
# a warm-up run on 256 in-memory examples: torch's one-time allocations (autograd, vmap, thread
# pools, allocator arenas) happen here, so the measured growth is what the data costs
small = load_data((np.asarray(data.test.x[:256]), np.asarray(data.test.y[:256])))
fns = ["low=0,1,2,3,4", "high=5,6,7,8,9"]
train_masks(model, small, fns, steps=3, batch_size=128, eval_batch_size=eval_batch)
before = status()
peak = dict(before)
done = threading.Event()

def sample():
    while not done.is_set():
        for k, v in status().items():
            peak[k] = max(peak[k], v)
        time.sleep(0.002)

th = threading.Thread(target=sample, daemon=True)
th.start()
t0 = time.perf_counter()
res = train_masks(model, data, fns, steps=steps, batch_size=128, eval_batch_size=eval_batch)
seconds = time.perf_counter() - t0
done.set(); th.join()
for k, v in status().items():
    peak[k] = max(peak[k], v)
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "peak": peak, "ru_maxrss": maxrss, "seconds": seconds,
                  "memmap": type(data.test.x).__name__, "trained_on": res.config["trained_on"],
                  "n_test": len(data.test), "n_train": len(data.train)}))
'''


def bench_memory(n: int, steps: int, eval_batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.npz"
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        y = rng.integers(0, 10, size=n)
        np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)  # uncompressed: memory-mappable
        del x
        size = path.stat().st_size
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(steps), str(eval_batch)],
            capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        m = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 2**20
    grew = m["peak"]["RssAnon"] - m["before"]["RssAnon"]
    result = {
        "examples": {"train": m["n_train"], "test": m["n_test"]},
        "data_bytes": size,
        "memory_mapped_as": m["memmap"],
        "anon_before_bytes": m["before"]["RssAnon"],
        "anon_peak_bytes": m["peak"]["RssAnon"],
        "anon_growth_bytes": grew,
        "anon_growth_over_data": grew / size,
        "rss_peak_bytes": m["peak"]["VmRSS"],
        "rss_file_peak_bytes": m["peak"]["RssFile"],
        "ru_maxrss_bytes": m["ru_maxrss"],
        "run_seconds": m["seconds"],
        "steps": steps,
        "eval_batch_size": eval_batch,
    }
    print(f"memory: {m['n_train']:,} train + {m['n_test']:,} test examples, {size / mb:.0f} MB on disk "
          f"({m['memmap']}); anonymous memory {m['before']['RssAnon'] / mb:.0f} MB before, peak "
          f"{m['peak']['RssAnon'] / mb:.0f} MB (+{grew / mb:.1f} MB = {grew / size:.3f} x the data); "
          f"peak RSS {m['peak']['VmRSS'] / mb:.0f} MB (file pages {m['peak']['RssFile'] / mb:.0f} MB); "
          f"{m['seconds']:.1f} s")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--k", type=int, default=4, help="masks trained together (default 4)")
    ap.add_argument("--repeats", type=int, default=10, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (every round kept)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for the split run")
    ap.add_argument("--examples", type=int, default=200_000, help="examples per split of the memory run")
    ap.add_argument("--memory-steps", type=int, default=200, help="mask steps of the memory run")
    ap.add_argument("--quick", action="store_true",
                    help="a check that the script runs: 2 rounds of 2 steps, batch 32, 20k examples")
    add_output_flags(ap, "masks_any")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.rounds, args.batch, args.examples, args.memory_steps = 2, 2, 32, 20_000, 20
    torch.manual_seed(0)
    timing_args = (args.k, args.batch, args.repeats, args.rounds, args.threads)
    cnn = bench_steps("cnn", CNN(), (3, 32, 32), *timing_args)
    lstm = bench_steps("lstm", LSTMNet(), (20, 32), *timing_args)
    memory = bench_memory(args.examples, args.memory_steps, 512)
    summary = {
        "cnn_one_mask_over_plain_cpu": cnn["ratios"]["one_mask_over_plain_cpu"],
        "cnn_target": "<= 2",
        "cnn_k_together_over_k_single_cpu": cnn["ratios"]["k_together_over_k_single_cpu"],
        "cnn_k_vmap_over_k_single_cpu": cnn["ratios"].get("k_vmap_over_k_single_cpu"),
        "cnn_k_on_threads_over_k_single_wall": cnn["ratios"]["k_on_threads_over_k_single_wall"],
        "lstm_loop_k_over_k_single_cpu": lstm["ratios"]["k_together_over_k_single_cpu"],
        "memory_anon_growth_over_data": memory["anon_growth_over_data"],
    }
    write(args, {"cnn": cnn, "lstm": lstm, "memory": memory, "summary": summary})


if __name__ == "__main__":
    main()
