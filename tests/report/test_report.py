"""The HTML report, its tables, `modscope report` / `modscope plot`, and the cached demo."""

from __future__ import annotations

import base64
import csv
import json
import re
import sys
from pathlib import Path

import pytest

from modscope.cli import main
from modscope.errors import ModscopeError
from modscope.lesions import knockout
from modscope.masks import train_masks
from modscope.report import html as report
from modscope.runtime.atomic import write_json
from modscope.scoring.engine import score
from modscope.training.checkpoint import load_checkpoint, task_for_checkpoint
from modscope.workflows.demo import DemoRun, DemoSettings, run_demo
from tests.helpers.paths import ROOT

DATA = ROOT / "data"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Score, masks and knockout JSON files of the small BIMT formula network."""
    d = tmp_path_factory.mktemp("results")
    ckpt = load_checkpoint(DATA / "independence-bimt.pt")
    model, task = ckpt.model(), task_for_checkpoint(ckpt)
    s = score(ckpt, n_clusters=2, n_shuffles=4, seed=0)
    out = {
        "score": write_json(d / "net-score.json", s.to_dict()),
        "masks": write_json(d / "net-masks.json",
                            train_masks(model, task, ["y1", "y2"], steps=10, seed=0).to_dict()),
        "knockout": write_json(d / "net-knockout.json", knockout(
            model, task, s.partition.labels, n_random=20, pairs=True, seed=0).to_dict()),
    }
    return out


@pytest.fixture(scope="module")
def built(files, tmp_path_factory):
    """One report of the three files, its figures cached: ``(index.html, figure cache)``."""
    d = tmp_path_factory.mktemp("built")
    return report.build_report(list(files.values()), d / "rep", cache_dir=d / "cache"), d / "cache"


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def test_each_result_kind_is_recognised_by_its_keys(files):
    for kind, path in files.items():
        assert report.load_result(path)[0] == kind
    assert report.result_kind({"models": [], "scores": {}}) == "demo"
    with pytest.raises(ModscopeError, match="not a modscope result"):
        report.result_kind({"ncut": 1.0})


def test_unreadable_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(ModscopeError, match="no such file"):
        report.load_result(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModscopeError, match="not JSON"):
        report.load_result(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ModscopeError, match="other.json: not a modscope result"):
        report.load_result(tmp_path / "other.json")


def test_report_is_self_contained_with_every_figure_embedded(built):
    page_path, _ = built
    page = page_path.read_text()
    images = _images(page)
    # score: histograms of both nulls (the BIMT net is sparse: layer and layer_nonzero) + sizes (no
    # checkpoint given, no network); masks: 1; knockout: lesions + pairs
    assert len(images) == 6
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert not re.search(r"<script|<link|@import|url\(|(src|href)=\"https?:", page)
    assert sorted(p.name for p in (page_path.parent / "figures").iterdir()) == [
        "net-knockout-lesions.png", "net-knockout-pairs.png", "net-masks-masks.png",
        "net-score-histogram-layer_nonzero.png", "net-score-histogram.png", "net-score-sizes.png"]


def test_page_style_and_guide_are_package_data_inlined_in_the_page(built):
    """The page's style sheet and its "how to read" section are files in report_page/ beside html.py,
    listed as package data (an installed modscope builds the same page) and inlined in the page."""
    import tomllib

    folder = Path(report.__file__).with_name("report_page")
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "report_page/*" in shipped["modscope.report"]
    css, guide = ((folder / n).read_text(encoding="utf-8") for n in ("report.css", "how_to_read.html"))
    assert ".figs{display:grid" in css and '<h2 id="how">How to read this report</h2>' in guide
    page = built[0].read_text()
    assert f"<style>{css}</style>" in page and guide in page


def test_every_number_is_in_results_csv_and_json(files, built):
    tmp_path = built[0].parent
    combined = json.loads((tmp_path / "results.json").read_text())
    for kind, section in (("score", "scores"), ("masks", "masks"), ("knockout", "knockouts")):
        name = Path(files[kind]).stem
        assert combined[section][name] == json.loads(Path(files[kind]).read_text())
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = {(r["section"], r["name"], r["field"]): float(r["value"]) for r in csv.DictReader(fh)}
    want = {}
    for section in ("scores", "masks", "knockouts"):
        for name, d in combined[section].items():
            for field, v in report._flatten(d):
                want[(section, name, field)] = float(v)
    assert {k: v for k, v in rows.items() if k[0] != "models"} == want
    ko = combined["knockouts"]["net-knockout"]
    assert rows[("knockouts", "net-knockout", "submodules.0.p_value")] == ko["submodules"][0]["p_value"]
    assert rows[("scores", "net-score", "shuffle.ncuts.3")] == combined["scores"]["net-score"]["shuffle"][
        "ncuts"][3]
    with open(tmp_path / "submodules.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(ko["submodules"])


def test_report_from_its_own_results_json_is_the_same_report(built, tmp_path):
    first, cache = built
    second = report.build_report([first.parent / "results.json"], tmp_path / "b", cache_dir=cache)
    assert (first.parent / "results.json").read_bytes() == (tmp_path / "b" / "results.json").read_bytes()
    assert first.read_bytes() == second.read_bytes()


def test_cached_figures_are_not_drawn_again(files, built, tmp_path, monkeypatch):
    first, cache = built[0].read_bytes(), built[1]
    import modscope.report.plot as plot

    def boom(*args, **kwargs):
        raise AssertionError("a cached figure was drawn again")

    for name in ("shuffle_histogram", "cluster_sizes", "mask_overlap", "lesion_effects", "double_lesion"):
        monkeypatch.setattr(plot, name, boom)
    again = report.build_report(list(files.values()), tmp_path / "b", cache_dir=cache).read_bytes()
    assert again == first


@pytest.mark.slow  # every figure through the CLI
def test_cli_report_and_plot(files, tmp_path, capsys):
    assert main(["report", str(files["score"]), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").exists()
    for figure, kind in [("histogram", "score"), ("sizes", "score"), ("masks", "masks"),
                         ("lesions", "knockout"), ("pairs", "knockout")]:
        out = tmp_path / f"{figure}.png"
        assert main(["plot", figure, str(files[kind]), "--out", str(out), "--dpi", "50"]) == 0
        assert out.read_bytes().startswith(PNG)
    # the demo's combined results.json, one model picked by name
    combined = tmp_path / "combined.json"
    write_json(combined, report.collect(list(files.values())).to_dict())
    assert main(["plot", "lesions", str(combined), "--model", "net-knockout",
                 "--out", str(tmp_path / "x.svg")]) == 0
    assert main(["plot", "network", str(DATA / "independence-bimt.pt"), "--score", str(files["score"]),
                 "--out", str(tmp_path / "net.png"), "--dpi", "50"]) == 0
    capsys.readouterr()
    assert main(["plot", "lesions", str(files["score"]), "--out", str(tmp_path / "y.png")]) == 2
    err = capsys.readouterr().err
    assert "a score result, this figure needs a knockout result" in err and err.count("\n") == 1
    assert main(["plot", "lesions", str(combined), "--model", "nope", "--out", str(tmp_path / "y.png")]) == 2
    assert "no knockout result for model 'nope'" in capsys.readouterr().err


@pytest.mark.slow  # the demo, twice
def test_demo_writes_the_report_and_reruns_only_what_changed(tmp_path, monkeypatch):
    runs = [DemoRun("ind-bimt", "formula-independence", {"steps": 200, "bimt": True}, 2,
                    masks=("y1", "y2"), extra_nulls=("layer_nonzero",))]
    logs: list[str] = []
    res = run_demo(tmp_path, runs=runs, settings=DemoSettings(3, 10, 20), progress=False,
                   log=logs.append)
    page = res.report.read_text()
    assert len(_images(page)) == 7  # 2 histograms (layer, layer_nonzero), sizes, network, masks,
    # lesions, pairs
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in saved["models"]] == ["ind-bimt"]
    assert set(saved["scores"]) == set(saved["masks"]) == set(saved["knockouts"]) == {"ind-bimt"}
    assert saved["knockouts"]["ind-bimt"]["functions"]["functions"] == ["y1", "y2"]
    assert (tmp_path / "models.csv").read_text().startswith("model,task,widths")
    nonzero = saved["nulls"]["ind-bimt"]["layer_nonzero"]["shuffle"]
    assert nonzero["method"] == "layer_nonzero" and len(nonzero["ncuts"]) == 3
    assert saved["models"][0]["p_layer_nonzero"] == nonzero["p_value"]
    assert "cached" not in logs[0]
    # the explorer page beside the report, linked from it
    explorer = tmp_path / "explore" / "ind-bimt.html"
    assert explorer.stat().st_size <= 10e6 and 'href="explore/ind-bimt.html"' in page
    assert saved["explorers"] == {"ind-bimt": "explore/ind-bimt.html"}
    # `modscope report results.json` rebuilds the same page (checkpoints found beside the JSON)
    again = report.build_report([tmp_path / "results.json"], tmp_path / "again",
                                title="modscope demo report", cache_dir=tmp_path / "cache" / "figures")
    assert again.read_bytes() == res.report.read_bytes()

    calls: list[str] = []

    def counting(module, name):
        real = getattr(sys.modules[module], name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(sys.modules[module], name, wrapper)

    for module, name in [("modscope.training.trainer", "train"), ("modscope.scoring.engine", "score"),
                         ("modscope.masks.fit", "train_masks"), ("modscope.lesions.knockout", "knockout")]:
        counting(module, name)
    run_demo(tmp_path, runs=runs, settings=DemoSettings(3, 10, 20), progress=False, log=logs.append)
    assert calls == []
    assert "model cached, score cached, masks cached, knockout cached" in logs[1]
    # more shuffles: the score and the knockout that uses its clusters; model and masks are reused
    run_demo(tmp_path, runs=runs, settings=DemoSettings(4, 10, 20), progress=False, log=logs.append)
    assert calls == ["score", "score", "knockout"]  # both nulls (this BIMT net is 30 % zeros: not sparse)


@pytest.mark.slow  # trains and scores a transformer
def test_demo_report_shows_the_worked_example_on_a_real_architecture(tmp_path):
    """`make demo`'s report includes the worked example (here the transformer on addmul, quick):
    its score, knockout and masks, from the traced network; a rerun reads it from the cache."""
    logs: list[str] = []
    res = run_demo(tmp_path, runs=[], worked=("transformer",), settings=DemoSettings(3, 10, 20),
                   progress=False, log=logs.append)
    page = res.report.read_text()
    assert 'id="worked"' in page and "DigitTransformer" in page
    saved = json.loads((tmp_path / "results.json").read_text())
    w = saved["worked"]["transformer"]
    assert w["model"] == "DigitTransformer" and w["quick"] is True
    assert w["masks"]["functions"][:2] == ["add", "mul"]  # then the control mask
    assert len(w["score"]["labels"]) == w["graph"]["nodes"]
    assert "worked-transformer" in page  # the knockout and masks sections of the worked example
    assert "cached" not in logs[0]
    run_demo(tmp_path, runs=[], worked=("transformer",), settings=DemoSettings(3, 10, 20),
             progress=False, log=logs.append)
    assert "(cached)" in logs[1]


def test_widths_text_folds_runs_of_equal_widths():
    from modscope.report.text import widths_text

    assert widths_text([784, 256, 256, 256, 256, 10]) == "784-256×4-10"
    assert widths_text((4, 4, 3), times="x") == "4x2-3"
    assert widths_text([5]) == "5" and widths_text([]) == ""
