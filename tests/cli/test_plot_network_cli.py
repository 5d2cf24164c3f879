"""``modscope plot network FILE --model PKG.MODULE:FACTORY`` (issue 27): any network `score` reads,
drawn in layers and coloured by --clusters or --score; bad input one line, exit 2, nothing written."""

from __future__ import annotations

import pytest
import torch

import modscope
from modscope.cli import main
from modscope.runtime.atomic import write_json
from tests.helpers.nets import TinyResNet

PNG = b"\x89PNG"
MODEL = ["--model", "tests.helpers.nets:TinyResNet", "--input-shape", "1,3,8,8"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("resnet") / "w.pt"
    torch.save(TinyResNet().state_dict(), path)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("modscope: error:")
    return err


def test_a_users_residual_network_drawn_with_its_clusters(weights, tmp_path, capsys):
    out = tmp_path / "net.png"
    argv = ["plot", "network", str(weights), *MODEL, "--clusters", "3", "--out", str(out), "--dpi", "40"]
    assert main(argv) == 0
    assert out.read_bytes().startswith(PNG) and f"wrote {out}" in capsys.readouterr().out


def test_a_users_residual_network_coloured_by_its_score(weights, tmp_path):
    net = modscope.network(TinyResNet(), example_input=torch.zeros(1, 3, 8, 8))
    score = tmp_path / "score.json"
    write_json(score, modscope.score(net, n_clusters=3, n_shuffles=1).to_dict())
    out = tmp_path / "scored.svg"
    argv = [
        "plot",
        "network",
        str(weights),
        *MODEL,
        "--score",
        str(score),
        "--quantile",
        "0.5",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert b"<svg" in out.read_bytes()[:400]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--model", "nosuchmodule:make"], "cannot import"),
        (["--input-shape", "1,3,8,8"], "--input-shape goes with --model"),
        ([], "residual shortcut"),  # a state dict alone does not say how the forward joins blocks
        ([*MODEL, "--clusters", "2", "--score", "s.json"], "either --clusters or --score"),
        ([*MODEL, "--quantile", "1.5"], "--quantile must be in [0, 1)"),
        (["--demo-model", "a", "--model", "b"], "--demo-model NAME once"),  # --model b: its old spelling
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(weights, tmp_path, capsys, extra, words):
    out = tmp_path / "net.png"
    assert main(["plot", "network", str(weights), *extra, "--out", str(out)]) == 2
    assert words in _one_line_error(capsys)
    assert not out.exists()


def test_a_score_of_another_network_is_refused(weights, tmp_path, capsys):
    score = tmp_path / "other.json"
    graph = modscope.load_graph(torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(5, 3)))
    write_json(score, modscope.score(graph, n_clusters=2, n_shuffles=1).to_dict())
    out = tmp_path / "net.png"
    assert main(["plot", "network", str(weights), *MODEL, "--score", str(score), "--out", str(out)]) == 2
    assert "one entry per graph node" in _one_line_error(capsys)
    assert not out.exists()
