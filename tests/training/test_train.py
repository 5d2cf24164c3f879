"""The trainer: learning, reproducibility, pruning, BIMT wiring, checkpoints and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from modscope.errors import ModscopeError
from modscope.tasks import get_task
from modscope.tasks.base import Task
from modscope.training.checkpoint import load_checkpoint
from modscope.training.pruning import magnitude_mask, polynomial_sparsity
from modscope.training.trainer import forward, make_config, train


def _blobs(n=240, seed=0) -> Task:
    """3 Gaussian blobs in 6-D, linearly separable: a net learns it in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 6, generator=g) * 3
    y = torch.arange(n) % 3
    x = centers[y] + torch.randn(n, 6, generator=g)
    half = n // 2
    return Task("blobs", x[:half], y[:half, None], x[half:], y[half:, None], "ce", 6, 3,
                output_groups=(3,), params={"n": n},
                defaults={"hidden": [16, 16], "steps": 60, "batch_size": 32, "lr": 1e-2,
                          "activation": "relu", "bimt_top_k": 4, "bimt_swap_every": 10,
                          "bimt_lambda": 1e-3, "bimt_y_star": 0.2})


def _regression(n=80) -> Task:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 4, generator=g) * 2 - 1
    y = torch.stack([x[:, 0] * x[:, 2], x[:, 1] + x[:, 3]], 1)
    return Task("reg", x[:60], y[:60], x[60:], y[60:], "mse", 4, 2, output_groups=(1, 1),
                defaults={"hidden": [8, 8], "steps": 40, "batch_size": None, "lr": 5e-3,
                          "activation": "silu"})


def _tokens(vocab=7) -> Task:
    a, b = torch.meshgrid(torch.arange(vocab), torch.arange(vocab), indexing="ij")
    x = torch.stack([a.flatten(), b.flatten()], 1)
    y = ((x[:, 0] + x[:, 1]) % vocab)[:, None]
    return Task("tok", x[:40], y[:40], x[40:], y[40:], "ce", 2, vocab, output_groups=(vocab,),
                vocab_size=vocab, n_tokens=2,
                defaults={"hidden": [12, 12], "steps": 30, "batch_size": None, "lr": 1e-2,
                          "embed_dim": 4, "activation": "silu", "bimt_top_k": 5,
                          "bimt_swap_every": 5, "bimt_reduction": "mean", "bimt_lambda": 0.01})


def test_learns_and_reports_metrics():
    res = train(_blobs(), progress=False)
    m = res.metrics
    assert m["test_accuracy"] >= 0.9 and m["train_accuracy"] >= 0.9
    assert m["steps"] == 60 and m["sparsity"] == 0.0 and m["seconds"] > 0
    assert set(m) >= {"test_loss", "train_loss"}
    ck = res.checkpoint
    assert ck.architecture.widths == (6, 16, 16, 3)
    assert ck.task == {"name": "blobs", "params": {"n": 240}}
    assert ck.train_config["lr"] == 1e-2 and ck.train_config["batch_size"] == 32
    assert "seconds" not in ck.metrics  # wall time would break byte-identical checkpoints
    json.dumps(res.to_dict(), allow_nan=False)


def test_regression_metrics_are_losses():
    m = train(_regression(), progress=False).metrics
    assert "test_accuracy" not in m and m["test_loss"] < 1.0


def test_same_seed_same_bytes_and_global_rng_untouched(tmp_path):
    task = _blobs()
    state = torch.random.get_rng_state()
    paths = []
    for i, seed in enumerate((3, 3, 4)):
        res = train(task, seed=seed, dropout=0.2, steps=20, bimt=True, progress=False)
        paths.append(res.save(tmp_path / f"c{i}.pt"))
    assert torch.equal(torch.random.get_rng_state(), state)
    blobs = [p.read_bytes() for p in paths]
    assert blobs[0] == blobs[1]
    assert blobs[0] != blobs[2]


def test_epochs_steps_and_full_batch():
    task = _blobs()  # 120 training examples
    assert make_config(task, epochs=2, batch_size=32).steps == 8
    assert make_config(task, epochs=3, batch_size=None).steps == 3
    assert make_config(task, batch_size=500).batch_size is None
    assert make_config(task).batch_size == 32


