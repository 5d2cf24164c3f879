"""Planted modules in real architectures (issue 16, item 6): each network below is two
independent halves, every layer's units split into a first and a second half with (almost) no
weight between them. Traced, clustered with k = 2, the halves come back (adjusted Rand index
>= 0.95 over the units that have edges), and the network scores more modular than its
shuffles (z < 0). Cross-half weights are 1 % of the planted ones so the graph stays connected.
"""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from torch import nn

from modscope import cluster, load_graph, score
from tests.helpers import nets


def _plant(weight: torch.Tensor, rows_split: int, cols_split: int, rng: np.random.Generator) -> None:
    """Overwrite ``weight`` ``(out, in, ...)``: halves joined strongly, across halves weakly."""
    shape = tuple(weight.shape)
    w = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    rows = np.arange(shape[0]) < rows_split
    cols = np.arange(shape[1]) < cols_split
    same = (rows[:, None] == cols[None, :]).reshape(shape[:2] + (1,) * (len(shape) - 2))
    with torch.no_grad():
        weight.copy_(torch.from_numpy(np.where(same, w, 0.01 * w)).to(weight.dtype))


def _plant_gates(weight: torch.Tensor, gates: int, cols_split: int, rng) -> None:
    """Stacked gate rows ``(gates * h, n)``: every gate's rows split like the hidden units."""
    h = weight.shape[0] // gates
    for g in range(gates):
        _plant(weight[g * h : (g + 1) * h], h // 2, cols_split, rng)


def _truth(graph) -> np.ndarray:
    """The planted label of every node: the first or second half of its group."""
    return np.concatenate([np.arange(s) >= s // 2 for s in graph.sizes]).astype(int)


def _recovered(graph, seed: int = 0) -> float:
    part = cluster(graph, 2, seed=seed)
    active = part.labels >= 0
    return adjusted_rand_score(_truth(graph)[active], part.labels[active])


def _check(graph) -> None:
    assert _recovered(graph) >= 0.95
    r = score(graph, n_clusters=2, n_shuffles=10, seed=0)
    assert r.null.z < 0 and r.null.p_value == pytest.approx(1 / 11)


@pytest.mark.slow  # a ResNet traced and scored
def test_resnet_blocks_on_disjoint_halves_of_the_stream():
    rng = np.random.default_rng(0)
    net = nets.TinyResNet(widths=(8, 12), classes=4)
    net.conv1 = nn.Conv2d(4, 8, 3, 1, 1, bias=False)
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            _plant(m.weight, m.weight.shape[0] // 2, m.weight.shape[1] // 2, rng)
    graph = load_graph(net, example_input=torch.zeros(1, 4, 8, 8))
    assert graph.colours is None  # the projection shortcut closes an odd cycle: the plain path
    _check(graph)


def test_bert_shaped_encoder_with_block_diagonal_mlps_and_heads():
    rng = np.random.default_rng(1)
    net = nets.TinyBert(vocab=30, d=16, heads=2, f=24, n=2, classes=4)
    for layer in net.layers:
        for m in (layer.attn.v, layer.attn.o, layer.fc1, layer.fc2):
            _plant(m.weight, m.weight.shape[0] // 2, m.weight.shape[1] // 2, rng)
    _plant(net.classifier.weight, 2, 8, rng)
    graph = load_graph(net, example_input=torch.zeros(1, 6, dtype=torch.long))
    assert graph.colours is not None  # stream against values and MLP units: the bipartite path
    _check(graph)


def test_lstm_with_two_independent_sub_networks():
    rng = np.random.default_rng(2)
    net = nets.LSTMClassifier(n_in=6, hidden=8, layers=2, out=4)
    for name, p in net.lstm.named_parameters():
        if name.startswith("weight"):
            _plant_gates(p, 4, p.shape[1] // 2, rng)
    _plant(net.fc.weight, 2, 4, rng)
    graph = load_graph(net, example_input=torch.zeros(1, 5, 6))
    _check(graph)


def test_two_head_cnn_each_head_on_its_half_of_the_trunk():
    rng = np.random.default_rng(3)

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(2, 8, 3)
            self.conv2 = nn.Conv2d(8, 8, 3)
            self.a = nn.Linear(4, 3)
            self.b = nn.Linear(4, 3)

        def forward(self, x):
            z = torch.relu(self.conv2(torch.relu(self.conv1(x)))).mean((2, 3))
            return self.a(z[:, :4]), self.b(z[:, 4:])

    net = TwoHeads()
    _plant(net.conv1.weight, 4, 1, rng)
    _plant(net.conv2.weight, 4, 4, rng)
    graph = load_graph(net, example_input=torch.zeros(1, 2, 7, 7))
    # a reads channels 0-3, b channels 4-7: their groups are one half each
    truth = _truth(graph)
    a, b = graph.group_names.index("a"), graph.group_names.index("b")
    truth[graph.offsets[a] : graph.offsets[a + 1]] = 0
    truth[graph.offsets[b] : graph.offsets[b + 1]] = 1
    part = cluster(graph, 2, seed=0)
    active = part.labels >= 0
    assert adjusted_rand_score(truth[active], part.labels[active]) >= 0.95
    assert score(graph, n_clusters=2, n_shuffles=10, seed=0).null.z < 0
