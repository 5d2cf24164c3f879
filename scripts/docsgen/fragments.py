"""The fragments: which receipts each one reads, its template, and the script that writes them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import receipts as rc
from .receipts import REPO, Context, Receipt

E = "experiments/"
B = "benchmarks/results/"


@cache
def makefile_python() -> str:
    """The Makefile's ``PY`` (the virtual environment's python), its variables expanded."""
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    variables = dict(re.findall(r"^([A-Z_]+)\s*[:?]?=\s*(\S.*?)\s*$", text, flags=re.M))

    def expand(value: str) -> str:
        return re.sub(r"\$\((\w+)\)", lambda m: expand(variables.get(m.group(1), "")), value)

    return expand(variables.get("PY", "python"))


@dataclass(frozen=True)
class Fragment:
    """``docs/generated/NAME.md`` from ``sources`` (receipt paths, or one glob) through ``build``
    (receipts -> the template's context) and ``template`` (default ``NAME.md.j2``). ``script``
    writes the receipts; ``speed`` adds the machine note to the footer."""

    name: str
    sources: tuple[str, ...]
    build: Callable[[Sequence[Receipt]], Context]
    script: str
    speed: bool = False
    template_name: str | None = None

    @property
    def template(self) -> str:
        return self.template_name or f"{self.name}.md.j2"

    def command(self) -> str:
        """How to make the missing receipts: the script with the Makefile's python (or as given)."""
        return self.script if " " in self.script else f"{makefile_python()} {self.script}"

    def context(self, found: Sequence[Receipt]) -> Context:
        return self.build(found)

    def receipts(self, root: Path) -> tuple[list[Receipt], list[str]]:
        found, missing = [], []
        for src in self.sources:
            if any(ch in src for ch in "*?["):
                paths = sorted(p.relative_to(root).as_posix() for p in root.glob(src))
                if not paths:
                    missing.append(src)
                found += [rc.load(root, p) for p in paths]
            else:
                r = rc.load(root, src)
                if r is None:
                    missing.append(src)
                found.append(r)
        return [r for r in found if r is not None], missing


# The user guide's commands (experiments/guide_commands.py), one fragment each: cmd_<name>.md
GUIDE_COMMANDS = (
    "score",
    "score_nonzero",
    "knockout",
    "masks",
    "train",
    "train_bimt",
    "plot_network",
    "plot_histogram",
    "plot_lesions",
    "plot_masks",
    "plot_model_network",
    "report",
    "model_score",
    "model_knockout",
    "model_masks",
    "blocks",
    "dask_score",
)


def _bench(name: str, build: Callable[[Sequence[Receipt]], Context] = rc.base) -> Fragment:
    return Fragment(f"bench_{name}", (f"{B}{name}.json",), build, f"benchmarks/{name}.py", speed=True)


def _command(name: str) -> Fragment:
    return Fragment(
        f"cmd_{name}",
        (f"{E}guide_commands.json",),
        rc.guide_command(name),
        "experiments/guide_commands.py",
        template_name="command.md.j2",
    )


FRAGMENTS: tuple[Fragment, ...] = (
    Fragment(
        "paper_table_fashion", (f"{E}paper_table_fashion.json",), rc.paper_table, "experiments/paper_table.py"
    ),
    Fragment("cluster_reg", (f"{E}cluster_reg.json",), rc.cluster_reg, "experiments/cluster_reg.py"),
    Fragment(
        "bimt_vs_plain",
        (f"{E}bimt_vs_plain_independence.json", f"{E}bimt_vs_plain_modadd.json"),
        rc.bimt_vs_plain,
        "experiments/bimt_vs_plain.py",
    ),
    Fragment(
        "bimt_modadd_modules",
        (f"{E}bimt_modadd_modules.json",),
        rc.bimt_modules,
        "experiments/bimt_modules.py",
    ),
    Fragment("bimt_cnn", (f"{E}bimt_paper/cnn.json",), rc.base, "experiments/bimt_paper/cnn.py"),
    Fragment(
        "bimt_incontext",
        (f"{E}bimt_paper/incontext.json",),
        rc.base,
        "experiments/bimt_paper/incontext.py",
    ),
    Fragment(
        "degree_null",
        (f"{E}degree_null_independence.json", f"{E}degree_null_modadd.json"),
        rc.degree_null,
        "experiments/degree_null.py",
    ),
    Fragment(
        "measures_compare",
        (f"{E}measures_compare.json",),
        rc.measures_compare,
        "experiments/measures_compare.py",
    ),
    Fragment(
        "masks_addmul",
        (f"{E}masks_addmul.json", f"{E}masks_addmul_800.json"),
        rc.masks_addmul,
        "experiments/masks_addmul.py",
    ),
    Fragment("masks_halves", (f"{E}masks_halves*.json",), rc.masks_halves, "experiments/masks_addmul.py"),
    Fragment(
        "masks_digits_classes",
        (f"{E}masks_digits_classes.json",),
        rc.masks_digits_classes,
        # the receipt records no command: this is how it was made
        "modscope masks CKPT --classes --steps 10000 --json experiments/masks_digits_classes.json",
    ),
    Fragment(
        "families_vs_reference",
        (f"{E}families_vs_reference.json",),
        rc.base,
        "experiments/families_vs_reference.py",
    ),
    Fragment(
        "converters_compare",
        (f"{E}converters/compare.json",),
        rc.base,
        "PYTHONPATH=. .venv/bin/python experiments/converters/compare.py "
        "--out experiments/converters/compare.json",
    ),
    Fragment(
        "real_weights_flatten",
        (f"{E}real_weights_flatten.json",),
        rc.real_weights,
        "experiments/real_weights_flatten.py",
    ),
    Fragment(
        "worked_example", (f"{E}worked_example.json",), rc.worked_example, "experiments/worked_example.py"
    ),
    Fragment("score_example", (f"{E}score_example.json",), rc.base, "experiments/score_example.py"),
    *(_command(name) for name in GUIDE_COMMANDS),
    _bench("startup", rc.bench_startup),
    _bench("cli_vs_script", rc.bench_cli_vs_script),
    _bench("score_vs_sklearn", rc.bench_score_vs_sklearn),
    _bench("community", rc.bench_community),
    _bench("training_steps", rc.bench_training_steps),
    _bench("cluster_reg", rc.bench_cluster_reg),
    _bench("masks_speed", rc.bench_masks_speed),
    Fragment(  # with 0.3.0's MLP path, run right after it, as the baseline
        "bench_knockout_speed",
        (f"{B}knockout_speed.json", f"{B}knockout_speed_0.3.0.json"),
        rc.bench_knockout_speed,
        "benchmarks/knockout_speed.py",
        speed=True,
    ),
    _bench("tracing"),
    _bench("transformer_graphs"),
    _bench("knockout_any", rc.bench_knockout_any),
    _bench("masks_any", rc.bench_masks_any),
    _bench("bimt_any", rc.base),
    _bench("gpu_models"),
    _bench("scaling"),
    Fragment("bench_code_lines", (f"{B}code_lines.json",), rc.base, "benchmarks/code_lines.py"),
    _bench("gpu_scoring"),
    _bench("explore"),
)
