"""The model side on a GPU (issue 26): mask and training steps, and knockouts, GPU beside the CPU
with all its cores, in one run, every part capped by time.

Three parts, each kept in the receipt as it finishes (a part that fails leaves its error there and
the others run):

* ``steps``: one training step (`modscope.fit_model`: forward, cross-entropy, backward, AdamW; the
  batch moved from the CPU each step) and one mask step (`modscope.train_masks` on a built-in
  `Task`, 2 functions, no control mask) of the 1.2M-weight ``ResidualCNN`` 64-128-256 (28 x 28
  inputs, one block per stage), batch 128, on ``--device`` and on the CPU with all its cores.
  Seconds per step are the slope between a short and a longer run (fixed costs, as moving the
  model and the final evaluation, cancel; ``from: "mean"`` where noise made the slope useless);
  the step counts are sized from a timed 2-step run so each device stays in its share of the time.
  Target: GPU >= 20x the CPU.
* ``knockout_cnn``: that CNN traced (907 units), clustered at k = 8, every sub-module against 20
  random lesions on 1024 test images. On ``--device``: the whole `modscope.knockout`, measured. On
  the CPU: the sub-modules in turns over the unit groups until its time share is spent, each timed,
  then extrapolated per group (every sub-module of a group costs about the same); the receipt says
  which sub-modules were measured and the GPU's time on exactly those, side by side.
* ``knockout_resnet18``: ResNet-18's shape for 32 x 32 images (`_common.resnet18`), traced,
  clustered at k = 12, every sub-module against 100 random lesions on 10,000 images, on
  ``--device`` only (the CPU would take days). Measured: the intact pass on all 10,000 images, and
  sub-modules in turns over the unit groups on ``--resnet-images`` of them until the time share is
  spent; extrapolated: per group, its mean time x its sub-modules x 10,000 / the images measured.
  Target: <= 15 min. Also measured on one late sub-module: the whole forward per lesion against the
  replayed prefix (`modscope.lesions.prefix`), and bf16 autocast against fp32 (metrics compared).

The random weights and images cost what trained ones do: the timings do not depend on the values.

    PYTHONPATH=. python benchmarks/gpu_models.py --device cuda --out benchmarks/results
    PYTHONPATH=. python benchmarks/gpu_models.py --device cpu --quick --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's modscope

import torch  # noqa: E402
from _common import RESULTS, resnet18  # noqa: E402

from modscope import cluster, fit_model, knockout, train_masks  # noqa: E402
from modscope.data import load_data  # noqa: E402
from modscope.data.functions import Function  # noqa: E402
from modscope.graphs.tracing import trace_network  # noqa: E402
from modscope.lesions.evaluator import UnitEvaluator  # noqa: E402
from modscope.runtime.modules import resolve_device  # noqa: E402
from modscope.runtime.receipts import write_receipt  # noqa: E402
from modscope.tasks.base import Task  # noqa: E402
from modscope.training.architectures import ResidualCNN  # noqa: E402

NAME = "gpu_models"


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def clock(dev: torch.device, fn) -> tuple[float, Any]:
    """Seconds of ``fn()`` (the device's queue drained before and after) and its result."""
    sync(dev)
    t = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t, out


def device_note(dev: torch.device) -> dict[str, Any]:
    """The device, driver and torch build the numbers come from."""
    note: dict[str, Any] = {
        "device": str(dev),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        note.update(
            name=p.name,
            capability=f"{p.major}.{p.minor}",
            memory_gib=round(p.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            tf32_conv=torch.backends.cudnn.allow_tf32,
        )
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20, check=True,
            )
            note["driver"] = smi.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            note["driver"] = None
    return note


def places(dev: torch.device) -> list[torch.device]:
    """The device under test first, then the CPU (the CPU once when it is the device)."""
    return [dev] if dev.type == "cpu" else [dev, torch.device("cpu")]


def cnn(widths=(64, 128, 256)) -> torch.nn.Module:
    torch.manual_seed(0)
    return ResidualCNN(image=(1, 28, 28), widths=tuple(widths), blocks=1, classes=10)


def images(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), rng.integers(0, 10, n)


# -- part (a): a training step and a mask step ------------------------------------------------------
def image_task(x, y, xt, yt) -> Task:
    """The images as a built-in task (held whole on the device while masks train), with two
    functions: classes 0-4 and 5-9."""

    def rows(labels, low):
        return torch.from_numpy(np.flatnonzero((labels < 5) == low))

    fns = {n: Function(n, rows(y, low), rows(yt, low)) for n, low in (("low", True), ("high", False))}
    return Task("images", torch.from_numpy(x), torch.from_numpy(y)[:, None], torch.from_numpy(xt),
                torch.from_numpy(yt)[:, None], "ce", 784, 10, (10,), functions=fns)


def part_steps(args, dev: torch.device, cap: float) -> dict[str, Any]:
    x, y = images(args.train_images, (784,), 0)
    xt, yt = images(args.test_images, (784,), 1)
    data = {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}
    task = image_task(x, y, xt, yt)
    fns = ["low", "high"]
    model = cnn(args.cnn_widths)
    out: dict[str, Any] = {
        "model": f"ResidualCNN(image=(1, 28, 28), widths={tuple(args.cnn_widths)}, blocks=1)",
        "weights": int(sum(p.numel() for p in model.parameters())),
        "batch": 128,
        "mask_functions": {"low": "classes 0-4", "high": "classes 5-9"},
    }
    runs = {
        "train_step": lambda place, s: fit_model(model, data, steps=s, batch_size=128, device=place),
        "mask_step": lambda place, s: train_masks(
            model, task, fns, steps=s, batch_size=128, control=False, device=place, threads=1
        ),
    }
    share = cap / (len(runs) * len(places(dev)))
    for what, run in runs.items():
        for place in places(dev):
            first, _ = clock(place, lambda place=place, run=run: run(place, 1))  # warm-up: init, autotune
            two, _ = clock(place, lambda place=place, run=run: run(place, 2))  # sizes the runs below
            per = max(two / 2, 1e-4)
            long = int(min(args.max_steps, max(2, share / (1.5 * per))))
            short = max(1, long // 4)
            t_short, _ = clock(place, lambda place=place, run=run, s=short: run(place, s))
            t_long, _ = clock(place, lambda place=place, run=run, s=long: run(place, s))
            slope = (t_long - t_short) / (long - short) if long > short else 0.0
            # the slope drops each call's fixed costs; where noise makes it useless, the mean keeps them
            how = "slope" if slope > 0 else "mean"
            out.setdefault(what, {})[place.type] = {
                "seconds_per_step": slope if slope > 0 else t_long / long,
                "from": how,
                "steps": [short, long],
                "seconds": [t_short, t_long],
                "first_call_s": first,
            }
        if dev.type != "cpu":
            r = out[what]
            r["gpu_over_cpu"] = r["cpu"]["seconds_per_step"] / r[dev.type]["seconds_per_step"]
    return out


# -- knockouts: lesions as knockout draws them -----------------------------------------------------
def submodules(graph, labels) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """``(group, cluster, its units, the group's labelled units)`` of every lesionable sub-module,
    as `modscope.knockout` finds them (groups written by a layer and read by another)."""
    written = {d for _, d in graph.links}
    out = []
    for g in range(len(graph.sizes)):
        if g not in written or g == len(graph.sizes) - 1:
            continue
        lab = labels[graph.offsets[g] : graph.offsets[g + 1]]
        for c in np.unique(lab[lab >= 0]):
            out.append((g, int(c), np.flatnonzero(lab == c), np.flatnonzero(lab >= 0)))
    return out


def lesion_set(graph, sub, n_random: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_random + 1, n_nodes)``: the true lesion, then same-size random ones in its group."""
    g, _, units, labelled = sub
    les = np.zeros((n_random + 1, graph.n_nodes), dtype=bool)
    les[0, graph.offsets[g] + units] = True
    for r in range(1, n_random + 1):
        les[r, graph.offsets[g] + rng.choice(labelled, units.size, replace=False)] = True
    return les


def in_turns(subs: list) -> list[int]:
    """Sub-module indices in turns over their groups: one of each group, then the next of each..."""
    by: dict[int, list[int]] = {}
    for i, s in enumerate(subs):
        by.setdefault(s[0], []).append(i)
    order, k = [], 0
    while len(order) < len(subs):
        order += [v[k] for v in by.values() if k < len(v)]
        k += 1
    return order


def evaluator(model, traced, data, dev, **kw) -> UnitEvaluator:
    # what knockout builds by default: batches of 256, lesions per forward as the device allows
    return UnitEvaluator(model.to(dev), traced, data, batch_size=kw.pop("batch_size", 256),
                         max_elements=None, **kw)


def timed_sample(model, traced, data, dev, subs, lesions, cap: float, only=None, **kw) -> dict[int, float]:
    """Seconds per sub-module, in turns over the groups, until ``cap`` seconds are spent (``only``: these
    sub-modules, all of them)."""
    ev = evaluator(model, traced, data, dev, **kw)
    clock(dev, ev.intact)  # warm-up
    took: dict[int, float] = {}
    start = time.perf_counter()
    for i in only if only is not None else in_turns(subs):
        if only is None and time.perf_counter() - start > cap and took:
            break
        took[i], _ = clock(dev, lambda i=i: ev.evaluate_nodes(lesions[i]))
    model.cpu()
    return took


def extrapolate(subs, took: dict[int, float], scale: float = 1.0) -> dict[str, Any]:
    """Every sub-module's time: per group, its measured mean x its count (groups not measured: the
    mean over all measured), times ``scale``."""
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(subs):
        groups.setdefault(s[0], []).append(i)
    overall = float(np.mean(list(took.values())))
    total, unmeasured = 0.0, []
    for g, members in groups.items():
        seen = [took[i] for i in members if i in took]
        if not seen:
            unmeasured.append(g)
        total += (float(np.mean(seen)) if seen else overall) * len(members)
    return {"seconds": total * scale, "groups_not_measured": unmeasured}


# -- part (b): the CNN's knockout ------------------------------------------------------------------
def part_knockout_cnn(args, dev: torch.device, cap: float) -> dict[str, Any]:
    model = cnn(args.cnn_widths).eval()
    example = torch.zeros(1, 784)
    x, y = images(args.cnn_images, (784,), 2)
    data = load_data((x, y))
    traced = trace_network(model, example)
    part = cluster(traced.graph, 8, seed=0)
    subs = submodules(traced.graph, part.labels)
    rng = np.random.default_rng(0)
    lesions = [lesion_set(traced.graph, s, 20, rng) for s in subs]
    out: dict[str, Any] = {
        "units": traced.graph.n_nodes, "clusters": 8, "n_random": 20, "images": args.cnn_images,
        "submodules": len(subs),
    }
    # the whole knockout on the device (a first small run warms it up)
    knockout(model, (x[:8], y[:8]), part, example_input=example, n_random=20, device=dev)
    t, res = clock(dev, lambda: knockout(model, data, part, example_input=example, n_random=20, seed=0,
                                         device=dev))
    out["device_whole_knockout_s"] = t
    out["device_submodules"] = len(res.submodules)
    # the CPU in turns over the groups within its share, and the device on exactly those
    cpu = torch.device("cpu")
    took_cpu = timed_sample(model, traced, data, cpu, subs, lesions, cap * 0.75)
    measured = sorted(took_cpu)
    took_dev = timed_sample(model, traced, data, dev, subs, lesions, cap, only=measured)
    out["measured_submodules"] = [[int(subs[i][0]), int(subs[i][1])] for i in measured]
    out["measured_cpu_s"] = sum(took_cpu.values())
    out["measured_device_s"] = sum(took_dev.values())
    out["measured_cpu_over_device"] = out["measured_cpu_s"] / max(out["measured_device_s"], 1e-9)
    t_intact, _ = clock(cpu, evaluator(model, traced, data, cpu).intact)
    est = extrapolate(subs, took_cpu)
    out["cpu_whole_knockout_extrapolated_s"] = est["seconds"] + t_intact
    out["cpu_groups_not_measured"] = est["groups_not_measured"]
    out["cpu_over_device_whole"] = out["cpu_whole_knockout_extrapolated_s"] / out["device_whole_knockout_s"]
    out["measured"] = ["device_whole_knockout_s", "measured_cpu_s", "measured_device_s"]
    out["extrapolated"] = (
        "cpu_whole_knockout_extrapolated_s = the CPU's intact pass + per unit group, the mean time of "
        "its measured sub-modules x its sub-modules"
    )
    return out


# -- part (c): ResNet-18 ---------------------------------------------------------------------------
def part_knockout_resnet18(args, dev: torch.device, cap: float) -> dict[str, Any]:
    model = resnet18(classes=10, imagenet=False).eval()
    hw = args.resnet_hw
    example = torch.zeros(1, 3, hw, hw)
    t0 = time.perf_counter()
    traced = trace_network(model, example)
    part = cluster(traced.graph, 12, seed=0)
    setup_s = time.perf_counter() - t0
    subs = submodules(traced.graph, part.labels)
    rng = np.random.default_rng(0)
    lesions = [lesion_set(traced.graph, s, args.resnet_random, rng) for s in subs]
    x, y = images(args.resnet_total, (3, hw, hw), 3)
    n = args.resnet_images
    out: dict[str, Any] = {
        "units": traced.graph.n_nodes, "clusters": 12, "n_random": args.resnet_random,
        "images": args.resnet_total,
        "image_size": hw, "images_measured": n, "submodules": len(subs), "trace_and_cluster_cpu_s": setup_s,
    }
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    whole = load_data((x, y))
    t_intact, _ = clock(dev, evaluator(model, traced, whole, dev, batch_size=512).intact)
    model.cpu()
    out["intact_all_images_s"] = t_intact
    sample = load_data((x[:n], y[:n]))
    took = timed_sample(model, traced, sample, dev, subs, lesions, cap * 0.6, batch_size=512)
    out["measured_submodules"] = [[int(subs[i][0]), int(subs[i][1]), took[i]] for i in sorted(took)]
    est = extrapolate(subs, took, args.resnet_total / n)
    out["whole_knockout_extrapolated_s"] = est["seconds"] + t_intact
    out["groups_not_measured"] = est["groups_not_measured"]
    out["target_s"] = 900
    # one late sub-module: the whole forward per lesion vs the replayed prefix; bf16 vs fp32
    late = max(range(len(subs)), key=lambda i: (subs[i][0], -subs[i][1]))
    few = load_data((x[: max(1, n // 4)], y[: max(1, n // 4)]))
    timing = {}
    for name, kw in (("prefix", {}), ("whole_forward", {"reuse": False}), ("bf16", {"precision": "bf16"})):
        ev = evaluator(model, traced, few, dev, batch_size=512, **kw)
        clock(dev, ev.intact)
        timing[name] = clock(dev, lambda ev=ev: ev.evaluate_nodes(lesions[late]))
        model.cpu()
    out["late_submodule"] = [int(subs[late][0]), int(subs[late][1])]
    out["late_prefix_s"] = timing["prefix"][0]
    out["late_whole_forward_s"] = timing["whole_forward"][0]
    out["late_prefix_speedup"] = timing["whole_forward"][0] / max(timing["prefix"][0], 1e-9)
    out["late_bf16_s"] = timing["bf16"][0]
    m32, m16 = timing["prefix"][1].metric, timing["bf16"][1].metric
    out["late_bf16_max_metric_change"] = float(np.max(np.abs(m32 - m16)))
    out["late_same_metrics_prefix_vs_whole"] = bool(np.allclose(m32, timing["whole_forward"][1].metric))
    if dev.type == "cuda":
        out["peak_device_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    out["measured"] = ["intact_all_images_s", "measured_submodules (seconds each)", "late_*"]
    out["extrapolated"] = (
        "whole_knockout_extrapolated_s = intact pass on all images + per unit group, the mean time of "
        "its measured sub-modules x its sub-modules x images / images_measured"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--quick", action="store_true",
        help="a check that it runs: a CNN 8-16-32, ResNet-18 on 8 x 8 images, few images and steps",
    )
    ap.add_argument("--out", default=str(RESULTS), help="folder for gpu_models.json (default: %(default)s)")
    ap.add_argument("--note", default="", help="free text for the receipt")
    ap.add_argument("--budget", type=float, default=130.0, help="seconds for the three parts (default 130)")
    ap.add_argument("--parts", default="steps,knockout_cnn,knockout_resnet18")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    sizes = dict(train_images=4096, test_images=256, max_steps=60, cnn_images=1024, resnet_total=10000,
                 resnet_images=2048, resnet_random=100, cnn_widths=(64, 128, 256), resnet_hw=32)
    if args.quick:
        sizes = dict(train_images=256, test_images=32, max_steps=3, cnn_images=48, resnet_total=64,
                     resnet_images=8, resnet_random=4, cnn_widths=(8, 16, 32), resnet_hw=8)
        args.budget = min(args.budget, 20.0)
    for k, v in sizes.items():
        setattr(args, k, v)
    torch.set_num_threads(os.cpu_count() or 1)  # the CPU with all its cores
    parts = {"steps": (part_steps, 0.3), "knockout_cnn": (part_knockout_cnn, 0.3),
             "knockout_resnet18": (part_knockout_resnet18, 0.4)}
    chosen = [p.strip() for p in args.parts.split(",") if p.strip()]
    results: dict[str, Any] = {"device": device_note(dev), "quick": bool(args.quick)}
    path = Path(args.out) / f"{NAME}.json"
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "note")}
    for name in chosen:
        fn, share = parts[name]
        t = time.perf_counter()
        try:
            results[name] = fn(args, dev, args.budget * share)
        except Exception as exc:  # one part's failure must not lose the others' numbers
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500],
                             "traceback": traceback.format_exc()[-2000:]}
        results[name]["part_s"] = time.perf_counter() - t
        print(f"{name}: {results[name]['part_s']:.1f} s", flush=True)
        write_receipt(path, results, settings=settings, note=args.note)  # kept as each part ends
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
