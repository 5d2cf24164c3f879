"""Golden outputs: the ``--json`` of score, blocks, knockout, masks and train on fixed inputs.

A refactoring must leave these unchanged. The files under ``tests/golden/`` were written by
this test with ``MODSCOPE_UPDATE_GOLDENS=1``; a change of defaults that is meant to change
them rewrites them in the same commit (say so in the message).

On the machine that wrote them (same CPU model, same numpy / torch) the outputs must be
byte-identical; elsewhere BLAS kernels may round differently, so floats are compared to a
relative 1e-6 and everything else exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from modscope.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("MODSCOPE_UPDATE_GOLDENS") == "1"


def _machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "numpy": np.__version__, "torch": torch.__version__.split("+")[0]}


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


def _state_hash(path: Path) -> str:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for k, v in sorted(obj["state_dict"].items()):
        h.update(k.encode())
        h.update(v.contiguous().numpy().tobytes())
    return h.hexdigest()


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
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("golden")
    _tiny_cnn(tmp / "cnn.pt")
    _tiny_gpt2(tmp / "gpt2.safetensors")
    return tmp


@pytest.mark.parametrize("name", list(CASES))
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
    if name.startswith("train_"):
        got["state_sha256"] = _state_hash(workdir / f"{name}.pt")
    text = json.dumps(got, indent=1, sort_keys=True) + "\n"
    golden = GOLDEN / f"{name}.json"
    meta = GOLDEN / "machine.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(text)
        meta.write_text(json.dumps(_machine(), indent=1, sort_keys=True) + "\n")
        return
    expected = golden.read_text()
    if json.loads(meta.read_text()) == _machine():
        assert text == expected, f"{name}: output differs from {golden}"
    else:
        want = json.loads(expected)
        if name.startswith("train_"):  # state bytes can differ across CPUs; the metrics are checked
            got.pop("state_sha256")
            want.pop("state_sha256")
        _close(got, want)
