"""The size of ``modscope/`` against 0.3.0's, for issue 23's "at least 1,500 lines shorter for the same
features": raw lines and code lines (not blank, not comment-only, not a docstring) of every ``.py``
file, per package; and statements, which line breaking does not change. The code lines are also
counted with both trees in one formatter's layout (``code_one_layout``, where ruff is installed): the
target is in lines, and these two counts say how much of a change is only layout.

0.3.0 is read from git (commit ``--baseline``, 5c3684d: the code the 0.3.0 knockout baseline ran),
today's code from the working tree. "The same features" leaves out the files that hold only features
added after 0.3.0 (``NEW_FEATURES`` below, each with the issue that added it) and, in files that mix
old features with new ones, the top-level definitions that serve only a new feature
(``NEW_FEATURE_PARTS``: each must exist today and be absent from the same file at 0.3.0). What a new
feature added inside an old function still counts, so the comparison leans against today's code.
The receipt also keeps the count with whole files only (``code_one_layout_files_only``).

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
    "modscope/graphs/files/onnx_library.py": "30: ONNX ops outside modscope's table through onnx2torch",
}


# top-level definitions (functions, classes, assigned names) of files that mix old and new features,
# which serve only a feature added after 0.3.0: the issue and feature, and the names. The rest of each
# file counts (report/layout.py also lays out the explorer, which 0.3.0 had)
NEW_FEATURE_PARTS = {
    "modscope/workflows/user_models.py": ("27: train --model, the user's module trained on their data",
                                          ("TrainModelResult", "train_strategy", "train_model")),
    "modscope/cli/train.py": ("27: train --model's flags and run",
                              ("_model_flags", "_TASK_ONLY", "_model_options", "_run_model")),
    "modscope/training/checkpoint.py": ("27: train --model writes the module's state dict",
                                        ("WEIGHT_SUFFIXES", "check_weights_path", "save_state_dict")),
    "modscope/training/architectures.py": ("27: the BIMT paper's CNN and in-context transformer",
                                           ("BIMTCNN", "InContextTransformer")),
    "modscope/report/plot.py": ("27: plot network of any unit graph (0.3.0 drew chains only)",
                                ("DEFAULT_MAX_EDGES", "_network_graph", "_lift_loops", "_points",
                                 "_kept_edges")),
    "modscope/report/layout.py": ("27: plot network's residual streams drawn once per block boundary",
                                  ("_streams", "_unrolled")),
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


def top_level(source: str) -> dict[str, tuple[int, int]]:
    """``{name: (first line, last line)}`` of a module's top-level functions, classes (decorators
    included) and assigned names."""
    spans = {}
    for node in ast.parse(source).body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            spans[node.name] = (first, node.end_lineno)
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets if isinstance(node, (ast.Assign, ast.AnnAssign)) else []:
            if isinstance(target, ast.Name):
                spans[target.id] = (first, node.end_lineno)
    return spans


def same_features(files: dict[str, str]) -> dict[str, str]:
    """``files`` less the new-feature files and, in mixed files, less the lines of the new-feature
    parts (a part that is not defined there is an error: the lists must stay true)."""
    out = {}
    for name, text in files.items():
        if name in NEW_FEATURES:
            continue
        _, names = NEW_FEATURE_PARTS.get(name, ("", ()))
        spans = top_level(text)
        missing = [n for n in names if n not in spans]
        if missing:
            raise SystemExit(f"{name}: no top-level {', '.join(missing)} (update NEW_FEATURE_PARTS)")
        drop = {line for n in names for line in range(spans[n][0], spans[n][1] + 1)}
        out[name] = "".join(line for i, line in enumerate(text.splitlines(keepends=True), 1) if i not in drop)
    return out


def part_lines(files: dict[str, str]) -> dict[str, int]:
    """Code lines of each new-feature part, ``{"file:name": lines}``."""
    out = {}
    for name, (_, names) in NEW_FEATURE_PARTS.items():
        spans = top_level(files[name])
        lines = files[name].splitlines(keepends=True)
        for n in names:
            first, last = spans[n]
            out[f"{name}:{n}"] = code_lines("".join(lines[first - 1:last]))
    return out


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
    results = {"today": count(today), "new_feature_files": NEW_FEATURES,
               "new_feature_parts": {f: {"issue": why, "names": list(names)}
                                     for f, (why, names) in NEW_FEATURE_PARTS.items()}}
    results["today_same_features"] = count(same_features(today))
    if not args.quick:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "modscope"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
        base_files = sources(args.baseline)
        for name, (_, names) in NEW_FEATURE_PARTS.items():  # new since 0.3.0, not renamed old code
            old = set(names) & set(top_level(base_files.get(name, "")))
            if old:
                raise SystemExit(f"{name}: {', '.join(sorted(old))} existed at {args.baseline}")
        base = count(base_files)
        same = results["today_same_features"]
        results.update(baseline=base, head=head + ("+changes" if dirty else ""), target_fewer=TARGET)
        results["fewer"] = {kind: base[kind] - same[kind] for kind in ("raw", "code", "statements")}
        results["meets_target"] = {kind: results["fewer"][kind] >= TARGET for kind in ("raw", "code")}
        base_fmt, today_fmt = formatted(base_files), formatted(today)
        if base_fmt is not None and today_fmt is not None:
            fmt = {"baseline": count(base_fmt)["code"],
                   "today_same_features": count(same_features(today_fmt))["code"]}
            results["code_one_layout"] = fmt | {"fewer": fmt["baseline"] - fmt["today_same_features"]}
            results["meets_target"]["code_one_layout"] = results["code_one_layout"]["fewer"] >= TARGET
            whole = count(today_fmt, set(NEW_FEATURES))["code"]  # mixed files whole
            results["code_one_layout_files_only"] = {"today_same_features": whole,
                                                     "fewer": fmt["baseline"] - whole}
            results["new_feature_part_lines_one_layout"] = part_lines(today_fmt)
        results["cloc"] = {"baseline": cloc_code(base_files),
                           "today_same_features": cloc_code(same_features(today))}
        print(f"0.3.0 ({args.baseline}): {base['raw']} lines, {base['code']} code lines; today, same "
              f"features: {same['raw']} / {same['code']}; fewer: {results['fewer']} (target {TARGET}); "
              f"one layout: {results.get('code_one_layout')}")
    write(args, results)


if __name__ == "__main__":
    main()
