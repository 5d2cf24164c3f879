"""Three readings that could go silently wrong (spec §1b), each checked against its definition.

- A 3-D input read by a 2-D / 3-D conv: a ``(batch, H, W)`` map made one channel (``x.unsqueeze(1)``,
  a view) is one input unit; ``(batch, channels, length)`` viewed as a map has its channels as units;
  a conv reading an input without a batch axis is refused.
- A gain carried into a norm: the norm's statistics divide out its common size over the norm's
  group, not its channels' sizes against each other (the function of the true network says which).
"""

import numpy as np
import pytest
import torch
from torch import nn

from modscope import load_graph
from modscope.errors import ModscopeError


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def block(g, name: str) -> np.ndarray:
    return g.weights[g.names.index(name)]


class _MapIntoConv(nn.Module):
    """A 3-D input ``x`` made a 4-D map by ``make`` for a Conv2d of ``channels`` inputs, pooled, a Linear."""

    def __init__(self, make, channels: int = 1, kernel=(3, 3)) -> None:
        super().__init__()
        self.make = make
        self.conv = nn.Conv2d(channels, 4, kernel)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(self.make(x)).mean((2, 3)))


def _one_norm(k: np.ndarray) -> np.ndarray:
    """numpy's matrix 1-norm (the largest column sum of |.|) of each ``(kh, kw)`` slice of ``k``."""
    return np.array([[np.linalg.norm(k[b, a], 1) for a in range(k.shape[1])] for b in range(k.shape[0])])


def test_a_map_without_a_channel_axis_is_one_input_unit():
    """Before: the map's last axis was taken as its features (the Conv2d was not recognised as a
    reader), so the trace was refused as "a layer that mixes positions differently"."""
    for make in (lambda x: x.unsqueeze(1), lambda x: x.reshape(x.shape[0], 1, 6, 6)):
        net = _MapIntoConv(make)
        g = load_graph(net, example_input=torch.randn(1, 6, 6))
        assert g.sizes == (1, 4, 2) and g.group_names == ("input:x", "conv", "fc")
        np.testing.assert_allclose(
            block(g, "conv.weight"), _one_norm(np.abs(np64(net.conv.weight))), rtol=1e-12
        )
    # the one channel copied into three: one unit read through three slices, their norms summed
    net = _MapIntoConv(lambda x: x.unsqueeze(1).expand(-1, 3, -1, -1), channels=3)
    g = load_graph(net, example_input=torch.randn(1, 6, 6))
    assert g.sizes == (1, 4, 2)
    want = _one_norm(np.abs(np64(net.conv.weight))).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(block(g, "conv.weight"), want, rtol=1e-12)


def test_channels_viewed_as_a_map_stay_the_input_units():
    """``(batch, length, channels)`` transposed and unsqueezed into a (k x 1) Conv2d, and
    ``(batch, channels, H * W)`` viewed as ``(batch, channels, H, W)``: one unit per channel."""
    net = _MapIntoConv(lambda x: x.transpose(1, 2).unsqueeze(-1), channels=5, kernel=(3, 1))
    g = load_graph(net, example_input=torch.randn(1, 7, 5))
    assert g.sizes == (5, 4, 2)
    np.testing.assert_allclose(block(g, "conv.weight"), np.abs(np64(net.conv.weight)).sum(axis=(2, 3)))
    net = _MapIntoConv(lambda x: x.reshape(x.shape[0], 3, 6, 6), channels=3)
    g = load_graph(net, example_input=torch.randn(1, 3, 36))
    assert g.sizes == (3, 4, 2)
    np.testing.assert_allclose(block(g, "conv.weight"), _one_norm(np.abs(np64(net.conv.weight))), rtol=1e-12)
    # tokens (batch, H * W, channels) back to a map (batch, channels, H, W), a ViT / SegFormer neck
    net = _MapIntoConv(lambda x: x.transpose(1, 2).reshape(x.shape[0], 3, 6, 6), channels=3)
    g = load_graph(net, example_input=torch.randn(1, 36, 3))
    assert g.sizes == (3, 4, 2)
    np.testing.assert_allclose(block(g, "conv.weight"), _one_norm(np.abs(np64(net.conv.weight))), rtol=1e-12)


class _Unbatched(nn.Module):
    def __init__(self, conv: nn.Module, reduce: tuple[int, ...]) -> None:
        super().__init__()
        self.conv, self.reduce, self.fc = conv, reduce, nn.Linear(conv.out_channels, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean(self.reduce))


def test_a_conv_reading_an_unbatched_input_is_refused():
    """Before: its channels were read on axis 1 (a length or a height): a numpy error, or edges from
    the wrong features when the sizes happened to agree."""
    cases = [
        (_Unbatched(nn.Conv1d(4, 3, 3), (-1,)), (4, 9), "(1, 4, 9)"),
        (_Unbatched(nn.Conv1d(4, 3, 3), (-1,)), (4, 4), "(1, 4, 4)"),
        (_Unbatched(nn.Conv2d(3, 4, 3), (1, 2)), (3, 8, 8), "(1, 3, 8, 8)"),
        (_Unbatched(nn.Conv3d(4, 3, 3), (1, 2, 3)), (4, 4, 6, 6), "(1, 4, 4, 6, 6)"),
    ]
    for net, shape, batched in cases:
        with pytest.raises(ModscopeError, match="unbatched input") as info:
            load_graph(net, example_input=torch.randn(*shape))
        assert batched in str(info.value) and "conv" in str(info.value) and "\n" not in str(info.value)


