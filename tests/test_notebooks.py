"""The notebooks in notebooks/ run top to bottom from a fresh clone (small settings), without error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# nbformat / nbclient / ipykernel come with the dev extra: skipped without them (failed when strict)
pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 120  # per cell


def test_the_notebooks_are_committed_without_outputs():
    assert [p.name for p in NOTEBOOKS] == [
        "01_score_and_baselines.ipynb", "02_masks.ipynb", "03_knockouts.ipynb", "04_bimt_vs_plain.ipynb",
        "05_your_own_network.ipynb", "06_worked_example.ipynb",
    ]
    import nbformat

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, path.name
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A kernel spec for this interpreter (the test venv), found first on JUPYTER_PATH: the
    notebooks run with the modscope under test, whatever other kernels the machine has."""
    spec = tmp_path / "kernels" / "modscope-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "modscope test", "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    return "modscope-test"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_error(path, kernel):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name=kernel,
                            resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, "every notebook shows at least one figure"
