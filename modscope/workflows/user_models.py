"""From files to results for networks modscope did not build: the user's module (named by its
code, ``package.module:factory``, weights from a file), the user's data file and functions, then
the analysis (`modscope.knockout` on the traced unit graph, `modscope.train_masks` on the module).
Nothing in a file runs."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
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

__all__ = ["knockout_model", "masks_model", "user_data", "user_module"]


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

        x = data.test.rows(np.arange(1))[0]
        example = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
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
    shape, dtype = kwargs.pop("input_shape", None), kwargs.pop("input_dtype", "float32")
    module, example = user_module(
        model, weights, shape, dtype, data=the_data, non_strict=kwargs.pop("non_strict", False)
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
    graph = load_graph(module, example_input=example)
    seed = int(kwargs.get("seed", 0))
    partition = cluster(graph, n_clusters, seed=seed)
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
        raise ModscopeError("give either --function or --classes, not both")
    the_data, module, example = _user_run(weights, model, data, kwargs)
    fns: Any = None
    if classes:
        fns = class_functions(the_data)
    elif not the_data.functions:
        raise ModscopeError("name the functions to mask: --function NAME=CLASSES (repeatable) or --classes")
    return train_masks(module, the_data, fns, class_removal=classes, example_input=example, **kwargs)
