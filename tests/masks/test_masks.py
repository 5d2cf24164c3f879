"""Tests for modscope.masks (differentiable weight masks) and modscope.alignment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix
from torch import nn

from modscope.data.functions import CONTROL
from modscope.errors import ModscopeError
from modscope.lesions import masked
from modscope.masks import (
    FrozenNet,
    MaskConfig,
    fit_logits,
    load_masks,
    maskable_names,
    overlap_measures,
    train_masks,
)
from modscope.masks.alignment import alignment, incident_counts
from modscope.masks.data import FunctionData, StreamedData
from modscope.masks.gumbel import gumbel_sigmoid_weights, hard_mask_weights, straight_through_grad
from modscope.masks.measures import streamed_scores
from modscope.tasks import Function, Task, class_functions
from modscope.training.models import MLP

# -- fixtures -------------------------------------------------------------------------------------


def planted() -> tuple[MLP, Task]:
    """8-8-4 net made of two disjoint halves: A = sign of x0 (inputs 0-3, hidden 0-3, outputs
    0-1), B = sign of x4 (inputs 4-7, hidden 4-7, outputs 2-3). Each function needs only its
    half; every cross-half weight is zero."""
    g = torch.Generator().manual_seed(0)
    net = MLP([8, 8, 4])
    w1, w2 = torch.zeros(8, 8), torch.zeros(4, 8)
    for h, i, o in ((0, 0, 0), (4, 4, 2)):  # (first hidden, first input, first output) of a half
        w1[h, i], w1[h + 1, i] = 3.0, -3.0  # h = relu(x), h+1 = relu(-x)
        w1[h + 2 : h + 4, i : i + 4] = 0.1 * torch.randn(2, 4, generator=g)  # distractors
        w2[o, h + 1], w2[o + 1, h] = 3.0, 3.0  # class 0: x <= 0, class 1: x > 0
        w2[o : o + 2, h + 2 : h + 4] = 0.1 * torch.randn(2, 2, generator=g)
    with torch.no_grad():
        net.layers[0].weight.copy_(w1)
        net.layers[1].weight.copy_(w2)
        net.layers[0].bias.zero_()
        net.layers[1].bias.zero_()
    x = torch.randn(1536, 8, generator=g)
    y = torch.stack([(x[:, 0] > 0).long(), (x[:, 4] > 0).long()], 1)
    task = Task(
        "planted", x[:1024], y[:1024], x[1024:], y[1024:], "ce", 8, 4, (2, 2),
        functions={"A": Function("A", groups=(0,)), "B": Function("B", groups=(1,))},
    )
    return net.eval(), task


def random_mlp(widths, seed=0) -> MLP:
    g = torch.Generator().manual_seed(seed)
    net = MLP(widths)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(max(p.shape[-1], 1)))
    return net


def random_task(n_in=6, n_classes=3, n=256, seed=0) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=g)
    y = x[:, :n_classes].argmax(1, keepdim=True)
    half = n // 2
    fns = {
        "lo": Function("lo", torch.arange(0, half, 2), torch.arange(0, n - half, 2)),
        "hi": Function("hi", torch.arange(1, half, 2), torch.arange(1, n - half, 2)),
    }
    return Task("rand", x[:half], y[:half], x[half:], y[half:], "ce", n_in, n_classes,
                (n_classes,), functions=fns)


def snapshot(model: nn.Module):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        {k: p.requires_grad for k, p in model.named_parameters()},
        [m.training for m in model.modules()],
        [p.grad for p in model.parameters()],
    )


def assert_same(model: nn.Module, snap) -> None:
    state, flags, training, grads = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    assert [m.training for m in model.modules()] == training
    assert all(p.grad is None for p in model.parameters()) and all(g is None for g in grads)


# -- the model is never modified ---------------------------------------------------------------------


@pytest.mark.slow  # mask training
def test_training_leaves_model_bit_identical():
    net, task = planted()
    net.train()  # a non-default mode must come back too
    net.layers[1].bias.requires_grad_(False)
    snap = snapshot(net)
    res = train_masks(net, task, steps=20, seed=0)
    assert_same(net, snap)
    assert set(res.functions) == {"A", "B", CONTROL}


def test_model_restored_when_training_fails_midway():
    net, task = planted()
    calls = []

    def exploding_loss(out, y):  # raises on its 5th call: an error in the middle of mask training
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("boom")
        return torch.nn.functional.cross_entropy(out[:, :2], y[:, 0])

    bad = task.to_data()
    bad.loss = exploding_loss
    net.train()
    snap = snapshot(net)
    with pytest.raises(RuntimeError, match="boom"):
        train_masks(net, bad, steps=10)
    assert_same(net, snap)


def test_masked_context_restores_also_on_error():
    net = random_mlp([5, 7, 3])
    snap = snapshot(net)
    mask = {"layers.0.weight": torch.rand(7, 5) > 0.5}
    x = torch.randn(4, 5)
    with masked(net, mask):
        assert (net.layers[0].weight[~mask["layers.0.weight"]] == 0).all()
    assert_same(net, snap)
    with pytest.raises(ValueError, match="inside"), masked(net, mask, invert=True):
        assert (net.layers[0].weight[mask["layers.0.weight"]] == 0).all()
        net(x)
        raise ValueError("inside")
    assert_same(net, snap)
    with pytest.raises(ModscopeError, match="shape"):
        with masked(net, {"layers.0.weight": torch.ones(3, 3, dtype=torch.bool)}):
            pass
    with pytest.raises(ModscopeError, match="does not have"):
        with masked(net, {"nope.weight": torch.ones(3, 3, dtype=torch.bool)}):
            pass


# -- mask mechanics ---------------------------------------------------------------------------------


def test_all_ones_mask_reproduces_network_exactly():
    net = random_mlp([6, 16, 16, 4]).eval()
    x = torch.randn(32, 6)
    ref = net(x)
    fz = FrozenNet(net, maskable_names(net))
    assert torch.equal(fz(fz.w[None], x, shared_input=True)[0], ref)
    # hard masks via the straight-through sampler: logits far above the noise keep everything
    eff = gumbel_sigmoid_weights(torch.full((1, fz.n_weights), 1e4), torch.zeros(1, fz.n_weights),
                                 fz.w)
    assert torch.equal(eff[0], fz.w)
    assert torch.equal(fz(eff, x[None])[0], ref)
    # K > 1 goes through vmap (batched matmul): equal up to summation order, which differs between
    # BLAS libraries by a few float32 ulps (1e-6 held on one, not on every one)
    out = fz(fz.w.expand(3, -1), x, shared_input=True)
    assert torch.allclose(out, ref.expand(3, -1, -1), rtol=1e-5, atol=1e-5)
    with masked(net, {n: torch.ones_like(p, dtype=torch.bool) for n, p in net.named_parameters()}):
        assert torch.equal(net(x), ref)


def test_straight_through_matches_literal_formula_and_passes_gradient():
    g = torch.Generator().manual_seed(1)
    K, P, tau = 2, 50, 0.7
    w = torch.randn(P, generator=g)
    noise = torch.logit(torch.rand(K, P, generator=g))
    c = torch.randn(K, P, generator=g)
    l1 = torch.randn(K, P, generator=g).requires_grad_()
    eff = gumbel_sigmoid_weights(l1, noise, w, tau)
    (eff * c).sum().backward()
    l2 = l1.detach().clone().requires_grad_()
    s = torch.sigmoid((l2 + noise) / tau)
    m = (s > 0.5).float() + s - s.detach()
    ref = w * m
    (ref * c).sum().backward()
    assert torch.allclose(eff, ref, atol=1e-6)
    assert set(eff.detach().div(w).round().unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(l1.grad, l2.grad, rtol=1e-5, atol=1e-7)
    assert (l1.grad != 0).float().mean() > 0.9


def test_fused_straight_through_step_equals_the_formula_through_autograd():
    # mask training's hand-fused forward and logit gradient against gumbel_sigmoid_weights'
    g = torch.Generator().manual_seed(2)
    K, P = 3, 40
    w = torch.randn(P, generator=g)
    noise = torch.logit(torch.rand(K, P, generator=g))
    c = torch.randn(K, P, generator=g)
    for tau in (1.0, 0.7):
        logits = torch.randn(K, P, generator=g).requires_grad_()
        eff = gumbel_sigmoid_weights(logits, noise, w, tau)
        (eff * c).sum().backward()
        z = (logits.detach() + noise) / tau
        assert torch.equal(hard_mask_weights(z, w, out=torch.empty(K, P)), eff.detach())
        # d loss / d eff is c; z is overwritten with sigmoid(z)
        assert torch.equal(straight_through_grad(c, z, w, tau, out=torch.empty(K, P)), logits.grad)


def test_logits_get_nonzero_gradient_in_training():
    net, task = planted()
    fz = FrozenNet(net, maskable_names(net))
    data = [FunctionData("A", torch.arange(1024), (0,))]
    seen = []
    fit_logits(fz, task, data, steps=1, beta=0.0,
               callback=lambda step, lg: seen.append(lg.clone()))
    moved = seen[0][0] != 2.0  # Adam moves every logit that got a nonzero gradient by ~lr
    w1, w2 = moved[:64].view(8, 8), moved[64:].view(4, 8)
    assert w1[:4, :4].sum() + w2[:2, :4].sum() >= 5  # A's half gets gradient through the STE
    assert not w1[4:].any() and not w2[2:].any()  # B's half cannot affect A's loss: exactly 0


def test_sparsity_term_adds_beta_to_every_logits_gradient(monkeypatch):
    """The loss is task loss + beta * sum(l) (spec §5): its gradient in each logit is the task's
    plus exactly beta, whatever the batch and noise (the same here: same seed)."""
    import modscope.masks.fit as fit

    net, task = planted()
    fz = FrozenNet(net, maskable_names(net))
    data = [FunctionData("A", torch.arange(1024), (0,))]
    grads = {}

    class Recorder:  # stands in for Adam: keeps the gradient it is handed
        def __init__(self, params, lr):
            self.params = params

        def step(self):
            grads.setdefault(self.beta, self.params[0].grad.clone())

    for beta in (0.0, 1e-3, 0.25):
        Recorder.beta = beta
        monkeypatch.setattr(fit, "fused_adam", Recorder)
        fit_logits(fz, task, data, steps=1, beta=beta, seed=3)
    for beta in (1e-3, 0.25):
        torch.testing.assert_close(grads[beta] - grads[0.0], torch.full_like(grads[0.0], beta),
                                   rtol=0, atol=1e-6)
    # the default is the reference's 1e-4 / batch size
    assert MaskConfig(batch_size=32).sparsity_weight == pytest.approx(1e-4 / 32)


# -- measures -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=12, max_size=12), min_size=2, max_size=4))
def test_overlap_measures_match_set_arithmetic(rows):
    masks = torch.tensor(rows)
    names = [f"f{i}" for i in range(len(rows))]
    sets = [{j for j, b in enumerate(r) if b} for r in rows]
    out = overlap_measures(masks, names, function_rows=range(len(rows) - 1))  # last = control
    for i, si in enumerate(sets):
        assert out["kept_fraction"][names[i]] == pytest.approx(len(si) / 12)
        for j in range(i + 1, len(sets)):
            sj, key = sets[j], f"{names[i]}|{names[j]}"
            iou = len(si & sj) / len(si | sj) if si | sj else None
            iomin = len(si & sj) / min(len(si), len(sj)) if min(len(si), len(sj)) else None
            assert out["iou"][key] == (pytest.approx(iou) if iou is not None else None)
            assert out["iomin"][key] == (pytest.approx(iomin) if iomin is not None else None)
        others = [sets[j] for j in range(len(sets) - 1) if j != i]  # the last row is a control
        if not others or not si:
            assert out["shared"][names[i]] is None
        else:
            shared = len(si & set().union(*others)) / len(si)
            assert out["shared"][names[i]] == pytest.approx(shared)


def test_overlap_measures_hand_example():
    m = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0]], dtype=torch.bool)
    out = overlap_measures(m, ["a", "b", "c"])
    assert out["iou"]["a|b"] == pytest.approx(2 / 4)
    assert out["iomin"]["a|b"] == pytest.approx(2 / 3)
    assert out["iou"]["a|c"] == 0.0
    assert out["shared"] == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3), "c": 0.0}
    assert out["kept_fraction"]["c"] == pytest.approx(1 / 6)


def test_per_class_accuracy_matches_confusion_matrix():
    net = random_mlp([6, 12, 3], seed=3)
    task = random_task()
    fz = FrozenNet(net, maskable_names(net))
    keep = torch.rand(2, fz.n_weights, generator=torch.Generator().manual_seed(0)) > 0.3
    stream = StreamedData(task.to_data(), "train", (3,))
    _, acc, _ = streamed_scores(fz, stream, fz.w * keep, [], batch_size=7)  # batches of 7 add up
    for k in range(2):
        with masked(net, {"layers.0.weight": keep[k, :72].view(12, 6),
                          "layers.1.weight": keep[k, 72:].view(3, 12)}):
            pred = net(task.x_test).argmax(1)
        cm = confusion_matrix(task.y_test[:, 0], pred, labels=[0, 1, 2])
        np.testing.assert_allclose(acc[k], cm.diagonal() / cm.sum(1), rtol=1e-12)


# -- learning --------------------------------------------------------------------------------------


def test_planted_masks_find_their_half_together_and_alone():
    net, task = planted()
    res = train_masks(net, task, steps=300, seed=0, keep_logits=True)
    a0, a1 = res.masks["A"]["layers.0.weight"], res.masks["A"]["layers.1.weight"]
    b0, b1 = res.masks["B"]["layers.0.weight"], res.masks["B"]["layers.1.weight"]
    # each mask drops the other half entirely and keeps its own essential weights
    assert not a0[4:].any() and not a1[2:].any()
    assert not b0[:4].any() and not b1[:2].any()
    assert a0[0, 0] and a0[1, 0] and a1[1, 0] and a1[0, 1]
    assert b0[4, 4] and b0[5, 4] and b1[3, 4] and b1[2, 5]
    assert res.full_accuracy["A"] == res.full_accuracy["B"] == 1.0
    assert res.accuracy["A"]["A"] >= 0.99 and res.accuracy["B"]["B"] >= 0.99
    assert res.accuracy["A"]["B"] < 0.7 and res.accuracy["B"]["A"] < 0.7
    # removing exactly A's weights kills A and spares B (and vice versa)
    assert res.inverted_accuracy["A"]["A"] < 0.7 and res.inverted_accuracy["A"]["B"] >= 0.99
    assert res.inverted_accuracy["B"]["B"] < 0.7 and res.inverted_accuracy["B"]["A"] >= 0.99
    assert res.iou["A|B"] == 0.0 and res.shared["A"] == 0.0
    assert res.layers["layers.0.weight"]["iou"]["A|B"] == 0.0
    assert res.accuracy[CONTROL]["A"] >= 0.99 and res.accuracy[CONTROL]["B"] >= 0.99
    # the same mask trained alone (K = 1) equals the one trained with the others
    alone = train_masks(net, task, ["A"], steps=300, seed=0, control=False, keep_logits=True)
    for n in res.layer_names:
        assert torch.equal(alone.masks["A"][n], res.masks["A"][n])
        assert torch.allclose(alone.logits["A"][n], res.logits["A"][n], atol=1e-4)


def test_threads_give_identical_masks_history_and_restore_torch_threads():
    net = random_mlp([6, 16, 3], seed=1)
    task = random_task()
    before = torch.get_num_threads()
    one = train_masks(net, task, steps=30, seed=2, record_at=[10], keep_logits=True)
    for threads in (2, 3, -1):
        many = train_masks(net, task, steps=30, seed=2, record_at=[10], keep_logits=True, threads=threads)
        assert torch.get_num_threads() == before
        for n in one.layer_names:
            for f in one.functions:
                assert torch.equal(one.logits[f][n], many.logits[f][n])
                assert torch.equal(one.history[10].masks[f][n], many.history[10].masks[f][n])


def test_an_error_in_one_thread_stops_every_group():
    net = random_mlp([6, 16, 3], seed=1)
    task = random_task()
    fz = FrozenNet(net, maskable_names(net))
    data = [FunctionData(f.name, f.train_index, f.groups) for f in task.functions.values()]

    def fail(step, logits):
        if step == 3:
            raise ValueError("stop here")

    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="stop here"):
        fit_logits(fz, task, data, steps=10, callback=fail, threads=2)
    assert torch.get_num_threads() == before
    with pytest.raises(ModscopeError, match="threads"):
        train_masks(net, task, steps=5, threads=0)


def test_same_seed_same_masks_and_history_equals_shorter_run():
    net = random_mlp([6, 16, 3], seed=1)
    task = random_task()
    r1 = train_masks(net, task, steps=40, seed=5, record_at=[15], keep_logits=True)
    r2 = train_masks(net, task, steps=40, seed=5, keep_logits=True)
    r3 = train_masks(net, task, steps=40, seed=6, keep_logits=True)
    short = train_masks(net, task, steps=15, seed=5)
    for n in r1.layer_names:
        for f in r1.functions:
            assert torch.equal(r1.logits[f][n], r2.logits[f][n])
            assert torch.equal(r1.history[15].masks[f][n], short.masks[f][n])
    assert any(not torch.equal(r1.logits["lo"][n], r3.logits["lo"][n]) for n in r1.layer_names)
    assert r1.history[15].to_dict() == short.to_dict()


def test_conv_layers_are_masked():
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(64, 36, generator=g)
    y = (x[:, 0] > 0).long()[:, None]

    class Reshape(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.view(-1, 1, 6, 6))

    model = Reshape(net)
    task = Task("img", x, y, x, y, "ce", 36, 2, (2,), functions={"all": Function("all")})
    snap = snapshot(model)
    res = train_masks(model, task, steps=5, control=False)
    assert_same(model, snap)
    assert res.layer_names == ["inner.0.weight", "inner.3.weight"]
    assert res.masks["all"]["inner.0.weight"].shape == (3, 1, 3, 3)
    with_bias = train_masks(model, task, steps=2, control=False, mask_bias=True)
    assert "inner.0.bias" in with_bias.layer_names


# -- results, files, errors ----------------------------------------------------------------------


def test_result_dict_frame_and_file(tmp_path):
    net = random_mlp([6, 10, 3], seed=2)
    task = random_task()
    res = train_masks(net, task, steps=3)
    d = res.to_dict()
    assert set(d) == {"functions", "kept_fraction", "iou", "iomin", "shared", "accuracy",
                      "inverted_accuracy", "full_accuracy", "layers"}
    json.dumps(d, allow_nan=False)
    assert set(d["iou"]) == {"lo|hi", "lo|control", "hi|control"}
    assert set(d["accuracy"]["lo"]) == {"lo", "hi", "control"}
    assert set(d["layers"]) == {"layers.0.weight", "layers.1.weight"}
    frame = res.to_frame()
    assert len(frame) == 9 and {"mask", "data", "accuracy"} <= set(frame.columns)
    assert len(res.layer_frame()) == 6
    path = res.save(tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "modscope.masks"
    back = load_masks(path)
    assert list(back) == res.functions
    for f in res.functions:
        for n in res.layer_names:
            assert torch.equal(back[f][n], res.masks[f][n]) and back[f][n].dtype == torch.bool
    with pytest.raises(ModscopeError):
        load_masks(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModscopeError):
        load_masks(tmp_path / "junk.pt")


def test_class_removal_reports_per_class_drop():
    net = random_mlp([6, 10, 3], seed=2)
    task = random_task()
    res = train_masks(net, task, class_functions(task), steps=3, class_removal=True)
    assert res.functions == ["not-0", "not-1", "not-2", CONTROL]
    d = res.to_dict()
    assert set(d["class_drop"]["not-1"]) == {"0", "1", "2"}
    assert all(-1 <= v <= 1 for row in d["class_drop"].values() for v in row.values())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"functions": ["nope"]}, "no function 'nope'"),
        ({"functions": []}, "no functions"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch size"),
        ({"beta": -1.0}, "beta"),
        ({"record_at": [50]}, "record_at"),
        ({"class_removal": True, "functions": ["lo"]}, None),
    ],
)
def test_bad_input(kwargs, match):
    net = random_mlp([6, 10, 3], seed=2)
    task = random_task()
    kwargs = {"steps": 5, **kwargs}
    if match is None:  # a valid call: class removal on a single-head classifier is fine
        train_masks(net, task, **kwargs)
        return
    with pytest.raises(ModscopeError, match=match):
        train_masks(net, task, **kwargs)


def test_bad_input_task_without_functions_and_control_clash():
    net = random_mlp([6, 10, 3], seed=2)
    task = random_task()
    task.functions = {}
    with pytest.raises(ModscopeError, match="no functions"):
        train_masks(net, task, steps=2)
    task.functions = {CONTROL: Function(CONTROL)}
    with pytest.raises(ModscopeError, match="control"):
        train_masks(net, task, steps=2)
    two_head = planted()[1]
    with pytest.raises(ModscopeError, match="single-head"):
        train_masks(planted()[0], two_head, steps=2, class_removal=True)


# -- alignment -------------------------------------------------------------------------------------


def planted_masks():
    """Masks of two functions on an 4-6-6-2 net: A uses hidden neurons 0-2, B 3-5."""
    a = [torch.zeros(6, 4, dtype=torch.bool), torch.zeros(6, 6, dtype=torch.bool),
         torch.zeros(2, 6, dtype=torch.bool)]
    b = [t.clone() for t in a]
    a[0][:3, :2] = True
    a[1][:3, :3] = True
    a[2][0, :3] = True
    b[0][3:, 2:] = True
    b[1][3:, 3:] = True
    b[2][1, 3:] = True
    return {"A": a, "B": b}


def test_incident_counts_by_hand():
    m = planted_masks()
    counts, widths = incident_counts([m["A"], m["B"]])
    assert widths == [4, 6, 6, 2]
    # hidden-1 neuron 0 under A: 2 incoming + 3 outgoing
    assert counts[0, 4] == 5 and counts[1, 4] == 0
    # output neuron 1 (node 17) under B: 3 incoming
    assert counts[1, 17] == 3 and counts[0, 17] == 0


@pytest.mark.slow  # mask training and a null of alignments
def test_alignment_of_planted_clusters():
    m = planted_masks()
    labels = np.array([0, 0, 1, 1] + [0] * 3 + [1] * 3 + [0] * 3 + [1] * 3 + [0, 1])
    al = alignment(labels, m, n_null=200, seed=0)
    assert al.ami == pytest.approx(1.0)
    assert al.share[0]["A"] == 1.0 and al.share[1]["B"] == 1.0
    assert al.dominant[0] == {"A": 6, "B": 0}
    assert al.p_value < 0.05 and al.z > 3
    assert al.n_neurons == 12
    d = al.to_dict()
    json.dumps(d, allow_nan=False)
    assert len(al.to_frame()) == 4
    same = alignment(labels, m, n_null=200, seed=0)
    assert same.to_dict() == d
    # clusters that cut across the functions: no alignment
    cross = labels.copy()
    cross[4:16] = np.tile([0, 1], 6)
    bad = alignment(cross, m, n_null=200, seed=1)
    assert bad.ami < 0.2 and bad.p_value > 0.05
    # removed nodes are left out; a MaskResult-shaped dict of {name: tensor} works too
    removed = labels.copy()
    removed[4] = -1
    named = {f: {f"layers.{i}.weight": t for i, t in enumerate(v)} for f, v in m.items()}
    assert alignment(removed, named, n_null=0).n_neurons == 11


def test_alignment_bad_input():
    m = planted_masks()
    with pytest.raises(ModscopeError, match="labels"):
        alignment(np.zeros(5, dtype=int), m, n_null=0)
    with pytest.raises(ModscopeError, match="no masks"):
        alignment(np.zeros(18, dtype=int), m, functions=["C"], n_null=0)
    with pytest.raises(ModscopeError, match="integer"):
        alignment(np.zeros(18), m, n_null=0)


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_masks_json_save_and_errors(tmp_path, capsys):
    from modscope.cli import main
    from modscope.tasks import get_task
    from modscope.training.checkpoint import Checkpoint, save_checkpoint

    task = get_task("formula-independence", seed=0)
    net = random_mlp([task.n_inputs, 12, task.n_outputs], seed=4)
    ckpt = Checkpoint(net.arch, net.state_dict(),
                      task={"name": "formula-independence", "params": {}})
    path = save_checkpoint(tmp_path / "net.pt", ckpt)
    fn = sorted(task.functions)
    out_json, out_masks = tmp_path / "m.json", tmp_path / "m.pt"
    rc = main(["masks", str(path), "--functions", ",".join(fn), "--steps", "3", "--no-progress",
               "--json", str(out_json), "--save", str(out_masks), "--jobs", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "inverted" in printed and f"{fn[0]}|{fn[1]}" in printed
    d = json.loads(out_json.read_text())
    assert d["functions"] == [*fn, CONTROL]
    assert list(load_masks(out_masks)) == [*fn, CONTROL]
    for argv, msg in [
        (["--functions", "nope"], "no function 'nope'"),
        (["--steps", "0"], "must be >= 1"),
        (["--functions", ","], "names no function"),
        (["--classes"], "classifier"),
        (["--device", "warp"], "device"),
        (["--jobs", "0"], "--jobs must be >= 1"),
    ]:
        assert main(["masks", str(path), "--no-progress", "--steps", "2", *argv]) == 2
        assert msg in capsys.readouterr().err
