"""Numerical robustness and hostile input: every case gives a sound result or a clear error."""

from __future__ import annotations

import io
import signal
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from modscope import cluster, load_graph, score
from modscope.cli import main
from modscope.clustering.ncut import ncut
from modscope.clustering.spectral import SpectralClusterer
from modscope.errors import ModscopeError
from modscope.graphs.files.formats import UntrustedPickleWarning
from modscope.graphs.weight_graph import WeightGraph
from tests.conftest import planted_weights, random_mlp


# -- the numerical test matrix ---------------------------------------------------------------
def _planted(**kw):
    ws, planted = planted_weights([20, 16, 12], 2, np.random.default_rng(0), **kw)
    return WeightGraph.from_weights(ws), planted


@pytest.mark.parametrize("scale", [1e-300, 1e-30, 1.0, 1e30, 1e290])
def test_weight_scale_does_not_change_the_partition(scale):
    g, _ = _planted()
    ref = cluster(g, 2, seed=0)
    p = cluster(WeightGraph.from_weights([w * scale for w in g.weights]), 2, seed=0)
    np.testing.assert_array_equal(p.labels, ref.labels)
    assert p.ncut == pytest.approx(ref.ncut, rel=1e-9)


def test_overflowing_weights_are_refused():
    with pytest.raises(ModscopeError, match="too large"):
        WeightGraph.from_weights([np.full((4, 3), 1e306), np.ones((2, 4))])


def test_disconnected_graph_is_split_along_its_components():
    g, planted = _planted(leak=0.0)
    p = cluster(g, 2, seed=0)
    assert p.ncut == pytest.approx(0.0, abs=1e-12)
    assert len({(a, b) for a, b in zip(planted, p.labels, strict=True)}) == 2


def test_many_isolated_nodes():
    rng = np.random.default_rng(0)
    w1 = rng.random((30, 50))
    w1[:, 5:] = 0.0  # 45 of 50 inputs isolated
    g = WeightGraph.from_weights([w1, rng.random((10, 30))])
    p = cluster(g, 3, seed=0)
    assert (p.labels[5:50] == -1).all() and (p.labels[:5] >= 0).all()
    assert np.isfinite(p.ncut)


def test_all_zero_layer():
    rng = np.random.default_rng(0)
    g = WeightGraph.from_weights([rng.random((8, 6)), np.zeros((4, 8))])
    p = cluster(g, 2, seed=0)
    assert (p.labels[-4:] == -1).all()  # the outputs lost every edge
    with pytest.raises(ModscopeError, match="connected nodes"):
        cluster(WeightGraph.from_weights([np.zeros((3, 2)), np.zeros((2, 3))]), 2)


@pytest.mark.parametrize("k", [30, 40, 47])
def test_k_close_to_the_node_count(k):
    g, _ = _planted()  # 48 nodes
    p = cluster(g, k, seed=0)
    assert 0 <= p.ncut <= k and len(set(p.labels.tolist())) <= k
    assert p.ncut == pytest.approx(ncut(g, p.labels))


def test_repeated_eigenvalues():
    block = np.ones((3, 3))
    g = WeightGraph.from_weights([np.kron(np.eye(3), block), np.kron(np.eye(3), block)])
    p = cluster(g, 3, seed=0)  # three identical components: eigenvalue 0 three times
    assert p.ncut == pytest.approx(0.0, abs=1e-12)
    for solver in ("bipartite", "dense"):
        assert SpectralClusterer(3, eigen_solver=solver).partition(g, 0).ncut == pytest.approx(0.0, abs=1e-12)


def test_single_weight_layers_and_one_neuron_layers():
    g = WeightGraph.from_weights([np.array([[1.0, 2.0, 3.0]]), np.array([[4.0], [5.0]])])  # 3-1-2
    p = cluster(g, 2, seed=0)
    assert np.isfinite(p.ncut)


# -- hostile files through the CLI -------------------------------------------------------------
@contextmanager
def _deadline(seconds: int):
    def boom(*_):
        raise TimeoutError("the CLI hung")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _valid_files() -> dict[str, bytes]:
    sd = {k: v.contiguous() for k, v in random_mlp([6, 5, 3]).state_dict().items()}
    pt, npz, st_ = io.BytesIO(), io.BytesIO(), None
    torch.save(sd, pt)
    np.savez(npz, **{k: v.numpy() for k, v in sd.items()})
    from safetensors.torch import save

    st_ = save(sd)
    return {".pt": pt.getvalue(), ".npz": npz.getvalue(), ".safetensors": st_}


