"""The result figures: each draws exactly the numbers of its result, from the object or its JSON."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from modscope.errors import ModscopeError
from modscope.lesions import knockout
from modscope.masks import train_masks
from modscope.report import plot
from modscope.scoring.engine import score
from modscope.training.checkpoint import load_checkpoint, task_for_checkpoint
from tests.helpers.paths import ROOT

DATA = ROOT / "data"


@pytest.fixture(scope="module")
def results():
    """Real results on the small BIMT formula network (4-20-20-2): seconds in all."""
    ckpt = load_checkpoint(DATA / "independence-bimt.pt")
    model, task = ckpt.model(), task_for_checkpoint(ckpt)
    s = score(ckpt, n_clusters=2, n_shuffles=6, null="layer_nonzero", seed=0)
    k = knockout(model, task, s.partition.labels, n_random=20, pairs=True, seed=0)
    m = train_masks(model, task, ["y1", "y2"], steps=30, seed=0)
    return {"score": s, "knockout": k, "masks": m}


def _json(result) -> dict:
    """What a saved result file gives back (key-sorted, as write_json writes it)."""
    return json.loads(json.dumps(result.to_dict(), sort_keys=True))


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    return buf.getvalue()


@pytest.mark.parametrize(
    "draw, kind",
    [(plot.shuffle_histogram, "score"), (plot.cluster_sizes, "score"), (plot.mask_overlap, "masks"),
     (plot.lesion_effects, "knockout"), (plot.double_lesion, "knockout")],
)
def test_result_object_and_its_saved_json_draw_the_same_figure(results, draw, kind):
    fig = draw(results[kind])
    assert isinstance(fig, Figure)
    assert _png(fig) == _png(draw(_json(results[kind])))


def test_shuffle_histogram_counts_every_shuffle_and_marks_the_trained_ncut(results):
    r = results["score"]
    fig = plot.shuffle_histogram(r)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == r.null.n
    (line,) = ax.get_lines()
    assert line.get_xdata()[0] == pytest.approx(r.ncut)
    assert to_rgba(line.get_color()) == to_rgba(plot.NEGATIVE)
    assert f"z = {r.null.z:.2f}" in ax.get_title() and f"p = {r.null.p_value:.3g}" in ax.get_title()


def test_shuffle_histogram_needs_shuffles():
    d = {"ncut": 1.0, "shuffle": None, "labels": [0], "layer_widths": [1], "n_clusters": 2}
    with pytest.raises(ModscopeError, match="no shuffles"):
        plot.shuffle_histogram(d)
    with pytest.raises(ModscopeError, match="not a score result"):
        plot.shuffle_histogram({"ncut": 1.0})


def test_cluster_sizes_stacks_each_layers_share_per_cluster():
    d = {"labels": [0, 1, 0, 0, -1, 1, 1], "layer_widths": [2, 3, 2], "n_clusters": 2}
    ax = plot.cluster_sizes(d).axes[0]
    c0, c1, none = ([b.get_height() for b in c] for c in ax.containers)
    assert c0 == pytest.approx([0.5, 2 / 3, 0.0])
    assert c1 == pytest.approx([0.5, 0.0, 1.0])
    assert none == pytest.approx([0.0, 1 / 3, 0.0])  # the neuron without edges, in grey
    assert [t.get_text() for t in ax.get_xticklabels()] == ["input\n(2)", "hidden 1\n(3)", "output\n(2)"]
    with pytest.raises(ModscopeError, match="labels for layers"):
        plot.cluster_sizes({**d, "layer_widths": [2, 2, 2]})


def test_mask_overlap_shows_the_iou_and_kept_fractions(results):
    m = results["masks"]
    fig = plot.mask_overlap(m)
    meshes = [next(c for c in ax.collections if isinstance(c, QuadMesh)) for ax in fig.axes[:4]]
    fns = m.functions
    iou = meshes[0].get_array().reshape(len(fns), len(fns))
    for i, f in enumerate(fns):
        for j, g in enumerate(fns):
            want = 1.0 if i == j else m.iou.get(f"{f}|{g}", m.iou.get(f"{g}|{f}"))
            assert iou[i, j] == pytest.approx(want)
    kept = meshes[3].get_array().reshape(len(fns), len(m.layer_names))
    for i, f in enumerate(fns):
        want = [m.layers[n]["kept_fraction"][f] for n in m.layer_names]
        assert np.ma.filled(kept[i], np.nan).tolist() == pytest.approx(want)


def test_lesion_effects_bars_are_the_deltas_with_category_colours_and_stars(results):
    k = results["knockout"]
    ax = plot.lesion_effects(k).axes[0]
    bars = ax.containers[0]
    assert [b.get_height() for b in bars] == pytest.approx([s.delta for s in k.submodules])
    for b, s in zip(bars, k.submodules, strict=True):
        assert to_rgba(b.get_facecolor()) == to_rgba(plot.CATEGORY_COLORS[s.category])
    stars = [t for t in ax.texts if t.get_text() == "*"]
    assert len(stars) == sum(s.p_value < k.alpha for s in k.submodules)
    random_means = ax.containers[1].lines[0].get_ydata()
    assert random_means == pytest.approx([s.random_mean - k.intact_accuracy for s in k.submodules])


def test_double_lesion_is_the_symmetric_interaction_matrix(results):
    k = results["knockout"]
    fig = plot.double_lesion(k)
    mesh = next(c for c in fig.axes[0].collections if isinstance(c, QuadMesh))
    n = len(k.submodules)
    m = np.ma.filled(mesh.get_array().reshape(n, n).astype(float), np.nan)
    idx = {(s.layer, s.cluster): i for i, s in enumerate(k.submodules)}
    for p in k.pairs:
        i, j = idx[(p.layer_a, p.cluster_a)], idx[(p.layer_b, p.cluster_b)]
        assert m[i, j] == pytest.approx(p.interaction) and m[j, i] == pytest.approx(p.interaction)
    assert np.isnan(np.diag(m)).all()
    without = {**k.to_dict()}
    without.pop("pairs")
    with pytest.raises(ModscopeError, match="no pairs"):
        plot.double_lesion(without)


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_figures_save_in_paper_formats_with_readable_fonts(results, tmp_path, suffix):
    fig = plot.lesion_effects(results["knockout"])
    path = plot.save(fig, tmp_path / f"lesions.{suffix}")
    assert path.stat().st_size > 1000
    width, _ = fig.get_size_inches()
    assert width <= 14
    sizes = [t.get_fontsize() for ax in fig.axes for t in [*ax.texts, ax.title, *ax.get_xticklabels()]]
    assert min(sizes) >= 7
