"""Executors: local processes, a real Dask cluster on loopback, batched torch eigensolves."""

import operator
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from modscope.cli import main
from modscope.clustering.batched import batched_singular
from modscope.clustering.embedding import spectral_embedding
from modscope.clustering.spectral import SpectralClusterer
from modscope.errors import ModscopeError
from modscope.graphs.weight_graph import WeightGraph
from modscope.runtime.executors import DaskExecutor, LocalExecutor
from modscope.scoring.batched import TorchBatchExecutor
from tests.conftest import planted_weights, random_mlp, shuffle_ncuts
from tests.helpers.paths import ROOT

BIN = Path(sys.executable).parent


def test_local_executor_orders_and_indexes():
    items = list(range(7))
    assert list(LocalExecutor(1).map(operator.add, items, 10)) == [x + 10 for x in items]
    assert dict(LocalExecutor(1).as_completed(operator.mul, items, 3)) == {i: 3 * i for i in items}
    with pytest.raises(ModscopeError):
        list(LocalExecutor(0).map(operator.add, items, 0))


# -- batched eigensolves ---------------------------------------------------------------------------
def _graph(sparsity=0.0, seed=0):
    ws, _ = planted_weights([30, 24, 20, 16], 3, np.random.default_rng(seed), leak=0.3, sparsity=sparsity)
    return WeightGraph.from_weights(ws)


@pytest.mark.parametrize("sparsity", [0.0, 0.6])
def test_batched_eigensolve_matches_unbatched(sparsity):
    from modscope.nulls import shuffle_graph

    g = _graph(sparsity)
    graphs = [shuffle_graph(g, "layer", s) for s in range(5)]
    solved = batched_singular(graphs, 4, torch.device("cpu"))
    for h, found in zip(graphs, solved, strict=True):
        emb, ev, nodes = found
        emb1, ev1, nodes1 = spectral_embedding(h, 4, "bipartite")
        np.testing.assert_array_equal(nodes, nodes1)
        np.testing.assert_allclose(ev, ev1, atol=1e-12)
        np.testing.assert_allclose(emb, emb1, atol=1e-9)


@pytest.mark.parametrize("method", ["layer", "layer_nonzero"])
def test_batched_shuffle_ncuts_identical_to_unbatched(method):
    g = _graph(0.5, seed=2)  # sparse: `layer` shuffles leave some nodes isolated
    clusterer = SpectralClusterer(4)
    plain = shuffle_ncuts(g, 7, method, clusterer, seed=3)
    batched = shuffle_ncuts(g, 7, method, clusterer, seed=3, jobs=TorchBatchExecutor("cpu", batch_size=3))
    np.testing.assert_allclose(batched, plain, rtol=1e-12)


def test_batched_falls_back_where_it_cannot_batch():
    # a 3-node-wide middle layer: k = 4 exceeds the smaller side's rank for some shuffles
    rng = np.random.default_rng(0)
    sparse = rng.normal(size=(3, 9)) * (rng.random((3, 9)) < 0.5)
    g = WeightGraph.from_weights([sparse, rng.normal(size=(9, 3))])
    clusterer = SpectralClusterer(4)
    plain = shuffle_ncuts(g, 4, "layer", clusterer, seed=0)
    batched = shuffle_ncuts(g, 4, "layer", clusterer, seed=0, jobs=TorchBatchExecutor("cpu", 4))
    np.testing.assert_allclose(batched, plain, rtol=1e-12)
    dense = SpectralClusterer(4, eigen_solver="dense")  # not batchable: the plain units run
    np.testing.assert_array_equal(
        shuffle_ncuts(g, 3, "layer", dense, seed=0, jobs=TorchBatchExecutor("cpu")),
        shuffle_ncuts(g, 3, "layer", dense, seed=0),
    )


