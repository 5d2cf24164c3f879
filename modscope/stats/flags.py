"""Caveats a result carries: the one place that decides when a number should not be read alone.

Every check works on plain values (arrays, the numbers of a result's JSON), so the live results
(`ScoreResult.flags`, `MaskResult.flags`), the terminal tables and the HTML report (which reads
saved JSON) raise the same flags with the same words. A `Flag` is a short ``code`` and one
sentence saying what is wrong and what to do instead.

The rules, and why:

- **Sparse networks** (`SPARSE_FRACTION`): at least half of the weight entries the shuffles
  permute are exactly zero. A ``layer`` shuffle then moves most non-zero weights onto
  connections the network does not have, so it tests the sparsity pattern and the weights
  together, while ``layer_nonzero`` (pattern kept) tests only where the surviving weights sit.
  Below one half most shuffled weights land on existing connections and the two nulls ask
  nearly the same question. A sparse network is scored against both (`companion_null`) and
  flagged when their verdicts (`verdict`: more modular, less modular, or neither, at `ALPHA`)
  differ.
- **Degenerate partitions** (`partition_flags`): with k >= 3 clusters, one cluster holding more
  than half of the clustered units (`GIANT_SHARE`), or clusters of one or two units
  (`SLIVER_UNITS`) in a graph whose clusters would average at least `SLIVER_MIN_MEAN` units. A
  spectral n-cut is cheapest when it cuts off a few weakly connected units, so a low n-cut from
  such a partition says those units are loosely attached, not that the network splits into
  modules.
- **Masks that did not train** (`mask_flags`): every mask logit starts positive, so an
  untrained mask keeps 100 % of the weights; a mask still keeping at least `MASK_DENSE` of
  them has not left its initial density, and its IoU with the other masks is near 1 by
  construction.
- **Stacks read from a state dict** (`stack_reading_flag`): a state dict holds weights, not the
  forward pass, so identity shortcuts (``x + f(x)``) carry no tensor and a residual network
  read as a plain stack loses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import p_value

__all__ = [
    "ALPHA",
    "VERDICT_WORDS",
    "GIANT_SHARE",
    "MASK_DENSE",
    "NULL_TESTS",
    "SLIVER_MIN_MEAN",
    "SLIVER_UNITS",
    "SPARSE_FRACTION",
    "Flag",
    "companion_null",
    "is_sparse",
    "mask_flags",
    "names_text",
    "null_disagreement",
    "null_tests",
    "partition_flags",
    "stack_reading_flag",
    "verdict",
    "z_text",
    "zero_fraction",
]

SPARSE_FRACTION = 0.5  # zero entries from which `layer` shuffles move most weights off the pattern
ALPHA = 0.05  # the one-sided level at which a null comparison counts as a conclusion
GIANT_SHARE = 0.5  # a cluster holding more than this share of the units (k >= 3)
SLIVER_UNITS = 2  # clusters of at most this many units
SLIVER_MIN_MEAN = 5.0  # ... flagged only where clusters would average at least this many units
MASK_DENSE = 0.95  # a mask keeping at least this share of its weights has not left its start (100 %)

# What each weight null asks (spec §3), in one sentence each.
NULL_TESTS: dict[str, str] = {
    "layer": "permutes every entry of each weight matrix, zeros included: is the network, its "
    "sparsity pattern and its weights together, more modular than the same weights wired at random?",
    "layer_nonzero": "keeps the sparsity pattern and permutes only the non-zero weights: given which "
    "connections exist, are the weights placed more modularly than at random?",
    "layer_nonzero_distribution": "keeps the sparsity pattern and redraws the non-zero weights from "
    "their distribution: given which connections exist, are the weights placed modularly?",
    "layer_all_distribution": "permutes every entry, zeros included, then redraws the non-zero "
    "weights from their distribution: is the network more modular than random wiring?",
    "layer_degree": "keeps every unit's number of connections and rewires their partners at random: "
    "is the wiring modular beyond each unit's degree?",
}
# Nulls that keep (True) or scatter (False) the sparsity pattern.
_KEEPS_PATTERN = {"layer": False, "layer_all_distribution": False, "layer_nonzero": True,
                  "layer_nonzero_distribution": True, "layer_degree": True}


@dataclass(frozen=True)
class Flag:
    """A caveat: ``code`` (``sparse_nulls_disagree``, ``degenerate_partition``,
    ``masks_not_converged``, ``stack_without_shortcuts``, ``null_fell_apart``, ``z_capped``,
    ``z_undefined``) and one sentence, ``message``."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    def __str__(self) -> str:
        return self.message


