"""Devices for the model side (issue 26): knockout, masks, training, fit_model, the CLI's --device,
and knockouts at GPU scale (the intact prefix replayed for every lesion).

Every test runs on the CPU through the same code paths (``device="cpu"``) and again on CUDA where
there is one. Oracles: the same run with the model where it is (the CPU) and the whole forward for
every lesion (``reuse=False``); tolerances are float rounding across devices (1e-4 relative on
trained weights, 1e-5 on lesioned MSEs), never bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from modscope import fit_model, knockout, train, train_masks
from modscope.cli import main
from modscope.data import load_data
from modscope.errors import ModscopeError
from modscope.graphs.tracing import trace_network
from modscope.lesions.evaluator import UnitEvaluator
from modscope.lesions.prefix import PrefixReuse
from modscope.runtime.modules import device_errors, model_device, on_device
from modscope.training.checkpoint import load_checkpoint
from tests.helpers import nets

CUDA = torch.cuda.is_available()
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="no CUDA")]),
]
no_cuda_here = pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")

OOM = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which "
    "1.50 GiB is free. Of the allocated memory 70.00 GiB is allocated by PyTorch"
)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class SharedRelu(nn.Module):
    """One in-place ReLU module called three times, functional code between modules, a residual
    add: what a replayed prefix must survive (call counts, in-place writes, tensors reused)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.act = nn.ReLU(inplace=True)
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.act(self.inp(x * 2.0))
        h = h + self.act(self.a(h))
        return self.out(self.act(self.b(h)) - 0.1)


class BatchSwitch(nn.Module):
    """Calls a different module for batches above 2 examples: nothing can be replayed safely."""

    def __init__(self) -> None:
        super().__init__()
        self.small, self.big, self.out = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = self.big(x) if x.shape[0] > 2 else self.small(x)
        return self.out(torch.relu(h))


def _regression(model, example, n=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *example.shape[1:]), generator=gen)
    with torch.no_grad():
        y = model(x) + 0.1 * torch.randn(model(x).shape, generator=gen)
    return load_data((x, y), kind="regression")


def _split(x, y):
    """The same examples as train and test split."""
    return {"x_train": x, "y_train": y, "x_test": x, "y_test": y}


def _lesions(graph, group, n=5, seed=0):
    rng = np.random.default_rng(seed)
    les = np.zeros((n, graph.n_nodes), dtype=bool)
    les[:, graph.offsets[group] : graph.offsets[group + 1]] = rng.random((n, graph.sizes[group])) < 0.4
    return les


# -- knockouts at GPU scale: the prefix replayed ---------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "make, example",
    [(lambda: nets.TinyResNet(widths=(4, 8)), torch.zeros(1, 3, 8, 8)), (SharedRelu, torch.zeros(1, 6))],
    ids=["resnet", "shared-inplace-relu"],
)
def test_replayed_prefix_equals_the_whole_forward_for_every_group(device, make, example):
    model = make().eval()
    data = _regression(model, example)
    traced = trace_network(model, example)
    g = traced.graph
    model.to(device)
    reused = 0
    for group in range(1, len(g.sizes) - 1):  # every group a lesion can reach, inputs and outputs aside
        les = _lesions(g, group)
        fast = UnitEvaluator(model, traced, data, batch_size=10)
        slow = UnitEvaluator(model, traced, data, batch_size=10, reuse=False)
        a, b = fast.evaluate_nodes(les), slow.evaluate_nodes(les)
        # a GPU's convolutions (cuDNN, TF32 allowed by torch's default) round differently for a
        # suffix run alone than inside the whole forward: 3e-5 relative seen on an H200
        np.testing.assert_allclose(a.metric, b.metric, rtol=1e-5 if device == "cpu" else 1e-4, atol=1e-7)
        assert fast.note is None and slow.reused == 0
        reused += fast.reused
    assert reused > 0  # later groups skipped the early layers


