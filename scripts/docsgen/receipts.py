"""The receipts: each JSON receipt read into a context dict for its fragment's template.

A fragment (``docs/generated/NAME.md``) is rendered from ``docs/templates/NAME.md.j2`` (or the
template it names) with the context its builder returns: ``receipts`` (every receipt it reads),
``r`` / ``data`` / ``res`` / ``settings`` (the first one's), and whatever the table needs sorted or
grouped. The builders only select and order; every word and number format lives in the templates.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
Context = dict[str, Any]


@dataclass(frozen=True)
class Receipt:
    """One JSON file: ``rel`` (its path in the repository) and ``data``."""

    rel: str
    data: dict[str, Any]

    @property
    def results(self) -> Any:
        """``results`` of a receipt; the whole file for the older files that predate receipts."""
        return self.data["results"] if "results" in self.data else self.data


def load(root: Path, rel: str) -> Receipt | None:
    path = root / rel
    if not path.is_file():
        return None
    return Receipt(rel, json.loads(path.read_text(encoding="utf-8")))


def order(key: str, known: Sequence[str]) -> tuple[int, str]:
    """Sort key: the ``known`` names in their order, then any other name alphabetically."""
    return (known.index(key), "") if key in known else (len(known), key)


def base(rs: Sequence[Receipt]) -> Context:
    """What every template gets: all receipts and the first one's parts."""
    r = rs[0]
    return {
        "receipts": rs,
        "r": r,
        "data": r.data,
        "res": r.results,
        "settings": r.data.get("settings", {}),
    }


# -- experiments -----------------------------------------------------------------------------------
VARIANTS = ["unpruned", "pruned", "dropout", "dropout_pruned", "random_init"]
SELECTIONS = ["reference", "ncut"]
SHUFFLES = ["layer", "layer_nonzero"]


def _paper_key(variant: str, selection: str, null: str) -> tuple[Any, ...]:
    return (order(variant, VARIANTS), order(selection, SELECTIONS), order(null, SHUFFLES))


def paper_table(rs: Sequence[Receipt]) -> Context:
    c = base(rs)
    res = c["res"]
    paper = res.get("paper") or {}
    net = c["settings"].get("net", "fashion-mnist")
    summary = sorted(
        res["summary"], key=lambda s: _paper_key(s["variant"], s["selection"], s["shuffle_method"])
    )
    versus = []  # the paper's own setting: its selection, the `layer` null
    for s in summary:
        if s["selection"] == "reference" and s["shuffle_method"] == "layer":
            p = (
                paper.get("random_init")
                if s["variant"] == "random_init"
                else paper.get(net, {}).get(s["variant"])
            )
            versus.append((s, p or {}))
    recs: dict[tuple[str, str, str], list[tuple[int, Any]]] = {}
    for x in res["records"]:
        recs.setdefault((x["variant"], x["selection"], x["shuffle_method"]), []).append((x["seed"], x["z"]))
    z_per_net = [(*k, [z for _, z in sorted(recs[k])]) for k in sorted(recs, key=lambda k: _paper_key(*k))]
    mnist = paper.get("mnist")
    return c | {
        "net": net,
        "summary": summary,
        "versus": versus,
        "n_nets": sorted({s["n_nets"] for s in summary}),
        "z_per_net": z_per_net,
        "record_seeds": sorted({x["seed"] for x in res["records"]}),
        "mnist": sorted(mnist.items(), key=lambda kv: order(kv[0], VARIANTS)) if mnist else None,
    }


def _condition(cond: str) -> dict[str, Any]:
    """``spectral lam 0.3 K 11 every 10 normalize`` -> its kind, its valued options, its flags, and a
    sort key (unpruned first; plain, spectral, Golechha, BIMT; then K, every, lambda)."""
    tok = cond.split()
    kind = tok[0]
    vals: dict[str, str] = {}
    flags: list[str] = []
    i = 1
    while i < len(tok):
        if tok[i] in ("lam", "K", "C", "every") and i + 1 < len(tok):
            vals[tok[i]] = tok[i + 1]
            i += 2
        else:
            flags.append(tok[i])
            i += 1
    key = (
        "pruned" in flags,
        order(kind, ["plain", "spectral", "golechha", "bimt"]),
        int(vals.get("K", 0)),
        int(vals.get("every", 0)),
        float(vals.get("lam", 0)),
        cond,
    )
    return {"kind": kind, "vals": vals, "flags": flags, "key": key}


