"""Sweeps: many checkpoints x settings -> one tidy table, resumable and distributable.

A config (YAML when PyYAML is installed, JSON, or TOML) names the checkpoints and the
settings; every checkpoint is scored under every combination of the listed values::

    checkpoints: [runs/plain-*.pt, runs/bimt.pt]   # paths or glob patterns, relative to the config
    settings:                                       # a mapping: every combination of its values;
      clusters: [4, 12]                             # a list of mappings: the union of their grids
      shuffle_method: [layer, layer_nonzero]
      shuffles: 50
      seed: [0, 1]
    out: sweep.csv                                  # optional (CLI --out wins); .parquet needs pyarrow

Settings and their defaults: ``clusters`` 12, ``shuffle_method`` layer, ``shuffles`` 50,
``seed`` 0, ``restarts`` auto (the reference's 25, or 100 above 2000 nodes), ``select`` inertia
(the reference's), ``assign_labels`` kmeans. The table has one row
per checkpoint x setting. Each finished row is written to the output at once (atomically);
a rerun reads the output back and computes only the rows whose key — a hash of the
checkpoint's bytes, every setting and the modscope version — is not there, so a row made
with other settings or from a changed file is never reused. A rerun gives the same bytes: floats
are written by ``repr`` and read back exactly, checkpoint paths are stored relative to the
table's folder, and only the ``seconds`` column (wall time) differs between two fresh runs.
Rows run as jobs on any executor (`modscope.distributed`), each on one thread, so the numbers
do not depend on where they ran; on a Dask cluster the workers must see the checkpoint paths.
"""

from __future__ import annotations

import functools
import glob
import itertools
import json
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .._version import __version__
from ..errors import ModscopeError, first_line
from ..runtime.atomic import check_output, write_atomic
from ..runtime.hashing import file_sha256, json_digest

__all__ = ["SweepResult", "SweepJob", "expand_settings", "load_config", "run_sweep", "run_job"]

DEFAULTS: dict[str, Any] = {
    "clusters": 12,
    "shuffle_method": "layer",
    "shuffles": 50,
    "seed": 0,
    "restarts": "auto",
    "select": "inertia",
    "assign_labels": "kmeans",
}
SETTING_COLUMNS = list(DEFAULTS)
RESULT_COLUMNS = ["ncut", "restarts_used", "shuffle_mean", "shuffle_std", "z", "p_value", "n_nodes",
                  "n_edges", "layer_widths", "seconds", "checkpoint_sha256", "version", "key"]


