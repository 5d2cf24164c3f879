"""The worked example's full run (issue 17): a residual CNN on Fashion-MNIST and a small transformer
on addmul, each trained by modscope, scored, lesioned cluster by cluster and masked function by
function (`modscope.workflows.worked_example`, full settings: `ExampleSettings.for_mode(which,
quick=False)`). Writes one receipt with both::

    OMP_NUM_THREADS=2 python experiments/worked_example.py --out experiments/worked_example.json

Fashion-MNIST's files come from the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``); ``--data`` points elsewhere.
"""

from __future__ import annotations

import argparse
import sys
import time

from modscope.runtime.receipts import write_receipt
from modscope.workflows.worked_example import ExampleSettings, worked_example


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", default="cnn,transformer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="Fashion-MNIST's folder (default: the Debian package's)")
    ap.add_argument("--quick", action="store_true", help="the demo's budgets: a check that it runs")
    ap.add_argument("--out", default="experiments/worked_example.json")
    args = ap.parse_args()
    results = {}
    for which in [w.strip() for w in args.examples.split(",") if w.strip()]:
        t = time.perf_counter()
        results[which] = worked_example(which, quick=args.quick, seed=args.seed, data_dir=args.data)
        results[which]["seconds"] = time.perf_counter() - t
        r = results[which]
        training, scored = r["training"], r["score"]
        print(
            f"{which}: {training['metric_name']} {training['metric']:.4f}, n-cut {scored['ncut']:.4f}, "
            f"z {scored['shuffle']['z']}, knockout {r['knockout']['categories']}",
            flush=True,
        )
    settings = {w: ExampleSettings.for_mode(w, args.quick).__dict__ for w in results}
    write_receipt(
        args.out,
        results,
        settings={"seed": args.seed, "quick": args.quick, "examples": settings},
        note="run by hand on the project's 2-core CPU machine",
    )
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
