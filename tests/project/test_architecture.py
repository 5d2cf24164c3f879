"""The shape of the package: what import-linter (``make lint``) cannot see.

- every module says what it exports (``__all__``), so "public" is written down;
- no module imports a private name (``_x``) from another package;
- the package root imports nothing but its version and its error type at import time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

PACKAGE = ROOT / "modscope"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    return _module_name(path.parent / "__init__.py")


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = _module_name(path) if path.name == "__init__.py" else _package_of(path)
    parts = base.split(".")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_declares_all(path):
    tree = ast.parse(path.read_text())
    names = {t.id for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(t, ast.Name)}
    if path.name == "_version.py":
        return
    assert "__all__" in names, f"{path.relative_to(PACKAGE)} has no __all__"


def test_no_private_names_cross_packages():
    crossings = []
    for path in MODULES:
        package = _package_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _resolve(path, node)
            is_package = (PACKAGE.parent / source.replace(".", "/")).is_dir()
            source_package = source if is_package else source.rpartition(".")[0]
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and source_package != package:
                    crossings.append(f"{_module_name(path)} imports {alias.name} from {source}")
    assert crossings == []


def test_import_modscope_loads_no_subpackage():
    code = "import sys, modscope; print(sorted(m for m in sys.modules if m.startswith('modscope')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['modscope', 'modscope._version', 'modscope.errors']"


HEAVY = ("torch", "sklearn", "networkx", "matplotlib", "pandas")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(eval(out.strip().splitlines()[-1]))


def test_import_and_help_load_no_heavy_library():
    assert _loaded_after("import modscope") == set()
    for args in (["--help"], ["score", "--help"], ["train", "--help"], ["masks", "--help"]):
        code = f"from modscope.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"
        assert _loaded_after(code) == set(), args


def test_scoring_safetensors_and_npz_needs_no_torch(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    ws = {"a.weight": rng.normal(size=(6, 8)).astype(np.float32), "b.weight": rng.normal(size=(3, 6))}
    save_file(ws, str(tmp_path / "n.safetensors"))
    np.savez(tmp_path / "n.npz", **ws)
    for name in ("n.safetensors", "n.npz"):
        code = (f"from modscope.cli import main\nassert main(['score', {str(tmp_path / name)!r}, "
                "'--clusters', '2', '--shuffles', '2', '--no-progress']) == 0")
        assert "torch" not in _loaded_after(code), name


def test_cli_shuffle_names_are_the_registry():
    from modscope.cli.options import SHUFFLE_NAMES
    from modscope.nulls import SHUFFLE_METHODS

    assert set(SHUFFLE_NAMES) == set(SHUFFLE_METHODS)
