"""Knockouts on a network modscope did not build: a ResNet-18-sized CNN, every cluster against 100
random lesions, batched (lesions as copies of the batch) beside one forward per lesion; and the
memory of a knockout that streams 200k examples from a memory-mapped file.

Part 1, cost. ResNet-18's shape for 32 x 32 images (BasicBlock x [2, 2, 2, 2], widths 64-512,
10 classes; torch's default initialisation under ``torch.manual_seed(0)``), traced, clustered at
k = 12 (the reference procedure). On ``--examples`` random test images (batch ``--batch``) it
times the intact pass, then one sub-module's 101 lesions (the true one and 100 random same-size
ones) on ``--lesion-examples`` of them through the batched path and through the loop (the same
metrics, checked), and extrapolates both to every sub-module on ``--examples`` examples (the cost
is linear in lesions x examples: the receipt says which numbers are measured and which
extrapolated).

Part 2, memory, in a child process: a small MLP's knockout (784-32-32-10, k = 2, 20 random lesions) on
``--stream`` examples written to an uncompressed ``.npz`` (memory-mapped by `modscope.data`),
its peak resident memory against the file's size and against the same run on a 2,000-example
file (what does not grow with the data is overhead), and the peak of its anonymous memory
(RssAnon, sampled every 2 ms) above its level before the run: resident memory also counts the
mapped file's pages the kernel keeps (page cache, not copies), anonymous memory is what the run
allocates.

    .venv/bin/python benchmarks/knockout_any.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import add_output_flags, resnet18, write


def cost(args) -> dict:
    import torch

    import modscope
    from modscope.data import load_data
    from modscope.graphs.tracing import trace_network
    from modscope.lesions.evaluator import UnitEvaluator
    from modscope.lesions.lesioner import UnitLesioner

    model = resnet18(classes=10, imagenet=False).eval()
    example = torch.zeros(1, 3, 32, 32)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.examples, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.examples)
    traced = trace_network(model, example)
    part = modscope.cluster(traced.graph, 12, seed=0)
    g = traced.graph
    written = {d for _, d in g.links}
    groups = [i for i in range(len(g.sizes)) if i in written and i != len(g.sizes) - 1]
    lab = part.labels
    subs = [(i, c) for i in groups for c in np.unique(lab[g.offsets[i] : g.offsets[i + 1]]) if c >= 0]
    out = {"nodes": g.n_nodes, "edges": g.n_edges, "submodules": len(subs)}
    full = load_data((x, y))
    ev = UnitEvaluator(model, traced, full, batch_size=args.batch)
    t = time.perf_counter()
    ev.intact()
    out["intact_s"] = time.perf_counter() - t
    # one sub-module: the largest group's first cluster, its 100 random same-size sets
    gi, c = max(subs, key=lambda s: g.sizes[s[0]])
    units = np.flatnonzero(lab[g.offsets[gi] : g.offsets[gi + 1]] == c)
    labelled = np.flatnonzero(lab[g.offsets[gi] : g.offsets[gi + 1]] >= 0)
    lesions = np.zeros((101, g.n_nodes), dtype=bool)
    lesions[0, g.offsets[gi] + units] = True
    for r in range(1, 101):
        pick = rng.choice(labelled, units.size, replace=False)
        lesions[r, g.offsets[gi] + pick] = True
    sub = load_data((x[: args.lesion_examples], y[: args.lesion_examples]))
    results = {}
    for name, max_elements in (("batched", 2**24), ("loop", 1)):
        e = UnitEvaluator(
            model,
            traced,
            sub,
            batch_size=args.batch,
            max_elements=max_elements,
            lesioner=UnitLesioner(model, traced),
        )
        t = time.perf_counter()
        results[name] = e.evaluate_nodes(lesions).metric
        out[f"one_submodule_{name}_s"] = time.perf_counter() - t
    out["same_metrics"] = bool(np.allclose(results["batched"], results["loop"]))
    out["batched_speedup"] = out["one_submodule_loop_s"] / out["one_submodule_batched_s"]
    scale = len(subs) * args.examples / args.lesion_examples
    out["every_submodule_extrapolated_s"] = {
        k: out[f"one_submodule_{k}_s"] * scale for k in ("batched", "loop")
    }
    out["measured"] = ["intact_s", "one_submodule_batched_s", "one_submodule_loop_s"]
    out["extrapolated"] = (
        "every_submodule_extrapolated_s = one sub-module's time x sub-modules x examples / lesion examples"
    )
    return out


def _hwm_mib() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def _anon_mib() -> float:
    """This process's anonymous resident memory now (RssAnon: not the mapped file's pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(path: str) -> None:
    import torch
    from torch import nn

    from modscope import cluster, load_graph
    from modscope.lesions import knockout

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)
    )
    net.eval()
    example = torch.zeros(1, 1, 28, 28)
    part = cluster(load_graph(net, example_input=example), 2, seed=0)
    base = _hwm_mib()
    anon_before = _anon_mib()
    peak_anon = [anon_before]
    done = threading.Event()

    def sample() -> None:  # the mapped file's pages count in RSS (page cache); copies are anonymous
        while not done.is_set():
            peak_anon[0] = max(peak_anon[0], _anon_mib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t = time.perf_counter()
    r = knockout(net, path, part, example_input=example, n_random=20, batch_size=512)
    seconds = time.perf_counter() - t
    done.set()
    sampler.join()
    print(
        json.dumps(
            {
                "peak_mib": _hwm_mib(),
                "before_mib": base,
                "anon_before_mib": anon_before,
                "anon_peak_mib": max(peak_anon[0], _anon_mib()),
                "seconds": seconds,
                "submodules": len(r.submodules),
            }
        )
    )


def memory(args) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (2000, args.stream):
            rng = np.random.default_rng(0)
            path = Path(tmp) / f"d{n}.npz"
            np.savez(
                path,
                x_test=rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8),
                y_test=rng.integers(0, 10, n),
            )
            done = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["file_mib"] = path.stat().st_size / 2**20
            out[str(n)] = row
    big, small = out[str(args.stream)], out["2000"]
    out["peak_growth_mib"] = big["peak_mib"] - small["peak_mib"]
    out["growth_over_file"] = out["peak_growth_mib"] / big["file_mib"]
    # what the run itself allocates, above the process's level before it: batches and lesion copies
    out["anon_growth_mib"] = big["anon_peak_mib"] - big["anon_before_mib"]
    out["anon_growth_over_file"] = out["anon_growth_mib"] / big["file_mib"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10000)
    ap.add_argument("--lesion-examples", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--stream", type=int, default=200000)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a check that it runs")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    add_output_flags(ap, "knockout_any")
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    if args.quick:
        args.examples, args.lesion_examples, args.stream = 256, 32, 5000
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    results = {"cost": cost(args), "memory": memory(args)}
    print(json.dumps(results, indent=1)[:2000])
    write(args, results)


if __name__ == "__main__":
    main()
