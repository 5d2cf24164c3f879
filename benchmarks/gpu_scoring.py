"""The spectral path on a GPU against the best CPU setting of the same machine, side by side in one
run (issue 26): four parts, each in its own process under a time cap, so the whole run stays under
about five minutes on an H200 with 16 cores.

- ``layer``: ``score`` of the Glorot 784-256x4-10 MLP (k 12) against ``--shuffles`` (200) ``layer``
  shuffles, on the device (`TorchBatchExecutor`: shuffles drawn on host threads, Gram stacks solved
  and every k-means restart of a batch run as tensor ops) and with ``jobs`` = every core; the
  samples of the two runs compared one by one.
- ``blocks``: ``score_blocks`` of a GPT-2-small-sized file (12 blocks, d 768, d_ff 3072, random
  weights as ``transformer_graphs.py`` writes them) with ``--block-shuffles`` (50) shuffles per
  block on the device, block by block until the part's budget is spent (the rest extrapolated from
  the measured blocks' mean); the CPU side is one block with one shuffle per core, extrapolated to
  12 blocks x 51 clusterings (marked so).
- ``whole``: the same file's whole merged-stream graph (46,848 units), one k 12 reference
  clustering on the device (subspace iteration on ``D^-1/2 A D^-1/2`` applied block by block, then
  100 k-means restarts as tensor ops), and on the CPU (every core) in a separate capped process.
- ``llama``: a LLaMA-7B-shaped safetensors file (32 blocks, d 4096, SwiGLU d_ff 11008, fp16, random
  normal(0, 0.02) weights drawn by torch on the device; the MLP tensors and their RMSNorm gains, 8.7
  GB: attention and embeddings are not written, as nothing here reads them), every block's MLP graph
  against ``--llama-shuffles`` (20) shuffles by ``stream_block_scores`` (memory-mapped, one block at a
  time, resumable from its cache), block by block until the budget is spent; the time for all 32
  extrapolated from the measured blocks; the peak host memory (``ru_maxrss``) measured.

Every figure says whether it was measured or extrapolated. The receipt names the device, its
driver and the torch build.

    python benchmarks/gpu_scoring.py --device cuda --out DIR      # DIR/gpu_scoring.json

CPU-only check that it runs (small shapes, a few shuffles): ``--device cpu --quick --out /tmp/x``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import GLOROT_WIDTHS, glorot_graph, widths_name, write

PARTS = ("layer", "blocks", "whole", "llama")
# seconds per part on the full run (the child's own budget; the cap that kills it is a bit above):
# 50 + 90 + 40 + 30 + 75 = 285 s at most, start-up included
BUDGET = {"layer": 50, "blocks": 90, "whole": 40, "whole_cpu": 30, "llama": 75}
QUICK_BUDGET = {"layer": 60, "blocks": 60, "whole": 60, "whole_cpu": 60, "llama": 90}
TARGETS = {"layer_ratio": 10.0, "blocks_s": 60.0, "whole_s": 5.0, "llama_s": 900.0, "llama_host_gib": 16.0}


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _shape(quick: bool) -> dict:
    if quick:
        return {"gpt2": dict(layers=2, d=128, f=512, vocab=100, positions=32),
                "llama": dict(layers=4, d=256, f=688), "mlp": (100, 64, 64, 64, 10)}
    return {"gpt2": dict(layers=12, d=768, f=3072, vocab=50257, positions=1024),
            "llama": dict(layers=32, d=4096, f=11008), "mlp": GLOROT_WIDTHS}


def write_llama(path: Path, layers: int, d: int, f: int, device: str) -> float:
    """A LLaMA-layout safetensors file of ``layers`` gated MLP blocks (fp16), written tensor by
    tensor (the header first, then each tensor drawn on ``device`` and appended): host memory holds
    one tensor at a time. Returns the seconds it took."""
    import torch

    start = time.perf_counter()
    names, shapes = [], []
    for i in range(layers):
        p = f"model.layers.{i}."
        for name, shape in (
            ("input_layernorm.weight", (d,)),
            ("post_attention_layernorm.weight", (d,)),
            ("mlp.gate_proj.weight", (f, d)),
            ("mlp.up_proj.weight", (f, d)),
            ("mlp.down_proj.weight", (d, f)),
        ):
            names.append(p + name)
            shapes.append(shape)
    header, offset = {}, 0
    for name, shape in zip(names, shapes, strict=True):
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    g = torch.Generator(device=device).manual_seed(0)
    with open(path, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        for name, shape in zip(names, shapes, strict=True):
            if name.endswith("layernorm.weight"):
                t = torch.ones(shape, dtype=torch.float16)
            else:
                t = (torch.randn(shape, generator=g, device=device, dtype=torch.float32) * 0.02).half()
            fh.write(t.cpu().numpy().tobytes())
    return time.perf_counter() - start


def _device_note(device: str) -> dict:
    import torch

    out = {"device": device, "torch": torch.__version__, "cuda_build": torch.version.cuda,
           "cpu_cores": os.cpu_count()}
    if device.startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,memory.total",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            out["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, IndexError):
            out["driver"] = None
    return out


def part_layer(args, budget: float) -> dict:
    import modscope
    from modscope.scoring.batched import TorchBatchExecutor

    start = time.perf_counter()
    widths = _shape(args.quick)["mlp"]
    graph = glorot_graph(widths, 0)
    n = args.shuffles
    jobs = os.cpu_count() or 1
    ex = TorchBatchExecutor(args.device, batch_size=args.batch)
    modscope.score(graph, n_clusters=12, n_shuffles=2, seed=1, executor=ex)  # warm-up: CUDA, solvers
    _sync(args.device)
    ex.timings_ = None  # the timed run's own breakdown, not the warm-up's
    t = time.perf_counter()
    dev = modscope.score(graph, n_clusters=12, n_shuffles=n, seed=0, executor=ex)
    _sync(args.device)
    dev_s = time.perf_counter() - t
    from modscope.clustering.batched import EXACT_SIDE_GPU

    out = {"network": widths_name(widths), "shuffles": n, "k": 12, "batch": args.batch,
           "device_s": dev_s, "device_measured": True, "device_solver": "auto",
           "exact_side_gpu": EXACT_SIDE_GPU, "device_breakdown_s": dict(ex.timings_ or {})}
    modscope.score(graph, n_clusters=12, n_shuffles=jobs, seed=1, jobs=jobs)  # warm-up: the workers
    t = time.perf_counter()
    cpu = modscope.score(graph, n_clusters=12, n_shuffles=n, seed=0, jobs=jobs)
    cpu_s = time.perf_counter() - t
    # the other device eigensolver on the same samples (auto picks subspace iteration above
    # EXACT_SIDE_GPU nodes on the Gram side): which is faster there, and do the samples agree
    if time.perf_counter() - start < budget / 2:
        other = "eigh" if ex.solver == "auto" else "auto"
        ex2 = TorchBatchExecutor(args.device, batch_size=args.batch, solver=other)
        t = time.perf_counter()
        dev2 = modscope.score(graph, n_clusters=12, n_shuffles=n, seed=0, executor=ex2)
        _sync(args.device)
        gap = float(np.abs(dev2.null.samples - dev.null.samples).max())
        out[f"device_{other}_s"] = time.perf_counter() - t
        out[f"device_{other}_samples_max_abs_diff"] = gap
    diff = np.abs(dev.null.samples - cpu.null.samples)
    out.update(cpu_jobs=jobs, cpu_s=cpu_s, cpu_measured=True, ratio=cpu_s / dev_s,
               own_labels_equal=bool((dev.partition.labels == cpu.partition.labels).all()),
               own_ncut_diff=abs(dev.value - cpu.value), samples_max_abs_diff=float(diff.max()),
               samples_equal_1e9=int((diff <= 1e-9).sum()), z_device=dev.null.z, z_cpu=cpu.null.z)
    return out


def _gpt2(tmp: Path, quick: bool) -> Path:
    from transformer_graphs import make_gpt2

    path = tmp / "gpt2.safetensors"
    if not path.exists():  # written under another name, then renamed: never read half-written
        part = tmp / f"gpt2.{os.getpid()}.safetensors"
        make_gpt2(part, seed=0, **_shape(quick)["gpt2"])
        part.replace(path)
    return path


def part_blocks(args, budget: float) -> dict:
    import modscope
    from modscope.graphs.transformer import mlp_blocks

    start = time.perf_counter()
    path = _gpt2(Path(args.tmp), args.quick)
    blocks = mlp_blocks(path)
    s = args.block_shuffles
    jobs = os.cpu_count() or 1
    out = {"blocks": len(blocks), "shuffles": s, "k": 12, "d_model": blocks[0].d_model,
           "d_ff": blocks[0].d_ff}
    # warm-up on a tiny graph
    modscope.score(glorot_graph((40, 30, 20), 0), n_clusters=3, n_shuffles=2, device=args.device)
    t0 = time.perf_counter()
    times, rows = [], []
    for block in blocks:
        if times and time.perf_counter() - start + np.mean(times) > budget - 15:
            break
        t = time.perf_counter()
        res = modscope.score_blocks([block], n_clusters=12, n_shuffles=s, seed=0, device=args.device)
        _sync(args.device)
        times.append(time.perf_counter() - t)
        rows.append({"block": block.name, "ncut": res.results[0].value, "z": res.results[0].null.z,
                     "seconds": times[-1]})
    measured = len(times)
    out.update(device_blocks_measured=measured, device_block_s=times, device_rows=rows,
               device_measured_s=time.perf_counter() - t0,
               device_s=float(np.mean(times) * len(blocks)),
               device_s_is="measured" if measured == len(blocks) else
               f"extrapolated: mean of {measured} measured blocks x {len(blocks)}")
    # the CPU: block 0 with one shuffle per core (one clustering per worker), extrapolated
    cpu_s = None
    if time.perf_counter() - start < budget - 5:
        t = time.perf_counter()
        cpu = modscope.score(blocks[0].graph(), n_clusters=12, n_shuffles=jobs, seed=0, jobs=jobs)
        cpu_s = time.perf_counter() - t
        rounds = (s + jobs - 1) // jobs
        out.update(cpu_jobs=jobs, cpu_block0_s=cpu_s, cpu_block0_shuffles=jobs,
                   cpu_s=cpu_s * rounds * len(blocks),
                   cpu_s_is=f"extrapolated: block 0 with {jobs} shuffles on {jobs} workers "
                   f"({cpu_s:.1f} s) x {rounds} rounds x {len(blocks)} blocks",
                   block0_ncut_cpu=cpu.value, block0_ncut_diff=abs(cpu.value - rows[0]["ncut"]))
    out["ratio"] = out["cpu_s"] / out["device_s"] if cpu_s else None
    return out


def part_whole(args, budget: float) -> dict:
    import modscope

    path = _gpt2(Path(args.tmp), args.quick)
    t = time.perf_counter()
    graph = modscope.load_graph(path)
    out = {"read_s": time.perf_counter() - t, "nodes": graph.n_nodes, "edges": graph.n_edges,
           "bipartite": graph.colours is not None}
    modscope.score(glorot_graph((40, 30, 20), 0), n_clusters=3, n_shuffles=0, device=args.device)
    t = time.perf_counter()
    res = modscope.score(graph, n_clusters=12, n_shuffles=0, seed=0, device=args.device)
    _sync(args.device)
    out.update(device_s=time.perf_counter() - t, device_measured=True, ncut=res.value,
               clustering=res.partition.clustering, labels_sha=_labels_digest(res.partition.labels))
    if args.device.startswith("cuda"):
        import torch

        out["gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    out["peak_gib"] = _peak_gib()
    return out


def part_whole_cpu(args, budget: float) -> dict:
    import modscope

    path = _gpt2(Path(args.tmp), args.quick)
    graph = modscope.load_graph(path)
    t = time.perf_counter()
    part = modscope.cluster(graph, 12, seed=0, threads=os.cpu_count() or 1)
    return {"cpu_s": time.perf_counter() - t, "cpu_measured": True, "ncut": part.ncut,
            "labels_sha": _labels_digest(part.labels)}


def _labels_digest(labels) -> str:
    import hashlib

    return hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]


def part_llama(args, budget: float) -> dict:
    from modscope.scoring.blocks import stream_block_scores

    start = time.perf_counter()
    shape = _shape(args.quick)["llama"]
    path = Path(args.tmp) / "llama.safetensors"
    write_s = write_llama(path, device=args.device, **shape)
    out = {"shape": shape, "file_gib": path.stat().st_size / 2**30, "write_s": write_s,
           "shuffles": args.llama_shuffles, "k": 12}
    cache = Path(args.tmp) / "llama_cache"
    times: list[float] = []
    rows: list = []
    for i in range(shape["layers"]):
        if times and time.perf_counter() - start + max(times) > budget - 5:
            break
        t = time.perf_counter()
        res = stream_block_scores(path, n_clusters=12, n_shuffles=args.llama_shuffles, seed=0,
                                  device=args.device, cache=cache, limit=i + 1)
        _sync(args.device)
        times.append(time.perf_counter() - t)
        rows = res.rows
    measured = len(times)
    total = float(np.mean(times) * shape["layers"])
    out.update(blocks_measured=measured, block_s=times, rows=rows, seconds=total,
               seconds_is="measured" if measured == shape["layers"] else
               f"extrapolated: mean of {measured} measured blocks x {shape['layers']}",
               host_peak_gib=_peak_gib())
    # resumable: a rerun over the blocks done reads every row back from the cache
    t = time.perf_counter()
    again = stream_block_scores(path, n_clusters=12, n_shuffles=args.llama_shuffles, seed=0,
                                device=args.device, cache=cache, limit=measured)
    out.update(resume_s=time.perf_counter() - t, resume_reused=again.reused, resume_computed=again.computed)
    if args.device.startswith("cuda"):
        import torch

        out["gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


CHILDREN = {"layer": part_layer, "blocks": part_blocks, "whole": part_whole,
            "whole_cpu": part_whole_cpu, "llama": part_llama}


def run_child(what: str, args, budget: float) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--tmp", args.tmp, "--device", args.device,
           "--shuffles", str(args.shuffles), "--block-shuffles", str(args.block_shuffles),
           "--llama-shuffles", str(args.llama_shuffles), "--batch", str(args.batch),
           "--budget", str(budget), *(["--quick"] if args.quick else [])]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    cap = budget + 20
    try:
        stdout, stderr = proc.communicate(timeout=cap)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"finished": False, "killed_after_s": cap}
    if proc.returncode != 0:
        return {"finished": False, "error": stderr.strip().splitlines()[-3:] or ["?"]}
    out = json.loads(stdout.strip().splitlines()[-1])
    out.update(finished=True, process_s=time.perf_counter() - t)
    return out


def summary(results: dict) -> list[str]:
    """The closing table: part, device, CPU, ratio, target."""
    rows = [f"{'part':<8}{'device s':>11}{'CPU s':>11}{'ratio':>8}  target / note"]

    def f(x):
        return f"{x:.2f}" if isinstance(x, int | float) else "-"

    a = results.get("layer", {})
    rows.append(f"{'layer':<8}{f(a.get('device_s')):>11}{f(a.get('cpu_s')):>11}{f(a.get('ratio')):>8}  "
                f">= {TARGETS['layer_ratio']:.0f}x jobs={a.get('cpu_jobs')}; samples max diff "
                f"{a.get('samples_max_abs_diff', float('nan')):.1e}")
    b = results.get("blocks", {})
    rows.append(f"{'blocks':<8}{f(b.get('device_s')):>11}{f(b.get('cpu_s')):>11}{f(b.get('ratio')):>8}  "
                f"<= {TARGETS['blocks_s']:.0f} s; {b.get('device_s_is', b.get('error', '-'))}")
    c, cc = results.get("whole", {}), results.get("whole_cpu", {})
    ratio = cc["cpu_s"] / c["device_s"] if c.get("device_s") and cc.get("cpu_s") else None
    rows.append(f"{'whole':<8}{f(c.get('device_s')):>11}{f(cc.get('cpu_s')):>11}{f(ratio):>8}  "
                f"<= {TARGETS['whole_s']:.0f} s; n-cut device {f(c.get('ncut'))} cpu {f(cc.get('ncut'))}")
    d = results.get("llama", {})
    rows.append(f"{'llama':<8}{f(d.get('seconds')):>11}{'-':>11}{'-':>8}  <= {TARGETS['llama_s']:.0f} s, "
                f"host {f(d.get('host_peak_gib'))} GiB; {d.get('seconds_is', d.get('error', '-'))}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small shapes, few shuffles: a check that it runs")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    ap.add_argument("--shuffles", type=int, default=200, help="layer shuffles of part layer")
    ap.add_argument("--block-shuffles", type=int, default=50)
    ap.add_argument("--llama-shuffles", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50, help="null graphs per device batch in part layer")
    ap.add_argument("--out", default=None, help="a folder (gets gpu_scoring.json) or a .json path "
                    "(default benchmarks/results/gpu_scoring.json)")
    ap.add_argument("--note", default="")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args, args.budget), default=float))
        return
    if args.quick:
        args.shuffles, args.block_shuffles, args.llama_shuffles, args.batch = 8, 3, 2, 4
    out = args.out or str(Path(__file__).resolve().parent / "results" / "gpu_scoring.json")
    args.out = out if out.endswith(".json") else str(Path(out) / "gpu_scoring.json")
    from modscope.runtime.modules import resolve_device

    resolve_device(args.device)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    budgets = QUICK_BUDGET if args.quick else BUDGET
    results: dict = {"machine": _device_note(args.device), "quick": args.quick, "targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for part in parts:
            for what in ([part, "whole_cpu"] if part == "whole" else [part]):
                print(f"running {what} (budget {budgets[what]} s) ...", flush=True)
                results[what] = run_child(what, args, budgets[what])
                print("  " + json.dumps(results[what], default=float)[:300], flush=True)
    results["summary"] = summary(results)
    print("\n".join(results["summary"]))
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "note", "tmp", "child", "budget")}
    write(args, results, settings)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
