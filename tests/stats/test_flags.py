"""Answers that warn (issue 25): sparse networks against both nulls, degenerate partitions, masks
that did not train, stacks read from weights alone; the checks of `modscope.stats.flags` and where
they show (the result, its JSON, the terminal tables, the report's summary)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modscope.cli import main
from modscope.graphs.weight_graph import WeightGraph
from modscope.report import html as report
from modscope.report.summary import knockout_sentences, mask_sentences, score_sentences
from modscope.report.text import format_masks, format_score
from modscope.scoring.engine import score
from modscope.stats import flags
from tests.conftest import planted_weights


# -- the rules, from their definitions ------------------------------------------------------------
def test_zero_fraction_and_the_sparse_rule():
    ws = [np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[2.0, 0.0]])]
    assert flags.zero_fraction(ws) == pytest.approx(4 / 6)
    assert flags.is_sparse(0.5) and not flags.is_sparse(0.4999)


def test_the_companion_null_is_the_other_kind():
    assert flags.companion_null("layer") == "layer_nonzero"
    assert flags.companion_null("layer_all_distribution") == "layer_nonzero"
    for keeps in ("layer_nonzero", "layer_nonzero_distribution", "layer_degree"):
        assert flags.companion_null(keeps) == "layer"
    assert flags.companion_null("units") is None and flags.companion_null(None) is None
    assert set(flags.NULL_TESTS) >= {"layer", "layer_nonzero", "layer_degree"}


def test_verdict_is_one_sided_both_ways():
    above, below = np.linspace(2, 3, 20), np.linspace(0, 1, 20)
    assert flags.verdict(1.5, above) == "more"  # an n-cut below every shuffle
    assert flags.verdict(1.5, below) == "less"
    assert flags.verdict(0.5, below) == "neither"
    assert flags.verdict(1.5, below, higher_is_modular=True) == "more"  # Newman Q
    assert flags.verdict(1.5, above[:5]) == "neither"  # 5 shuffles: p >= 1/6 cannot reach 0.05


def test_null_disagreement_says_what_each_null_tests_and_how_to_read_both():
    more = {"ncuts": list(np.linspace(2, 3, 20)), "z": -3.0, "p_value": 1 / 21}
    neither = {"ncuts": list(np.linspace(1, 2, 20)), "z": 0.1, "p_value": 0.5}
    assert flags.null_disagreement(1.5, 0.9, {"layer": more, "layer_nonzero": more}) is None
    f = flags.null_disagreement(1.5, 0.9, {"layer": more, "layer_nonzero": neither})
    assert f.code == "sparse_nulls_disagree"
    assert "90 % zero weights" in f.message and "sparsity pattern" in f.message
    assert "more modular than `layer`" in f.message and "not more modular than `layer_nonzero`" in f.message
    # the other way round (BIMT in the demo: less modular than `layer`, more than `layer_nonzero`)
    less = {"ncuts": list(np.linspace(0, 1, 20)), "z": 12.0, "p_value": 1.0}
    g = flags.null_disagreement(1.5, None, {"layer": less, "layer_nonzero": more})
    assert "less modular than `layer`" in g.message and "placed modularly" in g.message


def test_partition_flags_giant_clusters_and_slivers():
    balanced = np.repeat(np.arange(4), 25)
    assert flags.partition_flags(balanced, 4) == []
    giant = np.array([0] * 90 + [1, 2, 3, 3, 4, 5, 6, 7, 7, 7])
    (f,) = flags.partition_flags(giant, 8)
    assert f.code == "degenerate_partition"
    assert "cluster 0 holds 90 of the 100 units (90 %)" in f.message
    assert "clusters 1, 2, 3, 4, 5 and 6 hold only 1 or 2 units each" in f.message
    assert f.message.startswith("degenerate partition (k = 8): ") and "--clusters" in f.message
    # k = 2: a 70 / 30 split is a partition, not a degenerate one; -1 (isolated) units are left out
    assert flags.partition_flags(np.array([0] * 70 + [1] * 30 + [-1] * 50), 2) == []
    # an empty cluster is degenerate too; a tiny graph (clusters of 2 on average) is not flagged
    assert "cluster 3 is empty" in flags.partition_flags(np.repeat([0, 1, 2], 10), 4)[0].message
    assert flags.partition_flags(np.array([0, 0, 1, 2, 3, 3]), 4) == []


def test_mask_and_reading_flags():
    (f,) = flags.mask_flags({"left": 0.989, "right": 0.4, "control": None}, steps=500)
    assert f.code == "masks_not_converged"
    assert "after 500 steps" in f.message and "left 98.9 %" in f.message and "raise --steps" in f.message
    assert "right" not in f.message
    assert flags.mask_flags({"left": 0.3, "right": 0.94}) == []
    for reading in ("a plain conv stack in stored order, channels as units",
                    "a plain stack of Linear layers (out x in weights, as torch stores them)",
                    "a TorchScript archive (weights read, its code not run): a plain stack of Linear layers",
                    "the 3 named layers, in the order given"):
        f = flags.stack_reading_flag(reading)
        assert f is not None and "identity shortcuts" in f.message and "--model" in f.message
    for reading in ("traced with torch.export: 5 unit groups, 4 blocks", "a modscope checkpoint (MLP)",
                    "an nn.Sequential of Linear layers", "", None):
        assert flags.stack_reading_flag(reading) is None


# -- the score ------------------------------------------------------------------------------------
def _pattern_modules(n_blocks: int = 3, width: int = 12) -> WeightGraph:
    """Block-diagonal layers of equal |w|: all the modularity is in which weights exist, so
    `layer_nonzero` shuffles (pattern kept) give the very same graph and `layer` ones do not."""
    block = np.kron(np.eye(n_blocks), np.ones((width // n_blocks, width // n_blocks)))
    return WeightGraph.from_weights([block, block, block])


def test_a_sparse_network_is_scored_against_both_nulls_and_warns_when_they_disagree():
    g = _pattern_modules()
    assert flags.zero_fraction(g.weights) == pytest.approx(2 / 3)
    r = score(g, n_clusters=3, n_shuffles=20, seed=0)
    assert list(r.other_nulls) == ["layer_nonzero"]
    assert r.null.p_value == pytest.approx(1 / 21)  # more modular than scattered zeros
    assert r.other_nulls["layer_nonzero"].p_value == 1.0  # the same graph every time
    d = r.to_dict()["sparse"]
    assert d["zero_fraction"] == pytest.approx(2 / 3) and d["threshold"] == flags.SPARSE_FRACTION
    assert d["verdicts"] == {"layer": "more", "layer_nonzero": "neither"}
    assert set(d["tests"]) == {"layer", "layer_nonzero"} and d["other"]["method"] == "layer_nonzero"
    assert len(d["other"]["ncuts"]) == 20
    assert d["warning"] and [f.code for f in r.flags if f.code == "sparse_nulls_disagree"]
    text = " ".join(format_score(r).split())
    assert "66.7 % of the weights are zero" in text and "not more modular" in text
    assert "warnings" in text and "the nulls disagree" in text
    # the user's null is layer_nonzero: the other one is layer
    r2 = score(g, n_clusters=3, n_shuffles=4, null="layer_nonzero", seed=0)
    assert list(r2.other_nulls) == ["layer"]
    assert "sparse" not in score(g, n_clusters=3, n_shuffles=4, seed=0, compare_nulls=False).to_dict()


def test_a_dense_network_gets_neither_a_second_null_nor_a_new_key():
    ws, _ = planted_weights([12, 8, 6], 2, np.random.default_rng(0))
    r = score(WeightGraph.from_weights(ws), n_clusters=2, n_shuffles=3)
    assert r.other_nulls == {} and "sparse" not in r.to_dict() and r.flags == []
    assert "warnings" not in format_score(r)


def test_a_degenerate_partition_is_flagged_in_the_result_and_the_table():
    # a dense 30-30-30 network and three (input, hidden) pairs hanging on by a thread: k = 4 cuts
    # the pairs off, an n-cut near 0 and a huge z, as the clusterability regulariser's networks get
    rng = np.random.default_rng(0)
    w1, w2 = rng.uniform(0.5, 1.5, (30, 30)), rng.uniform(0.5, 1.5, (30, 30))
    for h in range(3):
        w1[h, :], w1[:, h], w2[:, h] = 0.0, 0.0, 1e-6
        w1[h, h] = 1.0
    r = score(WeightGraph.from_weights([w1, w2]), n_clusters=4, n_shuffles=3, seed=0)
    assert sorted(r.cluster_sizes.sum(0)) == [2, 2, 2, 84] and r.null.z < -10
    assert [f.code for f in r.flags] == ["degenerate_partition"]
    text = " ".join(format_score(r).split())  # the warnings wrap at 100 columns
    assert "degenerate partition" in text and "hold only 2 units each" in text
    assert "all 90 |" in text  # the cluster totals under the per-layer table


def test_a_state_dict_stack_warns_that_it_cannot_show_shortcuts(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    sd = {"0.weight": torch.randn(6, 5, generator=g), "2.weight": torch.randn(4, 6, generator=g)}
    torch.save(sd, tmp_path / "mlp.pt")
    assert main(["score", str(tmp_path / "mlp.pt"), "--clusters", "2", "--shuffles", "2",
                 "--no-progress"]) == 0
    out, err = capsys.readouterr()
    out = " ".join(out.split())
    assert "identity shortcuts" in out and "--model package.module:factory" in out and err == ""


# -- masks ----------------------------------------------------------------------------------------
def test_masks_that_kept_their_weights_are_flagged_not_converged():
    from modscope.masks import train_masks
    from modscope.training.checkpoint import load_checkpoint, task_for_checkpoint

    ckpt = load_checkpoint("data/independence-bimt.pt")
    r = train_masks(ckpt.model(), task_for_checkpoint(ckpt), ["y1", "y2"], steps=5, seed=0)
    assert min(r.kept_fraction.values()) >= flags.MASK_DENSE  # 5 steps cannot move the logits from +2
    assert [f.code for f in r.flags] == ["masks_not_converged"]
    text = " ".join(format_masks(r).split())
    assert "masks not converged after 5 steps" in text and "raise --steps" in text


# -- the report's summary -------------------------------------------------------------------------
def _score_dict(ncut, samples, method="layer", labels=None):
    return {"ncut": ncut, "labels": labels if labels is not None else [0, 1] * 10, "n_clusters": 2,
            "layer_widths": [10, 10], "n_edges": 100,
            "shuffle": {"method": method, "n": len(samples), "ncuts": list(samples),
                        "mean": float(np.mean(samples)), "std": float(np.std(samples)), "z": -1.0,
                        "p_value": 0.05}}


def test_summary_sentences_say_which_models_beat_which_null():
    above, below = np.linspace(2, 3, 20), np.linspace(0, 1, 20)
    scores = {"a": _score_dict(1.5, above), "b": _score_dict(1.5, below), "c": _score_dict(2.5, above)}
    nulls = {"b": {"layer_nonzero": {"shuffle": _score_dict(1.5, above, "layer_nonzero")["shuffle"]}}}
    text = " ".join(score_sentences(scores, nulls, {"b": 0.9}))
    assert "Against `layer` shuffles, a (z -1.00) is more modular than them" in text
    assert "c (z -1.00) is not more modular than them; b (z -1.00) is less modular than them" in text
    assert "Against `layer_nonzero` shuffles, b (z -1.00) is more modular than them" in text
    assert "b: the nulls disagree on this sparse network (90 % zero weights)" in text
    giant = _score_dict(1.5, above, labels=[0] * 90 + [1, 2, 3, 3, 4, 5, 6, 7, 7, 7])
    giant["n_clusters"] = 8
    assert "degenerate partition" in " ".join(score_sentences({"g": giant}))


def test_summary_sentences_for_knockouts_and_masks():
    sub = {"layer": 1, "cluster": 3, "size": 7, "delta": -0.2, "category": "important"}
    ko = {"metric": "accuracy", "submodules": [sub, {**sub, "cluster": 4, "category": "prunable"}]}
    (k,) = knockout_sentences({"net": ko})
    assert "1 of 2 clusters matters more than random lesions" in k
    assert "layer 1 cluster 3 (7 units, accuracy -0.2)" in k and "1 prunable" in k
    masks = {"functions": ["left", "right", "control"], "kept_fraction": {"left": 0.99, "right": 0.3},
             "iou": {"left|right": 0.1, "left|control": 0.9}, "iomin": {"left|right": 0.2}}
    m = mask_sentences({"net": masks})
    assert m[0] == "In net, left and right share few weights (IoU 0.10, IoMin 0.20)."
    assert "masks not converged" in m[1] and "left 99.0 %" in m[1]


def test_the_report_opens_with_the_summary_and_says_what_each_worked_section_ran(tmp_path):
    worked = {
        "model": "DigitTransformer", "parameters": 10, "quick": True,
        "settings": {"n_shuffles": 5, "n_random": 20, "knockout_examples": 300, "mask_steps": 150,
                     "n_clusters": 4, "steps": 1500},
        "training": {"metric": 0.6233, "metric_name": "accuracy", "steps": 1500},
        "graph": {"nodes": 20, "edges": 100, "reading": "traced"},
        "score": _score_dict(1.5, np.linspace(2, 3, 5)),
        "knockout": {"metric": "accuracy", "intact_accuracy": 0.6633, "n_random": 20, "submodules": []},
        "masks": {"functions": ["add", "mul"], "kept_fraction": {"add": 1.0, "mul": 1.0},
                  "iou": {"add|mul": 0.99}, "iomin": {},
                  "accuracy": {"add": {"add": 0.5}, "mul": {"add": 0.5}},
                  "inverted_accuracy": {"add": {"add": 0.1}, "mul": {"add": 0.1}},
                  "full_accuracy": {"add": 0.6}},
    }
    demo = {"models": [], "scores": {}, "masks": {}, "knockouts": {}, "worked": {"transformer": worked},
            "settings": {"shuffles": 20, "knockout_random": 50, "mask_steps": 1000},
            "notes": ["Fashion-MNIST is not installed: the fashion-mnist-plain model left out."]}
    page = report.build_report([("demo", demo)], tmp_path / "rep").read_text()
    assert page.index('id="summary"') < page.index('id="how"') < page.index('id="worked"')
    assert "Fashion-MNIST is not installed" in page
    assert "settings of the demo's models" in page and "the worked examples ran their own" in page
    ran = report.worked_ran(worked)
    assert "against 5 layer shuffles" in ran and "20 random lesions per sub-module" in ran
    assert "first 300 test examples (intact accuracy 0.6633 there)" in ran
    assert "accuracy 0.6233 on the test set" in ran and "masks: 150 steps" in ran
    assert "masks not converged after 150 steps" in page


# -- help texts and the demo's notes --------------------------------------------------------------
def test_help_says_what_knockout_masks_and_demo_take(capsys):
    for command in ("knockout", "masks"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "modscope checkpoint" in out and "weights file of your module" in out
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--seed SEED seed of every model's training" in out


def test_the_demo_says_when_it_leaves_fashion_mnist_out(tmp_path, monkeypatch):
    import json

    from modscope.workflows import demo

    note = demo.left_out_note(asked=False)
    assert "not installed" in note and "fashion-mnist-plain" in note and "CNN worked example" in note
    assert "--no-fashion" in demo.left_out_note(asked=True)
    # the demo's own models (none here, to stay fast) on a machine without the data package
    monkeypatch.setattr(demo, "fashion_available", lambda *a: False)
    monkeypatch.setattr(demo, "demo_runs", lambda quick, fashion=None: [])
    logs: list[str] = []
    res = demo.run_demo(tmp_path, worked=(), progress=False, log=logs.append)
    assert logs[0] == f"note: {note}"
    assert json.loads((tmp_path / "results.json").read_text())["notes"] == [note]
    assert "Fashion-MNIST is not installed" in res.report.read_text()
    assert demo.run_demo(tmp_path / "b", worked=(), fashion=False, progress=False).notes == [
        demo.left_out_note(asked=True)]


def test_the_demo_reuses_a_sparse_networks_second_null(tmp_path, monkeypatch):
    from modscope.scoring import engine
    from modscope.workflows import demo

    calls = []
    real = engine.score
    monkeypatch.setattr(engine, "score", lambda *a, **k: calls.append(k.get("null")) or real(*a, **k))
    run = demo.DemoRun("pruned", "digits", {"steps": 30, "prune": 0.9, "prune_steps": 30, "hidden": [8, 8]},
                       2, extra_nulls=("layer_nonzero", "layer_degree"), pairs=False)
    res = demo.run_demo(tmp_path, runs=[run], settings=demo.DemoSettings(3, 10, 20), progress=False,
                        log=lambda _: None)
    assert calls == [None, "layer_degree"]  # layer_nonzero came with the first score
    s, nonzero = res.scores["pruned"], res.nulls["pruned"]["layer_nonzero"]
    assert s["sparse"]["other"] == nonzero["shuffle"] and nonzero["ncut"] == s["ncut"]
    assert "sparse" not in res.nulls["pruned"]["layer_degree"]  # scored against one null only
    assert res.rows[0]["z_layer_nonzero"] == s["sparse"]["other"]["z"]
