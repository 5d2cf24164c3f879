"""What the benchmarks share: the seeded Glorot network, repeat statistics and the receipt.

Not a benchmark itself. Every script runs as ``python benchmarks/<name>.py`` (this folder is then
on ``sys.path``) and writes its JSON to ``benchmarks/results/<name>.json`` by default, through
`modscope.runtime.receipts.write_receipt` (command, settings, version, date, machine note).
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

# The benchmark network of the README: a Glorot-uniform 784-256x4-10 MLP (1818 nodes, 399,872 edges).
GLOROT_WIDTHS = (784, 256, 256, 256, 256, 10)


def default_out(name: str) -> str:
    """``benchmarks/results/<name>.json``."""
    return str(RESULTS / f"{name}.json")


def add_output_flags(ap: argparse.ArgumentParser, name: str) -> None:
    """``--out`` (default ``benchmarks/results/<name>.json``) and ``--note`` (the receipt's note)."""
    ap.add_argument("--out", default=default_out(name), help="receipt JSON (default: %(default)s)")
    ap.add_argument("--note", default="", help="free text for the receipt, e.g. 'machine busy'")


def parse_widths(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"784,256x4,10"`` or ``"784,256,256,10"`` -> the layer widths (``WxN``: N layers of W)."""
    if not isinstance(text, str):
        return tuple(int(w) for w in text)
    widths: list[int] = []
    for part in re.split(r"[,\-]", text):
        part = part.strip()
        if not part:
            continue
        if "x" in part:
            w, n = part.split("x")
            widths += [int(w)] * int(n)
        else:
            widths.append(int(part))
    return tuple(widths)


def widths_name(widths: Sequence[int]) -> str:
    """``(784, 256, 256, 10)`` -> ``"784-256x2-10"``."""
    from modscope.report.text import widths_text

    return widths_text(widths, "x")


def glorot_weights(widths: Sequence[int] = GLOROT_WIDTHS, seed: int = 0) -> list[np.ndarray]:
    """Glorot-uniform weight matrices (out x in, float32, as a checkpoint holds them), drawn from
    ``numpy.random.default_rng(seed)``: ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``."""
    rng = np.random.default_rng(seed)
    out = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        limit = np.sqrt(6.0 / (a + b))
        out.append(rng.uniform(-limit, limit, (b, a)).astype(np.float32))
    return out


def glorot_graph(widths: Sequence[int] = GLOROT_WIDTHS, seed: int = 0):
    """The `WeightGraph` of `glorot_weights` (the graph `load_graph` reads from its safetensors)."""
    from modscope import WeightGraph

    names = [f"layers.{i}.weight" for i in range(len(widths) - 1)]
    return WeightGraph.from_weights(glorot_weights(widths, seed), names)


def save_glorot_safetensors(path: str | Path, widths: Sequence[int] = GLOROT_WIDTHS, seed: int = 0) -> Path:
    """`glorot_weights` with zero biases as a ``.safetensors`` state dict (``layers.i.weight`` /
    ``layers.i.bias``), the file a user would hand to ``modscope score``."""
    from safetensors.numpy import save_file

    tensors = {}
    for i, w in enumerate(glorot_weights(widths, seed)):
        tensors[f"layers.{i}.weight"] = np.ascontiguousarray(w)
        tensors[f"layers.{i}.bias"] = np.zeros(w.shape[0], dtype=np.float32)
    save_file(tensors, str(path))
    return Path(path)


def timing(runs: Sequence[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "runs"}`` of seconds (every repeat kept)."""
    runs = [float(r) for r in runs]
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs), "runs": runs}


def ratio(slow: Sequence[float] | float, fast: Sequence[float] | float) -> float:
    """``median(slow) / median(fast)``."""
    s = statistics.median(slow) if isinstance(slow, Sequence) else float(slow)
    f = statistics.median(fast) if isinstance(fast, Sequence) else float(fast)
    return s / f if f > 0 else float("inf")


def write(args: argparse.Namespace, results: Any, settings: dict[str, Any] | None = None) -> Path:
    """The receipt of this run at ``args.out``; ``settings`` default to every flag."""
    from modscope.runtime.receipts import write_receipt

    if settings is None:
        settings = {k: v for k, v in vars(args).items() if k not in ("out", "note")}
    path = write_receipt(args.out, results, settings=settings, note=args.note)
    print(f"wrote {path}")
    return path


def resnet18(classes: int = 1000, imagenet: bool = True):
    """ResNet-18's shape (BasicBlock x [2, 2, 2, 2], widths 64-512), written here (torchvision is not
    a dependency), torch's default initialisation under ``torch.manual_seed(0)``. ``imagenet``: the
    7x7 stride-2 stem and max-pool for 224 x 224 inputs; else a 3x3 stride-1 stem for 32 x 32."""
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
            kernel, stride, pad = (7, 2, 3) if imagenet else (3, 1, 1)
            self.conv1 = nn.Conv2d(3, 64, kernel, stride, pad, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            blocks, c = [], 64
            for i, w in enumerate((64, 128, 256, 512)):
                blocks += [Block(c, w, 1 if i == 0 else 2), Block(w, w, 1)]
                c = w
            self.layers = nn.Sequential(*blocks)
            self.fc = nn.Linear(512, classes)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            if imagenet:
                x = nn.functional.max_pool2d(x, 3, 2, 1)
                return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(x), 1), 1))
            return self.fc(self.layers(x).mean((2, 3)))

    torch.manual_seed(0)
    return ResNet18()


def plain_steps(model, task, batch: int, steps: int) -> None:
    """``steps`` plain training steps of ``model`` on ``task`` (Adam 1e-3, minibatches of ``batch``
    drawn by a seeded generator): the baseline a mask step is timed against."""
    import torch

    from modscope.masks.fit import fused_adam

    opt = fused_adam(list(model.parameters()), 1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(task.x_train.shape[0], (batch,), generator=g)
        loss = task.loss(model(task.x_train[idx]), task.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
