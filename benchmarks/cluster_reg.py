"""Training steps with the spectral clusterability regulariser (spec §7) against plain ones, and the
reference's cost for the same network, one process.

**Steps.** ``modscope.train`` on a synthetic 784-input, 10-class task (random inputs: a step's cost
does not depend on the data) with the benchmark network 784-256x4-10 at batch 128, plain and with
``cluster_reg=SpectralClusterability(lam, eigs=11, every=N)`` for each ``--every`` N (1 = the exact
gradient every step; N > 1 solves the eigenproblem every N steps and tracks the eigenvectors in
between), each on one torch thread and on torch's default. Per run: wall ms per step (the trainer's
own clock around its loop, so set-up and the final evaluation are left out). Runs are interleaved,
every repeat kept, medians reported; the ratio regularised / plain is the target (<= 1.5).

**Parts** (one thread, median of ``--part-repeats``): the eigenproblem a refresh solves
(`laplacian_eigenvectors` in float32, the trainer's precision: the smaller side's 522 x 522 Gram
matrix), the per-step gradient with given eigenvectors (`rayleigh_gradient`), and for comparison
the exact penalty with autograd through ``torch.linalg.eigh`` (`spectral_penalty`, forward and
backward, float32 and float64).

**The reference's step** (Filan et al.'s ``cluster_gradient.py``, re-created from its algorithm, not
its code): the sparse ``L_sym`` of the 1818-node graph (degree-0 nodes removed), ``scipy`` ``eigsh``
for the K + 1 smallest eigenvalues by shift-invert (``sigma=-1``), the dense ``K x n x n`` outer
products ``v_i v_i^T`` and their sum ``dy/dL``, then a double Python loop over every weight, each
iteration taking two dot products over the neighbours of the weight's two units. The loop runs on
``--ref-weights`` weights of each layer and is extrapolated to all 399,872 (said so in the receipt);
the eigensolve and outer products are timed whole. The reference spreads the layers over 4 worker
processes; the receipt gives the one-process time and the ideal 4-worker time (the loop divided by
min(4, layers)).

Writes ``benchmarks/results/cluster_reg.json``:

    .venv/bin/python benchmarks/cluster_reg.py --steps 300 --repeats 5

Quick check: ``.venv/bin/python benchmarks/cluster_reg.py --quick --out /tmp/cluster_reg.json``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from _common import GLOROT_WIDTHS, add_output_flags, glorot_weights, ratio, timing, widths_name, write

import modscope
from modscope.runtime.modules import torch_threads
from modscope.tasks.base import Task
from modscope.training.clusterability import (
    SpectralClusterability,
    laplacian_eigenvectors,
    rayleigh_gradient,
    spectral_penalty,
)


def synthetic_task(widths, n: int = 2048, seed: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, widths[0], generator=g)
    y = torch.randint(0, widths[-1], (n, 1), generator=g)
    return Task("synthetic", x, y, x[:256], y[:256], "ce", widths[0], widths[-1], output_groups=(widths[-1],),
                defaults={"hidden": list(widths[1:-1]), "batch_size": 128, "lr": 1e-3, "activation": "relu"})


def step_ms(task, steps: int, seed: int, threads: int, reg) -> float:
    res = modscope.train(task, steps=steps, seed=seed, threads=threads, cluster_reg=reg, progress=False)
    return 1e3 * res.metrics["seconds"] / steps


def steps_part(args, default_threads: int) -> dict:
    task = synthetic_task(args.widths)
    settings = sorted({1, default_threads})
    modes = {"plain": None, **{f"every_{n}": SpectralClusterability(args.lam, args.eigs, every=n)
                               for n in args.every}}
    runs: dict[tuple[str, int], list[float]] = {}
    step_ms(task, 5, 0, 1, modes[f"every_{args.every[0]}"])  # warm-up: imports, allocator
    for r in range(args.repeats):
        for t in settings:
            for name, reg in modes.items():
                runs.setdefault((name, t), []).append(step_ms(task, args.steps, r, t, reg))
        print(f"  steps repeat {r} done", flush=True)
    out: dict = {"threads": {}}
    print(f"{'threads':>8}{'mode':>12}{'ms/step':>10}{'x plain':>9}")
    for t in settings:
        plain = runs[("plain", t)]
        row = {"plain_ms_per_step": timing(plain)}
        for name in modes:
            if name == "plain":
                continue
            row[name] = {"ms_per_step": timing(runs[(name, t)]),
                         "over_plain": ratio(runs[(name, t)], plain),
                         "meets_1_5x": ratio(runs[(name, t)], plain) <= 1.5}
        out["threads"][str(t)] = row
        print(f"{t:>8}{'plain':>12}{row['plain_ms_per_step']['median']:>10.2f}{1.0:>9.2f}")
        for name in modes:
            if name != "plain":
                print(f"{t:>8}{name:>12}{row[name]['ms_per_step']['median']:>10.2f}"
                      f"{row[name]['over_plain']:>9.2f}")
    return out


def _median_time(f, repeats: int) -> dict:
    f()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        runs.append(time.perf_counter() - t)
    return timing(runs)


def parts(args) -> dict:
    ws32 = [torch.from_numpy(w) for w in glorot_weights(args.widths, 0)]
    n = args.eigs + 1
    _, z = laplacian_eigenvectors(ws32, n, torch.float32)
    out = {
        "refresh_eigenproblem_float32": _median_time(
            lambda: laplacian_eigenvectors(ws32, n, torch.float32), args.part_repeats),
        "gradient_given_eigenvectors": _median_time(lambda: rayleigh_gradient(ws32, z), args.part_repeats),
    }
    for name, dtype in (("autograd_eigh_float32", torch.float32), ("autograd_eigh_float64", torch.float64)):
        ws = [w.to(dtype).requires_grad_(True) for w in ws32]

        def exact(ws=ws):
            spectral_penalty(ws, args.eigs).backward()

        out[name] = _median_time(exact, max(1, args.part_repeats // 3))
    for k, v in out.items():
        print(f"  {k:<32}{1e3 * v['median']:>9.2f} ms")
    return out


# -- the reference's algorithm, re-created ----------------------------------------------------------
def reference_step(weights: list[np.ndarray], eigs: int, loop_weights: int) -> dict:
    """One regularised step's extra work as the reference does it; the weight loop on a subset."""
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    off = np.concatenate([[0], np.cumsum(widths)])
    n = int(off[-1])
    t0 = time.perf_counter()
    rows, cols, vals = [], [], []
    for l, w in enumerate(weights):  # the graph, both directions
        a = np.abs(w.astype(np.float64))
        i, j = np.nonzero(a)
        rows += [off[l + 1] + i, off[l] + j]
        cols += [off[l] + j, off[l + 1] + i]
        vals += [a[i, j], a[i, j]]
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    d = np.asarray(A.sum(axis=1)).ravel()
    keep = d > 0
    Ak = A[keep][:, keep]
    dk = d[keep]
    inv = sp.diags(1 / np.sqrt(dk))
    L = (sp.identity(Ak.shape[0]) - inv @ Ak @ inv).tocsr()
    t1 = time.perf_counter()
    evals, vecs = spla.eigsh(L, eigs + 1, sigma=-1.0, which="LM")
    t2 = time.perf_counter()
    outers = np.stack([np.outer(vecs[:, i], vecs[:, i]) for i in range(1, eigs + 1)])  # (K, n, n)
    G = np.tensordot(np.ones(eigs), outers, [[0], [0]])  # dy/dL for dy = 1 per eigenvalue
    t3 = time.perf_counter()
    Ad = A[keep][:, keep].toarray()  # dense rows, as the reference indexes them
    dinv = 1 / np.sqrt(dk)
    nbrs = [np.flatnonzero(row) for row in Ad]  # each unit's neighbours (both adjacent layers)
    # the loop: every (m, n) of layer l x layer l+1, two neighbour dot products per weight
    idx = np.cumsum(keep) - 1
    count = 0
    per_layer = []
    t4 = time.perf_counter()
    for l, w in enumerate(weights):
        done = 0
        tl = time.perf_counter()
        for m in range(w.shape[1]):
            x = idx[off[l] + m]
            nb_x = nbrs[x]
            for n_ in range(w.shape[0]):
                if done >= loop_weights:
                    break
                y = idx[off[l + 1] + n_]
                nb_y = nbrs[y]
                s_x = np.dot(G[x, nb_x] * Ad[x, nb_x], dinv[nb_x])
                s_y = np.dot(G[y, nb_y] * Ad[y, nb_y], dinv[nb_y])
                _ = (0.5 * dk[x] ** -1.5 * s_x + 0.5 * dk[y] ** -1.5 * s_y
                     - dinv[x] * dinv[y] * G[x, y]) * np.sign(w[n_, m])
                done += 1
            if done >= loop_weights:
                break
        count += done
        per_layer.append({"weights": int(w.size), "timed": done,
                          "seconds_per_weight": (time.perf_counter() - tl) / done})
    t5 = time.perf_counter()
    total_weights = sum(w.size for w in weights)
    per_weight = (t5 - t4) / count
    loop_all = sum(p["seconds_per_weight"] * p["weights"] for p in per_layer)  # layer by layer
    layers = len(weights)
    return {
        "build_laplacian_s": t1 - t0,
        "eigsh_s": t2 - t1,
        "outer_products_s": t3 - t2,
        "loop_weights_timed": count,
        "loop_seconds_per_weight": per_weight,
        "loop_per_layer": per_layer,
        "loop_all_weights_s_extrapolated": loop_all,
        "total_weights": total_weights,
        "step_extra_s_one_process": (t3 - t0) + loop_all,
        "step_extra_s_4_workers_ideal": (t3 - t0) + loop_all / min(4, layers),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default=widths_name(GLOROT_WIDTHS), help="layer widths, e.g. 784,256x4,10")
    ap.add_argument("--eigs", type=int, default=11, help="K, eigenvalues after the trivial first")
    ap.add_argument("--lam", type=float, default=0.1, help="penalty weight (does not change the cost)")
    ap.add_argument("--every", default="1,10,50", help="refresh intervals to time, comma-separated")
    ap.add_argument("--steps", type=int, default=300, help="training steps per run")
    ap.add_argument("--repeats", type=int, default=5, help="runs per mode and thread setting")
    ap.add_argument("--part-repeats", type=int, default=15)
    ap.add_argument("--ref-weights", type=int, default=3000,
                    help="weights per layer the reference loop times")
    ap.add_argument("--quick", action="store_true",
                    help="a check that the script runs: 40 steps, 1 repeat, 3 part repeats, 300 loop weights")
    add_output_flags(ap, "cluster_reg")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats, args.part_repeats, args.ref_weights = 40, 1, 3, 300
    from _common import parse_widths

    args.widths = parse_widths(args.widths)
    args.every = [int(x) for x in str(args.every).split(",") if x.strip()]
    default_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, default {default_threads} thread(s), {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}; {widths_name(args.widths)}, batch 128, K = {args.eigs}")
    results: dict = {"network": widths_name(args.widths), "batch_size": 128, "eigs": args.eigs,
                     "torch_default_threads": default_threads}
    results["steps"] = steps_part(args, default_threads)
    print("parts, one thread:")
    with torch_threads(1):
        results["parts"] = parts(args)
    print("the reference's step (one process):")
    ref = reference_step(glorot_weights(args.widths, 0), args.eigs, args.ref_weights)
    results["reference"] = ref
    plain = results["steps"]["threads"]["1"]["plain_ms_per_step"]["median"] / 1e3
    ours = {k: v["ms_per_step"]["median"] / 1e3 - plain
            for k, v in results["steps"]["threads"]["1"].items() if k.startswith("every_")}
    results["reference_vs_modscope_extra_per_step"] = {
        k: {"modscope_extra_s": v, "reference_extra_s_one_process": ref["step_extra_s_one_process"],
            "reference_over_modscope": ref["step_extra_s_one_process"] / v if v > 0 else None}
        for k, v in ours.items()}
    print(f"  laplacian {ref['build_laplacian_s']:.3f} s, eigsh {ref['eigsh_s']:.3f} s, outer products "
          f"{ref['outer_products_s']:.3f} s, loop {1e6 * ref['loop_seconds_per_weight']:.1f} us/weight "
          f"x {ref['total_weights']} = {ref['loop_all_weights_s_extrapolated']:.1f} s (extrapolated from "
          f"{ref['loop_weights_timed']}); per step {ref['step_extra_s_one_process']:.1f} s one process, "
          f"{ref['step_extra_s_4_workers_ideal']:.1f} s on 4 ideal workers")
    write(args, results)


if __name__ == "__main__":
    main()
