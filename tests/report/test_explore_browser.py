"""The explorer page in a real browser: Playwright driving Debian's Chromium (``make browser``).

No console error on load; a click on a cluster shows its panel with the numbers of the JSON; a
mask toggle changes the drawing; the threshold slider changes the edge count; zooming into a
large graph swaps aggregate edges for single ones. Without a browser the tests fail (never pass
silently). ``MODSCOPE_UPDATE_SCREENSHOTS=1`` writes the screenshots the docs show
(docs/assets/explore-*.png); otherwise they go to the test's folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from modscope.cli import main
from modscope.graphs.load import load_graph
from tests.helpers.paths import ROOT
from tests.report.test_explore import BIMT, DATA, make_results

# Playwright drives the browser and the page draws with Plotly: each test needs all three (skipped
# without them, failed under MODSCOPE_STRICT_EXTRAS=1)
pytestmark = [pytest.mark.playwright, pytest.mark.chromium, pytest.mark.slow]

ASSETS = ROOT / "docs" / "assets"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no Chromium found: `make browser` (or `apt-get install chromium`)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """The BIMT formula network's page from score, knockout and masks, and those results."""
    folder = tmp_path_factory.mktemp("explore-browser")
    results = make_results(folder)
    page = folder / "explore.html"
    assert main(["explore", *map(str, results.values()), "--out", str(page)]) == 0
    return page, {k: json.loads(p.read_text()) for k, p in results.items()}