def cluster_reg(rs: Sequence[Receipt]) -> Context:
    """The summary's ``part / condition`` keys grouped by part, each part's rows in a fixed order."""
    c = base(rs)
    parts: dict[str, list[tuple[dict[str, Any], dict]]] = {}
    for key, s in c["res"]["summary"].items():
        part, cond = key.split(" / ", 1)
        parts.setdefault(part, []).append((_condition(cond), s))
    ordered = sorted(parts, key=lambda p: order(p, ["digits", "fashion", "reference"]))
    return c | {"parts": [(p, sorted(parts[p], key=lambda x: x[0]["key"])) for p in ordered]}


def bimt_vs_plain(rs: Sequence[Receipt]) -> Context:
    tasks = []
    for r in rs:
        recs = sorted(r.results, key=lambda x: (x["task"], order(x["trainer"], ["plain", "bimt"]), x["seed"]))
        tasks.append((recs, r.data.get("options", {})))
    return base(rs) | {"tasks": tasks}


def _by_int(d: dict[str, Any]) -> list[Any]:
    """The values of a dict keyed by integers written as text, in numeric order."""
    return [d[k] for k in sorted(d, key=int)]


def bimt_modules(rs: Sequence[Receipt]) -> Context:
    c = base(rs)
    records = []
    for x in sorted(c["res"]["records"], key=lambda x: x["seed"]):
        mods = sorted(x["module_sizes"], key=int)
        records.append(
            x
            | {
                "active": _by_int(x["active_hidden_neurons"]),
                "sizes": [_by_int(x["module_sizes"][m]) for m in mods],
                "knocked": [x["each_module_knocked_out"][m] for m in mods],
                "alone": [x["each_module_kept_alone"][m] for m in mods],
                "subs": x.get("knockout", {}).get("submodules", []),
            }
        )
    return c | {"records": records}


NULLS = ["layer", "layer_nonzero", "layer_degree"]


def _degree_null_task(r: Receipt) -> Context:
    recs = r.results
    by = {(x["trainer"], x["seed"]): x for x in recs}
    seeds = sorted({x["seed"] for x in recs})
    methods = sorted({m for x in recs for m in x["scores"]}, key=lambda m: order(m, NULLS))

    def per_seed(trainer: str, m: str, key: str) -> list[Any]:
        xs = [by.get((trainer, s)) for s in seeds]
        return [x["scores"][m][key] if x and m in x["scores"] else None for x in xs]

    return {
        "task": recs[0]["task"],
        "clusters": recs[0]["clusters"],
        "options": r.data.get("options", {}),
        "seeds": seeds,
        "methods": methods,
        "nulls": [
            (
                m,
                [
                    [per_seed(t, m, k) for k in ("z", "ncut_over_mean", "n_fell_apart")]
                    for t in ("bimt", "plain")
                ],
            )
            for m in methods
        ],
        "summary": sorted(r.data.get("summary", []), key=lambda s: order(s["method"], NULLS)),
        "records": [
            (x, [x["scores"][m].get("z_floor") for m in methods if m in x["scores"]])
            for x in sorted(recs, key=lambda x: (order(x["trainer"], ["plain", "bimt"]), x["seed"]))
        ],
    }


def degree_null(rs: Sequence[Receipt]) -> Context:
    return base(rs) | {"tasks": [_degree_null_task(r) for r in rs]}


MEASURES = [  # (graph, method, null), in the table's column order
    ("weights", "spectral", "layer"),
    ("weights", "spectral", "layer_nonzero"),
    ("weights", "louvain", "layer"),
    ("weights", "louvain", "layer_nonzero"),
    ("weights", "local", "layer"),
    ("activations", "spectral", "units"),
    ("activations", "louvain", "units"),
]


def measures_compare(rs: Sequence[Receipt]) -> Context:
    """One row per model (trained files first), one column per measure the receipt holds."""
    c = base(rs)
    recs = c["data"]["records"]
    models = sorted(dict.fromkeys(x["model"] for x in recs), key=lambda m: (m.startswith("random:"), m))
    cols = [m for m in MEASURES if any((x["graph"], x["method"], x["null"]) == m for x in recs)]
    rows = []
    for mdl in models:
        by = {(x["graph"], x["method"], x["null"]): x for x in recs if x["model"] == mdl}
        rows.append((mdl, next(iter(by.values()))["k"], [by.get(m) for m in cols]))
    return c | {"columns": [" ".join(m) for m in cols], "rows": rows}