# -- sparse networks and their nulls ------------------------------------------------------------
def zero_fraction(weights: Iterable[np.ndarray]) -> float:
    """The share of exactly-zero entries over all ``weights`` (the entries a shuffle permutes)."""
    ws = [np.asarray(w) for w in weights]
    total = sum(w.size for w in ws)
    return (total - sum(np.count_nonzero(w) for w in ws)) / total if total else 0.0


def is_sparse(fraction: float) -> bool:
    """Whether a network with this `zero_fraction` is sparse (``>= SPARSE_FRACTION``)."""
    return fraction >= SPARSE_FRACTION


def companion_null(name: str | None) -> str | None:
    """The null a sparse network is also scored against: ``layer_nonzero`` beside a null that
    scatters zeros (``layer``, ``layer_all_distribution``), ``layer`` beside one that keeps the
    pattern (``layer_nonzero``, ``layer_degree``, ...); None for other nulls."""
    keeps = _KEEPS_PATTERN.get(name or "")
    if keeps is None:
        return None
    return "layer" if keeps else "layer_nonzero"


def null_tests(name: str) -> str:
    """What the null ``name`` tests, in one sentence (its name when modscope has none)."""
    return NULL_TESTS.get(name, f"the {name} null")


def verdict(observed: float, samples: Sequence[float], higher_is_modular: bool = False,
            alpha: float = ALPHA) -> str:
    """``"more"`` (more modular than the null: one-sided p < ``alpha``), ``"less"`` (less
    modular: the opposite one-sided p < ``alpha``) or ``"neither"``."""
    s = np.asarray(samples, dtype=np.float64)
    if p_value(observed, s, larger_is_extreme=higher_is_modular) < alpha:
        return "more"
    if p_value(observed, s, larger_is_extreme=not higher_is_modular) < alpha:
        return "less"
    return "neither"


# A `verdict` in words, as the flags, the tables and the report's sentences say it.
VERDICT_WORDS = {"more": "more modular than", "less": "less modular than", "neither": "not more modular than"}


def z_text(z: float | None, spec: str = "+.2f") -> str:
    """A z-score as the flags, tables and logs print it: ``n/a`` when undefined."""
    return "n/a" if z is None else format(z, spec)


def null_disagreement(
    observed: float,
    fraction: float | None,
    nulls: Mapping[str, Mapping[str, Any]],
    higher_is_modular: bool = False,
) -> Flag | None:
    """A flag when a sparse network's verdicts against two nulls differ, saying what each null
    tests and how to read both; None when they agree.

    ``nulls``: two shuffle blocks of a result's JSON by null name (``ncuts`` or ``values``,
    ``z``, ``p_value``), the user's null first.
    """
    (a, sa), (b, sb) = list(nulls.items())[:2]
    va, vb = (verdict(observed, s.get("ncuts", s.get("values")), higher_is_modular) for s in (sa, sb))
    if va == vb:
        return None
    said = "; ".join(
        f"{VERDICT_WORDS[v]} `{n}` shuffles (z {z_text(s.get('z'))}, p {s['p_value']:.3g})"
        for n, s, v in ((a, sa, va), (b, sb, vb))
    )
    share = "" if fraction is None else f" ({100 * fraction:.0f} % zero weights)"
    kind = "sparse network" if fraction is None or is_sparse(fraction) else "network"
    scatter, keep = (a, b) if not _KEEPS_PATTERN.get(a, False) else (b, a)
    v_scatter, v_keep = (va, vb) if scatter == a else (vb, va)
    if v_scatter == "more":
        reading = (f"its modularity lies in which connections exist (its sparsity pattern), not in "
                   f"where its surviving weights sit; cite it as modular against `{scatter}` only")
    elif v_keep == "more":
        reading = (f"given which connections exist, its weights are placed modularly (`{keep}`); "
                   f"`{scatter}` shuffles scatter its zeros and strong weights into random sparse "
                   "graphs that are themselves easy to cut, so they are no fair yardstick for its n-cut")
    else:
        reading = (f"against `{keep}` it is {VERDICT_WORDS[v_keep].replace(' than', '')} while against "
                   f"`{scatter}` it is {VERDICT_WORDS[v_scatter].replace(' than', '')}: the two nulls ask "
                   "different questions")
    return Flag(
        "sparse_nulls_disagree",
        f"the nulls disagree on this {kind}{share}: it is "
        f"{said}. `{scatter}` scatters the zeros, `{keep}` keeps the sparsity pattern; read "
        f"together: {reading}",
    )


