"""The README's `modscope score` example: the CLI run on a checkpoint the repository ships, its
stdout kept verbatim in a receipt (``scripts/render_docs.py`` renders it into the docs).

The network is ``data/digits-pruned.pt`` (a 64-64-64-10 digits MLP pruned to 90 %, made by
``data/make_data.sh``), scored at k = 4 against 50 `layer` shuffles with seed 0: a few seconds on
one core. The CLI runs as a subprocess from the repository root, exactly as a user types it::

    .venv/bin/python experiments/score_example.py --out experiments/score_example.json
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from modscope.runtime.receipts import write_receipt

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = "data/digits-pruned.pt"


def modscope_argv() -> list[str]:
    """The console script beside this interpreter, or ``python -m modscope``."""
    script = Path(sys.executable).parent / "modscope"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modscope"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=CHECKPOINT, help="relative to the repository root")
    ap.add_argument("--clusters", type=int, default=4)
    ap.add_argument("--shuffles", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="experiments/score_example.json")
    args = ap.parse_args(argv)
    shown = [
        "score",
        args.checkpoint,
        "--clusters",
        str(args.clusters),
        "--shuffles",
        str(args.shuffles),
        "--seed",
        str(args.seed),
        "--no-progress",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([*modscope_argv(), *shown], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"modscope score failed ({proc.returncode}):\n{proc.stderr}")
    line = "modscope " + " ".join(shlex.quote(a) for a in shown)
    results = {
        "command_line": line,
        "argv": ["modscope", *shown],
        "returncode": proc.returncode,
        "stdout": proc.stdout,
    }
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings["OMP_NUM_THREADS"] = "1"
    path = write_receipt(ROOT / args.out, results, settings=settings)
    print(proc.stdout, end="")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