def _functions(d: dict) -> list[str]:
    """The two masked functions of a masks receipt (without the control)."""
    return [f for f in d["mask_config"]["functions"] if f != "control"]


def _layer_iou(entry: dict) -> list[Any]:
    li = entry.get("layer_iou") or {}
    return [li[k] for k in sorted(li, key=lambda k: (len(k), k))]


def _by_steps(d: dict) -> list[tuple[int, dict, list[Any]]]:
    """``summary_by_steps`` in step order: (steps, entry, per-layer IoU)."""
    return [
        (int(s), d["summary_by_steps"][s], _layer_iou(d["summary_by_steps"][s]))
        for s in sorted(d["summary_by_steps"], key=int)
    ]


def masks_addmul(rs: Sequence[Receipt]) -> Context:
    runs = []
    for r in rs:
        f1, f2 = _functions(r.data)
        runs.append({"d": r.data, "f1": f1, "f2": f2, "pair": f"{f1}|{f2}", "steps": _by_steps(r.data)})
    return base(rs) | {"runs": runs}


def masks_halves(rs: Sequence[Receipt]) -> Context:
    runs = []
    for r in rs:
        f1, f2 = _functions(r.data)
        runs.append({"r": r, "d": r.data, "f1": f1, "f2": f2, "steps": _by_steps(r.data)})
    return base(rs) | {"runs": runs}


def masks_digits_classes(rs: Sequence[Receipt]) -> Context:
    """Per mask: the drop of its own class and the largest change of any other class."""
    d = rs[0].data
    masks = sorted(d["class_drop"], key=lambda f: (f != "control", int(f.split("-")[1]) if "-" in f else -1))
    rows = []
    for f in masks:
        drops = d["class_drop"][f]
        c = None if f == "control" else f.split("-", 1)[1]
        others = [abs(v) for k, v in drops.items() if k != c and v is not None]
        rows.append({"mask": f, "own": drops.get(c) if c else None, "other": max(others) if others else None})
    own = [x["own"] for x in rows if x["mask"] != "control"]
    other = [x["other"] for x in rows if x["mask"] != "control" and x["other"] is not None]
    return base(rs) | {"rows": rows, "own_drops": own, "largest_other": max(other)}


READINGS = [
    "traced",
    "traced_channel_major",
    "state_dict_channel_last",
    "state_dict_channel_major",
    "state_dict_one_head_channel_last",
    "state_dict_one_head_channel_major",
]


def real_weights(rs: Sequence[Receipt]) -> Context:
    res = rs[0].results
    rows = []
    for net in sorted(res):
        for how in sorted(res[net], key=lambda h: order(h, READINGS)):
            x = res[net][how]
            diffs = x.get("max_rel_diff_vs_traced") or {}
            rows.append((net, how, x, max(diffs.values()) if diffs else None))
    return base(rs) | {"rows": rows}


def worked_example(rs: Sequence[Receipt]) -> Context:
    res = rs[0].results
    return base(rs) | {"examples": [(which, res[which]) for which in sorted(res)]}


def guide_command(name: str) -> Callable[[Sequence[Receipt]], Context]:
    """The context of one guide command's fragment: the line as typed, then what it printed."""

    def build(rs: Sequence[Receipt]) -> Context:
        return base(rs) | {"run": rs[0].results["commands"][name]}

    return build


# -- benchmarks ------------------------------------------------------------------------------------
def bench_startup(rs: Sequence[Receipt]) -> Context:
    cmds = rs[0].results["commands"]
    return base(rs) | {
        "commands": [(k, cmds[k]) for k in sorted(cmds, key=lambda k: (k != "python -c pass", k))]
    }


def bench_cli_vs_script(rs: Sequence[Receipt]) -> Context:
    by = rs[0].results["by_threads"]
    return base(rs) | {"threads": [(t, by[t]) for t in sorted(by, key=lambda t: (t != "env", t))]}


SKLEARN_NAMES = ["modscope", "modscope_select_ncut", "modscope_10_restarts"]


