"""One network object (`modscope.network` -> `Network`): every reader produces it, the
weights-only family agrees with the tracer, and every analysis takes it as it took the old forms.

Oracles: the weight matrices themselves (a chain's graph is its matrices, in forward order), the
tracer (the weights-only family must give its graph and its sites), and the old argument forms
of each analysis (a `Network` must give the same result).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from torch import nn

import modscope
from modscope import Network, network
from modscope.data.functions import Function
from modscope.errors import ModscopeError
from modscope.graphs.weight_graph import WeightGraph
from modscope.tasks.base import Task
from modscope.training.checkpoint import Checkpoint, save_checkpoint
from modscope.training.models import MLP, Architecture


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


def _mlp_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "layers.0.weight": rng.normal(size=(6, 8)),
        "layers.0.bias": rng.normal(size=6),
        "layers.1.weight": rng.normal(size=(5, 6)),
        "layers.1.bias": rng.normal(size=5),
        "layers.2.weight": rng.normal(size=(3, 5)),
    }


def _same_graph(a: WeightGraph, b: WeightGraph, group_names: bool = True) -> None:
    assert a.sizes == b.sizes and a.names == b.names and a.links == b.links
    assert a.group_names == b.group_names or not group_names  # the tracer names groups by module
    for x, y in zip(a.weights, b.weights, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


def _chain(ws: dict[str, np.ndarray], reading: str = "") -> WeightGraph:
    names = [k for k in ws if k.endswith("weight")]
    return WeightGraph.from_weights([ws[k] for k in names], names, reading=reading)


# -- every reader returns a Network ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ".pt"])
def test_weight_files_and_state_dicts_read_as_their_matrices(tmp_path, suffix):
    ws = _mlp_weights()
    path = tmp_path / f"net{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.astype(np.float64) for k, v in ws.items()}, str(path))
    elif suffix == ".npz":
        np.savez(path, **ws)
    else:
        torch.save({k: torch.from_numpy(v) for k, v in ws.items()}, path)
    net = network(path)
    assert isinstance(net, Network) and net.source == str(path)
    _same_graph(net.graph, _chain(ws))
    assert net.reading == "a plain stack of Linear layers (out x in weights, as torch stores them)"
    assert net.module is None and net.sites is None and not net.has_module
    _same_graph(modscope.load_graph(path), net.graph)  # the old form: the same graph
    with pytest.raises(ModscopeError, match="weights without code"):
        net.torch_module()
    in_memory = network(ws)
    assert in_memory.source == "state dict"
    _same_graph(in_memory.graph, net.graph)


def test_modules_read_as_stacks_carry_their_module_and_sites():
    seq = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    net = network(seq)
    assert net.module is seq and net.torch_module() is seq and net.example_input is None
    assert (
        repr(net)
        == "Network('Sequential', WeightGraph(8-6-5-3, nodes=22, edges=93), module=Sequential, sites=3)"
    )
    ws = {
        f"{i}.weight": m.weight.detach().double().numpy() for i, m in enumerate(seq) if hasattr(m, "weight")
    }
    _same_graph(net.graph, _chain(ws))
    assert net.reading == "an nn.Sequential of Linear layers"
    assert [s.module for s in net.sites] == ["0", "2", "4"]
    for g, site in enumerate(net.sites):
        np.testing.assert_array_equal(site.nodes, np.arange(net.graph.offsets[g], net.graph.offsets[g + 1]))
    mlp = MLP([4, 7, 3])
    own = network(mlp)
    assert own.reading == "a modscope MLP" and [s.module for s in own.sites] == ["layers.0", "layers.1"]
    with pytest.raises(ModscopeError, match="example_input"):
        network(nn.LSTM(3, 4))


def test_the_weights_only_family_and_the_tracer_agree_on_graphs_and_sites():
    seq = nn.Sequential(
        nn.Linear(8, 6), nn.ReLU(), nn.Dropout(0.1), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)
    )
    plain, traced = network(seq), network(seq, torch.zeros(1, 8))
    assert traced.reading.startswith("traced with torch.export: 4 unit groups, 3 edge sets")
    assert traced.example_input is not None and traced.module is seq
    _same_graph(plain.graph, traced.graph, group_names=False)
    hooked = [s for s in traced.sites if s.unhookable is None]
    assert [(s.module, s.kind, s.axis) for s in hooked] == [(s.module, s.kind, s.axis) for s in plain.sites]
    for a, b in zip(hooked, plain.sites, strict=True):
        np.testing.assert_array_equal(a.nodes, b.nodes)
    cnn = nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    with torch.no_grad():
        cnn[1].running_var.uniform_(0.5, 2.0)
    stack, traced_cnn = network(cnn), network(cnn, torch.zeros(1, 2, 6, 6))
    assert stack.sites is None and traced_cnn.sites  # a conv stack's reads are the tracer's to find
    assert stack.graph.sizes == traced_cnn.graph.sizes == (2, 4, 3)
    for a, b in zip(stack.graph.weights, traced_cnn.graph.weights, strict=True):
        np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-10)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_archives_read_without_running_their_code_as_the_tracer_reads_the_module(tmp_path):
    seq = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.zeros(1, 8)
    torch.export.save(torch.export.export(seq, (x,)), tmp_path / "net.pt2")
    torch.jit.script(seq).save(str(tmp_path / "net.ts"))
    traced = network(seq, x).graph
    pt2, script = network(tmp_path / "net.pt2"), network(tmp_path / "net.ts")
    assert pt2.reading == "a torch.export archive (.pt2), traced" and pt2.module is None
    assert script.reading.startswith("a TorchScript archive (weights read, its code not run)")
    for net in (pt2, script):
        assert net.graph.sizes == traced.sizes == (8, 6, 3) and net.sites is None
        for a, b in zip(net.graph.weights, traced.weights, strict=True):
            np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-12)


def test_checkpoints_read_in_task_order_and_build_their_module_on_demand(tmp_path):
    arch = Architecture([4, 6, 3])
    model = MLP(arch)
    perm_in, perm_out = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 2, 0])
    ckpt = Checkpoint(
        arch,
        model.state_dict(),
        task={"name": "toy", "params": {}},
        bimt={"permutations": [perm_in, torch.arange(6), perm_out]},
    )
    path = save_checkpoint(tmp_path / "c.pt", ckpt)
    from_file, from_object = network(path), network(ckpt)
    _same_graph(from_file.graph, from_object.graph)
    assert from_file.reading == from_object.reading == "a modscope checkpoint (MLP)"
    task_order = ckpt.model()
    _same_graph(from_object.graph, network(task_order).graph.read_as(from_object.reading))
    assert from_file.loader is None and from_object.loader is not None
    built = from_object.torch_module()
    assert built is from_object.torch_module()  # built once
    assert [s.module for s in from_object.sites] == ["layers.0", "layers.1"]
    _same_graph(network(ckpt.to_payload()).graph, from_file.graph)


def test_a_graph_or_a_network_reads_as_itself_and_options_refuse_in_one_line():
    g = _chain(_mlp_weights())
    net = network(g)
    assert net.graph is g and network(net) is net and modscope.load_graph(net) is g
    with pytest.raises(ModscopeError, match="layout"):
        network(_mlp_weights(), layout="sideways")
    with pytest.raises(ModscopeError, match="example_input traces a module"):
        network(_mlp_weights(), torch.zeros(1, 8))
    with pytest.raises(ModscopeError, match="input shape"):
        network(_mlp_weights(), input_shape=(1, 8))


def test_a_safetensors_mlp_is_read_and_scored_without_torch(tmp_path):
    path = tmp_path / "n.safetensors"
    save_file({k: v.astype(np.float32) for k, v in _mlp_weights().items()}, str(path))
    code = (
        "import sys, modscope\n"
        f"net = modscope.network({str(path)!r})\n"
        "r = modscope.score(net, n_clusters=2, n_shuffles=2)\n"
        "assert net.sites is None and len(r.null.samples) == 2\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


# -- every analysis takes a Network -------------------------------------------------------------------


def test_score_cluster_and_score_blocks_take_a_network(tmp_path):
    ws = _mlp_weights()
    net = network(ws)
    a = modscope.score(net, n_clusters=2, n_shuffles=3, seed=1)
    b = modscope.score(ws, n_clusters=2, n_shuffles=3, seed=1)
    assert a.value == pytest.approx(b.value, rel=1e-9)
    np.testing.assert_allclose(a.null.samples, b.null.samples, rtol=1e-9)
    p, q = modscope.cluster(net, 2, seed=0), modscope.cluster(net.graph, 2, seed=0)
    np.testing.assert_array_equal(p.labels, q.labels)
    rng = np.random.default_rng(0)
    gpt = {f"h.{i}.mlp.c_fc.weight": rng.normal(size=(6, 12)) for i in range(2)}
    gpt |= {f"h.{i}.mlp.c_proj.weight": rng.normal(size=(12, 6)) for i in range(2)}
    save_file(gpt, str(tmp_path / "gpt.safetensors"))
    src = tmp_path / "gpt.safetensors"
    kw = dict(n_clusters=2, n_shuffles=2, seed=0)
    by_path = modscope.score_blocks(src, **kw)
    via = Network(by_path.blocks[0].graph(), str(src))  # the blocks of the file it was read from
    rows = modscope.score_blocks(via, whole=True, **kw)
    assert [b.name for b in rows.blocks] == [b.name for b in by_path.blocks]
    for x, y in zip(rows.results, by_path.results, strict=True):
        assert x.value == pytest.approx(y.value, rel=1e-9)
    assert rows.whole.value == pytest.approx(modscope.score(via.graph, **kw).value, rel=1e-9)
    with pytest.raises(ModscopeError, match="read from a state dict keeps no key names"):
        modscope.score_blocks(network(gpt, layers=["h.0.mlp.c_fc.weight"]), **kw)


def test_activation_graph_reads_the_layers_the_sites_name():
    class Shuffled(nn.Module):  # its Linear layers registered out of forward order
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(5, 3)
            self.hidden = nn.Linear(6, 5)
            self.inp = nn.Linear(8, 6)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(torch.relu(self.inp(x)))))

    model = Shuffled().eval()
    x = torch.randn(64, 8)
    net = network(model, torch.zeros(1, 8))
    g = modscope.activation_graph(net, x)
    assert g.sizes == (8, 6, 5, 3)
    with pytest.raises(ModscopeError, match="chain"):
        modscope.activation_graph(model, x)  # registration order: out, hidden, inp
    seq = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    for a, b in zip(
        modscope.activation_graph(network(seq), x).weights,
        modscope.activation_graph(seq, x).weights,
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    with pytest.raises(ModscopeError, match="weights without code"):
        modscope.activation_graph(network(_mlp_weights()), x)


def _planted() -> tuple[MLP, Task]:
    g = torch.Generator().manual_seed(0)
    net = MLP([8, 8, 4])
    w1, w2 = torch.zeros(8, 8), torch.zeros(4, 8)
    for h, i, o in ((0, 0, 0), (4, 4, 2)):
        w1[h, i], w1[h + 1, i] = 3.0, -3.0
        w1[h + 2 : h + 4, i : i + 4] = 0.1 * torch.randn(2, 4, generator=g)
        w2[o, h + 1], w2[o + 1, h] = 3.0, 3.0
    with torch.no_grad():
        net.layers[0].weight.copy_(w1)
        net.layers[1].weight.copy_(w2)
        net.layers[0].bias.zero_()
        net.layers[1].bias.zero_()
    x = torch.randn(512, 8, generator=g)
    y = torch.stack([(x[:, 0] > 0).long(), (x[:, 4] > 0).long()], 1)
    fns = {"A": Function("A", groups=(0,)), "B": Function("B", groups=(1,))}
    return net.eval(), Task("planted", x[:384], y[:384], x[384:], y[384:], "ce", 8, 4, (2, 2), functions=fns)


def test_knockout_train_masks_and_alignment_take_a_network():
    model, task = _planted()
    net = network(model)
    labels = [np.array([0, 0, 0, 0, 1, 1, 1, 1])]
    a = modscope.knockout(net, task, labels, n_random=20, seed=0)
    b = modscope.knockout(model, task, labels, n_random=20, seed=0)
    assert a.to_dict() == b.to_dict()
    m1 = modscope.train_masks(net, task, steps=5, seed=0)
    m2 = modscope.train_masks(model, task, steps=5, seed=0)
    assert set(m1.masks) == set(m2.masks)
    for f, masks in m2.masks.items():
        assert set(m1.masks[f]) == set(masks)
        for k, mask in masks.items():
            assert torch.equal(torch.as_tensor(m1.masks[f][k]), torch.as_tensor(mask))
    part = np.array(([0] * 4 + [1] * 4) * 2 + [0, 0, 1, 1])
    al_net = modscope.alignment(part, m2, n_null=20, seed=0, graph=net)
    al_graph = modscope.alignment(part, m2, n_null=20, seed=0, graph=net.graph)
    assert al_net.to_dict() == al_graph.to_dict()


def test_plot_network_draws_a_network_as_its_graph():
    import matplotlib

    matplotlib.use("Agg")
    from modscope.report.plot import network as draw

    net = network(_mlp_weights())
    a, b = draw(net, title="n"), draw(net.graph, title="n")
    segments = [
        len(c.get_segments()) for f in (a, b) for c in f.axes[0].collections if hasattr(c, "get_segments")
    ]
    assert segments[: len(segments) // 2] == segments[len(segments) // 2 :] and sum(segments) > 0
