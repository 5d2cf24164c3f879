"""``modscope blocks``: every MLP block of a transformer against its own shuffles."""

from __future__ import annotations

from ..errors import ModscopeError
from .options import (
    SPECTRAL,
    check_outputs,
    clustering_flags,
    device_flag,
    measure_flags,
    null_options,
    progress_flag,
    write_result,
)

__all__ = ["add", "run"]


def add(sub) -> None:

    p = sub.add_parser(
        "blocks",
        help="score every transformer MLP block (3-layer graph d_model-d_ff-d_model) against shuffles",
        description="Find the MLP blocks of a transformer state dict (every known family: BERT, GPT-2, "
        "GPT-NeoX, OPT, LLaMA, T5, ViT; and GPT-2 / fc1-fc2 / fc_in-fc_out / dense_h_to_4h key pairs), "
        "score each block's 3-layer graph against its own shuffles and print one row per block; "
        "--whole adds the whole network's merged-stream graph.",
    )
    p.add_argument("checkpoint", help=".safetensors, or a .bin/.pt state dict (read with weights_only=True)")
    clustering_flags(p, "shuffles per block (default 50)", "seed of every random choice, the same per block")
    measure_flags(p)
    p.add_argument("--whole", action="store_true",
                   help="also score the whole network's unit graph (a known family's merged residual stream, "
                   "attention value units and MLP units) with the same measure and null")
    p.add_argument("--json", metavar="PATH", help="write every block's result as JSON")
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="stream: read one block at a time from the (memory-mapped) file, score it and drop it; "
        "keep each finished block and shuffle here, so a rerun computes only what is missing "
        "(for networks too large to hold, e.g. 7B parameters)",
    )
    device_flag(p, SPECTRAL, default=None)
    progress_flag(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..report.text import format_blocks
    from ..runtime.executors import check_jobs
    from ..scoring.blocks import score_blocks, stream_block_scores

    check_jobs(args.jobs, "--jobs")
    check_outputs({"--json": args.json}, {"--cache": args.cache})
    if args.device:
        from ..runtime.modules import resolve_device

        if args.jobs != 1:
            raise ModscopeError("--jobs and --device exclude each other")
        resolve_device(args.device)  # fail now, before any work, when CUDA is absent
    k = None if args.method in ("leiden", "louvain") else args.clusters
    common = dict(measure=args.method, n_clusters=k, jobs=args.jobs, device=args.device, **null_options(args))
    if args.cache:  # one block at a time from the memory-mapped file, resumable
        if args.whole:
            raise ModscopeError("--whole holds the whole network; it does not go with --cache (streamed)")
        scores = stream_block_scores(args.checkpoint, cache=args.cache, **common)
    else:
        scores = score_blocks(args.checkpoint, whole=args.whole, **common)
    write_result(args, scores.to_dict, format_blocks(scores, source=args.checkpoint) + "\n")
    return 0
