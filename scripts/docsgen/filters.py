"""The number formats of the generated tables, registered as Jinja2 filters (``FILTERS``).

Every formatter shows a missing, non-numeric or non-finite value as an en dash, a true minus sign
for negatives, and nothing that depends on the machine (fixed decimals, sorted keys).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

MINUS = "\u2212"
DASH = "–"


def bad(x: Any) -> bool:
    """No number to show: missing, not a number, or not finite."""
    return x is None or isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)


def num(x: Any, d: int, sign: bool = False) -> str:
    """``x`` with ``d`` decimals, a true minus sign, ``+`` in front of positives when ``sign``."""
    if bad(x):
        return DASH
    s = f"{x:+.{d}f}" if sign else f"{x:.{d}f}"
    if float(s.lstrip("+-")) == 0:  # no "-0.0" or "+0.0"
        s = s.lstrip("+-")
    return s.replace("-", MINUS)


def z_(x: Any, d: int = 1) -> str:
    """A z-score: one decimal, signed; ``undefined`` when the null had no spread."""
    return "undefined" if x is None else num(x, d, sign=True)


def pct(x: Any, d: int = 1) -> str:
    """A fraction as a percentage."""
    return DASH if bad(x) else f"{num(100 * x, d)} %"


def pm(mean: Any, std: Any, d: int) -> str:
    """``mean ± std``."""
    return f"{num(mean, d)} ± {num(std, d)}"


def times(x: Any, d: int = 1) -> str:
    """A ratio, ``11.6×``."""
    return DASH if bad(x) else f"{num(x, d)}×"


def g(x: Any) -> str:
    """A published number as it was published (shortest form)."""
    return DASH if bad(x) else f"{x:g}".replace("-", MINUS)


def sci(x: Any, d: int = 2) -> str:
    """Scientific notation, ``1.13e-3``."""
    if bad(x):
        return DASH
    if x == 0:
        return "0"
    mant, exp = f"{x:.{d}e}".split("e")
    return f"{mant}e{int(exp)}".replace("-", MINUS)


def ms(seconds: Any, d: int = 2) -> str:
    """Seconds shown in milliseconds, ``1.25 ms``."""
    return DASH if bad(seconds) else f"{num(1e3 * seconds, d)} ms"


def sec(seconds: Any, d: int = 3) -> str:
    """Seconds; above an hour with thousands separators and the hours beside them."""
    if bad(seconds):
        return DASH
    if seconds >= 3600:
        return f"{seconds:,.0f} s ({num(seconds / 3600, 1)} h)"
    return f"{num(seconds, d)} s"


def yes(x: Any) -> str:
    return DASH if x is None else ("yes" if x else "no")


def dash(x: Any) -> Any:
    """``x``, or an en dash for None."""
    return DASH if x is None else x


def commas(x: Any) -> str:
    """An integer with thousands separators, ``12,345``."""
    return f"{x:,}"


def argv_text(argv: Sequence[str]) -> str:
    """A command line with every temporary absolute path shown by its file name alone."""
    return " ".join(Path(a).name if a.startswith("/") else a for a in argv)


def cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def row(cells: Iterable[Any]) -> str:
    """One Markdown table line; ``|`` inside cells escaped."""
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def header(names: Sequence[Any]) -> str:
    """A Markdown table's header line and the rule under it."""
    return row(names) + "\n|" + "---|" * len(names)


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A whole Markdown table."""
    return "\n".join([header(head), *(row(r) for r in rows)])


def ranged(values: Sequence[Any], d: int, sign: bool = False) -> str:
    """``lo to hi`` of the numbers among ``values`` (one number when they are equal)."""
    vals = [v for v in values if not bad(v)]
    if not vals:
        return DASH
    lo, hi = min(vals), max(vals)
    return num(lo, d, sign) if lo == hi else f"{num(lo, d, sign)} to {num(hi, d, sign)}"


def widths_label(widths: Sequence[int]) -> str:
    """``[784, 256, 256, 10]`` -> ``784-256×2-10``."""
    from modscope.report.text import widths_text

    return widths_text(widths, "×")


def median_of(t: Any) -> Any:
    """The median of a ``timing`` dict (``{"median", "min", "max", "runs"}``) or a plain number."""
    return t.get("median") if isinstance(t, dict) else t


def spread(t: Any, d: int, scale: float = 1.0) -> str:
    """``median (min to max, n runs)`` of a ``timing`` dict, each ``num(scale * v, d)``."""

    def fmt(v: Any) -> str:
        return DASH if bad(v) else num(scale * v, d)

    if not isinstance(t, dict):
        return fmt(t)
    runs = t.get("runs") or []
    if len(runs) <= 1:
        return fmt(t.get("median"))
    return f"{fmt(t.get('median'))} ({fmt(t.get('min'))} to {fmt(t.get('max'))}, {len(runs)} runs)"


def step_label(name: str) -> str:
    """``k3_masks_on_2_threads`` -> ``K = 3 masks split over 2 threads``."""
    m = re.fullmatch(r"k(\d+)_masks_(one_step|one_step_vmap|on_(\d+)_threads)", name)
    if name == "plain_step":
        return "plain training step"
    if name == "one_mask_step":
        return "one mask step (K = 1)"
    if m is None:
        return name.replace("_", " ")
    if m.group(3):
        return f"K = {m.group(1)} masks split over {m.group(3)} threads"
    return f"K = {m.group(1)} masks in one {'vmap ' if m.group(2).endswith('vmap') else ''}step"


def reach(reach: list[list[Any]]) -> str:
    """Which inputs reach which outputs: ``y1 ← x1, x2; ...``, or a count for large networks."""
    n_out, n_in = len(reach), len(reach[0]) if reach else 0
    if n_out * n_in <= 16:
        return "; ".join(
            f"y{o + 1} ← " + (", ".join(f"x{i + 1}" for i in range(n_in) if reach[o][i]) or "none")
            for o in range(n_out)
        )
    k = sum(bool(v) for row_ in reach for v in row_)
    return f"{k} of {n_out * n_in} output-input pairs ({pct(k / (n_out * n_in), 0)})"


def task_metric(metrics: dict[str, Any]) -> str:
    """Test accuracy of a classifier, test MSE of a regression."""
    if "test_accuracy" in metrics:
        return pct(metrics["test_accuracy"])
    return f"MSE {sci(metrics.get('test_loss'))}"


def model_label(model: str) -> str:
    if model.startswith("random:"):
        return f"untrained {model.split(':', 1)[1]} MLP"
    return f"`{Path(model).stem}`"


def mean_at(x: Any, *path: str) -> Any:
    """``x[path...]["mean"]``, or None where a step is missing."""
    for p in path:
        x = x.get(p) if isinstance(x, dict) else None
    return x.get("mean") if isinstance(x, dict) else None


def lookup(key: Any, table: dict[Any, Any]) -> Any:
    """``table[key]``: a label looked up, for ``map("lookup", labels)``."""
    return table[key]


def stem(path: str) -> str:
    return Path(path).stem


def machine(data: dict[str, Any]) -> str:
    """A receipt's machine note: CPU, cores, memory, load average, thread variables."""
    m = data.get("machine")
    if not isinstance(m, dict):
        return "no machine note"
    parts = [str(m.get("cpu", "CPU not recorded"))]
    if m.get("logical_cores") is not None:
        parts.append(f"{m['logical_cores']} logical cores")
    if m.get("memory_gib") is not None:
        parts.append(f"{num(m['memory_gib'], 1)} GiB")
    load_avg = m.get("load_average")
    if load_avg:
        parts.append(
            "load average " + " / ".join(num(x, 2) for x in load_avg) + " (1, 5, 15 min, when written)"
        )
    threads = m.get("threads_env") or {}
    if threads:
        parts.append(", ".join(f"{k}={v}" for k, v in sorted(threads.items())))
    return ", ".join(parts)


FILTERS: dict[str, Callable[..., Any]] = {
    f.__name__.rstrip("_"): f
    for f in (
        num,
        z_,
        pct,
        pm,
        times,
        g,
        sci,
        ms,
        sec,
        yes,
        commas,
        argv_text,
        row,
        header,
        ranged,
        widths_label,
        median_of,
        spread,
        step_label,
        reach,
        task_metric,
        model_label,
        stem,
        machine,
        mean_at,
        lookup,
        dash,
    )
}