def load_config(path: str | os.PathLike) -> dict:
    """Read a sweep config: ``.yaml``/``.yml`` (needs PyYAML), ``.json`` or ``.toml``."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ModscopeError(f"cannot read the sweep config {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml", ".json"):
        raise ModscopeError(f"sweep config {path.name}: use a .yaml, .json or .toml file")
    parse = json.loads if suffix == ".json" else lambda data: tomllib.loads(data.decode())
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ModscopeError("YAML configs need PyYAML; or use JSON / TOML") from None
        parse = yaml.safe_load
    try:
        config = parse(text)
    except Exception as exc:  # the parsers' own error types differ; all mean a malformed file
        raise ModscopeError(f"sweep config {path.name} does not parse: {first_line(exc, None)}") from None
    if not isinstance(config, dict):
        raise ModscopeError(f"sweep config {path.name}: expected a mapping at the top level")
    return config


def _as_list(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _check_setting(s: dict) -> dict:
    from ..nulls import SHUFFLE_METHODS

    for name, lo in (("clusters", 2), ("shuffles", 0), ("restarts", 1), ("seed", None)):  # integers
        v = s[name]
        if name == "restarts" and v == "auto":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
            at_least = "" if lo is None else f" >= {lo}"
            raise ModscopeError(f"sweep setting {name} must be an integer{at_least}, got {v!r}")
    if s["shuffle_method"] not in SHUFFLE_METHODS:
        raise ModscopeError(
            f"sweep setting shuffle_method {s['shuffle_method']!r} is not one of {', '.join(SHUFFLE_METHODS)}"
        )
    for name, allowed in (("select", ("ncut", "inertia")), ("assign_labels", ("kmeans", "cluster_qr"))):
        if s[name] not in allowed:
            raise ModscopeError(f"sweep setting {name} must be {' or '.join(allowed)}, got {s[name]!r}")
    return s


def expand_settings(settings) -> list[dict]:
    """Every combination of the listed values, defaults filled in, duplicates dropped, in order."""
    grids = _as_list(settings if settings is not None else {})
    out: dict[str, dict] = {}  # by its JSON text: a duplicate keeps the first one's place
    for grid in grids:
        if not isinstance(grid, dict):
            raise ModscopeError(f"sweep settings: expected a mapping of setting -> values, got {grid!r}")
        if "n_init" in grid and "restarts" not in grid:  # the 0.2 name of the setting
            grid = {("restarts" if k == "n_init" else k): v for k, v in grid.items()}
        unknown = sorted(set(grid) - set(DEFAULTS))
        if unknown:
            raise ModscopeError(
                f"unknown sweep setting(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}"
            )
        values = [_as_list(grid.get(n, DEFAULTS[n])) for n in SETTING_COLUMNS]
        for combo in itertools.product(*values):
            s = _check_setting(dict(zip(SETTING_COLUMNS, combo, strict=True)))
            out.setdefault(json.dumps(s, sort_keys=True), s)
    return list(out.values())


def expand_checkpoints(patterns, base: Path) -> list[Path]:
    """Paths and glob patterns (relative to ``base``) -> existing files, in the listed order."""
    out: list[Path] = []
    for pattern in _as_list(patterns or []):
        full = base / os.path.expanduser(str(pattern))
        # a path without wildcards globs to itself when it exists
        hits = [h for h in sorted(glob.glob(str(full))) if Path(h).is_file()]
        if not hits:
            raise ModscopeError(f"sweep checkpoint {pattern!r} matches no file")
        out += [Path(h) for h in hits if Path(h) not in out]
    if not out:
        raise ModscopeError("the sweep config lists no checkpoints")
    return out


@dataclass(frozen=True)
class SweepJob:
    """One row to compute: a checkpoint under one setting."""

    checkpoint: str
    sha256: str
    setting: dict

    @property
    def key(self) -> str:
        return json_digest({"sha256": self.sha256, "setting": self.setting, "version": __version__})[:24]


def run_job(job: SweepJob, device: str | None = None) -> dict:
    """Score one checkpoint under one setting, on one thread (its spectral path on ``device`` when
    given); the table row as a dict."""
    from ..clustering.memory import check_memory
    from ..clustering.spectral import SpectralClusterer
    from ..graphs.load import load_graph
    from ..runtime.threads import single_thread
    from ..scoring.engine import score

    s = job.setting
    start = time.perf_counter()
    graph = load_graph(job.checkpoint)  # read once (it was built twice: by load_weights, then again)
    if not graph.is_chain:
        raise ModscopeError(f"{job.checkpoint}: not a plain stack of layers; a sweep scores MLP checkpoints "
                            "(score any other network with `modscope score`)")
    check_memory(graph)  # before the clustering's arrays are made
    if s["clusters"] >= graph.n_nodes:
        raise ModscopeError(f"{job.checkpoint}: {s['clusters']} clusters but only {graph.n_nodes} nodes")
    clusterer = SpectralClusterer(s["clusters"], assign_labels=s["assign_labels"], select=s["select"],
                                  restarts=None if s["restarts"] == "auto" else s["restarts"], threads=1)
    with single_thread():  # compare_nulls=False: a sweep lists the nulls it scores, one row each
        result = score(graph, measure=clusterer, null=s["shuffle_method"], n_shuffles=s["shuffles"],
                       seed=s["seed"], device=device, compare_nulls=False)
    null = result.null.to_dict() if result.null is not None else {}
    return {
        "checkpoint": job.checkpoint, **s, "ncut": result.ncut,
        "restarts_used": result.partition.clustering.get("restarts"),
        "shuffle_mean": null.get("mean"), "shuffle_std": null.get("std"), "z": null.get("z"),
        "p_value": null.get("p_value"), "n_nodes": graph.n_nodes, "n_edges": graph.n_edges,
        "layer_widths": "-".join(map(str, graph.layer_widths)),
        "seconds": round(time.perf_counter() - start, 3), "checkpoint_sha256": job.sha256,
        "version": __version__, "key": job.key,
    }


@dataclass
class SweepResult:
    """The sweep table (one row per checkpoint x setting, config order) and what was reused."""

    table: pd.DataFrame
    computed: int
    reused: int
    path: Path

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def to_dict(self) -> dict:
        rows = self.table.astype(object).where(self.table.notna(), None).to_dict(orient="records")
        return {"rows": rows, "computed": self.computed, "reused": self.reused, "path": str(self.path)}


def _read_table(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:  # text columns kept as text (floats were written by repr: exact)
            text = {c: str for c in ("checkpoint", "shuffle_method", "select", "assign_labels",
                                     "layer_widths", "checkpoint_sha256", "version", "key")}
            # pandas 2's default float parser misreads about a fifth of 17-digit floats
            # (0.05397479751296283 -> 0.0539747975129628; pandas 3's is exact), and a rerun must
            # give the same bytes
            exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
            table = pd.read_csv(path, dtype=text, **exact)
    except Exception as exc:  # a damaged table: refuse rather than silently recompute or overwrite
        raise ModscopeError(f"cannot read the existing sweep table {path}: {exc}") from None
    if "key" not in table.columns:
        raise ModscopeError(f"{path} exists but is not a modscope sweep table (no key column)")
    return table


def _relative(checkpoint: str, table: Path) -> str:
    """``checkpoint`` relative to the folder of the sweep table (POSIX separators); absolute when
    no relative path exists (another drive)."""
    try:
        return Path(os.path.relpath(Path(checkpoint).resolve(), Path(table).resolve().parent)).as_posix()
    except ValueError:
        return str(Path(checkpoint).resolve())


def _shortest(x: float) -> str:
    """The shortest text that reads back as exactly ``x``."""
    return repr(float(x))


def _write_table(path: Path, table: pd.DataFrame) -> None:
    if path.suffix == ".parquet":
        write_atomic(path, lambda fh: table.to_parquet(fh, index=False))
    else:
        write_atomic(path, lambda fh: fh.write(table.to_csv(index=False, float_format=_shortest).encode()))


def run_sweep(
    config: str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    jobs=1,
    progress: bool = False,
    device: str | None = None,
) -> SweepResult:
    """Score every checkpoint x setting of ``config`` into one table at ``out``.

    ``config`` is a config file or an already-parsed mapping (paths then relative to the
    working directory). ``out`` (``.csv``, or ``.parquet`` with pyarrow) defaults to the
    config's ``out``. ``jobs``: worker processes, or an executor from `modscope.distributed`
    (e.g. ``DaskExecutor("tcp://host:8786")``). Finished rows are persisted as they arrive;
    rows already in ``out`` with the same key are reused. ``device``: each row's spectral path on
    this torch device (`modscope.score`'s ``device``), rows one after another in this process.
    """
    if isinstance(config, dict):
        base = Path.cwd()
    else:
        base = Path(config).resolve().parent
        config = load_config(config)
    out = _table_path(config, out, base)
    settings = expand_settings(config.get("settings"))
    paths = expand_checkpoints(config.get("checkpoints"), base)
    hashes = {p: file_sha256(p) for p in paths}
    wanted = [SweepJob(str(p), hashes[p], s) for p in paths for s in settings]
    done = _reusable_rows(_read_table(out), wanted, out)
    reused = len(done)
    todo = [job for job in wanted if job.key not in done]
    columns = ["checkpoint", *SETTING_COLUMNS, *RESULT_COLUMNS]

    def table() -> pd.DataFrame:
        return pd.DataFrame([done[job.key] for job in wanted if job.key in done], columns=columns)

    executor, job = _executor(jobs, device)
    bar = tqdm(total=len(wanted), initial=reused, desc="sweep", unit="row", disable=not progress, leave=False)
    with bar:
        if todo:
            for i, row in executor.as_completed(job, todo):
                done[todo[i].key] = {**row, "checkpoint": _relative(todo[i].checkpoint, out)}
                _write_table(out, table())
                bar.update()
    final = table()
    if not todo:
        _write_table(out, final)  # also drops rows of settings no longer in the config
    return SweepResult(final, len(todo), reused, out)


def _table_path(config: dict, out: str | os.PathLike | None, base: Path) -> Path:
    """The output table: ``out``, else the config's own entry (relative to the config file);
    checked (writable, ``.csv`` or ``.parquet`` with pyarrow) before any row is computed."""
    unknown = sorted(set(config) - {"checkpoints", "settings", "out"})
    if unknown:
        raise ModscopeError(
            f"unknown sweep config key(s) {', '.join(unknown)}; use checkpoints, settings, out"
        )
    if out is None:
        if config.get("out") is None:
            raise ModscopeError("no output table: give --out or an 'out' entry in the config")
        out = base / str(config["out"])
    out = Path(out)
    check_output(out, "the sweep table", stdout=False)
    if out.suffix not in (".csv", ".parquet"):
        raise ModscopeError(f"the sweep table must be .csv or .parquet, got {out.name}")
    if out.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ModscopeError("a .parquet table needs pyarrow (pip install pyarrow); or use .csv") from None
    return out


def _reusable_rows(previous: pd.DataFrame | None, wanted: list[SweepJob], out: Path) -> dict[str, dict]:
    """``{key: row}`` of the rows of ``previous`` that a wanted job would compute again, their
    paths relative to the table's folder (the same bytes from any working folder)."""
    rows = {} if previous is None else {row["key"]: row for row in previous.to_dict(orient="records")}
    return {job.key: {**rows[job.key], "checkpoint": _relative(job.checkpoint, out)}
            for job in wanted if job.key in rows}


def _executor(jobs, device: str | None):
    """Where the rows run and what runs each: ``jobs`` processes / an executor, or one after another
    here with each row's spectral path on ``device``: ``(executor, run_job)``."""
    from ..runtime.executors import LocalExecutor

    if device is None:
        return (LocalExecutor(jobs) if not hasattr(jobs, "as_completed") else jobs), run_job
    if jobs != 1:
        raise ModscopeError("give a device or jobs, not both")
    from ..runtime.modules import resolve_device

    resolve_device(device)  # one line before any work when the device is absent
    return LocalExecutor(1), functools.partial(run_job, device=device)
