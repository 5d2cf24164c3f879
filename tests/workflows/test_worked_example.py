"""The worked example's pieces (issue 17, item 7): modscope trains any module on any data, the two
architectures trace to the unit graphs spec §1b says, and the whole pipeline (train, score,
knockout, masks) runs end to end on a transformer with tiny budgets."""

import numpy as np
import pytest
import torch

import modscope
from modscope.data import load_data
from modscope.tasks import get_task
from modscope.training.architectures import DigitTransformer, ResidualCNN
from modscope.training.fit import evaluate_model, fit_model
from modscope.workflows import worked_example as we


def test_fit_model_learns_and_is_seeded():
    task = get_task("digits", seed=0)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        r = fit_model(net, task, steps=150, batch_size=64, lr=3e-3, seed=1)
        results.append(r.metric)
    assert results[0] == results[1] > 0.8  # far above chance (0.1), and reproducible
    assert evaluate_model(net, load_data(task), batch_size=17) == pytest.approx(results[1])


def test_architectures_trace_to_their_unit_graphs():
    cnn = ResidualCNN(image=(1, 8, 8), widths=(4, 6), blocks=1, classes=3)
    g = modscope.load_graph(cnn, example_input=torch.zeros(1, 64))
    assert g.sizes == (1, 4, 4, 6, 6, 3)  # input, stream 1, block 0's mid, block 1's mid, stream 2, head
    assert any("shortcut" in n for n in g.names)
    tr = DigitTransformer(digits=4, flag=2, groups=2, d=8, heads=2, layers=2, ff=12)
    x = torch.zeros(2, 42)
    x[0, [3, 17, 21, 30, 41]] = 1  # digits 3, 7, 1, 0 and the flag's second value
    assert tr.tokens(x)[0].tolist() == [3, 7, 1, 0, 11]
    g = modscope.load_graph(tr, example_input=torch.zeros(1, 42))
    assert g.sizes == (8, 8, 12, 8, 12, 20)  # stream (embedding), per layer values and MLP units, head
    assert g.weights[g.names.index("layers.0.qkv.weight")].shape == (8, 8)  # value rows only (of 24)


@pytest.mark.slow
def test_the_transformer_example_runs_end_to_end(monkeypatch):
    tiny = we.ExampleSettings(40, 64, 3e-3, 2, 2, 20, 60, 3, 600)
    monkeypatch.setattr(we.ExampleSettings, "for_mode", staticmethod(lambda which, quick: tiny))
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    out = we.worked_example("transformer", quick=True)
    # seeded inside, the caller's global generator left as it was
    assert torch.equal(torch.random.get_rng_state(), before)
    assert out["model"] == "DigitTransformer" and out["training"]["steps"] == 40
    assert np.isfinite(out["score"]["ncut"]) and out["score"]["shuffle"]["n"] == 2
    assert sum(out["knockout"]["categories"].values()) == len(out["knockout"]["submodules"]) > 0
    assert set(out["masks"]["functions"]) >= {"add", "mul"}
    assert out["graph"]["groups"][0].startswith("input:embed")