@pytest.mark.parametrize(("option", "value"), [("steps", "abc"), ("steps", float("nan")), ("steps", 2.5),
                                               ("seed", None), ("seed", -1), ("batch_size", True)])
def test_counts_that_are_not_integers_are_refused_in_one_line(option, value):
    with pytest.raises(ModscopeError, match="must be an integer >=") as err:
        make_config(_blobs(), **{option: value})
    assert "\n" not in str(err.value)


def test_weight_decay_defaults_and_effect():
    task = _blobs()
    task.defaults["weight_decay"] = 0.5
    assert make_config(task).weight_decay == 0.5
    assert make_config(task, bimt=True).weight_decay == 0.0  # BIMT: AdamW, decay 0 (spec)
    assert make_config(task, bimt=True, weight_decay=0.1).weight_decay == 0.1
    size = lambda r: sum(float(v.square().sum()) for v in r.checkpoint.state_dict.values())  # noqa: E731
    assert size(train(task, progress=False)) < size(train(task, weight_decay=0.0, progress=False))


def test_l1_makes_weights_smaller():
    task = _blobs()
    l1 = lambda r: sum(float(v.abs().sum()) for k, v in r.checkpoint.state_dict.items()  # noqa: E731
                       if k.endswith("weight"))
    plain = train(task, steps=80, progress=False)
    reg = train(task, steps=80, l1=1e-2, progress=False)
    assert l1(reg) < 0.7 * l1(plain)


def test_polynomial_sparsity_schedule():
    assert polynomial_sparsity(0, 100, 0.9) == pytest.approx(0.5)
    assert polynomial_sparsity(100, 100, 0.9) == pytest.approx(0.9)
    assert polynomial_sparsity(50, 100, 0.9) == pytest.approx(0.9 - 0.4 * 0.125)
    assert polynomial_sparsity(0, 100, 0.3) == pytest.approx(0.3)  # target below 50 %


def test_magnitude_mask_is_exact():
    w = torch.randn(7, 11, generator=torch.Generator().manual_seed(0))
    m = magnitude_mask(w, 0.6)
    assert int((~m).sum()) == round(0.6 * 77)
    assert float(w[m].abs().min()) >= float(w[~m].abs().max())


def test_pruning_reaches_exact_sparsity_and_pruned_weights_stay_zero():
    task = _blobs()
    res = train(task, steps=30, prune=0.75, prune_steps=25, progress=False)
    sd = res.checkpoint.state_dict
    for name in ("layers.0.weight", "layers.1.weight", "layers.2.weight"):
        w = sd[name]
        assert int((w == 0).sum()) == round(0.75 * w.numel())
    assert res.metrics["sparsity"] == pytest.approx(0.75, abs=0.01)
    assert res.metrics["steps"] == 55
    assert res.metrics["test_accuracy"] >= 0.85
    # the mask of the last refresh holds through further optimizer steps
    more = train(task, steps=30, prune=0.75, prune_steps=40, progress=False)
    assert more.metrics["sparsity"] == pytest.approx(res.metrics["sparsity"])


@pytest.mark.parametrize("make_task", [_blobs, _tokens])
def test_bimt_checkpoint_round_trip(tmp_path, make_task):
    task = make_task()
    res = train(task, bimt={"threshold": 0.0}, progress=False)
    ck = res.checkpoint
    perms = ck.bimt["permutations"]
    assert res.metrics["swaps"] > 0
    assert any(not torch.equal(p, torch.arange(len(p))) for p in (perms[0], perms[-1]))
    assert ck.bimt["top_k"] == task.defaults["bimt_top_k"]
    assert ck.train_config["bimt"]["swap_every"] == task.defaults["bimt_swap_every"]
    path = res.save(tmp_path / "b.pt")
    model = load_checkpoint(path).model()
    with torch.no_grad():
        out = model(task.x_test)
    metric = task.metric(out, task.y_test)
    assert metric == pytest.approx(res.metrics["test_accuracy"], abs=1e-6)