# -- partitions -----------------------------------------------------------------------------------
def partition_flags(labels: Sequence[int] | np.ndarray, n_clusters: int | None = None) -> list[Flag]:
    """A ``degenerate_partition`` flag when, with k >= 3 clusters, one holds more than
    `GIANT_SHARE` of the clustered units, or clusters of at most `SLIVER_UNITS` units (or
    empty ones) appear where clusters would average at least `SLIVER_MIN_MEAN` units.

    ``labels``: one cluster per unit, ``-1`` for units left out (isolated); ``n_clusters``: k
    (default: the largest label + 1).
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    labels = labels[labels >= 0]
    # no unit clustered: k is 0 by default (no flag), and a given k flags nothing either (n / k = 0)
    k = int(n_clusters if n_clusters is not None else labels.max(initial=-1) + 1)
    if k < 2:
        return []
    sizes = np.bincount(labels, minlength=k)
    n = int(labels.size)
    parts = []
    big = int(sizes.argmax())
    if k >= 3 and sizes[big] > GIANT_SHARE * n:
        parts.append(f"cluster {big} holds {sizes[big]} of the {n} units ({100 * sizes[big] / n:.0f} %)")
    small = np.flatnonzero(sizes <= SLIVER_UNITS)
    if small.size and n / k >= SLIVER_MIN_MEAN:
        slivers = [int(c) for c in small if sizes[c] > 0]
        empty = [int(c) for c in small if sizes[c] == 0]
        if slivers:
            units = " or ".join(sorted({str(sizes[c]) for c in slivers}))
            units += " unit" if units == "1" else " units"
            parts.append(f"{_clusters(slivers)} {'holds' if len(slivers) == 1 else 'hold'} only {units}"
                         + ("" if len(slivers) == 1 else " each"))
        if empty:
            parts.append(f"{_clusters(empty)} {'is' if len(empty) == 1 else 'are'} empty")
    if not parts:
        return []
    return [Flag(
        "degenerate_partition",
        f"degenerate partition (k = {k}): {'; '.join(parts)}. A spectral n-cut is "
        "lowest when it cuts off a few weakly connected units, so a low n-cut and a strong z may "
        "come from those rather than from modules: read z with the cluster sizes, and try fewer "
        "clusters (--clusters)",
    )]


def _clusters(ids: Sequence[int]) -> str:
    """``cluster 3`` / ``clusters 3, 5 and 9``."""
    return ("cluster " if len(ids) == 1 else "clusters ") + names_text([str(c) for c in ids])


def names_text(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c`` (the flags' and the report's sentences)."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# -- masks ----------------------------------------------------------------------------------------
def mask_flags(kept_fraction: Mapping[str, float | None], steps: int | None = None,
               functions: Sequence[str] | None = None) -> list[Flag]:
    """A ``masks_not_converged`` flag naming every mask that keeps at least `MASK_DENSE` of its
    weights (an untrained mask keeps them all); ``steps``: the steps it trained, when known;
    ``functions``: the masks' order (default: ``kept_fraction``'s)."""
    order = [f for f in (functions or kept_fraction) if f in kept_fraction]
    dense = {f: kept_fraction[f] for f in order
             if kept_fraction[f] is not None and kept_fraction[f] >= MASK_DENSE}
    if not dense:
        return []
    which = ", ".join(f"{f} {100 * v:.1f} %" for f, v in dense.items())
    ran = f" after {steps} steps" if steps else ""
    return [Flag(
        "masks_not_converged",
        f"masks not converged{ran}: {len(dense)} of {len(order)} masks still keep at least "
        f"{100 * MASK_DENSE:.0f} % of their weights ({which}), near the 100 % every mask starts "
        "from, so they and their overlaps (IoU near 1) say nothing yet; raise --steps",
    )]


# -- how a network was read -----------------------------------------------------------------------
_STACK_READINGS = ("a plain stack", "a plain conv stack", "named layers, in the order given")


def stack_reading_flag(reading: str | None) -> Flag | None:
    """A ``stack_without_shortcuts`` flag when a network was read as a stack of layers from its
    weights alone (a state dict, a weights-only file, layers named in order): such a reading
    cannot see identity shortcuts."""
    if not reading or not any(s in reading for s in _STACK_READINGS):
        return None
    return Flag(
        "stack_without_shortcuts",
        "read from its weights alone as a plain stack: a state dict cannot show identity shortcuts "
        "(x + f(x) has no weight), so a residual network read this way loses them and scores "
        "differently; if the network has any, trace its code: --model package.module:factory "
        "(with --input-shape), or load_graph(module, example_input=...)",
    )
