"""`modscope explore`: the page's numbers against their definitions, and one-line refusals.

The browser side (clicks, toggles, the slider) is in test_explore_browser.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modscope import ModscopeError
from modscope.cli import main
from modscope.graphs.load import load_graph
from modscope.graphs.weight_graph import WeightGraph
from modscope.masks.bits import decode_masks, encode_masks
from modscope.report.explore import explore, page_data
from modscope.report.layout import group_depths
from modscope.runtime.hashing import file_sha256
from tests.helpers.graphs import stream_with_three_blocks
from tests.helpers.paths import ROOT

DATA = ROOT / "data"
BIMT = DATA / "independence-bimt.pt"


def make_results(folder: Path, mask_steps: int = 300) -> dict[str, Path]:
    """score, knockout and masks --json of the BIMT formula network (x1, x3 -> y1; x2, x4 -> y2)."""
    out = {k: folder / f"{k}.json" for k in ("score", "knockout", "masks")}
    for argv in (
        [
            "score",
            str(BIMT),
            "--clusters",
            "2",
            "--shuffles",
            "6",
            "--shuffle-method",
            "layer_nonzero",
            "--json",
            str(out["score"]),
        ],
        ["knockout", str(BIMT), "--clusters", "2", "--random", "20", "--json", str(out["knockout"])],
        ["masks", str(BIMT), "--steps", str(mask_steps), "--functions", "y1,y2", "--json", str(out["masks"])],
    ):
        assert main([*argv, "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Path]:
    return make_results(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def loaded(results) -> dict[str, dict]:
    return {k: json.loads(p.read_text()) for k, p in results.items()}


def test_the_cli_json_names_its_network_and_keeps_what_the_page_needs(loaded):
    graph = load_graph(BIMT)
    for d in loaded.values():
        assert d["source"]["path"] == str(BIMT.resolve())
        assert d["source"]["sha256"] == file_sha256(BIMT)
    ko = loaded["knockout"]
    assert len(ko["lesioned_labels"]) == graph.n_nodes
    assert len(ko["random_metrics"]) == len(ko["submodules"])
    for s, r in zip(ko["submodules"], ko["random_metrics"], strict=True):
        assert len(r) == 20
        assert np.mean(r) == pytest.approx(s["random_mean"], rel=1e-9)
    masks = decode_masks(loaded["masks"]["weight_masks"])
    assert set(masks) == {"y1", "y2", "control"}
    for f, per in masks.items():
        kept = sum(int(m.sum()) for m in per.values())
        total = sum(m.size for m in per.values())
        assert kept / total == pytest.approx(loaded["masks"]["kept_fraction"][f], abs=1e-9)


def test_mask_bits_round_trip():
    rng = np.random.default_rng(0)
    masks = {"a": {"w": rng.random((5, 7)) > 0.5, "k": rng.random((3, 2, 3, 3)) > 0.3}}
    back = decode_masks(encode_masks(masks))
    for name, m in masks["a"].items():
        assert np.array_equal(back["a"][name], m)
    with pytest.raises(ModscopeError, match="weight_masks"):
        decode_masks({"a": {"w": {"shape": [100], "bits": "AA=="}}})


def test_the_page_numbers_follow_their_definitions(results, loaded):
    data = page_data(list(results.values()))
    graph = load_graph(BIMT)
    (p,) = data["partitions"]  # knockout lesioned the score's partition: one partition, both attached
    labels = np.asarray(loaded["score"]["labels"])
    assert p["labels"] == labels.tolist()
    assert p["knockout"] is not None and len(p["knockout"]["submodules"]) == len(
        loaded["knockout"]["submodules"]
    )
    # n-cut terms: cut(c) / vol(c) from the edges, summing to the result's n-cut
    u, v, w = graph.edges
    deg = graph.degree
    for c, term in enumerate(p["terms"]):
        cut = w[(labels[u] == c) != (labels[v] == c)].sum()
        assert term == pytest.approx(cut / deg[labels == c].sum(), abs=1e-12)
    assert sum(p["terms"]) == pytest.approx(loaded["score"]["ncut"], abs=1e-9)
    # units per cluster and group
    for c in range(p["k"]):
        for g in range(graph.n_layers):
            assert p["sizes"][c][g] == int((labels[graph.group_nodes(g)] == c).sum())
    # IoU of each cluster's inside weights with each mask's kept weights, counted weight by weight
    masks = decode_masks(loaded["masks"]["weight_masks"])
    for f in masks:
        for c in range(p["k"]):
            inside, kept, both = 0, 0, 0
            for b, ((s, d), wb) in enumerate(zip(graph.links, graph.weights, strict=True)):
                ls, ld = labels[graph.group_nodes(s)], labels[graph.group_nodes(d)]
                m = masks[f][graph.names[b]]
                for k in range(wb.shape[0]):
                    for j in range(wb.shape[1]):
                        if wb[k, j] == 0:
                            continue
                        a = ls[j] == c and ld[k] == c
                        inside += a
                        kept += bool(m[k, j])
                        both += a and bool(m[k, j])
            union = inside + kept - both
            assert p["iou"][f][c] == pytest.approx(both / union if union else None)
    # the null as the result has it
    assert p["null"]["ncuts"] == loaded["score"]["shuffle"]["ncuts"]
    assert data["masks"]["kept_edges"]["y1"] < graph.n_edges


def test_aggregates_hold_every_edge_and_the_strongest_are_embedded(results):
    full = page_data([results["score"]])
    few = page_data([results["score"]], max_edges=5)
    graph = load_graph(BIMT)
    for d in (full, few):
        agg = d["partitions"][0]["edges"]
        assert sum(agg["w"]) == pytest.approx(sum(float(np.abs(w).sum()) for w in graph.weights))
        assert sum(agg["n"]) == graph.n_edges
    assert (full["edges"]["n"], few["edges"]["n"]) == (graph.n_edges, 5)
    assert few["edges"]["total"] == graph.n_edges
    import base64

    q = np.frombuffer(base64.b64decode(few["edges"]["q"]), dtype=np.int16)
    f = np.concatenate([np.abs(w[w != 0]) / np.abs(w).max() for w in graph.weights])
    assert np.allclose(np.sort(np.abs(q) / 32767)[::-1], np.sort(f)[::-1][:5], atol=1e-4)


def test_python_objects_and_the_notebook_view(tmp_path):
    from modscope.scoring.engine import score

    s = score(BIMT, n_clusters=2, n_shuffles=3, seed=0)
    page = explore(s)  # the result holds its graph: no file needed
    assert page.data["network"]["n_nodes"] == s.graph.n_nodes
    html = page._repr_html_()
    assert html.startswith("<iframe srcdoc=") and "modscope-data" in html
    path = page.save(tmp_path / "e.html")
    text = path.read_text()
    assert "Plotly" in text and "<script src=" not in text  # bundled, nothing fetched


def test_the_page_carries_its_own_plotly(results, monkeypatch):
    """plotly.js's official basic bundle is vendored: no `plotly` package, no network; its
    origin and MIT licence ship beside it, and it holds every trace type the page draws."""
    import re
    import sys

    import modscope.report.explore as ex

    monkeypatch.setitem(sys.modules, "plotly", None)  # `import plotly` fails: not needed
    text = explore(results["score"]).html
    assert "plotly.js (basic - minified) v4.1.1" in text and "window.Plotly" in text
    assert "<script src=" not in text  # nothing fetched
    folder = Path(ex.__file__).with_name("explore_page")
    notice = (folder / "PLOTLY-LICENSE.txt").read_text()
    assert "MIT License" in notice and "plotly.js-basic-dist-min 4.1.1" in notice
    drawn = set(re.findall(r'type: "(\w+)"', (folder / "explore.js").read_text()))
    drawn -= {"path", "line", "rect"}  # layout shapes, not traces
    listed = notice.split("trace types:")[1].split("(")[0]
    assert drawn == {"scatter", "bar"} and all(t in listed for t in drawn)


def test_group_rows_follow_the_longest_path():
    rng = np.random.default_rng(0)
    w = [rng.random((3, 2)), rng.random((4, 3)), rng.random((4, 2))]  # 0->1->2 and a skip 0->2
    g = WeightGraph(tuple(w), links=((0, 1), (1, 2), (0, 2)), sizes=(2, 3, 4))
    assert group_depths(g).tolist() == [0, 1, 2]


def _cli(argv, capsys) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


def test_bad_input_one_line_exit_2_nothing_written(results, tmp_path, capsys):
    out = tmp_path / "page.html"
    other = tmp_path / "other.json"
    assert (
        main(
            [
                "score",
                str(DATA / "independence-plain.pt"),
                "--clusters",
                "2",
                "--shuffles",
                "2",
                "--json",
                str(other),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    cases = {
        "different networks": [str(results["score"]), str(other)],
        "no partition": [str(results["masks"])],
        "no such file": [str(results["score"]), str(tmp_path / "missing.json")],
        "is not the network": [str(DATA / "digits-plain.pt"), str(results["score"])],
    }
    for expected, args in cases.items():
        rc, err = _cli(["explore", *args, "--out", str(out)], capsys)
        assert rc == 2, expected
        assert expected in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    # an existing page is left as it was
    out.write_text("mine")
    rc, _ = _cli(["explore", str(results["masks"]), "--out", str(out)], capsys)
    assert rc == 2 and out.read_text() == "mine"
    rc, err = _cli(["explore", str(results["score"]), "--out", str(tmp_path / "page.png")], capsys)
    assert rc == 2 and "HTML" in err


def test_the_cli_writes_one_offline_page(results, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["explore", *map(str, results.values()), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = out.read_text()
    assert text.count("<script") == 3 and "http://" not in text.split("modscope-data")[1][:200]
    assert out.stat().st_size < 10e6


def test_blocks_alone_give_the_table_and_each_blocks_drawing(tmp_path, capsys):
    from modscope.graphs.transformer import mlp_blocks
    from tests.cli.test_golden import _tiny_gpt2

    net = tmp_path / "gpt2.safetensors"
    _tiny_gpt2(net)
    b = tmp_path / "blocks.json"
    assert (
        main(["blocks", str(net), "--clusters", "3", "--shuffles", "3", "--json", str(b), "--no-progress"])
        == 0
    )
    d = json.loads(b.read_text())
    data = page_data([b])
    assert data["partitions"] == [] and [r["block"] for r in data["blocks"]["rows"]] == [
        x["block"] for x in d["blocks"]
    ]
    for row, blk, res in zip(data["blocks"]["rows"], mlp_blocks(net), d["blocks"], strict=True):
        g = blk.graph()
        assert row["drawing"]["labels"] == res["labels"]
        assert sum(row["drawing"]["edges"]["w"]) == pytest.approx(
            sum(float(np.abs(w).sum()) for w in g.weights)
        )
        assert row["null"]["ncuts"] == res["shuffle"]["ncuts"]
    # another network's blocks with them: refused
    b2 = tmp_path / "blocks2.json"
    d2 = {**d, "source": {**d["source"], "sha256": "0" * 64}}
    b2.write_text(json.dumps(d2))
    capsys.readouterr()
    assert main(["explore", str(b), str(b2), "--out", str(tmp_path / "p.html")]) == 2
    assert "different networks" in capsys.readouterr().err


def test_a_merged_stream_is_one_row_with_the_blocks_above_it():
    g = stream_with_three_blocks()  # the stream, then three blocks that read it and write it back
    assert group_depths(g).tolist() == [0, 1, 1, 1]


def test_both_kinds_of_train_result_are_read(results):
    # train --task writes train_config and the task's accuracies; train --model the module, its data
    # and fit_model's metric: both are train results, and the page shows their steps and test metric
    from modscope.report.explore import explore_kind

    task_run = json.loads((ROOT / "tests" / "golden" / "train_digits.json").read_text())
    model_run = {"model": "pkg.mod:make", "data": "d.npz", "example_input": {"shape": [1, 4]},
                 "device": "cpu", "seconds": 1.0, "steps": 5, "metric": 0.25, "metric_name": "mse",
                 "history": [], "settings": {}}
    for run, key in ((task_run, "test_accuracy"), (model_run, "metric")):
        assert explore_kind(run) == "train"
        data = page_data([str(results["score"]), run])
        assert data["train"]["steps"] == run["steps"] and data["train"][key] == run[key]
