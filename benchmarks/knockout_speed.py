"""Batched random lesions vs a loop of forwards: the two ways ``modscope.knockout`` scores lesions.

For one sub-module per hidden layer (cluster 0 of contiguous blocks of ``width // --clusters``
neurons), the true lesion and ``N`` random same-size lesions of the layer (``N + 1`` lesions,
keep-masks drawn from ``numpy.random.default_rng(SeedSequence([seed, layer]))``) are scored
twice in one process, interleaved, by the one lesion path (``UnitEvaluator`` on the traced MLP): as
``modscope.knockout`` runs it (lesions stacked as copies of each batch, the intact layers before the
lesioned one replayed, the next Linear layer updated by a low-rank product) and as its
``method="loop"`` oracle runs it (one forward per lesion, that layer computed whole). Every
repeat's time is kept, per layer and in total; the medians, the ratio loop / batched and the
largest difference between the two paths' metrics are reported. Network: a random-init (torch
default) MLP, random inputs and labels.

Writes ``benchmarks/results/knockout_speed.json`` (784-256x4-10, 10k examples, N = 100):

    .venv/bin/python benchmarks/knockout_speed.py --repeats 3

Quick check: ``.venv/bin/python benchmarks/knockout_speed.py --quick --out /tmp/knockout_speed.json``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from _common import add_output_flags, timing, write

from modscope.data.dataset import load_data
from modscope.graphs.stacks import mlp_trace
from modscope.graphs.tracing import trace_network
from modscope.lesions import submodules
from modscope.lesions.evaluator import UnitEvaluator
from modscope.training.models import Architecture
from modscope.training.trainer import init_model


def keep_masks(rng: np.random.Generator, neurons: np.ndarray, width: int, n_random: int) -> torch.Tensor:
    """``(n_random + 1, width)`` bool keep-masks: row 0 silences ``neurons``, each other row a
    uniformly random set of the same size among the layer's neurons."""
    random = np.argsort(rng.random((n_random, width)), axis=1)[:, : neurons.size]
    removed = np.concatenate([neurons[None], random])
    keep = np.ones((removed.shape[0], width), dtype=bool)
    keep[np.arange(removed.shape[0])[:, None], removed] = False
    return torch.from_numpy(keep)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="784,256,256,256,256,10")
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--random", type=int, default=100, help="random lesions per sub-module (N)")
    ap.add_argument("--clusters", type=int, default=12, help="sub-module size = width // clusters")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256, help="examples per batch (knockout's default)")
    ap.add_argument("--quick", action="store_true", help="a check that the script runs: 2000 examples, "
                    "N = 20, 1 repeat")
    add_output_flags(ap, "knockout_speed")
    args = ap.parse_args()
    if args.quick:
        args.examples, args.random, args.repeats = 2000, 20, 1

    widths = tuple(int(w) for w in args.widths.split(","))
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    model = init_model(Architecture(widths), gen).to(device).eval()
    x = torch.randn(args.examples, widths[0], generator=gen)
    y = torch.randint(0, widths[-1], (args.examples, 1), generator=gen)
    data = load_data((x, y))

    # contiguous blocks of width // clusters neurons: one cluster label per block
    hidden = [np.minimum(np.arange(w) // max(1, w // args.clusters), args.clusters - 1)
              for w in widths[1:-1]]
    subs = {s.layer: s for s in submodules(hidden, widths) if s.cluster == 0}
    keeps = {
        layer: keep_masks(np.random.default_rng(np.random.SeedSequence([args.seed, layer])),
                          np.asarray(sub.neurons), widths[layer], args.random)
        for layer, sub in subs.items()
    }

    print(f"knockout speed: MLP {'-'.join(map(str, widths))}, {args.examples} examples, "
          f"N = {args.random} random lesions (+1 true) per sub-module, device {device}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), {platform.machine()}")
    t0 = time.perf_counter()
    traced = mlp_trace(model) or trace_network(model, x[:1].to(device))  # as knockout reads it
    batched = UnitEvaluator(model, traced, data, batch_size=args.batch_size)
    batched.intact()
    setup = time.perf_counter() - t0
    # knockout(method="loop"): one lesion per forward (max_elements 1, times its 4), the layer whole
    loop = UnitEvaluator(model, traced, data, batch_size=args.batch_size, max_elements=4, low_rank=False)
    print(f"reading and intact scores (once per knockout run): {setup:.2f} s")
    tb = {layer: [] for layer in subs}
    tl = {layer: [] for layer in subs}
    diffs = {}
    for _ in range(args.repeats):
        for layer in sorted(subs):
            keep = {layer: keeps[layer]}
            t0 = time.perf_counter()
            sb = batched.evaluate(keep)
            sync(device)
            tb[layer].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sl = loop.evaluate(keep)
            sync(device)
            tl[layer].append(time.perf_counter() - t0)
            diffs[layer] = float(np.max(np.abs(sb.metric - sl.metric)))
    print(f"{'layer':>5} {'size':>5} {'batched s':>10} {'loop s':>10} {'ratio':>7} {'max |diff|':>11}")
    layers = {}
    for layer in sorted(subs):
        b, l = statistics.median(tb[layer]), statistics.median(tl[layer])
        layers[str(layer)] = {"size": subs[layer].size, "batched_seconds": timing(tb[layer]),
                              "loop_seconds": timing(tl[layer]), "ratio_loop_over_batched": l / b,
                              "max_abs_metric_difference": diffs[layer]}
        print(f"{layer:>5} {subs[layer].size:>5} {b:>10.3f} {l:>10.3f} {l / b:>6.1f}x {diffs[layer]:>11.2g}")
    tot_b = [sum(tb[layer][r] for layer in subs) for r in range(args.repeats)]
    tot_l = [sum(tl[layer][r] for layer in subs) for r in range(args.repeats)]
    total = statistics.median(tot_l) / statistics.median(tot_b)
    mb, ml = statistics.median(tot_b), statistics.median(tot_l)
    print(f"{'all':>5} {'':>5} {mb:>10.3f} {ml:>10.3f} {total:>6.1f}x")
    write(args, {
        "widths": list(widths), "device": str(device), "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "intact_activations_seconds": setup, "layers": layers,
        "total": {"batched_seconds": timing(tot_b), "loop_seconds": timing(tot_l),
                  "ratio_loop_over_batched": total,
                  "max_abs_metric_difference": max(diffs.values())},
    })


if __name__ == "__main__":
    main()