def test_cuda_absent_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    g = _graph()
    with pytest.raises(ModscopeError, match="CUDA is not available"):
        shuffle_ncuts(g, 2, "layer", SpectralClusterer(3), jobs=TorchBatchExecutor("cuda"))
    ckpt = tmp_path / "net.pt"
    torch.save(random_mlp([6, 5, 4]).state_dict(), ckpt)
    assert main(["score", str(ckpt), "--clusters", "2", "--shuffles", "2", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert main(["score", str(ckpt), "--shuffles", "2", "--device", "cpu", "--jobs", "2"]) == 2


# -- a real Dask cluster ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dask_cluster(log):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    procs, logs = [], [open(log / name, "w") for name in ("scheduler.log", "worker0.log", "worker1.log")]
    try:
        procs.append(subprocess.Popen(
            [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=logs[0], stderr=subprocess.STDOUT, env=env))
        for i in range(2):
            procs.append(subprocess.Popen(
                [BIN / "dask", "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--host", "127.0.0.1", "--memory-limit", "0", "--death-timeout", "60",
                 "--preload", "modscope.scoring.engine"],
                stdout=logs[1 + i], stderr=subprocess.STDOUT, env=env))
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):  # workers first, then the scheduler; throwaway: no grace period
            p.kill()
            p.wait(timeout=10)
        for fh in logs:
            fh.close()


@pytest.mark.slow
@pytest.mark.dask
def test_real_dask_cluster_gives_the_local_results(tmp_path):
    """One scheduler and two single-thread workers on loopback, torn down whatever happens."""
    import json

    from modscope.workflows.sweep import run_sweep

    ckpt = tmp_path / "score.pt"
    torch.save(random_mlp([12, 10, 10, 6], seed=1).state_dict(), ckpt)
    args = ["score", str(ckpt), "--clusters", "3", "--shuffles", "6", "--seed", "5", "--no-progress"]
    assert main([*args, "--json", str(tmp_path / "local.json")]) == 0
    for i in range(2):
        torch.save(random_mlp([10, 8, 6], seed=i).state_dict(), tmp_path / f"n{i}.pt")
    config = {"checkpoints": ["n*.pt"], "settings": {"clusters": [2, 3], "shuffles": 3}}
    (tmp_path / "s.json").write_text(json.dumps(config))
    local = run_sweep(tmp_path / "s.json", out=tmp_path / "local.csv")
    g, c = _graph(), SpectralClusterer(3)
    with dask_cluster(tmp_path) as address:
        # the CLI's score: the JSON byte for byte
        assert main([*args, "--json", str(tmp_path / "dask.json"), "--scheduler", address]) == 0
        assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()
        with DaskExecutor(address, timeout=20) as ex:
            assert list(ex.map(operator.add, range(5), 2)) == [x + 2 for x in range(5)]
            assert dict(ex.as_completed(operator.mul, list(range(5)), 3)) == {i: 3 * i for i in range(5)}
            np.testing.assert_array_equal(shuffle_ncuts(g, 4, "layer", c, seed=1, jobs=ex),
                                          shuffle_ncuts(g, 4, "layer", c, seed=1))
            remote = run_sweep(tmp_path / "s.json", out=tmp_path / "dask.csv", jobs=ex)
    assert remote.computed == 4
    cols = [col for col in local.table.columns if col != "seconds"]
    assert remote.table[cols].equals(local.table[cols])


@pytest.mark.dask
def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ModscopeError, match="cannot reach the Dask scheduler"):
        DaskExecutor(f"tcp://127.0.0.1:{_free_port()}", timeout=2).client()


def test_cli_device_cpu_gives_the_same_json(tmp_path):
    ckpt = tmp_path / "net.pt"
    torch.save(random_mlp([12, 10, 10, 6], seed=2).state_dict(), ckpt)
    args = ["score", str(ckpt), "--clusters", "3", "--shuffles", "5", "--no-progress"]
    assert main([*args, "--json", str(tmp_path / "plain.json")]) == 0
    assert main([*args, "--json", str(tmp_path / "batched.json"), "--device", "cpu"]) == 0
    assert (tmp_path / "batched.json").read_bytes() == (tmp_path / "plain.json").read_bytes()
