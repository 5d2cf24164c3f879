"""Issue 16's table of what 0.2.0 did with the networks researchers have, one regression test per
row, each asserting the right answer (or a one-line refusal that names the way out)."""


import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from modscope import load_graph, score_blocks
from modscope.cli import main
from modscope.errors import ModscopeError
from tests.helpers import nets
from tests.helpers.paths import FIXTURES

DATA = FIXTURES


@pytest.mark.slow  # traces a BERT
def test_bert_encoder_is_its_merged_stream_graph_not_a_chain_and_blocks_finds_its_mlps():
    """0.2.0 chained query, key, value, output, intermediate and output matrices into a fake MLP
    and printed a z-score; `blocks` found no block."""
    path = DATA / "families" / "bert" / "model.safetensors"
    g = load_graph(path)
    assert not g.is_chain and "BERT" in g.reading
    assert not any(".query." in n or ".key." in n for n in g.names)  # queries and keys carry nothing
    stream = [i for i, n in enumerate(g.group_names) if "merged" in n]
    assert len(stream) == 1  # one residual stream
    n_layers = sum(n.endswith("intermediate.dense.weight") for n in g.names)
    scores = score_blocks(path, n_clusters=2, n_shuffles=2, seed=0)
    assert len(scores.blocks) == n_layers >= 2


def test_resnet_state_dict_keeps_its_residual_connections():
    """0.2.0 scored a torchvision-named ResNet as a plain chain of convs."""
    g = load_graph(DATA / "families" / "resnet" / "model.safetensors")
    assert not g.is_chain and "ResNet" in g.reading
    assert any("downsample" in n for n in g.names)  # projection shortcuts are blocks
    assert g.colours is None  # stream-to-stream edges: the plain spectral path
    renamed = {
        k.replace("layer1.0.", "stage1.block0.").replace("downsample", "shortcut"): v
        for k, v in load_file(DATA / "families" / "resnet" / "model.safetensors").items()
    }
    with pytest.raises(ModscopeError, match="residual shortcut.*example_input|not a plain"):
        load_graph(renamed)  # unknown names: refused, never chained


def test_channel_last_head_is_read_in_the_order_the_code_uses():
    """0.2.0 read conv -> Linear edges channel-major: a wrong graph for channel-last heads."""
    net = nets.ChannelLastHead(c_in=2, c=3, hw=(2, 3), out=4)
    g = load_graph(net, example_input=torch.zeros(1, 2, 2, 3))
    w = np.abs(net.fc.weight.detach().double().numpy()).reshape(4, 2, 3, 3)
    np.testing.assert_allclose(g.weights[-1], w.transpose(0, 3, 1, 2).sum(axis=2).max(axis=2))
    with pytest.raises(ModscopeError, match="flatten='channel_major'"):
        load_graph(net.state_dict())  # a state dict cannot say which order: refused


def test_multi_head_cnns_and_prelu_are_traced():
    """0.2.0 refused: "Linear takes 256 inputs but the layer before gives 2"."""
    g = load_graph(nets.TwoHeadCNN(c=4), example_input=torch.zeros(1, 1, 6, 6))
    trunk = g.group_names.index("trunk.0")
    heads = [d for (s, d), n in zip(g.links, g.names, strict=True) if s == trunk and n != "trunk.0.weight"]
    assert len(heads) == 2


@pytest.mark.parametrize(
    "module, example",
    [
        (nn.LSTM(3, 4, batch_first=True), torch.zeros(1, 5, 3)),
        (nn.GRU(3, 4, batch_first=True), torch.zeros(1, 5, 3)),
        (nets.CellLoop(), torch.zeros(1, 4, 3)),
        (nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 3, 3)), torch.zeros(1, 2, 10)),
    ],
)
def test_recurrent_and_conv1d_networks_are_traced_and_their_state_dicts_refused_rightly(module, example):
    """0.2.0 refused them with advice to use --layout in_out, which is wrong."""
    g = load_graph(module, example_input=example)
    assert g.n_nodes > 0
    with pytest.raises(ModscopeError) as info:
        load_graph(module.state_dict())
    message = str(info.value)
    assert "in_out" not in message and ("--model" in message or "example_input" in message)


def test_a_pickled_module_names_trust_pickle(tmp_path, capsys):
    torch.save(nn.Sequential(nn.Linear(3, 2)), tmp_path / "whole.pt")
    assert main(["score", str(tmp_path / "whole.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["rescnn.pt2", "mlp_script.pt", "rescnn_traced.pt"])
def test_torchscript_and_export_archives_are_read(name):
    """0.2.0: "not a readable torch checkpoint, truncated or corrupt"."""
    path = DATA / "formats" / name
    try:
        g = load_graph(path)
    except ModscopeError as exc:  # a TorchScript residual net: weights read, structure refused
        assert "TorchScript" in str(exc) or ".pt2" in str(exc)
        return
    assert g.n_nodes > 0 and ("TorchScript" in g.reading or "torch.export" in g.reading)


def test_keras_layout_is_detected_when_only_it_chains(tmp_path):
    """0.2.0 refused unless --layout in_out was typed."""
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "keras.npz",
        **{"dense/kernel": rng.normal(size=(6, 5)), "dense_1/kernel": rng.normal(size=(5, 3))},
    )
    g = load_graph(tmp_path / "keras.npz")
    assert g.layer_widths == (6, 5, 3) and "in x out" in g.reading
