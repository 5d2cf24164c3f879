"""What a set of results found, in sentences generated from their numbers: the report's opening.

Each function takes saved result dicts (the JSON of ``score``, ``knockout`` and ``masks``, or the
demo's ``results.json`` sections) and returns plain-text sentences; `modscope.report.html`
escapes and shows them. The caveats come from `modscope.stats.flags`, the same checks the
terminal tables end with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..stats import flags
from ..stats.flags import names_text, z_text

__all__ = [
    "IOU_FEW",
    "IOU_MOST",
    "knockout_sentences",
    "mask_sentences",
    "null_blocks",
    "score_flags",
    "score_sentences",
]

IOU_FEW = 0.2  # masks with IoU below this share few weights
IOU_MOST = 0.5  # ... at or above this, most of them
_SHARE_WORDS = ((IOU_MOST, "share most of their weights"), (IOU_FEW, "share some weights"))  # else few


def null_blocks(d: Mapping[str, Any], others: Mapping[str, Mapping[str, Any]] | None = None
                ) -> dict[str, dict]:
    """Every null a score was compared with: its own ``shuffle``, a sparse network's second null
    (``sparse.other``) and scores of the same clustering against other nulls (the demo's
    ``nulls``), by null name, the score's own first."""
    blocks = [(b["method"], b) for b in (d.get("shuffle"), (d.get("sparse") or {}).get("other")) if b]
    blocks += [(method, o["shuffle"]) for method, o in (others or {}).items() if o.get("shuffle")]
    out: dict[str, dict] = {}
    for method, block in blocks:  # the first block of each null name
        out.setdefault(method, dict(block))
    return out


def _verdict(d: Mapping[str, Any], block: Mapping[str, Any]) -> str:
    samples = block.get("ncuts", block.get("values"))
    observed = d["ncut"] if "ncut" in d else d.get("value")
    if not samples or observed is None:
        return "neither"
    return flags.verdict(observed, samples, bool(d.get("higher_is_modular", False)))


def score_flags(d: Mapping[str, Any], others: Mapping[str, Mapping[str, Any]] | None = None,
                zero_fraction: float | None = None) -> list[flags.Flag]:
    """The caveats of a saved score (`modscope.stats.flags`): nulls that disagree on a sparse
    network, a degenerate partition, a stack read from weights alone. ``zero_fraction``: the
    network's share of zero weights when the result does not say (a demo row's ``sparsity``)."""
    out: list[flags.Flag | None] = []  # a check that finds nothing gives None, left out at the end
    blocks = null_blocks(d, others)
    sparse = d.get("sparse") or {}
    if sparse.get("warning"):
        out.append(flags.Flag("sparse_nulls_disagree", sparse["warning"]))
    elif len(blocks) > 1 and "ncut" in d:
        # a null that scatters the zeros against one that keeps them (layer_nonzero first)
        kinds = {m: flags.companion_null(m) for m in blocks}
        scatter = next((m for m, c in kinds.items() if c == "layer_nonzero"), None)
        keeps = [m for m, c in kinds.items() if c == "layer"]
        keep = "layer_nonzero" if "layer_nonzero" in keeps else next(iter(keeps), None)
        if scatter and keep:
            out.append(flags.null_disagreement(d["ncut"], sparse.get("zero_fraction", zero_fraction),
                                               {scatter: blocks[scatter], keep: blocks[keep]}))
    if "labels" in d and "n_clusters" in d:
        out += flags.partition_flags(d["labels"], d["n_clusters"])
    out.append(flags.stack_reading_flag(d.get("reading")))
    return [f for f in out if f is not None]


