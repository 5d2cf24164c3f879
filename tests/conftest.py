"""Shared fixtures: planted-module networks and random MLPs, all seeded; and the markers of tests
that need an optional extra.

A test that needs an optional extra carries its marker (``@pytest.mark.igraph``, ...; the list is
``EXTRAS``). Where the extra is missing the test is skipped, saying what to install, so that
``pytest`` passes in a venv without the extras. ``MODSCOPE_STRICT_EXTRAS=1`` (set by ``make test``
and so by CI) turns each such skip into a failure: CI runs every test and never passes by skipping
(except for ``NOT_INSTALLED``: libraries no extra of modscope installs, tested where present).

``MODSCOPE_HIDE_EXTRAS=igraph,onnx`` (marker names, or ``all``) runs the tests as if those extras
were missing: their modules are blocked in ``sys.modules`` (``import onnx`` raises ImportError) and
no browser is found. This is how to check that every test of an extra carries its marker:
``MODSCOPE_HIDE_EXTRAS=all pytest`` must pass with skips. (A test's subprocesses still see them.)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from torch import nn

# marker -> (what it needs, how to get it). A need is an importable top-level module, or
# "browser:" for a headless Chromium / Chrome on PATH.
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "igraph": (("igraph",), "pip install 'modscope[community]'"),
    "dask": (("dask", "distributed"), "pip install 'modscope[distributed]'"),
    "notebooks": (("nbformat", "nbclient", "ipykernel"), "pip install 'modscope[dev]'"),
    "onnx": (("onnx",), "pip install 'modscope[onnx]'"),
    "h5py": (("h5py",), "pip install 'modscope[keras]'"),
    "yaml": (("yaml",), "pip install pyyaml"),
    "mkdocs": (("mkdocs", "mkdocstrings", "mkdocs_jupyter", "yaml"), "pip install 'modscope[docs]'"),
    "playwright": (("playwright",), "pip install 'modscope[dev]'"),
    "chromium": (("browser:",), "make browser (or apt-get install chromium)"),
    "transformers": (("transformers",), "pip install transformers (Hugging Face's own classes)"),
}
# Markers of libraries that no extra of modscope installs (so not `make install` either): their tests
# run where the library is present and are skipped elsewhere, even under MODSCOPE_STRICT_EXTRAS=1.
NOT_INSTALLED = frozenset({"transformers"})
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
STRICT_ENV = "MODSCOPE_STRICT_EXTRAS"
HIDE_ENV = "MODSCOPE_HIDE_EXTRAS"


def _hidden_extras() -> frozenset[str]:
    """The markers ``MODSCOPE_HIDE_EXTRAS`` names, their modules blocked in ``sys.modules`` now,
    before any test module imports them."""
    value = os.environ.get(HIDE_ENV, "").strip()
    names = set(EXTRAS) if value == "all" else {n.strip() for n in value.split(",") if n.strip()}
    if unknown := names - set(EXTRAS):
        raise pytest.UsageError(f"{HIDE_ENV}: unknown {sorted(unknown)}; known: {sorted(EXTRAS)} or all")
    for marker in names:
        for module in EXTRAS[marker][0]:
            if module != "browser:":
                sys.modules[module] = None  # type: ignore[assignment]  # import raises ImportError
    return frozenset(names)


HIDDEN = _hidden_extras()


def browser() -> str | None:
    """The first headless-capable browser on PATH, or None."""
    if "chromium" in HIDDEN:
        return None
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def importable(module: str) -> bool:
    if module in sys.modules:  # a test may block a module with sys.modules[name] = None
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None  # found, not imported
    except (ImportError, ValueError):
        return False


def missing_extra(marker: str) -> str | None:
    """Why a test marked ``marker`` cannot run here (one line), or None when it can."""
    needs, how = EXTRAS[marker]
    absent = [n for n in needs if not (browser() if n == "browser:" else importable(n))]
    if not absent:
        return None
    names = ", ".join("a headless browser" if n == "browser:" else n for n in absent)
    return f"needs the optional {marker!r} extra ({names} missing): {how}"


def pytest_configure(config):
    for marker, (_, how) in EXTRAS.items():
        config.addinivalue_line("markers", f"{marker}: needs an optional extra ({how}); skipped without it")


def require_extra(marker: str) -> None:
    """Skip the running test when the extra ``marker`` is missing; fail instead when strict."""
    reason = missing_extra(marker)
    if reason is None:
        return
    if os.environ.get(STRICT_ENV) == "1" and marker not in NOT_INSTALLED:
        pytest.fail(f"{reason} ({STRICT_ENV}=1: a missing extra fails)", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item):
    for marker in EXTRAS:
        if item.get_closest_marker(marker) is not None:
            require_extra(marker)


def planted_weights(widths, n_modules, rng, inside=1.0, leak=0.02, sparsity=0.0):
    """Weights whose neurons split into ``n_modules`` blocks per layer, strong within a block.

    Returns (weights out x in, labels per graph node of the planted module).
    """
    labels = [np.arange(w) * n_modules // w for w in widths]
    weights = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        same = labels[1 + len(weights)][:, None] == labels[len(weights)][None, :]
        w = np.where(same, inside, leak) * rng.uniform(0.5, 1.5, (b, a)) * rng.choice([-1, 1], (b, a))
        if sparsity:
            w[rng.random((b, a)) < sparsity] = 0.0
        weights.append(w)
    return weights, np.concatenate(labels)


# issue 2: `score --json` writes exactly these keys
SCORE_JSON_KEYS = {
    "clustering",
    "reading",
    "ncut",
    "labels",
    "n_clusters",
    "layer_widths",
    "n_nodes",
    "n_edges",
    "shuffle",
    "seed",
    "version",
}


def shuffle_ncuts(graph, n, method="layer", clusterer=None, seed=0, jobs=1, cache=None):
    """n-cuts of ``n`` weight shuffles through the engine's `null_values` (``jobs``: a count or an
    executor)."""
    from modscope.nulls import WeightShuffleNull
    from modscope.runtime.executors import LocalExecutor
    from modscope.scoring.engine import null_values
    from modscope.scoring.measures import NcutMeasure

    executor = jobs if hasattr(jobs, "map") else LocalExecutor(jobs)
    return null_values(graph, WeightShuffleNull(method), NcutMeasure(clusterer), n, seed=seed,
                       executor=executor, cache=cache)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_mlp(widths, seed=0) -> nn.Sequential:
    """A Glorot-initialised ReLU MLP built without touching torch's global RNG."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        lin = nn.Linear(a, b)
        nn.init.xavier_uniform_(lin.weight, generator=g)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers[:-1])
