"""The spectral path as torch tensor ops (issue 26): batched k-means, the device eigensolvers and
`TorchBatchExecutor` against the plain numpy path. Every test runs on the CPU through the same
code (``device="cpu"``) and again on CUDA where there is one (``pytest -m cuda``)."""

import numpy as np
import pytest
import torch

from modscope import WeightGraph, score
from modscope.cli import main
from modscope.clustering.batched import batched_singular, device_embedding
from modscope.clustering.embedding import spectral_embedding
from modscope.clustering.kmeans import kmeans_restarts
from modscope.clustering.kmeans_torch import kmeans_restarts_torch
from modscope.clustering.ncut import ncut
from modscope.clustering.spectral import SpectralClusterer
from modscope.clustering.subspace import topk_eigh
from modscope.errors import ModscopeError
from modscope.scoring.batched import TorchBatchExecutor
from tests.conftest import planted_weights
from tests.helpers.paths import FIXTURES

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA here")],
    ),
]


def _blobs(k, n, d, sep, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    return centres[rng.integers(k, size=n)] + rng.normal(size=(n, d))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("k", "sep"), [(3, 10.0), (12, 8.0), (12, 0.0), (70, 6.0)])
def test_batched_kmeans_gives_the_numpy_labels(device, k, sep):
    # the same generators, the same draws: the same seeding and Lloyd's iterations, restart by
    # restart (float32 distances with the index packed in, as the numpy path); on unstructured
    # points (sep 0) too, where no two centres are within rounding of a point
    Xs = [_blobs(k, 240 if k < 70 else 400, min(k, 12), sep, seed) for seed in range(3)]
    labels, inertia = kmeans_restarts_torch(Xs, k, 7, [np.random.default_rng(s) for s in range(3)], device)
    assert labels.shape == (3, 7, Xs[0].shape[0]) and inertia.shape == (3, 7)
    for g, X in enumerate(Xs):
        ref_labels, ref_inertia = kmeans_restarts(X, k, 7, np.random.default_rng(g))
        same = (labels[g] == ref_labels).all(axis=1)
        assert same.mean() >= (1.0 if sep > 0 else 0.8), same
        np.testing.assert_allclose(inertia[g][same], ref_inertia[same], rtol=1e-9)
        # the inertia is what it says: the summed squared distance to each cluster's mean
        for r in range(7):
            means = np.stack([X[labels[g, r] == c].mean(0) for c in range(k)])
            np.testing.assert_allclose(inertia[g, r], ((X - means[labels[g, r]]) ** 2).sum(), rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_duplicate_points_fall_back_to_the_numpy_draws(device):
    # 5 distinct points for k = 8: k-means++ runs out of points off the centres (extra draws)
    # and clusters go empty; the result is then exactly the numpy path's
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 3))[rng.integers(5, size=60)]
    Y = _blobs(8, 60, 3, 9.0, 1)
    rngs = [np.random.default_rng(3), np.random.default_rng(4)]
    labels, inertia = kmeans_restarts_torch([X, Y], 8, 4, rngs, device)
    ref = kmeans_restarts(X, 8, 4, np.random.default_rng(3))
    np.testing.assert_array_equal(labels[0], ref[0])
    # the points sit on their centres: the inertia is rounding noise, summed in another order by
    # another BLAS or on a GPU (8e-14 on one CPU, 1.1e-12 on another and on an H200), so only its
    # size is compared
    np.testing.assert_allclose(inertia[0], ref[1], rtol=1e-9, atol=1e-9)
    ref = kmeans_restarts(Y, 8, 4, np.random.default_rng(4))
    np.testing.assert_array_equal(labels[1], ref[0])


