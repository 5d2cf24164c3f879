"""From files to results for networks modscope did not build: the user's module (named by its
code, ``package.module:factory``, weights from a file), the user's data file and functions, then
the analysis (`modscope.knockout` on the traced unit graph, `modscope.train_masks` on the module)
or its training (`train_model`: plain, BIMT or for clusterability on the unit graph). Nothing in a
file runs."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..clustering.spectral import cluster
from ..data.dataset import Data, load_data
from ..data.functions import class_functions, parse_function
from ..errors import ModscopeError
from ..graphs.files.user_model import build_model, example_tensor, guess_example
from ..graphs.load import load_graph
from ..lesions.knockout import knockout
from ..lesions.results import KnockoutResult
from ..masks.fit import train_masks
from ..masks.result import MaskResult
from ..runtime.modules import resolve_device
from ..runtime.seeds import stream_seed
from ..training.checkpoint import check_weights_path, save_state_dict
from ..training.fit import FitResult, fit_model

__all__ = ["TrainModelResult", "knockout_model", "masks_model", "train_model", "user_data", "user_module"]


def user_module(
    spec: str,
    weights: str | os.PathLike | None,
    input_shape: str | None = None,
    input_dtype: str = "float32",
    *,
    data: Data | None = None,
    non_strict: bool = False,
) -> tuple[Any, Any]:
    """``(module, example input)`` from a factory and a weights file (`build_model`). The example:
    ``input_shape`` / ``input_dtype``, else the factory's, else the first example of ``data``,
    else one guessed from the first layer (`guess_example`). What the weights' loading ignored is
    said as a warning."""
    notes: list[str] = []
    module, example = build_model(spec, weights, non_strict=non_strict, notes=notes)
    for note in notes:
        warnings.warn(f"{weights}: {note}", stacklevel=2)
    if input_shape is not None:
        example = example_tensor(input_shape, input_dtype)
    elif example is None and data is not None:
        import numpy as np
        import torch

        example = torch.as_tensor(data.test.rows(np.arange(1))[0])  # a tensor stays as it is
    elif example is None:
        example, _ = guess_example(module)
    return module, example


def user_data(source: Any, functions: Sequence[str] | None = None, **options: Any) -> Data:
    """`load_data` of ``source`` with the functions ``name=classes`` specs add (`parse_function`)."""
    data = load_data(source, **options)
    for spec in functions or ():
        fn = parse_function(spec, data)
        if fn.name in data.functions:
            raise ModscopeError(f"two functions are called {fn.name!r}")
        data.functions[fn.name] = fn
    return data


def _user_run(
    weights: str | os.PathLike, model: str, data: Any, kwargs: dict[str, Any]
) -> tuple[Data, Any, Any]:
    """``(data, module, example input)`` of a ``--model`` run: the data with its ``name=classes``
    ``functions``, then the module built and loaded (`user_module`: ``input_shape``,
    ``input_dtype``, ``non_strict``), these four options taken out of ``kwargs``."""
    the_data = user_data(data, kwargs.pop("functions", None))
    module, example = user_module(
        model, weights, kwargs.pop("input_shape", None), kwargs.pop("input_dtype", "float32"), data=the_data,
        non_strict=kwargs.pop("non_strict", False),
    )
    return the_data, module, example


def knockout_model(
    weights: str | os.PathLike, *, model: str, data: Any, n_clusters: int = 12, **kwargs: Any
) -> KnockoutResult:
    """Build the user's module, read their data, cluster the module's unit graph (the graph
    ``modscope score --model`` scores) and lesion every cluster of every unit group
    (`modscope.knockout`). ``kwargs``: ``functions`` (``name=classes`` specs), ``input_shape``,
    ``input_dtype``, ``non_strict`` (`user_module`); the rest go to `modscope.knockout`, e.g.
    ``n_random``, ``ablation``, ``output``."""
    the_data, module, example = _user_run(weights, model, data, kwargs)
    seed = int(kwargs.get("seed", 0))
    partition = cluster(load_graph(module, example_input=example), n_clusters, seed=seed)
    result = knockout(module, the_data, partition, example_input=example, **kwargs)
    result.clustering = {"n_clusters": int(n_clusters), "seed": seed, **partition.clustering}
    return result


def masks_model(
    weights: str | os.PathLike, *, model: str, data: Any, classes: bool = False, **kwargs: Any
) -> MaskResult:
    """Build the user's module, read their data and learn one weight mask per function
    (`modscope.train_masks` on the frozen module, the data streamed in batches): ``functions``
    ``name=classes`` specs (`parse_function`), or ``classes`` for one ``not-<c>`` mask per class
    with the per-class accuracy drop. The module is traced on its example input, so the result
    has per-unit-group tables. ``kwargs``: ``functions``, ``input_shape``, ``input_dtype``,
    ``non_strict`` (`user_module`); the rest go to `train_masks` (``steps``, ``output``, ...)."""
    if classes and kwargs.get("functions"):
        raise ModscopeError("give either functions (--function) or classes=True (--classes), not both")
    the_data, module, example = _user_run(weights, model, data, kwargs)
    if not classes and not the_data.functions:
        raise ModscopeError("name the functions to mask: --function NAME=CLASSES (repeatable) or --classes")
    fns = class_functions(the_data) if classes else None
    return train_masks(module, the_data, fns, class_removal=classes, example_input=example, **kwargs)


@dataclass
class TrainModelResult:
    """What `train_model` did: the trained ``module``, ``fit`` (`FitResult`: steps, the test
    metric, the loss history, the settings with the strategy's parameters, the strategy's final
    metrics), the ``model`` factory and ``data`` it was named by, the ``example_input`` it was
    traced on (shape, dtype), the ``device`` it trained on and the training's wall-clock ``seconds``."""

    module: Any
    fit: FitResult
    model: str
    data: str
    example_input: dict[str, Any]
    device: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: everything but the module (its weights go to a file: `save`), the fit's keys last."""
        rest = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("module", "fit")}
        return {**rest, "example_input": dict(self.example_input), **self.fit.to_dict()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the trained state dict atomically (``.safetensors`` or ``.pt``)."""
        save_state_dict(path, self.module)


def train_strategy(
    module: Any, example: Any, bimt: Any = None, cluster_reg: dict[str, Any] | None = None
) -> Any:
    """The training strategy on ``module``'s unit graph (traced on ``example``), or None: ``bimt``
    (True, or a dict of `modscope.training.bimt.BIMTConfig` fields and ``metric`` "l1" / "l2", ``{}``
    for the defaults),
    ``cluster_reg`` (``{"loss": "spectral" | "golechha", "lam": ...}`` with ``eigs``, or
    ``clusters`` and ``layers``). Refusals (a unit group BIMT cannot permute, an option that does
    not fit) come here, before any training."""
    from ..training.bimt_graph import bimt_strategy
    from ..training.clusterability_graph import block_strategy, clusterability_strategy

    use_bimt = bimt is not None and bimt is not False  # True or a dict of options ({}: the defaults)
    if use_bimt and cluster_reg is not None:
        raise ModscopeError("BIMT and a clusterability loss are two training strategies; use one of them")
    if use_bimt:  # bimt_strategy's defaults for what the dict leaves out (metric l1, BIMTConfig's)
        return bimt_strategy(module, example, **(bimt if isinstance(bimt, dict) else {}))
    if cluster_reg is None:
        return None
    opts = dict(cluster_reg)
    loss, lam = opts.pop("loss", "spectral"), opts.pop("lam", None)
    makers = {"spectral": clusterability_strategy, "golechha": block_strategy}
    if loss not in makers or lam is None:
        raise ModscopeError(f"cluster_reg needs loss 'spectral' or 'golechha' and lam, got {cluster_reg!r}")
    try:
        return makers[loss](module, example, lam, **opts)
    except TypeError as e:  # an option of the other loss
        raise ModscopeError(f"cluster loss {loss} on the unit graph: {e}") from None


def train_model(
    model: str,
    data: Any,
    *,
    steps: int = 1000,
    batch_size: int | None = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: Any = "cpu",
    bimt: Any = None,
    cluster_reg: dict[str, Any] | None = None,
    input_shape: str | None = None,
    input_dtype: str = "float32",
    out: str | os.PathLike | None = None,
    progress: bool = False,
) -> TrainModelResult:
    """Build the user's module from its factory (``package.module:factory``), read their ``data``
    (`load_data`: ``.npz`` / ``.pt`` arrays, an IDX folder, ...; it needs a train and a test
    split), train it with Adam (`fit_model`: ``steps`` minibatches of ``batch_size`` examples, None
    = the whole train split) plainly, with BIMT or for clusterability on its unit graph
    (`train_strategy`: ``bimt``, ``cluster_reg``), and write the trained state dict to ``out``
    (``.safetensors`` or ``.pt``, atomically) when given.

    ``seed``: the factory's initial weights (drawn with torch's generator seeded from it, the
    global state restored afterwards) and the minibatches. The example input (for the trace):
    ``input_shape`` / ``input_dtype``, else the factory's, else the data's first example. Bad
    input, a strategy that does not fit the module and an unwritable ``out`` name are refused in
    one line before the first step."""
    import torch

    if out is not None:
        check_weights_path(out)
    dev = resolve_device(device)
    the_data = user_data(data)
    if the_data.train is None:
        raise ModscopeError(
            f"{data}: no train split to learn from; give x_train, y_train (and x_test, y_test)"
        )
    with torch.random.fork_rng(devices=[]):  # the user's factory draws from torch's global generator
        torch.manual_seed(stream_seed(seed, "init", 0))
        module, example = user_module(model, None, input_shape, input_dtype, data=the_data)
    strategy = train_strategy(module, example, bimt, cluster_reg)
    n = len(the_data.split("train")) if batch_size is None else batch_size
    start = time.perf_counter()
    fit = fit_model(module, the_data, steps=steps, batch_size=n, lr=lr, weight_decay=weight_decay, seed=seed,
                    device=device, strategy=strategy, progress=progress)
    shown = {"shape": list(getattr(example, "shape", ())),
             "dtype": str(getattr(example, "dtype", "")).removeprefix("torch.")}
    name = os.fspath(data) if isinstance(data, str | os.PathLike) else type(data).__name__
    result = TrainModelResult(module, fit, model, name, shown, str(dev), time.perf_counter() - start)
    if out is not None:
        result.save(out)
    return result