def _open(browser, page: Path, errors: list[str]):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.on(
        "console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    tab.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    tab.goto(page.as_uri())
    tab.wait_for_selector("body[data-ready='1']", timeout=60_000)
    return tab


def _shot(tab, name: str, tmp_path: Path) -> bytes:
    folder = ASSETS if os.environ.get("MODSCOPE_UPDATE_SCREENSHOTS") == "1" else tmp_path
    path = folder / f"explore-{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path.read_bytes()


def _edge_count(tab) -> int:
    return int(tab.inner_text("#edge-count"))


def _set_threshold(tab, value: float) -> None:
    tab.eval_on_selector(
        "#threshold", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(value)
    )


def test_load_click_a_cluster_toggle_a_mask_move_the_slider(browser, small, tmp_path):
    page, res = small
    errors: list[str] = []
    tab = _open(browser, page, errors)
    graph = load_graph(BIMT)
    score, ko = res["score"], res["knockout"]
    labels = np.asarray(score["labels"])

    # the null as the JSON has it
    assert tab.inner_text("#null-z") == f"{score['shuffle']['z']:.2f}"
    assert tab.inner_text("#null-p") == f"{score['shuffle']['p_value']:.4f}"

    # a cluster's panel: its units, its n-cut term, its knockout rows
    for c in range(score["n_clusters"]):
        tab.click(f"#cluster-btn-{c}")
        assert tab.inner_text("#panel-title") == f"cluster {c}"
        assert int(tab.inner_text("#cl-units")) == int((labels == c).sum())
        u, v, w = graph.edges
        term = w[(labels[u] == c) != (labels[v] == c)].sum() / graph.degree[labels == c].sum()
        assert tab.inner_text("#cl-ncut-term") == f"{term:.4f}"
        rows = tab.locator("#cl-knockout tr").all_inner_texts()[1:]
        subs = [s for s in ko["submodules"] if s["cluster"] == c]
        assert len(rows) == len(subs)
        for row, s in zip(rows, subs, strict=True):
            cells = row.split("\t")
            assert int(cells[1]) == s["size"] and float(cells[3]) == pytest.approx(s["delta"], abs=1e-4)
        if c == 0:
            _shot(tab, "cluster", tmp_path)
        # the random lesions' box plots (drawn as shapes): quartiles and median as numpy's
        per = zip(ko["submodules"], ko["random_metrics"], strict=True)
        rand = [r for s, r in per if s["cluster"] == c and r]
        ko_plot = tab.evaluate(
            "(() => { const g = document.getElementById('ko-plot'); return [g.data[0].y.length,"
            " g.layout.shapes.filter(s => s.type === 'rect').map(s => [s.y0, s.y1]),"
            " g.layout.shapes.filter(s => s.type === 'line' && s.x1 - s.x0 > 0.5).map(s => s.y0)]; })()"
        )
        assert rand and ko_plot[0] == sum(len(r) for r in rand)
        assert np.allclose(ko_plot[1], [np.percentile(r, [25, 75]) for r in rand])
        assert ko_plot[2] == pytest.approx([float(np.median(r)) for r in rand])

    # the null's histogram (a bar trace binned by the page): every shuffle counted once, the bins cover them
    ncuts = np.asarray(score["shuffle"]["ncuts"])
    x, y, w = tab.evaluate(
        "(() => { const t = document.getElementById('null-plot').data[0]; return [t.x, t.y, t.width]; })()"
    )
    assert sum(y) == ncuts.size and min(x) - w / 1.9 <= ncuts.min() and ncuts.max() <= max(x) + w / 1.9

    # the slider: edges with |w| >= t x the block's largest, counted here from the weights
    f = np.concatenate([np.abs(wb[wb != 0]) / np.abs(wb).max() for wb in graph.weights])
    counts = {}
    for t in (0.0, 0.3, 0.8):
        _set_threshold(tab, t)
        counts[t] = _edge_count(tab)
        assert counts[t] == int((f >= t - 1e-6).sum())
        # every edge in one SVG path per (sign, strength) bin: the drawing's size does not grow with edges
        assert 1 <= tab.locator("#net .shapelayer path").count() <= 8
    assert counts[0.0] > counts[0.3] > counts[0.8]

    # a mask toggled: its kept edges drawn over the network, then removed again
    _set_threshold(tab, 0.0)
    names = "document.getElementById('net').data.map(t => t.name)"
    before = tab.evaluate(names)
    tab.check("#mask-0")
    after = tab.evaluate(names)
    fn = tab.get_attribute("#mask-0", "data-f")
    assert f"mask {fn}" in after and f"mask {fn}" not in before
    n_drawn = tab.evaluate(
        f"document.getElementById('net').data.find(t => t.name === 'mask {fn}').x.length / 3"
    )
    assert (
        n_drawn
        == json.loads(page.read_text().split('id="modscope-data">')[1].split("</script>")[0])["masks"][
            "kept_edges"
        ][fn]
    )
    tab.check("#mask-1")
    assert "shared by the masks shown" in tab.evaluate(names)
    _shot(tab, "masks", tmp_path)
    tab.uncheck("#mask-0")
    tab.uncheck("#mask-1")
    assert tab.evaluate(names) == before

    # a unit's panel from a mouse click on its marker (Plotly's click event)
    box = tab.locator("#net .scatterlayer .trace .points path.point").last.bounding_box()
    tab.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tab.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tab.wait_for_selector("#unit-cluster")
    group, index = re.fullmatch(r"unit layer (\d+)\[(\d+)\]", tab.inner_text("#panel-title")).groups()
    unit = int(graph.offsets[int(group)]) + int(index)
    assert tab.inner_text("#unit-cluster") == str(labels[unit])
    assert errors == []
    tab.close()


def test_a_large_graph_draws_aggregates_and_single_edges_on_zoom(browser, tmp_path):
    s = tmp_path / "s.json"
    assert (
        main(
            [
                "score",
                str(DATA / "digits-plain.pt"),
                "--clusters",
                "4",
                "--shuffles",
                "3",
                "--json",
                str(s),
                "--no-progress",
            ]
        )
        == 0
    )
    page = tmp_path / "digits.html"
    assert main(["explore", str(s), "--out", str(page)]) == 0
    errors: list[str] = []
    tab = _open(browser, page, errors)
    _set_threshold(tab, 0.0)  # all 8832 edges: too many to draw one by one
    assert "aggregate" in tab.inner_text("#edge-mode")
    aggregate = _edge_count(tab)
    assert 1 <= tab.locator("#net .shapelayer path").count() <= 4 < aggregate  # one path per strength bin
    _shot(tab, "aggregate", tmp_path)
    tab.evaluate("Plotly.relayout('net', {'xaxis.range': [0.40, 0.46], 'yaxis.range': [0.7, 2.3]})")
    tab.wait_for_function("document.getElementById('edge-mode').textContent === 'edges'", timeout=10_000)
    assert _edge_count(tab) != aggregate and _edge_count(tab) > 0
    assert errors == []
    tab.close()


def test_a_blocks_page_draws_each_block_and_its_null(browser, tmp_path):
    from tests.cli.test_golden import _tiny_gpt2

    net = tmp_path / "gpt2.safetensors"
    _tiny_gpt2(net)
    b = tmp_path / "blocks.json"
    assert (
        main(["blocks", str(net), "--clusters", "3", "--shuffles", "3", "--json", str(b), "--no-progress"])
        == 0
    )
    d = json.loads(b.read_text())
    page = tmp_path / "blocks.html"
    assert main(["explore", str(b), "--out", str(page)]) == 0
    errors: list[str] = []
    tab = _open(browser, page, errors)
    assert tab.locator("#blocks-table tr.row").count() == len(d["blocks"])
    tab.click("#block-row-1")
    assert d["blocks"][1]["block"] in tab.inner_text("#null-text")
    assert tab.inner_text("#null-z") == f"{d['blocks'][1]['shuffle']['z']:.2f}"
    names = tab.evaluate("document.getElementById('block-plot').data.map(t => t.name)")
    assert {f"cluster {c}" for c in set(d["blocks"][1]["labels"])} <= set(names)
    assert errors == []
    tab.close()