@pytest.mark.parametrize("device", DEVICES)
def test_subspace_iteration_finds_the_top_eigenpairs(device):
    # a spiked spectrum: one dominant eigenvalue (a graph's Perron value) above a random bulk,
    # the case where an unlocked filter would drown the rest in the largest
    rng = np.random.default_rng(0)
    A = rng.random((2, 150, 200))
    G = np.einsum("bij,bik->bjk", A, A)
    G /= np.linalg.eigvalsh(G)[:, -1][:, None, None]
    Gt = torch.as_tensor(G, device=device)
    values, vectors, converged = topk_eigh(lambda X: Gt @ X, (2, 200), 6, lo=0.0, hi=1.0, device=device)
    assert converged.all()
    w, W = np.linalg.eigh(G)
    np.testing.assert_allclose(values.cpu().numpy(), w[:, ::-1][:, :6], atol=1e-10)
    overlap = np.abs(np.einsum("bnk,bnk->bk", vectors.cpu().numpy(), W[:, :, ::-1][:, :, :6]))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)
    # out of rounds: marked unconverged, never handed on as if it were an answer
    *_, short = topk_eigh(lambda X: Gt @ X, (2, 200), 6, lo=0.0, hi=1.0, device=device, max_rounds=1)
    assert not short.any()


def _planted(widths=(24, 30, 30, 12), modules=3, seed=0):
    weights, _ = planted_weights(widths, modules, np.random.default_rng(seed))
    return WeightGraph.from_weights(weights)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("solver", ["eigh", "subspace"])
def test_batched_gram_solvers_agree_with_the_plain_embedding(device, solver):
    graphs = [_planted(seed=s) for s in range(3)]
    solved = batched_singular(graphs, 3, torch.device(device), solver)
    for g, (emb, ev, nodes) in zip(graphs, solved, strict=True):
        emb1, ev1, nodes1 = spectral_embedding(g, 3, "bipartite")
        np.testing.assert_array_equal(nodes, nodes1)
        np.testing.assert_allclose(ev, ev1, atol=1e-10)
        np.testing.assert_allclose(emb, emb1, atol=1e-8)