class _ScaledNorm(nn.Module):
    """A 1x1 conv, a learned per-channel scale ``s`` (a gain the tracer carries), a norm, a 1x1 conv:
    the second conv's edges are ``|W|`` times the gain the norm passes on."""

    def __init__(self, norm: nn.Module, channels: int = 4, last: bool = False) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, channels, 1)
        self.s = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.norm, self.last = norm, last  # last: a LayerNorm / RMSNorm over channels (channels last)
        self.b = nn.Conv2d(channels, 3, 1)
        with torch.no_grad():
            self.norm.weight.copy_(torch.linspace(0.5, 3.0, channels).reshape(self.norm.weight.shape))

    def forward(self, x):
        y = self.a(x) * self.s
        y = self.norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if self.last else self.norm(y)
        return self.b(y)


def _carried(net: _ScaledNorm, scale, x: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """With ``s = scale``: the factor each channel's edges into ``b`` get beyond ``|W_b|``, and the output."""
    with torch.no_grad():
        net.s.copy_(torch.tensor(scale, dtype=torch.float32).reshape(net.s.shape))
        out = net.eval()(x)
    g = load_graph(net, example_input=x[:1])
    return block(g, "b.weight") / np.abs(np64(net.b.weight))[:, :, 0, 0], out


NORMS = [
    ("GroupNorm, 2 groups of 2", lambda: _ScaledNorm(nn.GroupNorm(2, 4)), 2),
    ("GroupNorm, a group per channel", lambda: _ScaledNorm(nn.GroupNorm(4, 4)), 1),
    ("LayerNorm", lambda: _ScaledNorm(nn.LayerNorm(4), last=True), 4),
    ("RMSNorm", lambda: _ScaledNorm(nn.RMSNorm(4), last=True), 4),
]


@pytest.mark.parametrize(("what", "make", "size"), NORMS, ids=[n[0] for n in NORMS])
def test_a_gain_carried_into_a_norm_counts_only_against_its_group(what, make, size):
    """Before: GroupNorm replaced a carried gain by its own (a channel scaled against the others of
    its group changed the function, not the graph); LayerNorm / RMSNorm multiplied it (a common scale,
    which the norm divides out, changed the graph, not the function)."""
    net, x = make(), torch.randn(16, 2, 5, 5)
    gamma = np.abs(np64(net.norm.weight)).reshape(-1)
    ones, base = _carried(net, [1.0] * 4, x)
    np.testing.assert_allclose(ones[0], gamma, rtol=1e-6)
    common, out = _carried(net, [10.0] * 4, x)  # a common scale: the norm divides it out
    assert torch.allclose(out, base, atol=5e-3)
    np.testing.assert_allclose(common, ones, rtol=1e-6)
    s = np.array([2.0, 1.0, 1.0, 1.0])
    moved, out = _carried(net, s, x)  # one channel against the rest of its group
    rms = np.sqrt((s.reshape(-1, size) ** 2).mean(axis=1)).repeat(size)
    np.testing.assert_allclose(moved[0], gamma * s / rms, rtol=1e-6)  # the definition modscope takes
    changed = bool((out - base).abs().max() > 0.1)
    assert changed == (size > 1)  # the function changes only when a group holds other channels
    assert (not np.allclose(moved, ones)) == changed  # and so does the graph


def test_the_carried_gain_is_what_the_norm_passes_on():
    """The kept factor ``s_c / rms_group(s)`` is the slope of the norm's output channel on its input
    channel for iid inputs (GroupNorm of 2 groups of 3 channels over a large map), measured."""
    s = torch.tensor([3.0, 1.0, 0.5, 1.0, 1.0, 2.0])
    norm = nn.GroupNorm(2, 6, affine=False)
    z = torch.randn(4, 6, 64, 64, dtype=torch.float64)
    y = norm(z * s.double().reshape(1, 6, 1, 1))
    slope = ((y * z).mean((0, 2, 3)) / (z * z).mean((0, 2, 3))).numpy()
    net = _ScaledNorm(nn.GroupNorm(2, 6), channels=6)
    with torch.no_grad():
        net.norm.weight.fill_(1.0)
    kept, _ = _carried(net, s.tolist(), torch.randn(1, 2, 3, 3))
    np.testing.assert_allclose(kept[0], slope, rtol=0.03)


BN_AFTER_NORM = [
    (
        "LayerNorm",
        lambda: (nn.Linear(3, 4), nn.LayerNorm(4, elementwise_affine=False), nn.Linear(4, 2)),
        (1, 3),
    ),
    (
        "GroupNorm",
        lambda: (nn.Conv1d(3, 4, 1), nn.GroupNorm(2, 4, affine=False), nn.Conv1d(4, 2, 1)),
        (1, 3, 1),
    ),
]


@pytest.mark.parametrize(("what", "make", "shape"), BN_AFTER_NORM, ids=[c[0] for c in BN_AFTER_NORM])
def test_a_batchnorm_after_a_norm_scales_the_layer_that_reads_it(what, make, shape):
    """``layer -> norm -> BatchNorm -> layer``: the BatchNorm's factor ``|gamma| / sqrt(var + eps)``
    multiplies the norm's output, so the edges of the layer after it (before: the rows of the
    layer before the norm, where the norm's statistics would divide a row scale out)."""
    first, norm, last = make()
    net = nn.Sequential(first, norm, nn.BatchNorm1d(4), last).eval()
    with torch.no_grad():
        net[2].weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        net[2].running_var.fill_(0.25)
    g = load_graph(net, example_input=torch.randn(*shape))
    factor = np.array([1.0, 2.0, 3.0, 4.0]) / np.sqrt(0.25 + 1e-5)
    w_first, w_last = (np.abs(np64(m.weight)).reshape(m.weight.shape[:2]) for m in (first, last))
    np.testing.assert_allclose(np.abs(g.weights[0]), w_first, rtol=1e-12)
    np.testing.assert_allclose(np.abs(g.weights[1]), w_last * factor[None, :], rtol=1e-6)
