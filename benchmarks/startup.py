"""Start-up time: ``modscope --help``, ``import modscope`` and ``import modscope.cli``, each in a
fresh process, against the bare interpreter (``python -c pass``) as the floor every command pays.

Each command runs ``--repeats`` times in fresh subprocesses, the commands interleaved round-robin
so that a change of machine load hits them all alike; the wall time of each process (spawn to
exit) is recorded, and the median reported. One extra probe process per command lists which heavy
libraries (torch, sklearn, networkx, matplotlib, pandas, numpy, scipy) it leaves loaded. Targets
(the project brief): ``modscope --help`` <= 0.3 s, ``import modscope`` <= 0.5 s.

Writes ``benchmarks/results/startup.json``:

    .venv/bin/python benchmarks/startup.py --repeats 15

Quick check: ``.venv/bin/python benchmarks/startup.py --repeats 3 --out /tmp/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import add_output_flags, timing, write

HEAVY = ("torch", "sklearn", "networkx", "matplotlib", "pandas", "numpy", "scipy")
TARGETS = {"modscope --help": 0.3, "python -m modscope --help": 0.3, "import modscope": 0.5}

# What each probe prints last: the heavy modules the process has loaded by the time it is done.
_REPORT = f"import json, sys; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"


def commands() -> dict[str, list[str]]:
    """label -> argv, as a user runs them (the console script when it is installed)."""
    py = sys.executable
    cmds = {
        "python -c pass": [py, "-c", "pass"],
        "python -m modscope --help": [py, "-m", "modscope", "--help"],
        "import modscope": [py, "-c", "import modscope"],
        "import modscope.cli": [py, "-c", "import modscope.cli"],
    }
    script = Path(py).parent / "modscope"
    if script.exists():
        cmds = {"modscope --help": [str(script), "--help"], **cmds}
    return cmds


def probe(label: str) -> list[str]:
    """The heavy modules loaded after ``label`` (in its own process: the timed ones stay clean)."""
    if label == "python -c pass":
        code = _REPORT
    elif label.endswith("--help"):  # the CLI's own parser, exactly as `modscope --help` runs it
        code = (
            "import sys\nfrom modscope.cli import main\ntry:\n    main(['--help'])\n"
            f"except SystemExit:\n    pass\n{_REPORT}"
        )
    else:
        code = f"{label}\n{_REPORT}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_once(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15, help="fresh processes per command (default 15)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per command first (file cache)")
    add_output_flags(ap, "startup")
    args = ap.parse_args()
    cmds = commands()
    print(f"python {sys.executable}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"{args.repeats} fresh processes per command")
    for _ in range(args.warmup):
        for argv in cmds.values():
            run_once(argv)
    runs: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(args.repeats):
        for label, argv in cmds.items():
            runs[label].append(run_once(argv))
    floor = timing(runs["python -c pass"])["median"]
    results = {}
    print(f"{'command':<28}{'median s':>10}{'min s':>8}{'- python':>10}{'target':>8}  heavy modules loaded")
    for label, argv in cmds.items():
        t = timing(runs[label])
        loaded = probe(label)
        target = TARGETS.get(label)
        results[label] = {
            "argv": argv,
            "seconds": t,
            "above_bare_python": t["median"] - floor,
            "heavy_modules_loaded": loaded,
            "target_seconds": target,
            "meets_target": None if target is None else t["median"] <= target,
        }
        shown = f"{target:.1f}" if target else "-"
        print(f"{label:<28}{t['median']:>10.3f}{t['min']:>8.3f}{t['median'] - floor:>10.3f}{shown:>8}  "
              f"{', '.join(loaded) or 'none'}")
    write(args, {"commands": results, "heavy_modules_checked": list(HEAVY)})


if __name__ == "__main__":
    main()
