"""The worked example on real architectures (issue 17): a residual CNN on Fashion-MNIST and a small
transformer on two-digit arithmetic, each trained by modscope (`modscope.training.fit.fit_model`),
then scored (its unit graph against shuffles), lesioned cluster by cluster (`modscope.knockout`
on the traced network) and masked function by function (`modscope.train_masks`).

- ``cnn``: `ResidualCNN` (two stages of 16 and 32 channels, one residual block each) on
  Fashion-MNIST's 10 classes; functions by class: clothing (T-shirt/top, Trouser, Pullover, Dress,
  Coat, Shirt), footwear (Sandal, Sneaker, Ankle boot) and bags (Bag).
- ``transformer``: `DigitTransformer` (2 pre-LN layers, width 32, 4 heads) on ``addmul`` (two-digit
  addition or multiplication mod 100, Csordás et al.'s task); functions: add and mul.

Everything is the public API a user would call on their own network and data; ``quick`` shrinks
every budget (for ``make demo`` and the notebook) and the full settings are the committed run's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ..clustering.spectral import cluster
from ..data.dataset import Data
from ..data.splits import ArraySplit
from ..errors import ModscopeError
from ..graphs.network import network
from ..lesions.knockout import knockout
from ..masks.fit import train_masks
from ..scoring.engine import score
from ..tasks.images import FASHION_MNIST_DIR
from ..tasks.registry import get_task
from ..training.architectures import DigitTransformer, ResidualCNN
from ..training.fit import fit_model
from .user_models import user_data

__all__ = ["FASHION_CLASSES", "ExampleSettings", "worked_example"]

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_FUNCTIONS = (
    "clothing=T-shirt/top,Trouser,Pullover,Dress,Coat,Shirt",
    "footwear=Sandal,Sneaker,Ankle boot",
    "bags=Bag",
)


@dataclass(frozen=True)
class ExampleSettings:
    """Budgets of one worked example: training ``steps`` (batch ``batch_size``, Adam ``lr``),
    ``n_clusters`` and ``n_shuffles`` for the score, ``n_random`` lesions per sub-module on the first
    ``knockout_examples`` test examples, ``mask_steps`` for the masks, ``train_examples`` (``None``:
    all)."""

    steps: int
    batch_size: int
    lr: float
    n_clusters: int
    n_shuffles: int
    n_random: int
    knockout_examples: int
    mask_steps: int
    train_examples: int | None

    @staticmethod
    def for_mode(which: str, quick: bool) -> ExampleSettings:
        return _BUDGETS[which == "cnn", bool(quick)]


# (the CNN?, quick?) -> its budgets; anything but "cnn" gets the transformer's
_BUDGETS = {
    (True, True): ExampleSettings(200, 64, 3e-3, 4, 5, 20, 200, 60, 6000),
    # sized for a 2-core CPU: one lesion pass over 2000 images costs ~2 s here, so 100
    # random lesions per sub-module on 2000 images would take hours; 20 on 500 take minutes
    (True, False): ExampleSettings(3000, 128, 1e-3, 8, 50, 20, 500, 600, None),
    (False, True): ExampleSettings(1500, 128, 3e-3, 4, 5, 20, 300, 150, 6000),
    (False, False): ExampleSettings(8000, 128, 1e-3, 8, 50, 100, 2000, 2000, None),
}


def _head(data: Data, n: int) -> Data:
    """The same data scored on its first ``n`` test examples (functions restricted to them)."""
    x, y = data.test.rows(np.arange(min(n, len(data.test))))
    functions = {}
    for name, fn in data.functions.items():
        idx = fn.test_index
        functions[name] = replace(fn, test_index=None if idx is None else idx[idx < len(x)])
    return replace(data, test=ArraySplit(x, y, data.regression), functions=functions)


def _setup(which: str, quick: bool, seed: int, data_dir: Any):
    import torch

    s = ExampleSettings.for_mode(which, quick)
    if which == "cnn":
        data = get_task("fashion-mnist", data=data_dir or FASHION_MNIST_DIR, limit=s.train_examples).to_data()
        data.class_names = FASHION_CLASSES  # before the functions, which name classes
        data = user_data(data, FASHION_FUNCTIONS)
        model = ResidualCNN(image=(1, 28, 28), widths=(16, 32), blocks=1, classes=10)
        example = torch.zeros(1, 784)
    elif which == "transformer":
        n_train = s.train_examples or 50000
        data = get_task("addmul", seed=seed, n_train=n_train, n_test=min(10000, n_train)).to_data()
        model = DigitTransformer(digits=4, flag=2, groups=2, d=32, heads=4, layers=2, ff=64)
        example = torch.zeros(1, 42)
    else:
        raise ModscopeError(f"the worked examples are 'cnn' and 'transformer', not {which!r}")
    return s, data, model, example


def worked_example(
    which: Literal["cnn", "transformer"],
    *,
    quick: bool = False,
    seed: int = 0,
    data_dir: Any = None,
    progress: bool = False,
    device: Any = "cpu",
) -> dict[str, Any]:
    """Train, score, lesion and mask one worked example; a JSON-ready summary of every stage.

    ``device``: where training, lesions and masks run (the model stays on the CPU in between, where
    it is traced and scored)."""
    import torch

    # the modules draw their initial weights from torch's global generator: seeded here for this run
    # only, and the caller's generator state is put back afterwards
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        s, data, model, example = _setup(which, quick, seed, data_dir)
        run = dict(seed=seed, progress=progress)  # what every stage shares
        fit = fit_model(model, data, steps=s.steps, batch_size=s.batch_size, lr=s.lr, device=device, **run)
        net = network(model, example)  # read once: the graph, and the module traced on its example
        scored = score(net, n_clusters=s.n_clusters, n_shuffles=s.n_shuffles, **run)
        part = cluster(net, s.n_clusters, seed=seed)
        head = _head(data, s.knockout_examples)
        lesions = knockout(net, head, part, n_random=s.n_random, device=device, **run)
        masks = train_masks(net, data, list(data.functions), steps=s.mask_steps, device=device, **run)
    ko = lesions.to_dict()
    categories = {
        c: sum(sm["category"] == c for sm in ko["submodules"])
        for c in ("important", "sig-but-small", "prunable", "not-significant")
    }
    return {
        "example": which,
        "quick": quick,
        "seed": seed,
        "settings": s.__dict__,
        "model": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "training": fit.to_dict(),
        "graph": {
            "reading": net.graph.reading,
            "groups": list(net.graph.group_names),
            "sizes": list(net.graph.sizes),
            "nodes": net.graph.n_nodes,
            "edges": net.graph.n_edges,
        },
        "score": scored.to_dict(),
        "knockout": {"categories": categories, **ko},
        "masks": masks.to_dict(),
    }
