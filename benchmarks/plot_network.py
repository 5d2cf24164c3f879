"""`plot network` of traced networks with thousands of units: building the figure and writing its
PNG, one process.

**Models.** `DigitTransformer` (d 256, 8 heads, 4 layers, MLP 1024; 5,396 units on one merged
residual stream, 2.6M edges) and `ResidualCNN` (3 x 32 x 32 input, widths 64-128-256, two blocks
per stage), torch's initialisation under ``torch.manual_seed(0)``, traced once
(``modscope.network``; the trace is timed too, not counted in the drawing).

**Measured.** ``figure_s``: `modscope.report.plot.network` (the layout with the streams unrolled,
every edge listed, the strongest ``max_edges`` kept, one LineCollection) with 12 spectral clusters
colouring the units (the labels computed once beforehand); ``png_s``: `modscope.report.plot.save`
at ``--dpi``. The median of ``--repeats``; ``lines`` is what was drawn, ``edges`` the graph's.
One torch thread; the load average before and after is recorded, as the machine may be shared.

Writes ``benchmarks/results/plot_network.json``:

    .venv/bin/python benchmarks/plot_network.py

Quick check: ``.venv/bin/python benchmarks/plot_network.py --quick --out /tmp/plot_network.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from _common import add_output_flags, timing, write

import modscope
from modscope.report import plot
from modscope.training.architectures import DigitTransformer, ResidualCNN


def models(quick: bool) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    if quick:
        return {"transformer": (DigitTransformer(d=32, heads=4, layers=2, ff=64), torch.zeros(1, 42))}
    return {
        "transformer": (DigitTransformer(d=256, heads=8, layers=4, ff=1024), torch.zeros(1, 42)),
        "cnn": (ResidualCNN(image=(3, 32, 32), widths=(64, 128, 256), blocks=2), torch.zeros(1, 3, 32, 32)),
    }


def bench(model: torch.nn.Module, example: torch.Tensor, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    net = modscope.network(model.eval(), example_input=example)
    trace_s = time.perf_counter() - start
    labels = modscope.cluster(net.graph, 12, seed=0).labels
    figure, png = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            start = time.perf_counter()
            fig = plot.network(net, labels, max_edges=args.max_edges)
            figure.append(time.perf_counter() - start)
            start = time.perf_counter()
            plot.save(fig, Path(tmp) / "net.png", dpi=args.dpi)
            png.append(time.perf_counter() - start)
    (lines,) = [c for c in fig.axes[0].collections if type(c).__name__ == "LineCollection"]
    return {
        "units": int(net.graph.n_nodes),
        "unit_groups": int(net.graph.n_layers),
        "edges": int(net.graph.n_edges),
        "rows": len(fig.axes[0].get_yticks()),
        "lines": len(lines.get_segments()),
        "trace_s": round(trace_s, 3),
        "figure_s": timing(figure),
        "png_s": timing(png),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dpi", type=int, default=100)
    ap.add_argument("--max-edges", type=int, default=plot.DEFAULT_MAX_EDGES)
    ap.add_argument("--quick", action="store_true", help="a small transformer, 1 repeat")
    add_output_flags(ap, "plot_network")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    results = {name: bench(m, x, args) for name, (m, x) in models(args.quick).items()}
    results["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
    write(args, results)


if __name__ == "__main__":
    main()
