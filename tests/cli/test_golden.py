"""Golden outputs: the ``--json`` of score, blocks, knockout, masks and train on fixed inputs.

A refactoring must leave these unchanged. The files under ``tests/golden/`` were written by
this test with ``MODSCOPE_UPDATE_GOLDENS=1``; a change of defaults that is meant to change
them rewrites them in the same commit (say so in the message).

The test passes on any machine: BLAS kernels (OpenBLAS, MKL, another CPU's code path) round
differently, so no float is compared byte for byte. Floats in the JSON are compared to a relative
``JSON_RTOL`` (1e-6; the worst seen across machines is the 8th digit of a loss), everything else
(labels, counts, keys, strings) exactly. A trained checkpoint's weights are kept as arrays in
``tests/golden/<case>.state.npz`` and compared tensor by tensor to ``STATE_RTOL`` / ``STATE_ATOL``:
a few hundred optimiser steps amplify the last-bit differences of a matmul, so the weights get a
looser bound than the printed metrics.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from modscope.cli import main
from tests.helpers.paths import GOLDEN, ROOT

DATA = ROOT / "data"
UPDATE = os.environ.get("MODSCOPE_UPDATE_GOLDENS") == "1"
# Floats of a --json output: relative, plus an absolute floor for values that are ~0.
JSON_RTOL, JSON_ATOL = 1e-6, 1e-9
# A trained checkpoint's weights after up to 400 Adam steps on another BLAS (see the docstring).
STATE_RTOL, STATE_ATOL = 1e-4, 1e-6


def _tiny_cnn(path: Path) -> None:
    """A seeded conv stack with BatchNorm and a flatten head, as a plain state dict."""
    rng = np.random.default_rng(7)

    def t(*shape):
        return torch.from_numpy(rng.normal(size=shape).astype(np.float32))

    sd = {
        "features.0.weight": t(6, 3, 3, 3),
        "features.0.bias": t(6),
        "features.1.weight": t(6).abs() + 0.5,
        "features.1.bias": t(6),
        "features.1.running_mean": t(6),
        "features.1.running_var": t(6).abs() + 0.5,
        "features.1.num_batches_tracked": torch.tensor(3),
        "features.3.weight": t(8, 6, 3, 3),
        "features.3.bias": t(8),
        "classifier.weight": t(5, 8 * 4 * 4),
        "classifier.bias": t(5),
    }
    torch.save(sd, path)


def _tiny_gpt2(path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(11)
    sd = {}
    for i in range(2):
        p = f"transformer.h.{i}."
        sd[p + "mlp.c_fc.weight"] = rng.normal(size=(8, 32)).astype(np.float32)  # in x out
        sd[p + "mlp.c_proj.weight"] = rng.normal(size=(32, 8)).astype(np.float32)
        sd[p + "attn.c_proj.weight"] = rng.normal(size=(8, 8)).astype(np.float32)
    save_file(sd, str(path))


def _state(path: Path) -> dict[str, np.ndarray]:
    """A modscope checkpoint's state dict as numpy arrays (the golden form of its weights)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in sorted(obj["state_dict"].items())}


def _close_state(got: dict[str, np.ndarray], want: dict[str, np.ndarray], name: str) -> None:
    assert sorted(got) == sorted(want), f"{name}: state keys {sorted(got)} != {sorted(want)}"
    for k in want:
        assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, (
            f"{name}.{k}: {got[k].dtype}{got[k].shape} != {want[k].dtype}{want[k].shape}")
        np.testing.assert_allclose(got[k], want[k], rtol=STATE_RTOL, atol=STATE_ATOL,
                                   err_msg=f"{name}: state tensor {k}")


