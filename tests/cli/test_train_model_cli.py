"""``modscope train --model PKG.MODULE:FACTORY --data FILE`` (issue 27): the user's module trained on
their ``.npz`` plainly, with ``--bimt`` or ``--cluster-reg`` on its unit graph, its state dict
written (``--out``) and its record (``--json``); bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest
import torch

from modscope.cli import main
from modscope.graphs.files.user_model import build_model
from modscope.training.fit import evaluate_model
from modscope.workflows.user_models import user_data
from tests.helpers.paths import ROOT
from tests.helpers.user_factories import tiny_data

CNN = "tests.helpers.user_factories:small_cnn"


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # `--model` imports the factory from the working folder, as `python -m`
    tiny_data(tmp_path / "d.npz")
    return tmp_path


def _train(work, *extra: str, model: str = CNN, out: str = "w.safetensors") -> list[str]:
    return [
        "train",
        "--model",
        model,
        "--data",
        str(work / "d.npz"),
        "--steps",
        "4",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--out",
        str(work / out),
        "--json",
        str(work / "r.json"),
        "--no-progress",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "strategy"),
    [
        ([], None),
        (
            [
                "--bimt",
                "--bimt-lambda",
                "0.001",
                "--bimt-swap-every",
                "2",
                "--bimt-top-k",
                "2",
                "--bimt-metric",
                "l2",
            ],
            {"name": "bimt", "lam": 0.001, "swap_every": 2, "top_k": 2, "metric": "l2"},
        ),
        (["--cluster-reg", "0.1", "--cluster-eigs", "2"], {"name": "spectral-graph", "lam": 0.1, "eigs": 2}),
        (
            [
                "--cluster-reg",
                "1",
                "--cluster-loss",
                "golechha",
                "--cluster-reg-clusters",
                "2",
                "--cluster-reg-layers",
                "hidden",
            ],
            {"name": "golechha-graph", "lam": 1.0, "clusters": 2, "layers": "hidden"},
        ),
    ],
)
def test_train_a_users_module_end_to_end(work, capsys, extra, strategy):
    assert main(_train(work, *extra)) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(CNN) and "4 steps" in line and line.endswith(str(work / "w.safetensors"))
    rec = json.loads((work / "r.json").read_text())
    assert rec["model"] == CNN and rec["steps"] == 4 and rec["device"] == "cpu"
    assert rec["settings"]["batch_size"] == 16 and rec["settings"]["lr"] == 0.01
    assert rec["source"]["path"] == str((work / "w.safetensors").resolve())
    if strategy is None:
        assert "strategy" not in rec and "strategy" not in rec["settings"]
    else:
        assert strategy.items() <= rec["settings"]["strategy"].items() and rec["strategy"]
    # the file holds the trained module: loaded into the factory's, it scores what the record says
    module, _ = build_model(CNN, work / "w.safetensors")
    assert evaluate_model(module, user_data(work / "d.npz")) == rec["metric"]


def test_the_same_seed_writes_the_same_weights_as_pt(work):
    assert main(_train(work, "--seed", "5", out="a.pt")) == 0
    assert main(_train(work, "--seed", "5", out="b.pt")) == 0
    a, b = (torch.load(work / n, weights_only=True) for n in ("a.pt", "b.pt"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (lambda w: _train(w, "--task", "digits"), "--task and --model exclude each other"),
        (lambda w: [a for a in _train(w) if a not in ("--data", str(w / "d.npz"))], "--model needs --data"),
        (lambda w: _train(w, out="blocker/w.pt"), "--out"),
        (
            lambda w: _train(w, "--bimt", model="tests.helpers.user_factories:depthwise"),
            "cannot permute unit group",
        ),
        (lambda w: _train(w, out="w.npz"), ".safetensors or .pt"),
        (lambda w: _train(w, "--hidden", "8,8"), "--model does not take --hidden"),
        (lambda w: _train(w, "--device", "cuda:99"), "cuda:99"),
        (lambda w: _train(w, "--cluster-reg", "0.1", "--cluster-reg-every", "2"), "--cluster-reg-every"),
        (lambda w: _train(w, "--bimt-top-k", "2"), "need --bimt"),
        (lambda w: ["train", "--out", str(w / "w.pt")], "--task NAME"),
        (
            lambda w: ["train", "--task", "digits", "--bimt-metric", "l2", "--out", str(w / "w.pt")],
            "go with --model",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(work, capsys, argv, message):
    (work / "blocker").write_text("a file where --out wants a folder")
    before = sorted(p.name for p in work.iterdir())
    assert main(argv(work)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modscope: error:") and message in err and "\n" not in err
    assert sorted(p.name for p in work.iterdir()) == before