def test_plain_checkpoint_round_trip(tmp_path):
    task = _regression()
    res = train(task, progress=False)
    model = load_checkpoint(res.save(tmp_path / "p.pt")).model()
    with torch.no_grad():
        assert torch.allclose(model(task.x_test), forward(model, task.x_test))
        loss = float(task.loss(model(task.x_test), task.y_test))
    assert loss == pytest.approx(res.metrics["test_loss"], rel=1e-5)


def test_bimt_threshold_zeroes_small_parameters():
    res = train(_blobs(), bimt={"threshold": 0.05}, progress=False)
    for v in res.checkpoint.state_dict.values():
        assert bool(((v == 0) | (v.abs() >= 0.05)).all())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": "16,x"}, "hidden widths"),
        ({"hidden": [16, 0]}, "hidden widths"),
        ({"prune": 1.0}, "prune"),
        ({"prune": 0.0}, "prune"),
        ({"steps": 0}, "steps"),
        ({"steps": 5, "epochs": 1}, "not both"),
        ({"lr": -1.0}, "lr"),
        ({"dropout": 1.0}, "dropout"),
        ({"activation": "swish"}, "activation"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch size"),
        ({"bimt": {"reduction": "max"}}, "reduction"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ModscopeError, match=message):
        train(_blobs(), progress=False, **kwargs)


def test_cuda_device_works_or_fails_clearly():
    if torch.cuda.is_available():
        assert train(_blobs(), device="cuda", steps=5, progress=False).metrics["steps"] == 5
    else:
        with pytest.raises(ModscopeError, match="CUDA is not available"):
            train(_blobs(), device="cuda", progress=False)


def test_cli_train_writes_checkpoint_and_json(tmp_path, capsys):
    from modscope.cli import main

    out, js = tmp_path / "m.pt", tmp_path / "m.json"
    rc = main(["train", "--task", "formula-independence", "--steps", "30", "--hidden", "6,5",
               "--bimt", "--bimt-top-k", "2", "--bimt-swap-every", "10", "--bimt-lambda", "0.01",
               "--seed", "1", "--out", str(out), "--json", str(js), "--no-progress"])
    assert rc == 0 and "formula-independence 4-6-5-2 BIMT" in capsys.readouterr().out
    ck = load_checkpoint(out)
    assert ck.bimt["top_k"] == 2 and ck.bimt["lam"] == 0.01 and ck.seed == 1
    data = json.loads(js.read_text())
    assert data["steps"] == 30 and data["bimt"]["swap_every"] == 10
    assert {"train_loss", "test_loss", "seconds", "sparsity"} <= set(data)


@pytest.mark.parametrize(
    "argv",
    [
        ["--task", "no-such-task"],
        ["--task", "moons", "--hidden", "4,-1"],
        ["--task", "moons", "--prune", "1.2"],
        ["--task", "moons", "--steps", "0"],
        ["--task", "moons", "--batch-size", "lots"],
        ["--task", "moons", "--bimt-A", "2"],
        ["--task", "moons", "--device", "cuda:99"],
    ],
)
def test_cli_train_bad_input_is_one_line_exit_2(tmp_path, capsys, argv):
    from modscope.cli import main

    assert main(["train", *argv, "--out", str(tmp_path / "x.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modscope: error:") and "\n" not in err
    assert not (tmp_path / "x.pt").exists()


# -- the reference recipe (issue 14: Filan et al.'s Keras training) -----------------------------
def test_recipe_fills_only_unset_options():
    from modscope.training.trainer import TrainConfig

    task = get_task("digits")
    cfg = TrainConfig(recipe="filan2021", prune=0.9).resolve(task)
    per_epoch = -(-task.x_train.shape[0] // 128)
    assert (cfg.init, cfg.lr, cfg.batch_size, cfg.prune_every, cfg.prune_fresh_optimizer) == (
        "glorot", 1e-3, 128, 10, True)
    assert cfg.steps == 20 * per_epoch and cfg.prune_steps == 20 * per_epoch and cfg.epochs == 20
    explicit = TrainConfig(
        recipe="filan2021", steps=7, lr=0.01, init="torch", prune=0.5, prune_steps=3
    ).resolve(task)
    assert (explicit.steps, explicit.lr, explicit.init, explicit.prune_steps) == (7, 0.01, "torch", 3)
    plain = TrainConfig().resolve(task)  # no recipe: the defaults are unchanged
    assert (plain.init, plain.prune_fresh_optimizer, plain.recipe) == ("torch", False, None)
    with pytest.raises(ModscopeError, match="unknown recipe"):
        TrainConfig(recipe="keras").resolve(task)


def test_glorot_init_is_keras_glorot_uniform_with_zero_biases():
    from modscope.training.models import Architecture
    from modscope.training.trainer import init_model

    net = init_model(Architecture((300, 200, 10)), torch.Generator().manual_seed(0), "glorot")
    w = net.layers[0].weight.detach()
    bound = (6 / (300 + 200)) ** 0.5
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.98 * bound
    assert float(w.var()) == pytest.approx(bound**2 / 3, rel=0.02)  # U(-b, b): variance b^2 / 3
    assert all(float(layer.bias.detach().abs().max()) == 0.0 for layer in net.layers)


def test_prune_every_and_fresh_optimizer_change_the_pruning_only():
    task = get_task("digits")
    common = dict(steps=20, hidden=(16,), prune=0.8, prune_steps=30, seed=3, progress=False)
    every10 = train(task, prune_every=10, **common).checkpoint.state_dict
    every30 = train(task, prune_every=30, **common).checkpoint.state_dict
    fresh = train(task, prune_every=10, prune_fresh_optimizer=True, **common).checkpoint.state_dict
    w = "layers.0.weight"
    assert not torch.equal(every10[w], every30[w]) and not torch.equal(every10[w], fresh[w])
    for sd in (every10, every30, fresh):  # every layer ends exactly at the target
        assert float((sd[w] == 0).float().mean()) == pytest.approx(0.8, abs=1 / sd[w].numel())


def test_onehot_mse_loss_and_bimt_training_defaults(tmp_path):
    import numpy as np

    from modscope.data.metrics import onehot_mse
    from modscope.training.trainer import TrainConfig

    out = torch.randn(5, 3)
    y = torch.tensor([[0], [2], [1], [1], [0]])
    assert float(onehot_mse(out, y, 3)) == pytest.approx(float(((out - torch.eye(3)[y[:, 0]]) ** 2).mean()))
    rng = np.random.default_rng(0)  # a tiny MNIST-format file: the mnist task reads any such data
    np.savez(tmp_path / "m.npz", x_train=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 64), x_test=rng.integers(0, 256, (16, 28, 28), dtype=np.uint8),
             y_test=rng.integers(0, 10, 16))
    task = get_task("mnist", data=tmp_path / "m.npz")
    plain = TrainConfig().resolve(task)
    bimt = TrainConfig(bimt=True).resolve(task)
    assert plain.hidden == (256, 256, 256, 256) and plain.loss == "task"
    assert (bimt.hidden, bimt.steps, bimt.loss, bimt.lr) == ((100, 100), 40000, "mse_onehot", 1e-3)
    assert bimt.bimt.lambdas == (0.01, 0.1, 1.0) and bimt.bimt.output_layout == "ring"
    phases = [bimt.bimt.lambda_at(s, 400) for s in (0, 99, 100, 299, 300, 399)]
    assert phases == [0.01, 0.01, 0.1, 0.1, 1.0, 1.0]
    r = train(task, steps=4, bimt=True, hidden=(9, 9), progress=False)
    assert r.checkpoint.train_config["loss"] == "mse_onehot"


def test_cli_train_recipe(tmp_path):
    import json

    from modscope.cli import main

    out = tmp_path / "m.pt"
    assert main(["train", "--task", "digits", "--recipe", "filan2021", "--steps", "3", "--hidden", "8",
                 "--out", str(out), "--json", str(tmp_path / "m.json"), "--no-progress"]) == 0
    cfg = json.loads((tmp_path / "m.json").read_text())["train_config"]
    assert cfg["recipe"] == "filan2021" and cfg["init"] == "glorot" and cfg["steps"] == 3
    assert main(["train", "--task", "formula-independence", "--bimt", "--bimt-lambdas", "1,2",
                 "--out", str(out)]) == 2
