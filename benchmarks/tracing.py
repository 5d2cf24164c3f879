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

from _common import add_output_flags, timing, write


def resnet18():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.downsample = None
            if stride != 1 or c_in != c_out:
                self.downsample = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
                )

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            blocks, c = [], 64
            for i, w in enumerate((64, 128, 256, 512)):
                blocks += [Block(c, w, 1 if i == 0 else 2), Block(w, w, 1)]
                c = w
            self.layers = nn.Sequential(*blocks)
            self.fc = nn.Linear(512, 1000)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(x), 1), 1))

    torch.manual_seed(0)
    return ResNet18()


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
