"""Sweeps: config parsing, one row per checkpoint x setting, resuming, no stale reuse."""

import json

import pandas as pd
import pytest
import torch

from modscope.cli import main
from modscope.clustering.spectral import SpectralClusterer
from modscope.errors import ModscopeError
from modscope.scoring.engine import score
from modscope.workflows import sweep as sweep_mod
from modscope.workflows.sweep import expand_settings, load_config, run_sweep
from tests.conftest import random_mlp


@pytest.fixture
def setup(tmp_path):
    for i, widths in enumerate([[10, 8, 8, 4], [9, 7, 6]]):
        torch.save(random_mlp(widths, seed=i).state_dict(), tmp_path / f"net{i}.pt")
    config = {"checkpoints": ["net*.pt"], "settings": {"clusters": [2, 3], "shuffles": 3, "seed": 4}}
    (tmp_path / "sweep.json").write_text(json.dumps(config))
    return tmp_path


def test_one_row_per_checkpoint_and_setting_matching_score(setup):
    res = run_sweep(setup / "sweep.json", out=setup / "t.csv")
    t = res.table
    assert (res.computed, res.reused) == (4, 0)
    assert list(t["clusters"]) == [2, 3, 2, 3]
    assert [p.rsplit("/", 1)[-1] for p in t["checkpoint"]] == ["net0.pt", "net0.pt", "net1.pt", "net1.pt"]
    row = t.iloc[3]
    ref = score(str(setup / "net1.pt"), n_shuffles=3, seed=4, measure=SpectralClusterer(3, threads=1))
    assert row["ncut"] == ref.ncut
    assert row["shuffle_mean"] == pytest.approx(ref.null.mean, rel=1e-15)
    assert row["p_value"] == ref.null.p_value
    on_disk = pd.read_csv(setup / "t.csv")
    assert on_disk["ncut"].tolist() == t["ncut"].tolist()


def test_rerun_reuses_rows_and_never_stale_ones(setup, monkeypatch):
    out = setup / "t.csv"
    run_sweep(setup / "sweep.json", out=out)
    first = out.read_bytes()
    again = run_sweep(setup / "sweep.json", out=out)
    assert (again.computed, again.reused) == (0, 4)
    assert out.read_bytes() == first
    # other settings: only the new combinations run
    cfg = json.loads((setup / "sweep.json").read_text())
    cfg["settings"]["seed"] = [4, 5]
    (setup / "sweep.json").write_text(json.dumps(cfg))
    more = run_sweep(setup / "sweep.json", out=out)
    assert (more.computed, more.reused) == (4, 4)
    assert len(more.table) == 8
    # a changed checkpoint file: its rows are recomputed, the other file's reused
    torch.save(random_mlp([10, 8, 8, 4], seed=9).state_dict(), setup / "net0.pt")
    changed = run_sweep(setup / "sweep.json", out=out)
    assert (changed.computed, changed.reused) == (4, 4)