VALID = _valid_files()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    suffix=st.sampled_from(sorted(VALID)),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
)
def test_cli_never_shows_a_traceback_or_hangs(tmp_path, capsys, suffix, cut, flips):
    data = bytearray(VALID[suffix])
    for where, byte in flips:
        data[min(int(where * len(data)), len(data) - 1)] = byte
    data = bytes(data[: max(0, int(cut * len(data)))]) if cut < 1.0 else bytes(data)
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    with _deadline(60):
        rc = main(["score", str(path), "--clusters", "2", "--shuffles", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc in (0, 2), err  # 1 would be an internal error: a bug
    assert "Traceback" not in err
    if rc == 2:
        assert err.startswith("modscope: error:") and err.count("\n") == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shapes=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=4),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int32, torch.bool]),
)
def test_odd_shapes_and_dtypes_give_clear_errors(tmp_path, capsys, shapes, dtype):
    sd = {f"l{i}.weight": torch.ones(a, b, dtype=dtype) for i, (a, b) in enumerate(shapes)}
    path = tmp_path / "odd.pt"
    torch.save(sd, path)
    with _deadline(60):
        rc = main(["score", str(path), "--clusters", "2", "--shuffles", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err


def test_internal_errors_are_one_line(monkeypatch, capsys, tmp_path):
    def broken(*a, **k):
        raise RuntimeError("boom\nsecond line")

    import modscope.scoring.engine

    monkeypatch.setattr(modscope.scoring.engine, "score", broken)
    torch.save(random_mlp([4, 3, 2]).state_dict(), tmp_path / "n.pt")
    assert main(["score", str(tmp_path / "n.pt"), "--clusters", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("modscope: internal error: RuntimeError: boom") and err.count("\n") == 1


# -- trusting pickles only on request -----------------------------------------------------------
class _Marker:
    """A pickled object that leaves a trace when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_code_runs_only_with_trust_pickle(tmp_path, capsys):
    trace = tmp_path / "ran"
    net = random_mlp([4, 3, 2])
    path = tmp_path / "whole.pt"
    torch.save({"model": net, "side_effect": _Marker(str(trace))}, path)
    assert main(["score", str(path), "--clusters", "2", "--shuffles", "1", "--no-progress"]) == 2
    assert "pickled code" in capsys.readouterr().err and not trace.exists()
    with pytest.warns(UntrustedPickleWarning):
        g = load_graph(path, trust_pickle=True)
    assert trace.exists() and g.layer_widths == (4, 3, 2)


def test_zip_bomb_like_and_oversized_files_are_refused(tmp_path, monkeypatch):
    import modscope.graphs.files.formats

    monkeypatch.setattr(modscope.graphs.files.formats, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.pt"
    torch.save(random_mlp([10, 10, 2]).state_dict(), path)
    with pytest.raises(ModscopeError, match="limit"):
        load_graph(path)


def test_npz_and_safetensors_round_trip_through_score(tmp_path):
    sd = {k: v.contiguous() for k, v in random_mlp([6, 5, 3]).state_dict().items()}
    save_file(sd, tmp_path / "n.safetensors")
    with zipfile.ZipFile(tmp_path / "n.npz", "w") as z:
        for k, v in sd.items():
            buf = io.BytesIO()
            np.save(buf, v.numpy())
            z.writestr(f"{k}.npy", buf.getvalue())
    a = score(tmp_path / "n.safetensors", n_clusters=2, n_shuffles=2).to_dict()
    b = score(tmp_path / "n.npz", n_clusters=2, n_shuffles=2).to_dict()
    assert a == b


def test_network_too_big_for_memory_is_refused_before_building(tmp_path, monkeypatch):
    import modscope.graphs.weight_graph

    monkeypatch.setattr(modscope.graphs.weight_graph, "available_memory", lambda: 1_000_000)
    torch.save(random_mlp([300, 200, 10]).state_dict(), tmp_path / "n.pt")
    with pytest.raises(ModscopeError, match="GiB of memory is available"):
        load_graph(tmp_path / "n.pt")
