"""The example checkpoints in data/: they load, carry their metrics, and regenerate."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from modscope import load_graph
from modscope.tasks import get_task
from modscope.training.checkpoint import load_checkpoint
from modscope.training.trainer import evaluate
from tests.helpers.paths import ROOT

DATA = ROOT / "data"
EXPECTED = {
    "digits-plain.pt": (64, 64, 64, 10),
    "digits-pruned.pt": (64, 64, 64, 10),
    "independence-plain.pt": (4, 20, 20, 2),
    "independence-bimt.pt": (4, 20, 20, 2),
    "halves-plain.pt": (128, 64, 64, 20),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_checkpoint_loads_and_matches_its_metrics(name):
    ckpt = load_checkpoint(DATA / name)
    assert tuple(ckpt.architecture.widths) == EXPECTED[name]
    assert load_graph(DATA / name).layer_widths == EXPECTED[name]
    recorded = json.loads((DATA / name).with_suffix(".json").read_text())
    task = get_task(ckpt.task["name"], **ckpt.task["params"])
    metrics = evaluate(task, ckpt.model())
    key = "test_accuracy" if "test_accuracy" in recorded else "test_loss"
    assert metrics[key] == pytest.approx(recorded[key], rel=1e-4, abs=1e-6)


def test_digits_examples_reach_95_percent():
    for name in ("digits-plain.pt", "digits-pruned.pt"):
        assert load_checkpoint(DATA / name).metrics["test_accuracy"] >= 0.95


def test_bimt_example_separates_its_two_functions():
    ckpt = load_checkpoint(DATA / "independence-bimt.pt")
    ws = [np.abs(w) > 0 for w in load_graph(ckpt).weights]
    reach = ws[0].astype(int)
    for w in ws[1:]:
        reach = (w.astype(int) @ reach) > 0
    # y1 depends on x1, x3 only; y2 on x2, x4 only (task order)
    assert reach.tolist() == [[True, False, True, False], [False, True, False, True]]


@pytest.mark.slow  # trains an example network again
def test_regenerating_an_example_gives_the_same_network(tmp_path):
    out = tmp_path / "digits-plain.pt"
    cmd = [
        sys.executable,
        "-m",
        "modscope",
        "train",
        "--task",
        "digits",
        "--seed",
        "0",
        "--no-progress",
        "--out",
        str(out),
    ]
    subprocess.run(
        cmd, check=True, capture_output=True, env={"OMP_NUM_THREADS": "1", "PATH": ""}, timeout=300
    )
    a, b = load_checkpoint(out).state_dict, load_checkpoint(DATA / "digits-plain.pt").state_dict
    assert a.keys() == b.keys()
    for k in a:  # bit-identical on the same CPU type; a tolerance keeps other CPUs green
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4)


def test_bimt_example_clusters_split_the_two_functions():
    from modscope import cluster

    labels = cluster(load_graph(DATA / "independence-bimt.pt"), 2, seed=0).labels
    x1, x2, x3, x4 = labels[:4]
    y1, y2 = labels[-2:]
    assert x1 == x3 == y1 and x2 == x4 == y2 and y1 != y2
