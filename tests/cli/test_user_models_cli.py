"""The user's own network and data on the command line (issues 16 and 17): ``--model
package.module:factory`` plus a weights file (no pickle runs), ``--data`` a file of theirs,
``--function`` their own class subsets; bad input is one line on stderr, exit 2, nothing written."""

import json
import sys

import numpy as np
import pytest
import torch

from modscope.cli import main

NET = '''
import torch
from torch import nn


class Net(nn.Module):
    """Two convs with a residual add, global pooling, a Linear head."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = h + torch.relu(self.c2(h))
        return self.fc(h.mean((2, 3)))


def make():
    return Net()


def make_with_input():
    return Net(), torch.zeros(1, 3, 8, 8)
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "usernet.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import usernet

    torch.manual_seed(0)
    torch.save(usernet.make().state_dict(), tmp_path / "w.pt")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x_test=rng.normal(size=(40, 3, 8, 8)).astype(np.float32),
        y_test=rng.integers(0, 4, 40),
    )
    yield tmp_path
    sys.modules.pop("usernet", None)


def test_score_and_knockout_a_users_module_on_their_data(project, capsys):
    assert (
        main(
            [
                "score",
                "w.pt",
                "--model",
                "usernet:make",
                "--input-shape",
                "1,3,8,8",
                "--clusters",
                "2",
                "--shuffles",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "traced with torch.export" in out and "3-6-4" in out
    assert (
        main(
            [
                "knockout",
                "w.pt",
                "--model",
                "usernet:make_with_input",
                "--data",
                "d.npz",
                "--clusters",
                "2",
                "--random",
                "20",
                "--function",
                "low=0,1",
                "--json",
                "k.json",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "unit groups:" in out and "c1+c2" in out
    d = json.loads((project / "k.json").read_text())
    assert d["groups"] == ["input:x", "c1+c2", "fc"] and "low" in d["intact_per_function"]
    assert all(s["layer"] == 1 for s in d["submodules"])  # only the written-and-read stream


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["knockout", "w.pt", "--model", "usernet:make", "--data", "d.npz", "--input-shape", "1,5,8,8"],
            "cannot trace",
        ),
        (["knockout", "w.pt", "--model", "usernet:nothing", "--data", "d.npz"], "has no 'nothing'"),
        (["knockout", "w.pt", "--model", "nosuchmodule:make", "--data", "d.npz"], "cannot import"),
        (["knockout", "w.pt", "--model", "usernet:make_with_input"], "--data"),
        (
            [
                "knockout",
                "w.pt",
                "--model",
                "usernet:make_with_input",
                "--data",
                "d.npz",
                "--function",
                "x=9",
            ],
            "does not exist",
        ),
        (
            ["knockout", "d.npz", "--model", "usernet:make_with_input", "--data", "d.npz"],
            "do not fit the model",
        ),
        (["knockout", "w.pt", "--function", "a=1"], "go with --model"),
    ],
)
def test_bad_user_input_is_one_line(project, capsys, argv, words):
    assert main([*argv, "--no-progress", "--json", "out.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (project / "out.json").exists()
