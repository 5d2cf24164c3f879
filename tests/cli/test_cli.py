import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from modscope.cli import main
from tests.conftest import SCORE_JSON_KEYS, planted_weights


@pytest.fixture
def planted_ckpt(tmp_path):
    ws, _ = planted_weights([16, 12, 12, 6], 3, np.random.default_rng(0))
    sd = {f"fc{i}.weight": torch.tensor(w, dtype=torch.float32) for i, w in enumerate(ws)}
    path = tmp_path / "planted.pt"
    torch.save(sd, path)
    return path


def test_score_prints_table_and_writes_json(planted_ckpt, tmp_path, capsys):
    out = tmp_path / "result.json"
    rc = main(
        [
            "score",
            str(planted_ckpt),
            "--clusters",
            "3",
            "--shuffles",
            "4",
            "--seed",
            "2",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    for word in ("n-cut", "shuffles", "z ", "p ", "cluster sizes per layer"):
        assert word in text
    d = json.loads(out.read_text())
    assert set(d) == SCORE_JSON_KEYS | {"source"}  # the CLI adds the network read (0.4.0)
    assert d["n_clusters"] == 3 and d["shuffle"]["n"] == 4 and d["seed"] == 2
    assert d["shuffle"]["z"] < 0


def test_json_identical_for_jobs_1_and_2(planted_ckpt, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    common = [str(planted_ckpt), "--clusters", "3", "--shuffles", "4", "--no-progress"]
    assert main(["score", *common, "--jobs", "1", "--json", str(a)]) == 0
    assert main(["score", *common, "--jobs", "2", "--json", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--clusters", "1"], "--clusters"),
        (["--clusters", "500"], "node count"),
        (["--shuffles", "0"], "--shuffles"),
        (["--shuffle-method", "bogus"], "--shuffle-method"),
        (["--jobs", "0"], "--jobs"),
        (["--clusters", "x"], "integer"),
    ],
)
def test_bad_options_exit_2_one_line(planted_ckpt, capsys, args, message):
    rc = main(["score", str(planted_ckpt), "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("modscope: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_files_exit_2(tmp_path, capsys):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02junk")
    torch.save({"a": torch.ones(3, 2), "b": torch.ones(4, 5)}, tmp_path / "nochain.pt")
    for name in ["missing.pt", "empty.pt", "junk.pt", "nochain.pt"]:
        assert main(["score", str(tmp_path / name), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("modscope: error:")


def test_console_entry_point_no_traceback(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "modscope", "score", str(tmp_path / "x.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("modscope: error:")
    proc = subprocess.run([sys.executable, "-m", "modscope", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "modscope" in proc.stdout


def test_no_command_is_an_error(capsys):
    assert main([]) == 2
