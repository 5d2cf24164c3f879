"""The size of ``modscope/`` against 0.3.0's, for issue 23's "at least 1,500 lines shorter for the same
features": raw lines and code lines (not blank, not comment-only, not a docstring) of every ``.py``
file, per package; and statements, which line breaking does not change. The code lines are also
counted with both trees in one formatter's layout (``code_one_layout``, where ruff is installed): the
target is in lines, and these two counts say how much of a change is only layout.

0.3.0 is read from git (commit ``--baseline``, 5c3684d: the code the 0.3.0 knockout baseline ran),
today's code from the working tree. "The same features" leaves out the files that hold only features
added after 0.3.0 (``NEW_FEATURES`` below, each with the issue that added it). Files that mix old
features with new ones are counted whole, so the comparison leans against today's code.

    .venv/bin/python benchmarks/code_lines.py

writes ``benchmarks/results/code_lines.json``. ``--quick`` counts today's tree only (no git needed).
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tokenize
from collections import Counter
from pathlib import Path

from _common import add_output_flags, write

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "5c3684d"
TARGET = 1500
# files that exist only for features added after 0.3.0, and the issue that added each
NEW_FEATURES = {
    "modscope/training/permutation.py": "27: BIMT on any architecture, groups permuted in every parameter",
    "modscope/training/bimt_graph.py": "27: BIMT's cost and swaps on the unit graph",
    "modscope/training/clusterability_graph.py": "27: the clusterability regulariser on the unit graph",
    "modscope/training/bimt_cnn.py": "27: the BIMT paper's CNN",
    "modscope/tasks/incontext.py": "27: the in-context linear regression task",
    "modscope/report/layout.py": "27: plot network of any network, the layout shared with the explorer",
    "modscope/graphs/files/onnx_library.py": "30: ONNX ops outside modscope's table through onnx2torch",
}


def _docstrings(tree: ast.Module) -> list[ast.Expr]:
    """The docstring statements of a module and of its classes and functions."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.append(first)
    return found


def statements(source: str) -> int:
    """Statements (``ast.stmt`` nodes, a compound one counted once) that are not docstrings: a count
    that no line breaking or joining changes."""
    tree = ast.parse(source)
    return sum(isinstance(n, ast.stmt) for n in ast.walk(tree)) - len(_docstrings(tree))


def code_lines(source: str) -> int:
    """Lines holding a token that is not a comment, and not part of a docstring."""
    docstrings: set[int] = set()
    for first in _docstrings(ast.parse(source)):
        docstrings.update(range(first.lineno, first.end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


def sources(revision: str | None) -> dict[str, str]:
    """``{path: text}`` of ``modscope/**.py`` at a git revision, or in the working tree (``None``)."""
    if revision is None:
        return {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / "modscope").rglob("*.py"))}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", revision, "modscope"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{revision}:{n}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout for n in names if n.endswith(".py")}


def count(files: dict[str, str], leave_out: set[str] = frozenset()) -> dict:
    """Totals and per-package ``{"raw": ..., "code": ...}`` of ``files`` less ``leave_out``."""
    kinds = {"raw": lambda text: text.count("\n"), "code": code_lines, "statements": statements}
    per = {kind: Counter() for kind in kinds}
    for name, text in files.items():
        if name in leave_out:
            continue
        package = name.split("/")[1] if name.count("/") > 1 else "(root)"
        for kind, measure in kinds.items():
            per[kind][package] += measure(text)
    return {kind: sum(per[kind].values()) for kind in kinds} | {
        "packages": {p: {kind: per[kind][p] for kind in kinds} for p in sorted(per["raw"])}}


def cloc_code(files: dict[str, str], leave_out: set[str] = frozenset()) -> int | None:
    """Code lines by ``cloc`` (Python docstrings count as comments there), or None without cloc: an
    independent count of the same thing."""
    import json
    import shutil
    import tempfile

    if shutil.which("cloc") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            if name not in leave_out:
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_text(text)
        out = subprocess.run(["cloc", "--json", "--quiet", "--include-lang=Python", tmp],
                             capture_output=True, text=True, check=True).stdout
    return int(json.loads(out)["Python"]["code"])


def formatted(files: dict[str, str]) -> dict[str, str] | None:
    """``files`` as one formatter writes them (ruff format, 110 columns, trailing commas not kept),
    or None without ruff: the code lines of both trees in one layout, so that joining or splitting
    lines counts for nothing."""
    import shutil
    import tempfile

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ruff.toml").write_text("line-length = 110\n[format]\nskip-magic-trailing-comma = true\n")
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        subprocess.run([ruff, "format", "-q", "--config", str(root / "ruff.toml"), str(root / "modscope")],
                       check=True)
        return {name: (root / name).read_text() for name in files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BASELINE, help="the 0.3.0 commit")
    ap.add_argument("--quick", action="store_true", help="today's tree only")
    add_output_flags(ap, "code_lines")
    args = ap.parse_args()
    today = sources(None)
    results = {"today": count(today), "new_feature_files": NEW_FEATURES}
    results["today_same_features"] = count(today, set(NEW_FEATURES))
    if not args.quick:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "modscope"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
        base_files = sources(args.baseline)
        base = count(base_files)
        same = results["today_same_features"]
        results.update(baseline=base, head=head + ("+changes" if dirty else ""), target_fewer=TARGET)
        results["fewer"] = {kind: base[kind] - same[kind] for kind in ("raw", "code", "statements")}
        results["meets_target"] = {kind: results["fewer"][kind] >= TARGET for kind in ("raw", "code")}
        base_fmt, today_fmt = formatted(base_files), formatted(today)
        if base_fmt is not None and today_fmt is not None:
            fmt = {"baseline": count(base_fmt)["code"],
                   "today_same_features": count(today_fmt, set(NEW_FEATURES))["code"]}
            results["code_one_layout"] = fmt | {"fewer": fmt["baseline"] - fmt["today_same_features"]}
            results["meets_target"]["code_one_layout"] = results["code_one_layout"]["fewer"] >= TARGET
        results["cloc"] = {"baseline": cloc_code(base_files),
                           "today_same_features": cloc_code(today, set(NEW_FEATURES))}
        print(f"0.3.0 ({args.baseline}): {base['raw']} lines, {base['code']} code lines; today, same "
              f"features: {same['raw']} / {same['code']}; fewer: {results['fewer']} (target {TARGET})")
    write(args, results)


if __name__ == "__main__":
    main()
