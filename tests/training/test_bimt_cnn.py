"""The BIMT comparison's CNN: it traces, BIMT's swaps keep its function, where its units sit, the
per-pixel path measure against a brute-force sum over paths and a planted cut, sparsity, training
with and without BIMT, one-line refusals, and a quick run of experiments/bimt_paper/cnn.py."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys

import numpy as np
import pytest
import torch

import modscope
from modscope.errors import ModscopeError
from modscope.tasks import get_task
from modscope.training.architectures import BIMTCNN
from modscope.training.bimt import BIMTConfig
from modscope.training.bimt_cnn import fit_cnn, pixel_paths, receptive_field, weight_sparsity
from modscope.training.bimt_graph import GraphBIMT
from modscope.training.permutation import permute
from tests.helpers.paths import ROOT


def test_the_cnn_traces_channels_as_units():
    model = BIMTCNN(seed=0)
    net = modscope.network(model, torch.zeros(1, 784))
    g = net.graph
    assert list(g.sizes) == [1, 8, 16, 10]  # one input channel, the channels, the classes
    assert list(g.group_kinds) == ["input", "Conv2d", "Conv2d", "Linear"]
    assert model(torch.zeros(5, 784)).shape == (5, 10)
    assert model.map_shape == (7, 7)


def test_the_seed_draws_the_weights_without_touching_global_state():
    state = torch.random.get_rng_state()
    a, b, c = BIMTCNN(seed=3), BIMTCNN(seed=3), BIMTCNN(seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # no draw from torch's global generator
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(p, q), name
        assert not torch.equal(p, r), name
        bound = 1.0 / np.sqrt(p.shape[1] * (p[0, 0].numel() if p.ndim > 2 else 1)) if p.ndim > 1 else None
        if bound is not None:
            assert float(p.detach().abs().max()) <= bound


def test_bimt_swaps_and_permutations_keep_the_outputs():
    torch.manual_seed(0)
    model = BIMTCNN(seed=1).eval()
    x = torch.rand(16, 784)
    with torch.no_grad():
        base = model(x)
    b = GraphBIMT(BIMTConfig(top_k=8, A=2.0, y_star=0.5), model, x[:1], input_shape=(28, 28))
    stats = b.swap_pass(model)
    assert stats.swaps > 0
    rng = np.random.default_rng(0)
    for grp in b.groups:  # any order of any group, not only the ones the search picks
        permute(model, grp, rng.permutation(grp.size))
    with torch.no_grad():
        torch.testing.assert_close(model(x), base, rtol=0, atol=1e-6)


def test_units_sit_on_the_image_plane_and_channel_grids():
    model = BIMTCNN(seed=0)
    b = GraphBIMT(BIMTConfig(), model, torch.zeros(1, 784), input_shape=(28, 28))
    c = b.coords
    assert c.shape == (1 + 8 + 16 + 10, 2)
    assert torch.all((c >= 0) & (c <= 1))
    # the conv reads one channel: the input is one unit, at the centre of the image plane
    torch.testing.assert_close(c[0], torch.tensor([0.5, 0.5], dtype=c.dtype))
    conv1, conv2 = c[1:9], c[9:25]
    assert len(set(map(tuple, conv1.tolist()))) == 8 and len(set(conv1[:, 1].tolist())) == 3  # 3 x 3 grid
    assert len(set(map(tuple, conv2.tolist()))) == 16 and len(set(conv2[:, 1].tolist())) == 4  # 4 x 4 grid


def _brute_paths(model: BIMTCNN) -> np.ndarray:
    """Every path pixel -> conv1 position -> conv2 position -> head -> output, enumerated."""
    h, w = model.image
    k1, k2, head = (m.weight.detach().double().abs().numpy() for m in (model.conv1, model.conv2, model.head))
    mh, mw = model.map_shape
    h1, w1 = (h + 1) // 2, (w + 1) // 2

    def reads(p, q, n_rows, n_cols):  # (kernel row, kernel col, input row, input col) a position reads
        for a, bb in itertools.product(range(5), range(5)):
            r, s = 2 * p - 2 + a, 2 * q - 2 + bb
            if 0 <= r < n_rows and 0 <= s < n_cols:
                yield a, bb, r, s

    mass = np.zeros((h, w))
    c1n, c2n = k1.shape[0], k2.shape[0]
    for c2, p2, q2 in itertools.product(range(c2n), range(mh), range(mw)):
        to_out = head[:, c2 * mh * mw + p2 * mw + q2].sum()
        for a2, b2, p1, q1 in reads(p2, q2, h1, w1):
            for c1 in range(c1n):
                for a1, b1, r, s in reads(p1, q1, h, w):
                    mass[r, s] += to_out * k2[c2, c1, a2, b2] * k1[c1, 0, a1, b1]
    return mass


def test_pixel_paths_is_the_sum_over_paths():
    model = BIMTCNN(image=(6, 5), widths=(2, 3), classes=2, seed=0)
    np.testing.assert_allclose(pixel_paths(model), _brute_paths(model), rtol=1e-10)


def test_a_head_that_reads_one_corner_cuts_off_the_far_pixels():
    model = BIMTCNN(image=(8, 8), widths=(2, 3), classes=2, seed=0)  # maps 4x4, then 2x2
    with torch.no_grad():
        w = model.head.weight.view(2, 3, 2, 2)
        w[:, :, 1, :] = 0  # only the map's top-left position (0, 0) is read
        w[:, :, :, 1] = 0
        w[:, 0, 1, 1] = 1e-4  # channel 0 at (1, 1): below 1 % of the largest, does not survive
    # conv2 (0, 0) reads conv1 rows/cols 0..2, which read pixels 0..6: row 7 and column 7 are cut off
    rf = receptive_field(model)
    alive = np.asarray(rf["alive"])
    assert alive[:7, :7].all() and not alive[7, :].any() and not alive[:, 7].any()
    assert rf["dead_fraction"] == pytest.approx(1 - 49 / 64)
    assert (pixel_paths(model) > 0).all()  # without the threshold the 1e-4 weights still reach


def test_sparsity_counts_weights_below_one_percent_of_their_layer():
    model = BIMTCNN(image=(4, 4), widths=(1, 1), classes=1, seed=0)  # 25 + 25 + 1 weights (1x1 map)
    with torch.no_grad():
        for layer in (model.conv1, model.conv2, model.head):
            layer.weight.fill_(1.0)
        model.conv1.weight.view(-1)[:5] = 0.009  # below 1 % of 1
        model.conv2.weight.view(-1)[:2] = 0.011  # above
    assert weight_sparsity(model) == pytest.approx(5 / 51)


def test_fit_cnn_trains_plain_and_with_bimt():
    task = get_task("digits", seed=0)
    plain = fit_cnn(task, bimt=False, steps=40, seed=0)
    again = fit_cnn(task, bimt=False, steps=40, seed=0)
    assert plain.fit.metric == again.fit.metric and plain.fit.metric > 0.3
    bimt = fit_cnn(task, bimt=True, steps=40, seed=0, bimt_options={"swap_every": 10, "lam": 0.1})
    assert bimt.fit.strategy["swaps"] >= 0 and bimt.fit.settings["strategy"]["name"] == "bimt"
    assert bimt.to_dict()["bimt"] is True and bimt.model.image == (8, 8)


def test_bad_input_is_one_line():
    task = get_task("digits", seed=0)
    flat = get_task("formula-independence", seed=0)
    with pytest.raises(ModscopeError, match="image task") as e:
        fit_cnn(flat, bimt=False, steps=1)
    assert "\n" not in str(e.value)
    with pytest.raises(ModscopeError, match="bimt=True"):
        fit_cnn(task, bimt=False, steps=1, bimt_options={"lam": 0.1})
    with pytest.raises(ModscopeError, match="BIMTCNN"):
        pixel_paths(torch.nn.Linear(2, 2))
    with pytest.raises(ModscopeError, match="threshold"):
        pixel_paths(BIMTCNN(image=(4, 4), seed=0), rel=1.5)


def _experiment():
    path = ROOT / "experiments" / "bimt_paper" / "cnn.py"
    spec = importlib.util.spec_from_file_location("bimt_paper_cnn", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 7-10 s on the shared 2-core CPU
def test_the_experiment_runs_quick(tmp_path):
    rng = np.random.default_rng(0)
    y_tr, y_te = rng.integers(0, 10, 300), rng.integers(0, 10, 100)

    def images(y):  # a bright column at the class's position: learnable in a few steps
        x = rng.random((len(y), 28, 28)).astype(np.float32) * 0.2
        x[np.arange(len(y)), :, 2 + 2 * y] = 1.0
        return (x * 255).astype(np.uint8)

    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=images(y_tr), y_train=y_tr, x_test=images(y_te), y_test=y_te)
    out, fig = tmp_path / "cnn.json", tmp_path / "cnn.png"
    _experiment().main(["--quick", "--data", str(data), "--out", str(out), "--figure", str(fig)])
    r = json.loads(out.read_text())
    assert {"command", "settings", "version", "machine", "note", "results"} <= set(r)
    runs = r["results"]["runs"]
    assert [x["trainer"] for x in runs] == ["plain", "bimt"]
    for x in runs:
        assert 0 <= x["dead_pixels"] <= 1 and np.asarray(x["alive"]).shape == (28, 28)
        assert x["null"]["method"] == "layer_degree" and x["knockout"]["submodules"] > 0
    assert set(r["results"]["summary"]["rows"]) == {"plain", "bimt"}
    assert fig.stat().st_size > 1000