def score_sentences(scores: Mapping[str, Mapping[str, Any]],
                    nulls: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
                    sparsity: Mapping[str, float] | None = None) -> list[str]:
    """Which models are more modular than which null (one sentence per null), then each
    model's caveats. ``scores``: score dicts by model; ``nulls``: the demo's scores of the same
    clustering against other nulls; ``sparsity``: each model's share of zero weights."""
    nulls = nulls or {}
    by_null: dict[str, dict[str, list[str]]] = {}
    for name, d in scores.items():
        for method, block in null_blocks(d, nulls.get(name)).items():
            v = _verdict(d, block)
            by_null.setdefault(method, {}).setdefault(v, []).append(f"{name} (z {z_text(block.get('z'))})")
    out = []
    for method, groups in by_null.items():
        parts = [f"{names_text(groups[v])} {'is' if len(groups[v]) == 1 else 'are'} "
                 f"{flags.VERDICT_WORDS[v]} them" for v in ("more", "neither", "less") if v in groups]
        out.append(f"Against `{method}` shuffles, " + "; ".join(parts) + f" (`{method}` "
                   f"{flags.null_tests(method)})")
    out += [f"{name}: {f.message}." for name, d in scores.items()
            for f in score_flags(d, nulls.get(name), (sparsity or {}).get(name))]
    return out


def knockout_sentences(knockouts: Mapping[str, Mapping[str, Any]], shown: int = 4) -> list[str]:
    """Which clusters matter: per model, the sub-modules whose lesion hurts more than random
    lesions of their size (category ``important``), the ``shown`` largest by damage."""
    out = []
    for name, d in knockouts.items():
        subs = d.get("submodules") or []
        if not subs:
            continue
        groups = d.get("groups")
        metric = d.get("metric", "metric")

        def where(s: Mapping[str, Any], groups=groups, metric=metric) -> str:
            layer = groups[s["layer"]] if groups and s["layer"] < len(groups) else f"layer {s['layer']}"
            return f"{layer} cluster {s['cluster']} ({s['size']} units, {metric} {s['delta']:+.3g})"

        important = sorted((s for s in subs if s["category"] == "important"), key=lambda s: s["delta"])
        small = sum(s["category"] == "sig-but-small" for s in subs)
        prunable = sum(s["category"] == "prunable" for s in subs)
        if important:
            top = ", ".join(where(s) for s in important[:shown])
            more = f" and {len(important) - shown} more" if len(important) > shown else ""
            verb = "matters" if len(important) == 1 else "matter"
            text = (f"In {name}, {len(important)} of {len(subs)} clusters {verb} more than random "
                    f"lesions of their size: {top}{more}")
        else:
            text = f"In {name}, no cluster's lesion hurts more than random lesions of its size"
        extra = [f"{n} {what}" for n, what in ((small, "significant but small"), (prunable, "prunable"))
                 if n]
        out.append(text + (f"; {', '.join(extra)}." if extra else "."))
    return out


def mask_sentences(masks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Which functions share weights: per model, each pair of function masks (the control mask
    left out) by IoU; then masks that have not converged."""
    out = []
    for name, d in masks.items():
        pairs = []
        for key, iou in (d.get("iou") or {}).items():
            a, _, b = key.partition("|")
            if iou is None or "control" in (a, b):
                continue
            how = next((words for bound, words in _SHARE_WORDS if iou >= bound), "share few weights")
            iomin = (d.get("iomin") or {}).get(key)
            pairs.append(f"{a} and {b} {how} (IoU {iou:.2f}" + ("" if iomin is None else
                                                                 f", IoMin {iomin:.2f}") + ")")
        if len(pairs) > 6:  # per-class masks: say the range, not 45 pairs
            ious = [v for k, v in (d.get("iou") or {}).items() if v is not None and "control" not in k]
            pairs = [f"its {len(ious)} pairs of masks have IoU {min(ious):.2f} to {max(ious):.2f}"]
        if pairs:
            out.append(f"In {name}, " + "; ".join(pairs) + ".")
        out += [f"{name}: {f.message}."
                for f in flags.mask_flags(d.get("kept_fraction") or {}, functions=d.get("functions"))]
    return out