def test_the_plan_replays_only_outermost_calls_finished_before_the_first_reader():
    model = nets.TinyResNet(widths=(4, 8)).eval()
    traced = trace_network(model, torch.zeros(1, 3, 8, 8))
    sites = [model.get_submodule(s.module) if s.module else model for s in traced.sites]
    prefix = PrefixReuse(model, torch.randn(2, 3, 8, 8), sites)
    last = max(range(len(sites)), key=lambda i: min(c.enter for c in prefix.calls if c.module is sites[i]))
    plan = prefix.plan([last])
    first = min(c.enter for c in prefix.calls if c.module is sites[last])
    assert plan and all(c.exit < first for c in plan)
    for c in plan:  # none nested in another
        assert not any(p is not c and p.enter < c.enter and c.exit < p.exit for p in plan)
    assert not any(c.module is model for c in plan)


def test_a_model_that_switches_modules_by_batch_size_runs_whole_and_says_why(capsys):
    model = BatchSwitch().eval()
    example = torch.zeros(1, 4)
    data = _regression(model, example, n=12)
    traced = trace_network(model, example)
    les = _lesions(traced.graph, 1)
    ev = UnitEvaluator(model, traced, data, batch_size=6)
    whole = UnitEvaluator(model, traced, data, batch_size=6, reuse=False)
    np.testing.assert_allclose(ev.evaluate_nodes(les).metric, whole.evaluate_nodes(les).metric, rtol=1e-6)
    assert ev.reused == 0 and ev.full > 0
    assert "different modules at different batch sizes" in ev.note and whole.note is None
    labels = np.arange(traced.graph.n_nodes) % 2
    knockout(model, data, labels, example_input=example, n_random=20, batch_size=6, progress=True)
    err = capsys.readouterr().err
    assert "knockout: the model calls different modules at different batch sizes" in err


@pytest.mark.slow  # bf16 on the CPU is slow
def test_bf16_autocast_is_opt_in_and_keeps_a_clear_metric():
    # a classifier with wide margins: bf16 rounding must not move its accuracy (the test that
    # allows the option; fp32 stays the default)
    model = nets.TinyResNet(widths=(4, 8), classes=3).eval()
    example = torch.zeros(1, 3, 8, 8)
    x = torch.randn(200, 3, 8, 8)
    with torch.no_grad():
        logits = model(x)
    top = logits.topk(2, -1).values
    clear = (top[:, 0] - top[:, 1]) > 0.05
    x, y = x[clear], logits[clear].argmax(-1)
    traced = trace_network(model, example)
    labels = np.arange(traced.graph.n_nodes) % 2
    kw = dict(example_input=example, n_random=20, seed=0, batch_size=64)
    plain = knockout(model, (x, y), labels, **kw)
    half = knockout(model, (x, y), labels, precision="bf16", **kw)
    assert plain.intact_accuracy == half.intact_accuracy == 1.0
    for p, h in zip(plain.submodules, half.submodules, strict=True):
        assert abs(p.accuracy - h.accuracy) <= 0.05
    with pytest.raises(ModscopeError, match="precision"):
        knockout(model, (x, y), labels, precision="int8", **kw)


# -- device= in the Python API -------------------------------------------------------------------
@pytest.mark.slow  # knockouts on two devices
@pytest.mark.parametrize("device", DEVICES)
def test_knockout_on_a_device_equals_the_cpu_and_leaves_the_model_where_it_was(device):
    model = nets.TinyResNet(widths=(4, 8)).eval()
    example = torch.zeros(1, 3, 8, 8)
    data = _regression(model, example)
    labels = np.arange(trace_network(model, example).graph.n_nodes) % 3
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kw = dict(example_input=example, n_random=20, seed=1, batch_size=8)
    here = knockout(model, data, labels, **kw).to_dict()
    there = knockout(model, data, labels, device=device, **kw).to_dict()
    assert model_device(model).type == "cpu"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    a, b = here["submodules"], there["submodules"]
    assert len(a) == len(b) > 0
    for s, t in zip(a, b, strict=True):
        # float32 sums in another order on a GPU: 2e-5 relative seen on an H200 (the CPU twin: 1e-5)
        tol = 1e-5 if device == "cpu" else 1e-4
        np.testing.assert_allclose(s["accuracy"], t["accuracy"], rtol=tol)
        np.testing.assert_allclose(s["random_mean"], t["random_mean"], rtol=tol)
        # a std of metrics that each move by ~tol x their size moves by that much in absolute terms
        # (6.5688e-05 vs 6.5653e-05 on an H200, metrics near 0.01)
        std_atol = 1e-9 if device == "cpu" else tol * abs(t["random_mean"])
        np.testing.assert_allclose(s["random_std"], t["random_std"], rtol=tol, atol=std_atol)


