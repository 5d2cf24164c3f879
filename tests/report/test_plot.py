"""The network figure: one line per non-zero weight, width by |w|, colour by sign, nodes by cluster."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from modscope.errors import ModscopeError
from modscope.report import plot
from modscope.training.bimt import BIMT, BIMTConfig
from modscope.training.checkpoint import Checkpoint
from modscope.training.models import MLP, Architecture


def _checkpoint(bimt: bool) -> Checkpoint:
    arch = Architecture((3, 4, 2))
    net = MLP(arch)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, -2, 0], [0, 0, 0.5], [0, 0, 0]]))
        net.layers[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, -1.0, 0]]))
    state = None
    if bimt:
        b = BIMT(BIMTConfig(), arch.widths)
        b.permute(net, 0, torch.tensor([2, 0, 1]))
        b.permute(net, 2, torch.tensor([1, 0]))
        state = b.state()
    return Checkpoint(architecture=arch, state_dict=net.state_dict(), bimt=state)


def _lines(fig: Figure) -> list[LineCollection]:
    return [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]


@pytest.mark.parametrize("bimt", [False, True])
def test_one_line_per_nonzero_weight_with_width_and_colour(bimt):
    fig = plot.network(_checkpoint(bimt))
    first, second = _lines(fig)
    assert len(first.get_segments()) == 3 and len(second.get_segments()) == 2
    widths = sorted(np.round(first.get_linewidths(), 6))
    assert widths == pytest.approx([2.5 * 0.25, 2.5 * 0.5, 2.5])  # |w| / max|w| of the layer
    blue, red = to_rgba(plot.POSITIVE)[:3], to_rgba(plot.NEGATIVE)[:3]
    colours = {tuple(np.round(c[:3], 4)) for c in second.get_colors()}
    assert colours == {tuple(np.round(blue, 4)), tuple(np.round(red, 4))}


def test_bimt_positions_follow_the_permutations():
    """Inputs are drawn where BIMT put them, not at their task index."""
    fig = plot.network(_checkpoint(True))
    first = _lines(fig)[0]
    widest = first.get_segments()[int(np.argmax(first.get_linewidths()))]
    # the widest first-layer line is task input 1 (|w| = 2), which sits at position 2
    assert widest[0][0] == pytest.approx(5 / 6)


def test_cluster_labels_colour_nodes_and_are_checked(tmp_path):
    labels = np.array([0, 1, 1, 0, 1, 1, -1, 0, 1])
    fig = plot.network(_checkpoint(False), labels)
    points = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert sum(len(p.get_offsets()) for p in points) == 9
    assert len(points) == 3  # unclustered, cluster 0, cluster 1
    out = plot.save(fig, tmp_path / "net.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ModscopeError, match="one entry per graph node"):
        plot.network(_checkpoint(False), labels[:-1])
    with pytest.raises(ModscopeError, match="unsupported figure format"):
        plot.save(fig, tmp_path / "net.xyz")


def test_draws_a_plain_model_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.network(MLP([4, 5, 3]), ax=ax) is fig
    assert len(_lines(fig)) == 2
    with pytest.raises(ModscopeError):
        plot.network(torch.nn.ReLU())


def test_cli_plot_network_with_clusters(tmp_path, capsys):
    from modscope.cli import main
    from modscope.training.checkpoint import save_checkpoint

    ck = save_checkpoint(tmp_path / "c.pt", _checkpoint(True))
    out = tmp_path / "net.png"
    assert main(["plot", "network", str(ck), "--out", str(out), "--clusters", "2"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", "network", str(ck), "--out", str(out), "--clusters", "50"]) == 2
    assert "--clusters" in capsys.readouterr().err
