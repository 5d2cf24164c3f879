import collections
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from modscope import load_graph
from modscope.errors import ModscopeError
from modscope.graphs.load import load_weights
from modscope.graphs.stacks import ordered_weights
from modscope.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from modscope.training.models import MLP, Architecture
from tests.conftest import random_mlp


def _weights(net):
    return [m.weight.detach().double().numpy() for m in net if isinstance(m, nn.Linear)]


def _same(graph, net):
    for a, b in zip(graph.weights, _weights(net), strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_dict_pt_round_trip(tmp_path):
    net = random_mlp([6, 5, 4, 3])
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    g = load_graph(path)
    assert g.layer_widths == (6, 5, 4, 3)
    _same(g, net)


def test_nested_state_dict_and_module_in_memory(tmp_path):
    net = random_mlp([6, 5, 4, 3])
    path = tmp_path / "wrapped.pth"
    torch.save({"model_state_dict": net.state_dict(), "epoch": 3}, path)
    _same(load_graph(path), net)
    _same(load_graph(net), net)
    _same(load_graph(net.state_dict()), net)


def test_order_inferred_from_shapes_when_keys_are_scrambled():
    net = random_mlp([7, 5, 3, 2])
    sd = net.state_dict()
    scrambled = collections.OrderedDict((k, sd[k]) for k in ["4.weight", "0.weight", "2.weight", "4.bias"])
    g = load_graph(scrambled)
    assert g.layer_widths == (7, 5, 3, 2)
    _same(g, net)


def test_natural_key_order_beats_lexicographic():
    ws = {f"layers.{i}.weight": torch.randn(4, 4, dtype=torch.float64) for i in [0, 1, 10, 2]}
    names = [n for n, _ in ordered_weights(ws)]
    assert names == ["layers.0.weight", "layers.1.weight", "layers.10.weight", "layers.2.weight"]
    # dict order chains already (square matrices): kept as stored


def test_embedding_tables_are_not_layers():
    net = MLP(Architecture((8, 6, 5), vocab_size=11, embed_dim=4, n_tokens=2))
    g = load_graph(net.state_dict())
    assert g.layer_widths == (8, 6, 5)


def test_safetensors_and_npz(tmp_path):
    net = random_mlp([6, 5, 3])
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(sd, tmp_path / "net.safetensors")
    _same(load_graph(tmp_path / "net.safetensors"), net)
    np.savez(tmp_path / "net.npz", **{k: v.numpy() for k, v in sd.items()})
    _same(load_graph(tmp_path / "net.npz"), net)
    # Keras / JAX layout: in x out kernels
    np.savez(tmp_path / "keras.npz", dense_kernel=_weights(net)[0].T, dense_1_kernel=_weights(net)[1].T)
    _same(load_graph(tmp_path / "keras.npz", layout="in_out"), net)


def test_explicit_layers():
    net = random_mlp([6, 5, 3])
    g = load_graph(net.state_dict(), layers=["0.weight", "2.weight"])
    _same(g, net)
    with pytest.raises(ModscopeError, match="no tensor named"):
        load_graph(net.state_dict(), layers=["0.weight", "9.weight"])


def test_modscope_checkpoint_uses_task_order(tmp_path):
    arch = Architecture((4, 3, 2))
    net = MLP(arch)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    perm_in, perm_out = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 0])
    stored = dict(sd)  # as BIMT would store it: neurons at their positions
    stored["layers.0.weight"] = sd["layers.0.weight"][:, perm_in]
    stored["layers.1.weight"] = sd["layers.1.weight"][perm_out]
    stored["layers.1.bias"] = sd["layers.1.bias"][perm_out]
    ckpt = Checkpoint(arch, stored, bimt={"permutations": [perm_in, torch.arange(3), perm_out]})
    path = tmp_path / "ck.pt"
    save_checkpoint(path, ckpt)
    g = load_graph(path)
    np.testing.assert_allclose(g.weights[0], sd["layers.0.weight"].double().numpy())
    np.testing.assert_allclose(g.weights[1], sd["layers.1.weight"].double().numpy())
    x = torch.randn(5, 4)
    torch.testing.assert_close(load_checkpoint(path).model()(x), net.eval()(x))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"this is not a checkpoint at all"), "not a torch checkpoint"),
        (lambda p: torch.save({"w": _Evil()}, p), "pickled code"),
        (lambda p: torch.save({"a": torch.ones(3, 2), "b": torch.ones(4, 5)}, p), "do not chain"),
        (lambda p: torch.save({"w": torch.full((3, 2), float("nan"))}, p), "NaN"),
        (lambda p: torch.save({"w": torch.ones(3, 2, dtype=torch.int64)}, p), "floating point"),
        (lambda p: torch.save({"w": torch.ones(3)}, p), "no 2-D weight"),
        (lambda p: torch.save({"epoch": 3, "note": "hi"}, p), "no state_dict"),
        (lambda p: torch.save({"w": torch.ones(0, 3)}, p), "zero-width"),
    ],
)
def test_loader_errors_are_one_line(tmp_path, make, message):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(ModscopeError, match=message) as info:
        load_graph(path)
    assert "\n" not in str(info.value)


def test_truncated_checkpoint(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(random_mlp([6, 5, 3]).state_dict(), good)
    data = good.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModscopeError):
            load_graph(bad)


def test_bad_npz_and_safetensors(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ModscopeError, match="npz"):
        load_graph(tmp_path / "x.npz")
    np.savez(tmp_path / "obj.npz", w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModscopeError, match="pickled"):
        load_graph(tmp_path / "obj.npz")
    (tmp_path / "x.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ModscopeError, match="safetensors"):
        load_graph(tmp_path / "x.safetensors")


def test_directory_and_wrong_object():
    with pytest.raises(ModscopeError, match="directory"):
        load_weights(os.getcwd())
    with pytest.raises(ModscopeError, match="cannot load"):
        load_weights(42)