# name -> argv (``{tmp}`` is the test's folder, ``{data}`` the example checkpoints')
CASES: dict[str, list[str]] = {
    "score_digits_plain": ["score", "{data}/digits-plain.pt", "--clusters", "4", "--shuffles", "4"],
    "score_digits_pruned_degree": [
        "score",
        "{data}/digits-pruned.pt",
        "--clusters",
        "4",
        "--shuffles",
        "3",
        "--shuffle-method",
        "layer_degree",
        "--seed",
        "3",
    ],
    "score_bimt_nonzero": [
        "score",
        "{data}/independence-bimt.pt",
        "--clusters",
        "2",
        "--shuffles",
        "4",
        "--shuffle-method",
        "layer_nonzero",
    ],
    "score_halves_inertia": [
        "score",
        "{data}/halves-plain.pt",
        "--clusters",
        "4",
        "--shuffles",
        "3",
        "--n-init",
        "25",
        "--select",
        "inertia",
    ],
    "score_louvain": ["score", "{data}/independence-plain.pt", "--method", "louvain", "--shuffles", "3"],
    "score_leiden": ["score", "{data}/digits-plain.pt", "--method", "leiden", "--shuffles", "3"],
    "score_local": [
        "score",
        "{data}/halves-plain.pt",
        "--method",
        "local",
        "--clusters",
        "3",
        "--shuffles",
        "3",
    ],
    "score_activations": [
        "score",
        "{data}/digits-plain.pt",
        "--graph",
        "activations",
        "--clusters",
        "4",
        "--shuffles",
        "3",
        "--examples",
        "150",
    ],
    "score_cnn": [
        "score", "{tmp}/cnn.pt", "--clusters", "3", "--shuffles", "3", "--flatten", "channel-major",
        "--map-shape", "4,4",
    ],
    "score_cnn_l2": [
        "score", "{tmp}/cnn.pt", "--clusters", "3", "--shuffles", "3", "--kernel-norm", "l2",
        "--flatten", "channel-major", "--map-shape", "4,4",
    ],
    "blocks_gpt2": ["blocks", "{tmp}/gpt2.safetensors", "--clusters", "3", "--shuffles", "3"],
    "knockout_halves": ["knockout", "{data}/halves-plain.pt", "--clusters", "4", "--random", "20", "--pairs"],
    "knockout_bimt": ["knockout", "{data}/independence-bimt.pt", "--clusters", "2", "--random", "20"],
    "masks_halves": [
        "masks",
        "{data}/halves-plain.pt",
        "--steps",
        "30",
        "--functions",
        "left,right",
        "--save",
        "{tmp}/halves-masks.pt",
    ],
    "knockout_halves_masks": [
        "knockout",
        "{data}/halves-plain.pt",
        "--clusters",
        "4",
        "--random",
        "20",
        "--masks",
        "{tmp}/halves-masks.pt",
    ],
    "masks_digits_classes": ["masks", "{data}/digits-plain.pt", "--classes", "--steps", "20"],
    "train_digits": [
        "train",
        "--task",
        "digits",
        "--steps",
        "40",
        "--seed",
        "1",
        "--hidden",
        "32,32",
        "--out",
        "{tmp}/train_digits.pt",
    ],
    "train_digits_pruned": [
        "train",
        "--task",
        "digits",
        "--steps",
        "30",
        "--dropout",
        "0.2",
        "--prune",
        "0.9",
        "--prune-steps",
        "30",
        "--hidden",
        "32,32",
        "--out",
        "{tmp}/train_digits_pruned.pt",
    ],
    "train_independence_bimt": [
        "train",
        "--task",
        "formula-independence",
        "--bimt",
        "--steps",
        "400",
        "--out",
        "{tmp}/train_independence_bimt.pt",
    ],
}


# Keys added in 0.4.0 for `modscope explore` (the network read, with the test's temporary path;
# knockout's partition and random-lesion metrics; the masks' bits). The goldens predate them: every
# older key must still be there, unchanged.
ADDED_KEYS = ("source", "lesioned_labels", "random_metrics", "weight_masks")


def _normalise(obj):
    """The version string varies by design; the training time is wall-clock."""
    if isinstance(obj, dict):
        return {k: _normalise(v) for k, v in obj.items() if k not in ("version", "seconds", *ADDED_KEYS)}
    if isinstance(obj, list):
        return [_normalise(v) for v in obj]
    return obj


def _close(a, b, path="$") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        assert math.isclose(a, b, rel_tol=JSON_RTOL, abs_tol=JSON_ATOL), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("golden")
    _tiny_cnn(tmp / "cnn.pt")
    _tiny_gpt2(tmp / "gpt2.safetensors")
    return tmp


# Leiden / Louvain need igraph (the `community` extra): skipped without it, unless strict.
PARAMS = [pytest.param(n, marks=pytest.mark.igraph) if "louvain" in n or "leiden" in n else n for n in CASES]


@pytest.mark.parametrize("name", PARAMS)
def test_golden_output(name, workdir, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    argv = [a.format(tmp=workdir, data=DATA) for a in CASES[name]]
    if name == "knockout_halves_masks" and not (workdir / "halves-masks.pt").exists():
        assert (
            main([a.format(tmp=workdir, data=DATA) for a in CASES["masks_halves"]] + ["--no-progress"]) == 0
        )
    out = workdir / f"{name}.json"
    assert main([*argv, "--json", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    got = _normalise(json.loads(out.read_text()))
    golden = GOLDEN / f"{name}.json"
    state_file = GOLDEN / f"{name}.state.npz"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        if name.startswith("train_"):
            np.savez_compressed(state_file, **_state(workdir / f"{name}.pt"))
        return
    _close(got, json.loads(golden.read_text()))
    if name.startswith("train_"):
        with np.load(state_file) as want:
            _close_state(_state(workdir / f"{name}.pt"), dict(want), name)


def test_comparisons_tolerate_rounding_and_catch_changes():
    """The tolerances accept another BLAS's last bits and still fail on a real change."""
    _close({"z": 1.0 + 1e-8, "labels": [0, 1]}, {"z": 1.0, "labels": [0, 1]})
    with pytest.raises(AssertionError, match="z"):
        _close({"z": 1.0 + 1e-4}, {"z": 1.0})
    with pytest.raises(AssertionError, match="labels"):
        _close({"labels": [1, 0]}, {"labels": [0, 1]})
    with np.load(GOLDEN / "train_digits.state.npz") as f:
        want = dict(f)
    k = next(iter(want))
    _close_state({**want, k: want[k] * (1 + 1e-6)}, want, "train_digits")
    with pytest.raises(AssertionError, match=k):
        _close_state({**want, k: want[k] * 1.01}, want, "train_digits")
