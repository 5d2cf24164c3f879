"""Run the tutorial notebooks in place, so that the committed notebooks (and the docs, which show
them without executing: mkdocs-jupyter ``execute: false``) carry their outputs.

    python scripts/execute_notebooks.py                 # run every notebook in notebooks/, write it
    python scripts/execute_notebooks.py 02_masks        # only those named
    python scripts/execute_notebooks.py --check         # run nothing; exit 1 naming every notebook
                                                        # whose outputs are missing or stale

Each notebook runs top to bottom in a fresh kernel of this interpreter (one BLAS thread, the
repository on ``PYTHONPATH``), each cell under ``--timeout`` seconds and the whole notebook under
``--budget`` CPU seconds (reported, and an error when exceeded). The written notebook records the
SHA-256 of its cells' sources in ``metadata.modscope.sources_sha256``: ``--check`` (and
``tests/docs/test_notebooks.py``) compares it with the sources, so a notebook edited without being run
again is caught without running it. Volatile parts are not written: no execution timestamps, no
progress bars (stderr streams), and the kernel spec stays the generic ``python3``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def sources_sha256(nb: Any) -> str:
    """The hash of every cell's type and source, in order (outputs and metadata left out)."""
    cells = [[c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"]]
             for c in nb["cells"]]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def problems(nb: Any) -> list[str]:
    """Why a committed notebook's outputs are not current (empty when they are)."""
    out = []
    recorded = nb.get("metadata", {}).get("modscope", {}).get("sources_sha256")
    if recorded != sources_sha256(nb):
        out.append("its sources changed since it was run" if recorded else "it was never run by this script")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if [c.get("execution_count") for c in code] != list(range(1, len(code) + 1)):
        out.append("its code cells were not run top to bottom once")
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
        out.append("a cell raised an error")
    if not any("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])):
        out.append("it shows no figure")
    return out


def _kernel(folder: Path) -> str:
    spec = folder / "kernels" / "modscope-notebooks"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "modscope notebooks", "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                "PYTHONPATH": str(ROOT), "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }))
    os.environ["JUPYTER_PATH"] = str(folder)
    return "modscope-notebooks"


def _clean(nb: Any) -> None:
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":  # progress bars and warnings' stderr vary from run to run
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.get("language_info", {}).pop("version", None)


def execute(path: Path, kernel: str, timeout: int, budget: float) -> tuple[float, list[str]]:
    """Run ``path`` in place; returns (CPU seconds of the kernel and this process, problems)."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, record_timing=False,
                            resources={"metadata": {"path": str(ROOT)}})
    cpu = 0.0
    with client.setup_kernel():
        kernel_proc = psutil.Process(client.km.provisioner.process.pid)
        start = time.process_time()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
            times = kernel_proc.cpu_times()
            cpu = times.user + times.system + time.process_time() - start
            if cpu > budget:
                return cpu, [f"over its CPU budget ({cpu:.0f} s > {budget:.0f} s) at cell {index}"]
    _clean(nb)
    nb.metadata["modscope"] = {"sources_sha256": sources_sha256(nb)}
    nbformat.write(nb, path)
    return cpu, problems(json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="notebook names (default: all in notebooks/)")
    ap.add_argument("--check", action="store_true", help="run nothing; check the committed outputs")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    ap.add_argument("--budget", type=float, default=600, help="CPU seconds per notebook (default 600)")
    args = ap.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names or p.name in args.names]
        if not paths:
            print(f"execute_notebooks: no notebook named {', '.join(args.names)}", file=sys.stderr)
            return 2
    failed = 0
    if args.check:
        for path in paths:
            why = problems(json.loads(path.read_text()))
            if why:
                failed += 1
                print(f"{path.name}: {'; '.join(why)} (run python scripts/execute_notebooks.py {path.stem})")
        print(f"execute_notebooks: {len(paths) - failed} of {len(paths)} notebook(s) current")
        return 1 if failed else 0
    with tempfile.TemporaryDirectory() as folder:
        kernel = _kernel(Path(folder))
        for path in paths:
            cpu, why = execute(path, kernel, args.timeout, args.budget)
            failed += bool(why)
            print(f"{path.name}: {cpu:.0f} CPU s{': ' + '; '.join(why) if why else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
