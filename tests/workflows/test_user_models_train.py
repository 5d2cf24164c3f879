"""`train_model` (issue 27): the user's factory trained on their data file, plainly, with BIMT or
for clusterability on its unit graph; the seed fixes the result, the written state dict is the
trained module, and every refusal comes before the first step with nothing written."""

from __future__ import annotations

import pytest
import torch

from modscope.errors import ModscopeError
from modscope.graphs.files.user_model import build_model
from modscope.training.fit import evaluate_model
from modscope.workflows import user_models
from modscope.workflows.user_models import train_model, user_data
from tests.helpers.paths import ROOT
from tests.helpers.user_factories import tiny_data

CNN = "tests.helpers.user_factories:small_cnn"
QUICK = dict(steps=6, batch_size=16, lr=1e-2)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the factories are imported as `python -m` would, from the working folder
    path = tmp_path / "d.npz"
    tiny_data(path)
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_the_written_weights_are_the_trained_module(data, tmp_path, suffix):
    out = tmp_path / f"w{suffix}"
    result = train_model(CNN, data, out=out, **QUICK)
    loaded, _ = build_model(CNN, out)
    for k, v in result.module.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert evaluate_model(loaded, user_data(data)) == result.fit.metric
    d = result.to_dict()
    assert d["model"] == CNN and d["example_input"] == {"shape": [1, 1, 6, 6], "dtype": "float32"}
    assert d["settings"]["steps"] == 6 and "strategy" not in d  # a plain run has no strategy


def test_the_seed_fixes_the_initial_weights_and_the_batches(data):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = train_model(CNN, data, seed=3, **QUICK), train_model(CNN, data, seed=3, **QUICK)
    c = train_model(CNN, data, seed=4, **QUICK)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is left as it was
    sa, sb, sc = (r.module.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize(
    ("options", "name", "metric"),
    [
        (dict(bimt={"lam": 1e-3, "top_k": 2, "swap_every": 2, "metric": "l2"}), "bimt", "connection_cost"),
        (dict(cluster_reg={"loss": "spectral", "lam": 0.1, "eigs": 2}), "spectral-graph", "cluster_penalty"),
        (
            dict(cluster_reg={"loss": "golechha", "lam": 1.0, "clusters": 2}),
            "golechha-graph",
            "clusterability",
        ),
    ],
)
def test_each_strategy_runs_on_the_unit_graph_and_is_recorded(data, options, name, metric):
    result = train_model(CNN, data, **QUICK, **options)
    assert result.fit.settings["strategy"]["name"] == name
    assert metric in result.fit.strategy and torch.isfinite(torch.tensor(result.fit.strategy[metric]))
    if name == "bimt":
        assert result.fit.settings["strategy"]["metric"] == "l2" and result.fit.strategy["swaps"] > 0


def test_a_full_batch_is_the_whole_train_split(data):
    result = train_model(CNN, data, steps=2, batch_size=None)
    assert result.fit.settings["batch_size"] == 48  # tiny_data's train split


def _no_training(*args, **kwargs):
    raise AssertionError("training started")


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("tests.helpers.user_factories:depthwise", dict(bimt=True), "cannot permute unit group"),
        ("tests.helpers.user_factories:depthwise", dict(bimt={}), "cannot permute unit group"),
        (CNN, dict(bimt=True, cluster_reg={"loss": "golechha", "lam": 1.0}), "use one of them"),
        (CNN, dict(cluster_reg={"loss": "golechha", "lam": 1.0, "eigs": 2}), "eigs"),
        (CNN, dict(cluster_reg={"loss": "golechha", "lam": 1.0, "clusters": 5}), "into 5 clusters"),
        (CNN, dict(out="w.npz"), ".safetensors or .pt"),
        ("tests.helpers.user_factories:nothing", {}, "has no 'nothing'"),
    ],
)
def test_refusals_come_before_the_first_step_and_write_nothing(
    data, tmp_path, monkeypatch, model, options, message
):
    monkeypatch.setattr(user_models, "fit_model", _no_training)
    options = {"out": tmp_path / "w.pt", **options}
    with pytest.raises(ModscopeError, match=message) as e:
        train_model(model, data, **QUICK, **options)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_data_without_a_train_split_is_refused(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.chdir(ROOT)
    np.savez(tmp_path / "t.npz", x_test=np.zeros((4, 1, 6, 6), np.float32), y_test=np.zeros(4, int))
    with pytest.raises(ModscopeError, match="no train split"):
        train_model(CNN, tmp_path / "t.npz", **QUICK)
