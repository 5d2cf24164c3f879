"""The in-context regression transformer (`InContextTransformer`, task ``incontext-linreg``): its
causal reading of the sequence, the unit graph modscope's tracer reads from it, BIMT swaps that keep
its function, and a smoke run of ``experiments/bimt_paper/incontext.py``."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

import modscope
from modscope.errors import ModscopeError
from modscope.tasks import get_task
from modscope.tasks.incontext import to_tokens
from modscope.training.architectures import InContextTransformer
from modscope.training.bimt import BIMTConfig
from modscope.training.bimt_graph import GraphBIMT
from tests.helpers.paths import ROOT


def _model(seed: int = 0, **kw) -> InContextTransformer:
    torch.manual_seed(seed)
    return InContextTransformer(**kw).double()


def _tokens(n: int = 6, pairs: int = 2) -> torch.Tensor:
    t = get_task("incontext-linreg", seed=1, n_sequences=50, pairs=pairs)
    return to_tokens(t.x_train[:n]).double()


def test_output_is_one_prediction_per_x_token_and_causal():
    model = _model().eval()
    x = _tokens(pairs=3)  # (6, 5, 2): x1 y1 x2 y2 x3
    out = model(x)
    assert out.shape == (6, 3)
    torch.testing.assert_close(model(x.flatten(1)), out)  # flat sequences read the same
    later = x.clone()
    later[:, 3:] += 1.0  # change y2 and x3: the predictions at x1 and x2 must not move
    changed = model(later)
    torch.testing.assert_close(changed[:, :2], out[:, :2], rtol=0, atol=1e-12)
    assert not torch.allclose(changed[:, 2], out[:, 2])


def test_no_layernorm_and_the_papers_sizes():
    model = InContextTransformer()
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes["embed.weight"] == (32, 2) and shapes["head.weight"] == (1, 32)
    assert shapes["blocks.1.qkv.weight"] == (96, 32) and shapes["blocks.1.fc1.weight"] == (128, 32)
    assert len(model.blocks) == 2 and all(b.heads == 1 for b in model.blocks)
    with pytest.raises(ModscopeError, match="divisible by heads"):
        InContextTransformer(n_embed=30, heads=4)


def test_the_tracer_reads_one_residual_stream_through_both_blocks():
    model = _model()
    net = modscope.network(model, _tokens()[:1])
    g = net.graph
    # input features, the residual stream (embed + 2 attention outputs + 2 MLP outputs merged),
    # each block's attention values and MLP hidden units, the read-out
    assert list(g.sizes) == [2, 32, 32, 128, 32, 128, 1]
    assert g.group_names[1].startswith("embed") and "merged" in g.group_names[1]
    edges = {}
    for (src, dst), w in zip(g.links, g.weights, strict=True):
        edges.setdefault((src, dst), []).append(w)
    # the stream reads the input through embed.weight; the read-out reads the stream
    np.testing.assert_allclose(edges[(0, 1)][0], model.embed.weight.detach().numpy())
    np.testing.assert_allclose(edges[(1, 6)][0], model.head.weight.detach().numpy())
    # both blocks' attention values and MLPs read the same stream and write back into it
    for block, (v, hidden) in enumerate(((2, 3), (4, 5))):
        fc1 = model.blocks[block].fc1.weight.detach().numpy()
        np.testing.assert_allclose(edges[(1, hidden)][0], fc1)
        assert (1, v) in edges and (v, 1) in edges and (hidden, 1) in edges


@pytest.mark.parametrize("heads", [1, 2])
def test_bimt_swaps_keep_the_function(heads):
    model = _model(heads=heads, n_embed=16).eval()
    x = _tokens(8)
    bimt = GraphBIMT(BIMTConfig(top_k=8, A=2.0, y_star=0.5, reduction="mean"), model, x[:1])
    # one head: its 16 dimensions move one by one (q, k and v alike); two heads move as wholes
    v = 16 if heads == 1 else heads
    assert [g.size for g in bimt.groups] == [16, v, 64, v, 64]
    with torch.no_grad():
        before = model(x)
        total = 0
        for _ in range(3):
            total += bimt.swap_pass(model).swaps
        torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6)
    assert total > 0


@pytest.mark.slow
def test_experiment_quick_run_writes_its_receipt_and_figure(tmp_path):
    path = ROOT / "experiments" / "bimt_paper" / "incontext.py"
    spec = importlib.util.spec_from_file_location("bimt_incontext", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out, fig = tmp_path / "r.json", tmp_path / "f.png"
    mod.main(["--quick", "--out", str(out), "--figure", str(fig)])
    r = json.loads(out.read_text())
    assert {"command", "settings", "version", "machine", "note", "results"} <= r.keys()
    runs = r["results"]["runs"]
    assert [(x["trainer"], x["seed"]) for x in runs] == [("plain", 0), ("bimt", 0)]
    for run in runs:
        assert 0 <= run["sparsity"] <= 1 and run["test_mse_last"] > 0
        assert run["knockout"]["submodules"] >= run["knockout"]["significant"] >= 0
        top = run["w_corr"]["block2"]
        assert len(top) == 3 and abs(top[0]["corr"]) >= abs(top[2]["corr"])
        assert all(0 <= u["unit"] < 32 and abs(u["corr"]) <= 1 for u in top)
    assert set(r["results"]["rows"]) == {"plain", "bimt"} and "BIMT" in r["results"]["statement"]
    assert fig.stat().st_size > 1000