@pytest.mark.parametrize("device", DEVICES)
def test_device_embedding_of_a_graph_that_is_not_a_chain(device):
    # a skip connection (layer 0 -> 2) makes the graph neither a chain nor bipartite
    rng = np.random.default_rng(1)
    w, labels = planted_weights((20, 20, 20), 2, rng)
    skip = np.where(labels[40:, None] == labels[None, :20], 1.0, 0.02) * rng.uniform(0.5, 1.5, (20, 20))
    g = WeightGraph.from_weights([*w, skip], links=[(0, 1), (1, 2), (0, 2)], sizes=[20, 20, 20])
    before = g.fingerprint()
    emb, ev, nodes = device_embedding(g, 2, torch.device(device))
    assert g.fingerprint() == before  # the graph's own |W| untouched (as_tensor shares CPU memory)
    emb1, ev1, _ = spectral_embedding(g, 2, "dense")
    np.testing.assert_allclose(ev, ev1, atol=1e-9)
    np.testing.assert_allclose(emb, emb1, atol=1e-7)
    plain = score(g, n_clusters=2, n_shuffles=0)
    on_device = score(g, n_clusters=2, n_shuffles=0, device=device)
    np.testing.assert_array_equal(on_device.partition.labels, plain.partition.labels)
    assert on_device.value == pytest.approx(plain.value, abs=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("select", ["inertia", "ncut"])
def test_score_on_the_device_equals_the_plain_score(device, select):
    # the network's own clustering and every shuffle's: the same graphs (same seeds, drawn on
    # host threads), the same labels, n-cuts equal to 1e-9
    g = _planted((30, 40, 40, 20), 4, seed=5)
    clusterer = SpectralClusterer(4, select=select)
    plain = score(g, measure=clusterer, n_shuffles=7, seed=2)
    ex = TorchBatchExecutor(device, batch_size=3, threads=2)
    batched = score(g, measure=clusterer, n_shuffles=7, seed=2, executor=ex)
    np.testing.assert_array_equal(batched.partition.labels, plain.partition.labels)
    assert batched.value == pytest.approx(plain.value, abs=1e-9)
    np.testing.assert_allclose(batched.null.samples, plain.null.samples, rtol=1e-9, atol=1e-9)
    assert batched.value == pytest.approx(ncut(g, batched.partition.labels), abs=1e-12)


def test_score_device_refuses_with_jobs_and_bad_devices():
    g = _planted()
    with pytest.raises(ModscopeError, match="not two of them"):
        score(g, n_clusters=3, n_shuffles=2, jobs=2, device="cpu")
    with pytest.raises(ModscopeError, match="unknown device|unsupported device"):
        score(g, n_clusters=3, n_shuffles=2, device="tpu")


def test_cli_device_flags(tmp_path, capsys, monkeypatch):
    from safetensors.numpy import save_file

    g = _planted()
    path = tmp_path / "net.safetensors"
    save_file({f"l{i}.weight": w.astype(np.float32) for i, w in enumerate(g.weights)}, str(path))
    out = tmp_path / "r.json"
    args = ["score", str(path), "--clusters", "3", "--shuffles", "3", "--no-progress"]
    assert main([*args, "--device", "cpu", "--json", str(out)]) == 0
    plain = tmp_path / "p.json"
    assert main([*args, "--json", str(plain)]) == 0
    import json

    a, b = json.loads(out.read_text()), json.loads(plain.read_text())
    assert a["labels"] == b["labels"] and a["ncut"] == pytest.approx(b["ncut"], abs=1e-9)
    capsys.readouterr()
    for bad in ("tpu", "cuda:x", "cuda:"):  # the parser refuses: one line, exit 2
        assert main([*args, "--device", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "device" in err[0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    written = tmp_path / "never.json"
    for cmd in (args, ["blocks", str(path), "--shuffles", "2", "--no-progress"]):
        assert main([*cmd, "--device", "cuda:1", "--json", str(written)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "CUDA is not available" in err[0]
    assert not written.exists()


@pytest.mark.slow  # every block of a llama, twice
def test_streamed_blocks_equal_the_blocks_and_resume_from_the_cache(tmp_path, capsys):
    # a LLaMA-layout file read one block at a time (memory-mapped): the blocks of the family's
    # graph, the rows of score_blocks; a rerun reads every finished row back and computes nothing

    from modscope import score_blocks
    from modscope.graphs.transformer import count_mlp_blocks, iter_mlp_blocks, mlp_blocks
    from modscope.scoring.blocks import stream_block_scores

    llama = FIXTURES / "families" / "llama" / "model.safetensors"
    whole = mlp_blocks(llama)
    streamed = list(iter_mlp_blocks(llama))
    assert count_mlp_blocks(llama) == len(whole) == len(streamed)
    for a, b in zip(whole, streamed, strict=True):
        assert a.name == b.name
        np.testing.assert_allclose(b.w_in, a.w_in, rtol=1e-12)
        np.testing.assert_allclose(np.abs(b.w_out), np.abs(a.w_out), rtol=1e-12)
    plain = score_blocks(llama, n_clusters=2, n_shuffles=3, seed=1).to_frame()
    first = stream_block_scores(llama, n_clusters=2, n_shuffles=3, seed=1, device="cpu", cache=tmp_path)
    assert (first.computed, first.reused) == (len(whole), 0)
    np.testing.assert_allclose(first.to_frame()["value"], plain["value"], atol=1e-9)
    np.testing.assert_allclose(first.to_frame()["z"], plain["z"], atol=1e-6)
    again = stream_block_scores(llama, n_clusters=2, n_shuffles=3, seed=1, cache=tmp_path)
    assert (again.computed, again.reused) == (0, len(whole))
    assert again.to_frame()["value"].tolist() == first.to_frame()["value"].tolist()
    out = tmp_path / "rows.json"
    args = ["blocks", str(llama), "--clusters", "2", "--shuffles", "3", "--seed", "1", "--no-progress"]
    assert main([*args, "--cache", str(tmp_path), "--json", str(out)]) == 0
    assert "model.layers.1.mlp" in capsys.readouterr().out and out.is_file()


@pytest.mark.parametrize("device", DEVICES)
def test_activation_graph_and_its_unit_null_on_the_device(device):
    # an activation graph's own clustering and its unit-permutation null run the same batched way
    from modscope.graphs.activations import ActivationGraph, standardised_ranks

    rng = np.random.default_rng(4)
    z = rng.normal(size=(80, 3))
    acts = [z @ rng.normal(size=(3, w)) + 0.3 * rng.normal(size=(80, w)) for w in (12, 10, 8)]
    g = ActivationGraph.from_ranks([standardised_ranks(a) for a in acts])
    plain = score(g, n_clusters=3, n_shuffles=4, seed=0)
    batched = score(g, n_clusters=3, n_shuffles=4, seed=0, executor=TorchBatchExecutor(device, 2, threads=2))
    assert plain.null_name == batched.null_name == "units"
    np.testing.assert_array_equal(batched.partition.labels, plain.partition.labels)
    np.testing.assert_allclose(batched.null.samples, plain.null.samples, rtol=1e-9, atol=1e-9)


def test_sweep_rows_on_the_device_equal_the_plain_rows(tmp_path, capsys):
    import json

    from modscope.workflows.sweep import run_sweep
    from tests.conftest import random_mlp

    for i, widths in enumerate([[10, 8, 8, 4], [9, 7, 6]]):
        torch.save(random_mlp(widths, seed=i).state_dict(), tmp_path / f"net{i}.pt")
    config = {"checkpoints": ["net*.pt"], "settings": {"clusters": [2, 3], "shuffles": 3, "seed": 4}}
    (tmp_path / "sweep.json").write_text(json.dumps(config))
    plain = run_sweep(tmp_path / "sweep.json", out=tmp_path / "plain.csv").table
    dev = run_sweep(tmp_path / "sweep.json", out=tmp_path / "dev.csv", device="cpu").table
    np.testing.assert_allclose(dev["ncut"], plain["ncut"], atol=1e-9)
    np.testing.assert_allclose(dev["shuffle_mean"], plain["shuffle_mean"], atol=1e-9)
    with pytest.raises(ModscopeError, match="not both"):
        run_sweep(tmp_path / "sweep.json", out=tmp_path / "x.csv", device="cpu", jobs=2)
    args = ["sweep", str(tmp_path / "sweep.json"), "--out", str(tmp_path / "cli.csv"), "--no-progress"]
    assert main([*args, "--device", "cpu"]) == 0
    assert main([*args, "--device", "cpu", "--jobs", "2"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_out_of_device_memory_is_one_line_saying_what_to_lower(monkeypatch):
    import modscope.scoring.batched as batched

    def too_big(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(batched, "kmeans_restarts_torch", too_big)
    with pytest.raises(ModscopeError, match="ran out of memory for .*restarts.*lower") as exc:
        score(_planted(), n_clusters=3, n_shuffles=2, device="cpu")
    assert "\n" not in str(exc.value)


def test_a_whole_transformer_graph_on_the_device():
    # GPT-2's merged-stream graph (not a chain): subspace iteration applied block by block

    from modscope import load_graph

    g = load_graph(FIXTURES / "families" / "gpt2" / "model.safetensors")
    assert not g.is_chain
    plain = score(g, n_clusters=4, n_shuffles=0, seed=3)
    dev = score(g, n_clusters=4, n_shuffles=0, seed=3, device="cpu")
    assert dev.value == pytest.approx(plain.value, abs=1e-9)
    np.testing.assert_array_equal(dev.partition.labels, plain.partition.labels)
