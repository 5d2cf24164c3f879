"""End to end, whole processes side by side: ``modscope score`` against the plain scikit-learn script
a user would write to do the same (``benchmarks/plain_sklearn_score.py``).

Network: a Glorot-uniform MLP (default 784-256x4-10, zero biases) drawn from
``numpy.random.default_rng(--seed-net)`` and saved as ``.safetensors`` in a temporary folder. The two
processes, from spawn to exit (imports, file reading, graph, clustering, shuffles, JSON):

* ``modscope score NET.safetensors --clusters 12 --shuffles 8 --seed 0 --json OUT`` (the reference's
  procedure is the default: 25 k-means restarts, the restart of lowest inertia kept);
* ``python benchmarks/plain_sklearn_score.py NET.safetensors --clusters 12 --shuffles 8 --seed 0
  --json OUT``: safetensors -> |W| adjacency (scipy.sparse) -> isolated nodes dropped ->
  ``SpectralClustering(affinity="precomputed", n_init=25, assign_labels="kmeans")`` -> n-cut, and the
  same on 8 `layer` shuffles -> z.

``--threads`` lists the thread settings to run, each a full comparison: ``env`` (the environment as
it is, no thread variables set: what a user gets, the headline ratio) and ``1``
(``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1`` for both processes). scikit-learn's
OpenMP k-means is very sensitive to other load on the cores (on a busy 2-core machine one
``KMeans(n_init=25)`` took 10 s on 2 threads against 0.17 s on one), hence both. After ``--warmup``
untimed runs of each, ``--repeats`` rounds alternate the two; the receipt keeps every run's wall
time, the medians, ratio = plain / modscope, and both n-cuts and z's. Target (the project brief):
ratio >= 10x.

Writes ``benchmarks/results/cli_vs_script.json``:

    .venv/bin/python benchmarks/cli_vs_script.py --repeats 3

Quick check: ``.venv/bin/python benchmarks/cli_vs_script.py --quick --out /tmp/cli_vs_script.json``.
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

from _common import (
    GLOROT_WIDTHS,
    add_output_flags,
    parse_widths,
    ratio,
    save_glorot_safetensors,
    timing,
    widths_name,
    write,
)

PLAIN = Path(__file__).resolve().parent / "plain_sklearn_score.py"
TARGET = 10.0
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def modscope_argv() -> list[str]:
    script = Path(sys.executable).parent / "modscope"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modscope"]


def environment(threads: str) -> dict[str, str]:
    """The processes' environment: as it is (``env``), or every thread variable set to ``threads``."""
    env = dict(os.environ)
    if threads != "env":
        env.update({k: threads for k in THREAD_VARS})
    return env


def run(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return seconds


def compare(args: argparse.Namespace, cmd_m: list[str], cmd_p: list[str], out_m: Path, out_p: Path,
            threads: str) -> dict:
    """One full comparison under one thread setting."""
    env = environment(threads)
    print(f"threads: {'environment as it is' if threads == 'env' else threads}")
    for _ in range(args.warmup):
        run(cmd_m, env)
        run(cmd_p, env)
    t_m, t_p, seen_m, seen_p = [], [], [], []
    for r in range(args.repeats):
        t_m.append(run(cmd_m, env))
        seen_m.append(json.loads(out_m.read_text()))
        t_p.append(run(cmd_p, env))
        seen_p.append(json.loads(out_p.read_text()))
        print(f"  repeat {r}: modscope {t_m[-1]:.2f} s | plain scikit-learn {t_p[-1]:.2f} s", flush=True)
    m, p = seen_m[-1], seen_p[-1]
    same_m = all(s["ncut"] == m["ncut"] and s["shuffle"]["z"] == m["shuffle"]["z"] for s in seen_m)
    same_p = all(s["ncut"] == p["ncut"] and s["z"] == p["z"] for s in seen_p)
    out = {
        "thread_variables": None if threads == "env" else {k: threads for k in THREAD_VARS},
        "modscope": {
            "seconds": timing(t_m),
            "ncut": m["ncut"],
            "shuffle_mean": m["shuffle"]["mean"],
            "shuffle_std": m["shuffle"]["std"],
            "z": m["shuffle"]["z"],
            "clustering": m.get("clustering"),
            "same_result_every_repeat": same_m,
        },
        "plain_sklearn": {
            "seconds": timing(t_p),
            "ncut": p["ncut"],
            "shuffle_mean": p["mean"],
            "shuffle_std": p["std"],
            "z": p["z"],
            "same_result_every_repeat": same_p,
        },
        "ratio_plain_over_modscope": ratio(t_p, t_m),
    }
    out["meets_target"] = out["ratio_plain_over_modscope"] >= TARGET
    mz = m["shuffle"]["z"] if m["shuffle"]["z"] is not None else float("nan")
    pz = p["z"] if p["z"] is not None else float("nan")
    print(f"  median: modscope {timing(t_m)['median']:.2f} s, "
          f"plain scikit-learn {timing(t_p)['median']:.2f} s, "
          f"ratio {out['ratio_plain_over_modscope']:.1f}x (target >= {TARGET:.0f}x)")
    print(f"  n-cut: modscope {m['ncut']:.4f} (z {mz:.2f}), "
          f"plain {p['ncut']:.4f} (z {pz:.2f})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default=widths_name(GLOROT_WIDTHS), help="e.g. 784,256x4,10 (default)")
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--shuffles", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="the scoring seed passed to both processes")
    ap.add_argument("--seed-net", type=int, default=0, help="seed of the Glorot weights")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each process first")
    ap.add_argument("--threads", default="env,1",
                    help="comma list of thread settings, each a full comparison: env (as it is) or N")
    ap.add_argument("--quick", action="store_true", help="a check that the script runs: 2 shuffles, "
                    "1 repeat, no warm-up, one thread only (numbers not comparable with the full run)")
    add_output_flags(ap, "cli_vs_script")
    args = ap.parse_args()
    if args.quick:
        args.shuffles, args.repeats, args.warmup, args.threads = 2, 1, 0, "1"
    widths = parse_widths(args.widths)
    settings_list = [t.strip() for t in args.threads.split(",") if t.strip()]

    with tempfile.TemporaryDirectory(prefix="modscope-bench-") as tmp:
        net = save_glorot_safetensors(Path(tmp) / "net.safetensors", widths, args.seed_net)
        out_m, out_p = Path(tmp) / "modscope.json", Path(tmp) / "plain.json"
        common = ["--clusters", str(args.clusters), "--shuffles", str(args.shuffles),
                  "--seed", str(args.seed)]
        cmd_m = [*modscope_argv(), "score", str(net), *common, "--json", str(out_m)]
        cmd_p = [sys.executable, str(PLAIN), str(net), *common, "--json", str(out_p)]
        print(f"network {widths_name(widths)}, k = {args.clusters}, {args.shuffles} layer shuffles, "
              f"{args.repeats} repeats, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        by_threads = {t: compare(args, cmd_m, cmd_p, out_m, out_p, t) for t in settings_list}

    head = by_threads.get("env") or next(iter(by_threads.values()))
    results = {
        "network": widths_name(widths),
        "modscope_argv": ["modscope", *cmd_m[len(modscope_argv()):]],
        "plain_argv": ["python", "benchmarks/plain_sklearn_score.py", *cmd_p[2:]],
        "by_threads": by_threads,
        "headline_threads": "env" if "env" in by_threads else settings_list[0],
        "ratio_plain_over_modscope": head["ratio_plain_over_modscope"],
        "target_ratio": TARGET,
        "meets_target": head["meets_target"],
    }
    write(args, results)


if __name__ == "__main__":
    main()
