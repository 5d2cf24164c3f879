"""Plain-text tables for the terminal."""

from __future__ import annotations

from .score import ScoreResult


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "n/a" if x is None else format(x, spec)


def score_table(result: ScoreResult, source: str = "") -> str:
    """The `modscope score` summary: n-cut, baseline, z, p and cluster sizes per layer."""
    d = result.to_dict()
    widths = "-".join(map(str, d["layer_widths"]))
    removed = int((result.partition.labels < 0).sum())
    lines = [
        f"modscope {d['version']}  {source}".rstrip(),
        f"network   {widths}  ({d['n_nodes']} nodes, {d['n_edges']} edges, {removed} isolated nodes removed)",
        f"clusters  k = {d['n_clusters']}, seed {d['seed']}",
        f"n-cut     {d['ncut']:.4f}   (range 0..{d['n_clusters']}, lower = more modular)",
    ]
    s = d["shuffle"]
    if s is not None:
        lines += [
            f"shuffles  {s['n']} x {s['method']}: mean {s['mean']:.4f} +- {s['std']:.4f} (std, ddof 0)",
            f"z         {_fmt(s['z'], '.2f')}   (floor {_fmt(result.z_floor, '.2f')} = -mean/std)",
            f"ratio     {d['ncut'] / s['mean']:.4g}   (n-cut / shuffle mean)"
            if s["mean"] > 0
            else "ratio     n/a   (every shuffle has n-cut 0)",
            f"p         {s['p_value']:.4g}   (one-sided, floor 1/{s['n'] + 1} = {1 / (s['n'] + 1):.4g})",
        ]
    sizes = result.cluster_sizes
    k = sizes.shape[1]
    col = max(4, len(str(sizes.max())) + 1)
    header = "layer  width |" + "".join(f"{c:>{col}}" for c in range(k))
    lines += ["", "cluster sizes per layer", header, "-" * len(header)]
    for l, row in enumerate(sizes):
        lines.append(f"{l:>5}  {d['layer_widths'][l]:>5} |" + "".join(f"{v:>{col}}" for v in row))
    return "\n".join(lines)