def bench_score_vs_sklearn(rs: Sequence[Receipt]) -> Context:
    cl = rs[0].results["clusterings"]
    names = sorted(cl, key=lambda n: (n.startswith("sklearn"), order(n, SKLEARN_NAMES)))
    return base(rs) | {"clusterings": [(n, cl[n]) for n in names]}


COMMUNITY_NAMES = ["modscope_leiden", "modscope_louvain", "networkx_louvain"]


def bench_community(rs: Sequence[Receipt]) -> Context:
    ms = rs[0].results["methods"]
    return base(rs) | {
        "methods": [
            (n, ms[n], statistics.median(ms[n]["n_communities"]))
            for n in sorted(ms, key=lambda n: order(n, COMMUNITY_NAMES))
        ]
    }


def bench_training_steps(rs: Sequence[Receipt]) -> Context:
    c = base(rs)
    st = c["res"].get("steps")
    if st:
        threads = sorted(
            {
                t
                for row in st["tasks"].values()
                for mode in ("plain", "bimt")
                for t in row[mode]["by_threads"]
            },
            key=int,
        )
        tasks = sorted(st["tasks"], key=lambda t: order(t, ["formula-independence", "modadd", "digits"]))
        c |= {"threads": threads, "tasks": [(t, st["tasks"][t]) for t in tasks]}
    sw = c["res"].get("swap_search")
    return c | {"swap_search": sorted(sw.items()) if sw else None}


def bench_cluster_reg(rs: Sequence[Receipt]) -> Context:
    res = rs[0].results
    threads = []
    for t in sorted(res["steps"]["threads"], key=int):
        row = res["steps"]["threads"][t]
        modes = sorted((k for k in row if k.startswith("every_")), key=lambda k: int(k.split("_")[1]))
        threads.append((t, row, [(m.split("_")[1], row[m]) for m in modes]))
    parts_order = [
        "refresh_eigenproblem_float32",
        "gradient_given_eigenvectors",
        "autograd_eigh_float32",
        "autograd_eigh_float64",
    ]
    parts = sorted(res.get("parts", {}).items(), key=lambda kv: order(kv[0], parts_order))
    extra = sorted(
        res.get("reference_vs_modscope_extra_per_step", {}).items(), key=lambda kv: int(kv[0].split("_")[1])
    )
    return base(rs) | {"threads": threads, "parts": parts, "extra": extra}


def _step_order(name: str) -> tuple[int, str]:
    """Plain step, one mask, K masks in one step (vmap), K masks split over threads."""
    if name == "plain_step":
        return (0, name)
    if name == "one_mask_step":
        return (1, name)
    if name.endswith("_one_step"):
        return (2, name)
    if name.endswith("_one_step_vmap"):
        return (3, name)
    return (4, name)


def _steps(steps: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(steps.items(), key=lambda kv: _step_order(kv[0]))


def bench_masks_speed(rs: Sequence[Receipt]) -> Context:
    return base(rs) | {"models": [(m, _steps(m["steps"])) for m in rs[0].results["models"]]}


def bench_knockout_speed(rs: Sequence[Receipt]) -> Context:
    layers = rs[0].results["layers"]
    old = rs[1].results if len(rs) > 1 else None
    return base(rs) | {"layers": [(k, layers[k]) for k in sorted(layers, key=int)], "baseline": old}


def bench_knockout_any(rs: Sequence[Receipt]) -> Context:
    m = rs[0].results["memory"]
    runs = sorted(((k, v) for k, v in m.items() if isinstance(v, dict)), key=lambda kv: int(kv[0]))
    return base(rs) | {"memory_runs": [(int(n), x) for n, x in runs]}


RATIOS = [
    "one_mask_over_plain_cpu",
    "one_mask_over_plain_wall",
    "k_together_over_k_single_cpu",
    "k_vmap_over_k_single_cpu",
    "k_on_threads_over_k_single_wall",
]


def bench_masks_any(rs: Sequence[Receipt]) -> Context:
    res = rs[0].results
    models = []
    for key in ("cnn", "lstm"):
        x = res.get(key)
        if x:
            ratios = sorted(x["ratios"].items(), key=lambda kv: order(kv[0], RATIOS))
            models.append((x, _steps(x["steps"]), ratios))
    return base(rs) | {"models": models}