@pytest.mark.parametrize("device", DEVICES)
def test_fit_model_on_a_device_sees_the_same_batches_and_hands_the_model_back(device):
    def net():
        torch.manual_seed(3)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    gen = torch.Generator().manual_seed(0)
    data = _split(torch.randn(64, 1, 6, 6, generator=gen), torch.randint(0, 3, (64,), generator=gen))
    a, b = net(), net()
    ra = fit_model(a, data, steps=5, batch_size=16, seed=2)
    rb = fit_model(b, data, steps=5, batch_size=16, seed=2, device=device)
    assert model_device(b).type == "cpu"
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    assert abs(ra.metric - rb.metric) <= 1 / 32 + 1e-9  # at most one test example flips


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA")
def test_a_model_on_the_gpu_takes_data_from_the_cpu():
    # 0.3.0: "input on the CPU, weights on CUDA"
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).cuda()
    data = _split(torch.randn(40, 5), torch.randint(0, 2, (40,)))
    fit_model(model, data, steps=3, batch_size=8)
    assert model_device(model).type == "cuda"
    example = torch.zeros(1, 5)
    labels = np.arange(trace_network(model.cpu(), example).graph.n_nodes) % 2
    model.cuda()
    res = knockout(model, data, labels, example_input=example, n_random=20)
    assert res.submodules and model_device(model).type == "cuda"


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_trained_on_a_device_load_on_the_cpu(device, tmp_path):
    from modscope.tasks import get_task

    task = get_task("digits", seed=0)
    result = train(task, steps=3, hidden=(8,), device=device, progress=False)
    path = tmp_path / "net.pt"
    result.save(path)
    ckpt = load_checkpoint(path)
    assert all(t.device.type == "cpu" for t in ckpt.state_dict.values())
    assert model_device(ckpt.model()).type == "cpu"


@pytest.mark.parametrize("device", DEVICES)
def test_masks_learn_on_a_device_and_leave_the_model_alone(device):
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = _split(torch.randn(30, 4), torch.randint(0, 2, (30,)))
    res = train_masks(model, data, ["a=0", "b=1"], steps=3, batch_size=4, device=device)
    assert set(res.functions) >= {"a", "b"}
    assert all(m.shape == model.state_dict()[n].shape for f in ("a", "b") for n, m in res.masks[f].items())
    assert model_device(model).type == "cpu"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # default: where the model is (the same run as device="cpu" here, to the bit)
    same = train_masks(model, data, ["a=0", "b=1"], steps=3, batch_size=4)
    if device == "cpu":
        assert all(torch.equal(res.masks["a"][n], same.masks["a"][n]) for n in res.masks["a"])


def test_the_device_flag_is_checked_without_torch_and_demo_keys_keep_the_cpus():
    import argparse

    from modscope.cli.options import device_name
    from modscope.workflows.demo import DemoRun

    assert device_name("CUDA:1") == "cuda:1" and device_name("cpu") == "cpu"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown device 'gpu'"):
        device_name("gpu")
    run = DemoRun("d", "digits", {"steps": 3}, 2)
    assert run.key(0) == run.key(0, "cpu") != run.key(0, "cuda")


def test_on_device_gives_every_tensor_back_also_on_error():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    params = list(model.parameters())
    with pytest.raises(RuntimeError, match="inside"), on_device(model, "cpu") as dev:
        assert dev.type == "cpu"
        raise RuntimeError("inside")
    assert all(p is q for p, q in zip(params, model.parameters(), strict=True))
    if CUDA:
        with pytest.raises(RuntimeError, match="inside"), on_device(model, "cuda"):
            assert model_device(model).type == "cuda"
            raise RuntimeError("inside")
        assert model_device(model).type == "cpu"
        assert all(p is q for p, q in zip(params, model.parameters(), strict=True))


# -- one line for what cannot be done --------------------------------------------------------------
def test_a_model_on_several_devices_is_refused_in_one_line():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, device="meta"))
    with pytest.raises(ModscopeError, match="several devices .*pass device="):
        model_device(model)


