"""Screenshots of the documentation site and of an HTML report, taken in headless Chromium, for
``docs/assets/screenshots/`` (the docs pages show them; ``tests/docs/test_screenshots.py`` checks that
they can be taken).

    python scripts/screenshots.py                # build the site into a scratch folder, build a
                                                 # report, write every screenshot
    python scripts/screenshots.py --site site    # use a site `make docs` built
    python scripts/screenshots.py --only report  # only those named

The report is the one ``modscope report`` builds from the score, masks and knockout of the
two-digit network ``data/halves-plain.pt`` (small settings, under a minute). Each screenshot is
the top ``WIDTH`` × ``HEIGHT`` pixels of the page (1400 px wide: the width the docs' tables must
fit), reduced to a 256-colour palette to keep the repository small. Chromium comes from Debian
(``make browser``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "assets" / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1400, 1100
# name -> the page of the built site (the report is built separately)
PAGES = {
    "home": "index.html",
    "getting-started": "getting-started/index.html",
    "guide-scoring": "guide/scoring/index.html",
    "reproductions": "science/reproductions/index.html",
    "tutorial-scoring": "tutorials/01_score_and_baselines/index.html",
    "api-scoring": "api/scoring/index.html",
}
NAMES = (*PAGES, "report")


def browser() -> str:
    path = next((p for name in BROWSERS if (p := shutil.which(name))), None)
    if path is None:
        raise SystemExit("screenshots: no Chromium on PATH (make browser, or apt-get install chromium)")
    return path


def shoot(page: Path, out: Path, profile: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """Write the top ``width`` x ``height`` pixels of ``page`` (an HTML file) as a palette PNG."""
    from PIL import Image

    raw = out.with_suffix(".raw.png")
    args = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "--virtual-time-budget=8000", f"--screenshot={raw}",
            page.resolve().as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not raw.is_file():
        raise RuntimeError(f"chromium could not take {page}: {proc.stderr.strip()[-300:]}")
    with Image.open(raw) as img:
        img.convert("RGB").quantize(256).save(out, optimize=True)
    raw.unlink()
    return out


def build_site(dest: Path) -> Path:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    cmd = [str(mkdocs)] if mkdocs.exists() else [sys.executable, "-m", "mkdocs"]
    subprocess.run([*cmd, "build", "--strict", "--quiet", "-d", str(dest)], cwd=ROOT, env=env, check=True)
    return dest


def build_report(dest: Path) -> Path:
    """The report of data/halves-plain.pt: its score, masks and knockout (small settings)."""
    from modscope.lesions import knockout
    from modscope.masks import train_masks
    from modscope.report import html
    from modscope.scoring.engine import score
    from modscope.training.checkpoint import load_checkpoint, task_for_checkpoint

    path = ROOT / "data" / "halves-plain.pt"
    ckpt = load_checkpoint(path)
    model, task = ckpt.model(), task_for_checkpoint(ckpt)
    s = score(ckpt, n_clusters=4, n_shuffles=20, seed=0)
    data = html.collect([
        ("halves-plain", s.to_dict()),
        ("halves-plain", train_masks(model, task, ["left", "right"], steps=300, seed=0).to_dict()),
        ("halves-plain",
         knockout(model, task, s.partition.labels, n_random=50, pairs=True, seed=0).to_dict()),
    ])
    data.checkpoints["halves-plain"] = path
    return html.build_report(data, dest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=Path, help="a built site (default: build one into a scratch folder)")
    ap.add_argument("--only", help=f"comma-separated names among {', '.join(NAMES)}")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(NAMES)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        print(f"screenshots: unknown name(s) {', '.join(unknown)}; known: {', '.join(NAMES)}",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modscope-shots-") as scratch:
        tmp = Path(scratch)
        site = args.site
        if site is None and set(names) & set(PAGES):
            site = build_site(tmp / "site")
        for name in names:
            page = build_report(tmp / "report") if name == "report" else site / PAGES[name]
            out = shoot(page, args.out / f"{name}.png", tmp / "profile")
            shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
            print(f"{shown}: {out.stat().st_size // 1024} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
