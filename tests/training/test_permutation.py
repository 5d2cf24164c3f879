"""Permutable unit groups on any traced network: every tensor slice of a group moves together, so
random permutations of every group leave the function unchanged (MLP, CNN with BatchNorm and a
residual, transformer with heads, LayerNorm and a residual stream, LSTM); refusals in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from modscope.errors import ModscopeError
from modscope.training.permutation import permutable_groups, permute
from tests.helpers.permutable_nets import Depthwise, FlattenHead, Tied, TorchMHA, TwoLayerGRU, cases, cnn


@pytest.mark.parametrize("case", ["mlp", "cnn", "transformer", "lstm"])
def test_random_permutations_of_every_group_keep_the_function(case):
    model, x, n_groups = cases()[case]
    model.eval()
    # verify=False: the slices found by the trace alone must be complete
    ug = permutable_groups(model, x[:1], verify=False)
    assert len(ug.groups) == n_groups and not ug.refused
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        base = model(x)
        rng = np.random.default_rng(3)
        for _ in range(3):
            for g in ug.groups:
                permute(model, g, rng.permutation(g.size))
        out = model(x)
    torch.testing.assert_close(out, base, rtol=0, atol=1e-6)
    changed = [k for k, v in model.state_dict().items() if v.shape and not torch.equal(v, before[k])]
    assert changed  # the permutations did move weights


def test_transformer_heads_move_whole_and_the_stream_moves_everywhere():
    model, x, _ = cases()["transformer"]
    ug = permutable_groups(model, x[:1])
    heads = [g for g in ug.groups if g.heads]
    assert [g.size for g in heads] == [2, 2]  # two heads per layer, values, queries and keys together
    moved = {s.tensor for s in heads[0].slices}
    assert moved >= {"layers.0.qkv.weight", "layers.0.qkv.bias", "layers.0.out.weight"}
    stream = next(g for g in ug.groups if g.size == 8)
    tensors = set(stream.tensors)
    for name in ("embed.weight", "position", "layers.0.norm1.weight", "layers.1.out.weight",
                 "layers.1.fc2.bias", "norm.bias", "head.weight"):
        assert name in tensors, name
    assert "head" in ug.fixed  # outputs stay in the targets' order


def test_batch_norm_buffers_and_optimizer_state_move():
    model = cnn()
    x = torch.randn(2, 64, dtype=torch.float64)
    ug = permutable_groups(model, x[:1])
    grp = next(g for g in ug.groups if g.name == "blocks.0.conv1")
    stats = {"blocks.0.bn1.running_mean", "blocks.0.bn1.running_var", "blocks.0.bn1.weight"}
    assert stats <= set(grp.tensors)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    model(x).sum().backward()
    opt.step()
    w = model.blocks[0].conv1.weight
    m0 = opt.state[w]["exp_avg"].clone()
    order = np.roll(np.arange(grp.size), 1)
    permute(model, grp, order, optimizer=opt)
    torch.testing.assert_close(opt.state[w]["exp_avg"], m0[torch.as_tensor(order)])


class _Cumsum(nn.Module):
    """A hidden layer's units summed in order: an op the tracer cannot follow."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.cumsum(torch.relu(self.a(x)), dim=-1))


class _Where(nn.Module):
    """A parameter read through ``where`` with a hidden layer's units: opaque for permutation."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.fill = nn.Parameter(torch.randn(4))
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        return self.b(torch.where(h > 0.1, h, self.fill))


@pytest.mark.parametrize(("module", "names"), [(_Cumsum, "cumsum"), (_Where, "fill is read through where")])
def test_an_opaque_op_is_refused_in_one_line_naming_it(module, names):
    with pytest.raises(ModscopeError) as e:
        permutable_groups(module(), torch.randn(1, 3))
    msg = str(e.value)
    assert "\n" not in msg and names in msg


def test_refused_groups_are_listed_when_not_strict():
    ug = permutable_groups(_Where(), torch.randn(1, 3), strict=False)
    assert "a" in ug.refused and all(g.name != "a" for g in ug.groups)


def test_a_bad_order_is_refused():
    model, x, _ = cases()["mlp"]
    g = permutable_groups(model, x[:1]).groups[0]
    with pytest.raises(ModscopeError, match="permutation of group"):
        permute(model, g, [0] * g.size)


@pytest.mark.parametrize(
    ("module", "x", "groups"),
    [
        (Tied, lambda: torch.randint(0, 11, (3, 5)), {"fc1": 16}),
        (TorchMHA, lambda: torch.randn(2, 4, 3, dtype=torch.float64), {"att": 2}),
        (FlattenHead, lambda: torch.randn(2, 1, 6, 6, dtype=torch.float64), {"c1": 4, "fc": 5}),
        (
            TwoLayerGRU,
            lambda: torch.randn(2, 4, 3, dtype=torch.float64),
            dict.fromkeys(["g.hidden_l0", "g.hidden_l1"], 5),
        ),
    ],
)
def test_tied_weights_torch_attention_flattened_maps_and_stacked_grus_keep_the_function(module, x, groups):
    torch.manual_seed(0)
    model = module().double().eval()
    x = x()
    ug = permutable_groups(model, x[:1], verify=False)
    sizes = {g.name: g.size for g in ug.groups}
    assert groups.items() <= sizes.items()
    with torch.no_grad():
        base = model(x)
        rng = np.random.default_rng(5)
        for g in ug.groups:
            permute(model, g, rng.permutation(g.size))
        torch.testing.assert_close(model(x), base, rtol=0, atol=1e-6)


def test_grouped_query_heads_and_depthwise_convolutions_are_refused():
    from tests.helpers.nets import SelfAttention

    class GQA(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(3, 8)
            self.att = SelfAttention(8, 4, kv=2)
            self.out = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.inp(x)
            return self.out((h + self.att(h)).mean(1))

    with pytest.raises(ModscopeError, match="grouped or partial heads"):
        permutable_groups(GQA(), torch.randn(1, 4, 3))
    with pytest.raises(ModscopeError, match="dw.weight"):
        permutable_groups(Depthwise(), torch.randn(1, 1, 6, 6))