def test_interrupted_sweep_keeps_finished_rows(setup, monkeypatch):
    out = setup / "t.csv"
    real, calls = sweep_mod.run_job, []

    def flaky(unit):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(unit)
        return real(unit)

    monkeypatch.setattr(sweep_mod, "run_job", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(setup / "sweep.json", out=out)
    assert len(pd.read_csv(out)) == 2  # persisted as they finished
    monkeypatch.setattr(sweep_mod, "run_job", real)
    res = run_sweep(setup / "sweep.json", out=out)
    assert (res.computed, res.reused) == (2, 2)
    fresh = run_sweep(setup / "sweep.json", out=setup / "fresh.csv")
    cols = [c for c in res.table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(res.table[cols], fresh.table[cols])


@pytest.mark.yaml  # a YAML config needs PyYAML (it comes with the docs and distributed extras)
def test_config_formats_agree(tmp_path):
    (tmp_path / "a.json").write_text('{"checkpoints": ["x.pt"], "settings": {"clusters": [2, 4]}}')
    (tmp_path / "a.toml").write_text('checkpoints = ["x.pt"]\n[settings]\nclusters = [2, 4]\n')
    (tmp_path / "a.yaml").write_text("checkpoints: [x.pt]\nsettings:\n  clusters: [2, 4]\n")
    configs = [load_config(tmp_path / f"a.{ext}") for ext in ("json", "toml", "yaml")]
    assert configs[0] == configs[1] == configs[2]


def test_settings_grid_defaults_and_union():
    got = expand_settings([{"clusters": [2, 3], "seed": [0, 1]}, {"clusters": 2, "seed": 0}])
    assert len(got) == 4  # the second grid repeats a combination of the first
    assert got[0] == {**sweep_mod.DEFAULTS, "clusters": 2, "seed": 0}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"checkpoints": ["net0.pt"], "settings": {"clusterz": 3}}, "unknown sweep setting"),
        ({"checkpoints": ["net0.pt"], "settings": {"clusters": 1}}, "clusters must be an integer >= 2"),
        ({"checkpoints": ["net0.pt"], "settings": {"shuffle_method": "nope"}}, "shuffle_method"),
        ({"checkpoints": ["missing*.pt"]}, "matches no file"),
        ({"checkpoints": ["net0.pt"], "extra": 1}, "unknown sweep config key"),
    ],
)
def test_bad_configs(setup, config, message):
    (setup / "bad.json").write_text(json.dumps(config))
    with pytest.raises(ModscopeError, match=message):
        run_sweep(setup / "bad.json", out=setup / "t.csv")


def test_bad_files(setup):
    (setup / "broken.json").write_text("{not json")
    with pytest.raises(ModscopeError, match="does not parse"):
        load_config(setup / "broken.json")
    with pytest.raises(ModscopeError, match="csv or .parquet"):
        run_sweep(setup / "sweep.json", out=setup / "t.xlsx")
    (setup / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ModscopeError, match="not a modscope sweep table"):
        run_sweep(setup / "sweep.json", out=setup / "other.csv")


def test_cli_sweep(setup, capsys):
    assert main(["sweep", str(setup / "sweep.json"), "--out", str(setup / "t.csv"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 rows (4 computed, 0 reused)" in out
    assert main(["sweep", str(setup / "missing.json"), "--out", str(setup / "t.csv")]) == 2
    assert "cannot read the sweep config" in capsys.readouterr().err


def test_table_floats_read_back_exactly(tmp_path):
    """Every 17-digit float written to the table reads back as the same float (pandas 2's default
    parser misread about a fifth of them, so a rerun rewrote different bytes)."""
    import numpy as np

    values = np.random.default_rng(29).random(2000) * 10.0 ** np.random.default_rng(1).integers(-6, 3, 2000)
    table = pd.DataFrame({"key": [f"k{i}" for i in range(len(values))], "ncut": values})
    path = tmp_path / "t.csv"
    sweep_mod._write_table(path, table)
    back = sweep_mod._read_table(path)
    assert back["ncut"].tolist() == values.tolist()
    sweep_mod._write_table(tmp_path / "again.csv", back)
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()


def test_checkpoint_paths_are_relative_to_the_table(setup, monkeypatch, tmp_path_factory):
    out = setup / "t.csv"
    run_sweep(setup / "sweep.json", out=out)
    first = out.read_bytes()
    assert all(not p.startswith("/") for p in pd.read_csv(out)["checkpoint"])
    # the same sweep run from elsewhere (absolute config path): the same bytes
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    again = run_sweep(setup / "sweep.json", out=out)
    assert again.reused == 4 and out.read_bytes() == first
    assert list(pd.read_csv(out)["checkpoint"]) == ["net0.pt", "net0.pt", "net1.pt", "net1.pt"]


def test_a_network_that_is_not_a_plain_stack_is_refused_in_one_line():
    from modscope.errors import ModscopeError
    from modscope.workflows.sweep import SweepJob, run_job
    from tests.helpers.paths import FIXTURES

    setting = {"clusters": 2, "assign_labels": "kmeans", "select": "inertia", "restarts": "auto",
               "shuffle_method": "layer", "shuffles": 2, "seed": 0}
    with pytest.raises(ModscopeError, match="rescnn.pt2: not a plain stack of layers.*modscope score"):
        run_job(SweepJob(str(FIXTURES / "formats" / "rescnn.pt2"), "x", setting))