def test_unknown_devices_are_refused_in_one_line():
    model = nn.Sequential(nn.Linear(4, 2))
    data = _split(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    with pytest.raises(ModscopeError, match="unknown device"):
        fit_model(model, data, steps=1, device="tpu")
    with pytest.raises(ModscopeError, match="device must be a name"):
        knockout(model, data, [0, 0], example_input=torch.zeros(1, 4), device=3)


@no_cuda_here
def test_a_missing_gpu_is_one_line_before_any_work():
    model = nn.Sequential(nn.Linear(4, 2))
    data = _split(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    for call in (
        lambda: fit_model(model, data, steps=1, device="cuda"),
        lambda: train_masks(model, data, ["a=0"], steps=1, device="cuda:1"),
        lambda: knockout(model, data, np.zeros(6, int), example_input=torch.zeros(1, 4), device="cuda"),
    ):
        with pytest.raises(ModscopeError, match="CUDA is not available"):
            call()


class _Hungry(nn.Module):
    """Traces on one example, runs out of device memory on a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        if x.shape[0] > 1:
            raise torch.OutOfMemoryError(OOM)
        return self.b(torch.relu(self.a(x)))


def test_running_out_of_device_memory_is_one_line_that_says_what_to_lower():
    with pytest.raises(ModscopeError) as info, device_errors("--batch-size"):
        raise torch.OutOfMemoryError(OOM)
    text = str(info.value)
    assert "\n" not in text
    assert "needed 2.00 GiB more" in text and "79.19 GiB" in text and "1.50 GiB free" in text
    assert text.endswith("lower --batch-size")
    model = _Hungry()
    data = _split(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    with pytest.raises(ModscopeError, match=r"out of device memory .*lower batch_size"):
        fit_model(model, data, steps=1)
    with pytest.raises(ModscopeError, match=r"out of device memory .*lower batch_size \(--batch-size\)"):
        example = torch.zeros(1, 4)
        labels = np.zeros(trace_network(model, example).graph.n_nodes, int)
        knockout(model, data, labels, example_input=example, n_random=20)


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def mlp_checkpoint(tmp_path):
    from modscope.tasks import get_task

    path = tmp_path / "net.pt"
    train(get_task("digits", seed=0), steps=2, hidden=(8,), progress=False).save(path)
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["knockout", "{ckpt}", "--clusters", "2", "--random", "20", "--json", "{out}"],
        ["masks", "{ckpt}", "--steps", "1", "--json", "{out}"],
        ["train", "--task", "digits", "--steps", "1", "--hidden", "4", "--out", "{out}"],
        ["demo", "--quick", "--out", "{out}"],
    ],
    ids=["knockout", "masks", "train", "demo"],
)
@pytest.mark.parametrize("device, message", [("tpu", "unknown device 'tpu'"), ("cuda:0", "CUDA")])
def test_cli_device_errors_are_one_line_exit_2_and_write_nothing(argv, device, message, mlp_checkpoint,
                                                                 tmp_path, capsys):
    if device.startswith("cuda") and CUDA:
        pytest.skip("checks the refusal on a machine without CUDA")
    out = tmp_path / "written"
    args = [a.format(ckpt=mlp_checkpoint, out=out) for a in argv] + ["--no-progress", "--device", device]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modscope: error:") and "\n" not in err and message in err
    assert not out.exists()


@pytest.mark.parametrize("device", DEVICES)
def test_cli_knockout_on_a_device_writes_what_the_cpu_writes(device, mlp_checkpoint, tmp_path):
    outs = []
    for d in ("cpu", device):
        out = tmp_path / f"{d}.json"
        argv = ["knockout", str(mlp_checkpoint), "--clusters", "2", "--random", "20", "--json", str(out)]
        assert main([*argv, "--no-progress", "--device", d]) == 0
        outs.append(json.loads(out.read_text()))
    a, b = outs
    assert [s["category"] for s in a["submodules"]] == [s["category"] for s in b["submodules"]]
    for s, t in zip(a["submodules"], b["submodules"], strict=True):
        assert abs(s["accuracy"] - t["accuracy"]) <= 1e-9 + 1 / 360
