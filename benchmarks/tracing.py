"""Tracing overhead: the unit graph of a ResNet-18-sized model (``load_graph(module,
example_input=...)``), beside what the trace is built on.

The model is ResNet-18's shape (BasicBlock x [2, 2, 2, 2], widths 64-512, 1000 classes; 11.7M
parameters, torch's default initialisation under ``torch.manual_seed(0)``), written in this script
(torchvision is not a dependency). Each repeat is a fresh process (``--repeats``), so the times
include what a user pays the first time: in the child, after ``import torch, modscope``, the clock
times ``torch.export.export`` alone on one copy of the model and then the whole of
``load_graph(model, example_input=...)`` on another (export + modscope's interpretation; the
export's first call pays torch's one-time setup, so it runs first) and, for scale,
``torch.fx.symbolic_trace`` (a lighter tracer that cannot follow Hugging Face models). Input
1 x 3 x 224 x 224. Target (issue 16): the graph under 5 s.

    .venv/bin/python benchmarks/tracing.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _common import add_output_flags, resnet18, timing, write


def child() -> None:
    t0 = time.perf_counter()
    import torch

    import modscope

    imports = time.perf_counter() - t0
    x = torch.zeros(1, 3, 224, 224)
    model = resnet18().eval()
    t = time.perf_counter()
    torch.export.export(model, (x,), strict=False)
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    graph = modscope.load_graph(resnet18(), example_input=x)
    graph_s = time.perf_counter() - t
    t = time.perf_counter()
    torch.fx.symbolic_trace(model)
    fx_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "imports_s": imports,
                "first_export_s": export_s,
                "load_graph_s": graph_s,
                "fx_symbolic_trace_s": fx_s,
                "nodes": graph.n_nodes,
                "edges": graph.n_edges,
                "groups": len(graph.sizes),
                "blocks": len(graph.weights),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    add_output_flags(ap, "tracing")
    args = ap.parse_args()
    if args.child:
        child()
        return
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child"], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(runs[-1])
    graph = {k: runs[0][k] for k in ("nodes", "edges", "groups", "blocks")}
    results = {
        "graph": graph,
        **{
            k: timing([r[k] for r in runs])
            for k in ("imports_s", "first_export_s", "load_graph_s", "fx_symbolic_trace_s")
        },
    }
    results["target_load_graph_under_5_s"] = results["load_graph_s"]["median"] < 5.0
    write(args, results)


if __name__ == "__main__":
    main()
