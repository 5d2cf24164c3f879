"""``modscope demo``: every experiment on built-in tasks, as one report."""

from __future__ import annotations

from .options import check_outputs, device_flag, positive_int, progress_flag

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train plain / pruned / BIMT models on embedded tasks, run every experiment, report",
        description="Train plain, dropout + pruned and BIMT models on tasks that need no download, "
        "score each against shuffled copies, learn masks for the halves functions, run knockouts "
        "and write index.html plus results.json / results.csv (every stage cached).",
    )
    p.add_argument("--quick", action="store_true", help="fewer training steps and shuffles (minutes)")
    p.add_argument("--out", default="modscope-report", help="output folder (default ./modscope-report)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of every model's training, shuffles, masks and lesions (default 0); the same seed "
        "gives the same report and reuses its cache",
    )
    p.add_argument("--shuffles", type=positive_int(1), help="shuffles per model (20 quick, 50 full)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the shuffles; -1 = all cores")
    p.add_argument("--no-fashion", action="store_true",
                   help="leave Fashion-MNIST (its model and the CNN worked example) out even if installed")
    p.add_argument("--threads", type=positive_int(1), default=1,
                   help="torch threads (default 1: the demo's networks are small)")
    device_flag(p, "training, masks and knockouts run")
    progress_flag(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..runtime.executors import check_jobs
    from ..workflows.demo import run_demo

    check_jobs(args.jobs, "--jobs")
    check_outputs(folders={"--out": args.out})
    result = run_demo(args.out, quick=args.quick, seed=args.seed, shuffles=args.shuffles, jobs=args.jobs,
                      progress=not args.no_progress, fashion=False if args.no_fashion else None,
                      threads=args.threads, device=args.device)
    print(f"wrote {result.report} (numbers in results.json / results.csv beside it)")
    return 0
