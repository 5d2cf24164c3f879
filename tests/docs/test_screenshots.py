"""Screenshots in headless Chromium (scripts/screenshots.py): the report and a docs page can be
taken, they are real pictures (1400 px wide, not blank), and every committed screenshot is shown on
a docs page. Pixels are not compared: fonts and anti-aliasing differ between machines."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.paths import ROOT

SHOTS = ROOT / "docs" / "assets" / "screenshots"


def _script():
    path = ROOT / "scripts" / "screenshots.py"
    spec = importlib.util.spec_from_file_location("screenshots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_picture(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as img:
        assert img.size == (1400, 1100), img.size
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert pixels.std() > 5, f"{path.name} is blank"
    assert (pixels < 128).mean() > 0.002, f"{path.name} shows no text"


def test_every_committed_screenshot_is_a_picture_shown_on_a_page():
    script = _script()
    names = {p.stem for p in SHOTS.glob("*.png")}
    assert names == set(script.NAMES), "scripts/screenshots.py --only NAME writes the missing ones"
    pages = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    shown = set(re.findall(r"assets/screenshots/([\w-]+)\.png", pages))
    assert shown == names, f"not shown on any page: {sorted(names - shown)}"
    for path in SHOTS.glob("*.png"):
        _assert_picture(path)


@pytest.mark.slow
@pytest.mark.chromium
def test_the_report_and_a_docs_page_can_be_taken(tmp_path):
    script = _script()
    report = script.build_report(tmp_path / "report")
    _assert_picture(script.shoot(report, tmp_path / "report.png", tmp_path / "profile"))
    # a docs page: the one `make docs` built, else a page of markdown rendered alone is enough to
    # show the browser draws the site's HTML (building the site takes a minute)
    page = ROOT / "site" / "science" / "reproductions" / "index.html"
    if not page.is_file():
        page = tmp_path / "page.html"
        text = ("<p>" + "modular network " * 60 + "</p>") * 20
        page.write_text(f"<html><body><h1>modscope</h1>{text}</body></html>")
    _assert_picture(script.shoot(page, tmp_path / "page.png", tmp_path / "profile"))
