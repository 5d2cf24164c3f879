"""``modscope sweep``: many checkpoints x settings into one resumable table."""

from __future__ import annotations

from .options import check_outputs, executor, executor_flags, progress_flag

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="score many checkpoints x settings into one resumable table",
        description="Score every checkpoint of a config (YAML, JSON or TOML) under every combination "
        "of its settings (clusters, shuffle_method, shuffles, seed, restarts, select, assign_labels) "
        "into one CSV / Parquet table, one row per checkpoint x setting. Finished rows are kept as "
        "they complete; a rerun computes only the missing ones.",
    )
    p.add_argument("config", help="sweep config (.yaml, .json or .toml)")
    p.add_argument("--out", metavar="PATH", help=".csv or .parquet table to write (default: the config's)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the rows; -1 = all cores")
    executor_flags(p)
    progress_flag(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..report.text import format_sweep
    from ..workflows.sweep import run_sweep

    check_outputs({"--out": args.out}, no_stdout=("--out",))
    with executor(args, device=False) as pool:  # --device: each row's own, not an executor of rows
        jobs = pool if pool is not None else args.jobs
        result = run_sweep(args.config, out=args.out, jobs=jobs, progress=not args.no_progress,
                           device=args.device)
    print(format_sweep(result), end="")
    return 0
