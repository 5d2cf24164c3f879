"""Resumable runs: finished shuffles are kept; a killed run resumes with the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import modscope.scoring.engine as engine
from modscope.clustering.spectral import SpectralClusterer
from modscope.graphs.weight_graph import WeightGraph
from modscope.runtime.cache import WorkCache
from tests.conftest import planted_weights, shuffle_ncuts


@pytest.fixture
def graph():
    ws, _ = planted_weights([24, 16, 16, 8], 2, np.random.default_rng(0), leak=0.4)
    return WeightGraph.from_weights(ws)


def test_unit_cache_round_trip_and_corruption(tmp_path):
    c = WorkCache(tmp_path, {"a": 1})
    assert c.get(0) is None
    c.put(0, 1.25)
    c.put(1, 2.5)
    assert c.get(0) == 1.25 and c.missing(3) == ({0: 1.25, 1: 2.5}, [2])
    path = c._path(1)
    record = json.loads(path.read_text())
    record["value"] = 9.0  # tampered: the checksum no longer matches
    path.write_text(json.dumps(record))
    assert c.get(1) is None and not path.exists()
    c._path(0).write_text("{truncated")
    assert c.get(0) is None
    assert WorkCache(tmp_path, {"a": 2}).dir != c.dir  # other settings, other folder


def _counting(monkeypatch):
    calls = []
    real = engine.null_value

    def counted(graph, null, measure, ss):
        calls.append(ss.spawn_key)
        return real(graph, null, measure, ss)

    monkeypatch.setattr(engine, "null_value", counted)
    return calls


def test_cached_run_equals_uncached_and_reuses_everything(graph, tmp_path, monkeypatch):
    clusterer = SpectralClusterer(3)
    plain = shuffle_ncuts(graph, 6, "layer", clusterer, seed=1)
    calls = _counting(monkeypatch)
    first = shuffle_ncuts(graph, 6, "layer", clusterer, seed=1, cache=tmp_path)
    assert len(calls) == 6
    np.testing.assert_array_equal(first, plain)
    again = shuffle_ncuts(graph, 8, "layer", clusterer, seed=1, cache=tmp_path)
    assert len(calls) == 8  # only shuffles 6 and 7 were new
    np.testing.assert_array_equal(again[:6], plain)


def test_other_settings_never_reuse_the_cache(graph, tmp_path, monkeypatch):
    shuffle_ncuts(graph, 3, "layer", SpectralClusterer(3), seed=1, cache=tmp_path)
    calls = _counting(monkeypatch)
    shuffle_ncuts(graph, 3, "layer", SpectralClusterer(3), seed=2, cache=tmp_path)
    shuffle_ncuts(graph, 3, "layer_nonzero", SpectralClusterer(3), seed=1, cache=tmp_path)
    shuffle_ncuts(graph, 3, "layer", SpectralClusterer(4), seed=1, cache=tmp_path)
    other = WeightGraph.from_weights([w * 1.5 for w in graph.weights])
    shuffle_ncuts(other, 3, "layer", SpectralClusterer(3), seed=1, cache=tmp_path)
    assert len(calls) == 12


@pytest.mark.slow  # two runs in subprocesses
def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
    ws, _ = planted_weights([64, 48, 48, 16], 3, np.random.default_rng(1), leak=0.5)
    ckpt = tmp_path / "net.pt"
    torch.save({f"l{i}.weight": torch.tensor(w) for i, w in enumerate(ws)}, ckpt)
    cache = tmp_path / "cache"
    base = [
        sys.executable,
        "-m",
        "modscope",
        "score",
        str(ckpt),
        "--clusters",
        "4",
        "--shuffles",
        "300",
        "--seed",
        "3",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        [*base, "--cache", str(cache), "--json", str(tmp_path / "killed.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(cache.glob("*/unit-*.json"))) < 5:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done = {p: p.stat().st_mtime_ns for p in cache.glob("*/unit-*.json")}
    assert 5 <= len(done) < 300, "the run should have been killed midway"
    assert not (tmp_path / "killed.json").exists()  # nothing half-written
    subprocess.run(
        [*base, "--cache", str(cache), "--json", str(tmp_path / "resumed.json")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    subprocess.run(
        [*base, "--json", str(tmp_path / "straight.json")], check=True, capture_output=True, timeout=300
    )
    assert (tmp_path / "resumed.json").read_bytes() == (tmp_path / "straight.json").read_bytes()
    # the units finished before the kill were read back, not recomputed
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())


def test_knockout_cache_resumes_with_identical_results(tmp_path, monkeypatch):
    from modscope.lesions import knockout
    from modscope.lesions.evaluator import UnitEvaluator
    from modscope.tasks.base import Task
    from modscope.training.models import MLP

    g = torch.Generator().manual_seed(0)
    net = MLP((6, 8, 8, 3))
    x = torch.randn(200, 6, generator=g)
    y = net(x).argmax(1, keepdim=True)  # the net's own labels: intact accuracy 1
    task = Task("t", x, y, x, y, "ce", 6, 3, (3,))
    labels = [np.array([0, 0, 1, 1, 2, 2, 0, 1]), np.array([1, 1, 0, 0, 2, 2, 2, 0])]
    plain = knockout(net, task, labels, n_random=25, pairs=True, seed=4).to_dict()
    calls = []
    real = UnitEvaluator.evaluate
    monkeypatch.setattr(UnitEvaluator, "evaluate", lambda self, keep: calls.append(1) or real(self, keep))
    first = knockout(net, task, labels, n_random=25, pairs=True, seed=4, cache=tmp_path).to_dict()
    n_units = len(calls)
    assert n_units == 6 + 15  # six sub-modules and their fifteen pairs
    unit = next(tmp_path.glob("*/unit-00000002.json"))
    unit.unlink()  # as if the run had been killed before this unit finished
    again = knockout(net, task, labels, n_random=25, pairs=True, seed=4, cache=tmp_path).to_dict()
    assert len(calls) == n_units + 1  # only the missing unit was recomputed
    assert first == plain and again == plain
    other = knockout(net, task, labels, n_random=25, pairs=True, seed=5, cache=tmp_path).to_dict()
    assert len(calls) == 2 * n_units + 1 and other != plain  # another seed never reuses the cache


def test_masks_cache_reads_back_the_finished_run(tmp_path, monkeypatch):
    import modscope.workflows.checkpoints as masks
    from modscope.data.functions import Function
    from modscope.tasks.base import Task
    from modscope.training.checkpoint import Checkpoint, save_checkpoint
    from modscope.training.models import MLP, Architecture

    arch = Architecture((6, 8, 4))
    ckpt = tmp_path / "net.pt"
    save_checkpoint(ckpt, Checkpoint(arch, MLP(arch).state_dict(), task={"name": "toy", "params": {}}))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 2, (64, 2), generator=g)
    task = Task(
        "toy",
        x,
        y,
        x,
        y,
        "ce",
        6,
        4,
        (2, 2),
        functions={"a": Function("a", groups=(0,)), "b": Function("b", groups=(1,))},
    )
    monkeypatch.setattr("modscope.workflows.checkpoints.task_for_checkpoint", lambda c, t, d: task)
    calls = []
    real = masks.train_masks
    monkeypatch.setattr(masks, "train_masks", lambda *a, **k: calls.append(1) or real(*a, **k))
    kw = dict(steps=20, batch_size=16, seed=1, cache=tmp_path / "c")
    first = masks.masks_checkpoint(ckpt, **kw)
    second = masks.masks_checkpoint(ckpt, **kw)
    assert len(calls) == 1 and second.to_dict() == first.to_dict()
    assert all(torch.equal(second.masks[f][n], t) for f in first.masks for n, t in first.masks[f].items())
    masks.masks_checkpoint(ckpt, **{**kw, "seed": 2})  # other settings: trained again
    assert len(calls) == 2
    for entry in (tmp_path / "c").glob("*/result.pt"):
        entry.write_bytes(b"truncated")  # damaged entries are detected and recomputed
    masks.masks_checkpoint(ckpt, **kw)
    assert len(calls) == 3
