"""Tests for modscope.tasks: each generator against its definition, determinism, data files."""

from __future__ import annotations

import dataclasses
import gzip
import json
from itertools import permutations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from modscope.data.idx import load_image_data, read_idx, write_idx
from modscope.errors import ModscopeError
from modscope.tasks import TASKS, Task, class_functions, get_task, list_tasks
from modscope.tasks import registry as registry_mod
from modscope.tasks.arithmetic import s4_elements, s4_table

# small sizes so every generated task builds in milliseconds
SMALL = {
    "halves": {"n_train": 60, "n_test": 30},
    "addmul": {"n_train": 400, "n_test": 101},
    "tuple-add": {"n_train": 300, "n_test": 50},
    "incontext-linreg": {"n_sequences": 200},
}
GENERATED = [n for n in list_tasks() if not TASKS[n].uses_data]
DEFAULT_KEYS = {"hidden", "steps", "batch_size", "lr", "activation", "bimt_lambda", "bimt_y_star",
                "bimt_A", "bimt_top_k", "bimt_swap_every", "bimt_reduction"}


def small(name: str, seed: int = 0, **kw) -> Task:
    return get_task(name, seed=seed, **{**SMALL.get(name, {}), **kw})


def assert_same(a: Task, b: Task) -> None:
    for f in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert a.functions.keys() == b.functions.keys()
    for k in a.functions:
        fa, fb = a.functions[k], b.functions[k]
        assert fa.groups == fb.groups
        for idx in ("train_index", "test_index"):
            ia, ib = getattr(fa, idx), getattr(fb, idx)
            assert (ia is None and ib is None) or torch.equal(ia, ib)


def perfect_output(task: Task, y: torch.Tensor) -> torch.Tensor:
    """Logits (or regressions) that are exactly right for targets ``y``."""
    if task.loss_kind == "mse":
        return y.clone()
    return torch.cat(
        [30.0 * torch.nn.functional.one_hot(y[:, g], k).float()
         for g, k in enumerate(task.output_groups)],
        dim=1,
    )


# -- registry ---------------------------------------------------------------------------------
def test_registry_lists_every_task_with_a_description():
    assert set(list_tasks()) == {
        "digits", "halves", "mnist", "fashion-mnist", "addmul", "tuple-add", "modadd", "s4",
        "moons", "formula-independence", "formula-sharing", "formula-composition",
        "incontext-linreg",
    }
    for name, spec in TASKS.items():
        assert spec.name == name and len(spec.description) > 20


def test_unknown_task_and_bad_parameters():
    with pytest.raises(ModscopeError, match="unknown task 'nope'.*digits.*addmul"):
        get_task("nope")
    with pytest.raises(ModscopeError, match="unknown parameter.*n_trian.*takes n_train"):
        get_task("addmul", n_trian=5)
    with pytest.raises(ModscopeError, match="n_train must be int"):
        get_task("addmul", n_train="lots")
    with pytest.raises(ModscopeError, match="n_train must be int"):
        get_task("addmul", n_train=2.5)
    with pytest.raises(ModscopeError, match="n_train must be int, got None"):  # not a TypeError
        get_task("addmul", n_train=None)
    with pytest.raises(ModscopeError, match="heldout must be boolean"):
        get_task("addmul", heldout="maybe")
    with pytest.raises(ModscopeError, match="takes no data"):
        get_task("moons", data="/tmp")
    with pytest.raises(ModscopeError, match="seed must be >= 0"):
        get_task("moons", seed=-1)
    with pytest.raises(ModscopeError, match="n_test must be >= 1"):
        get_task("addmul", n_test=0)
    with pytest.raises(ModscopeError, match="train_frac"):
        get_task("modadd", train_frac=1.0)


def test_string_parameters_are_converted():
    t = get_task("addmul", seed="3", n_train="40", n_test="10", heldout="true")
    assert t.params == {"seed": 3, "n_train": 40, "n_test": 10, "heldout": True}
    assert len(t.x_train) == 40


@pytest.mark.parametrize("name", GENERATED)
def test_generated_tasks_are_deterministic_and_regenerate_from_params(name):
    a = small(name, seed=1)
    assert_same(a, small(name, seed=1))
    params = json.loads(json.dumps(a.params))  # what a checkpoint records
    assert params["seed"] == 1
    assert_same(a, get_task(name, **params))
    if TASKS[name].seeded:
        b = small(name, seed=2)
        assert not torch.equal(a.x_train, b.x_train) or not torch.equal(a.y_train, b.y_train)
    else:
        assert_same(a, small(name, seed=2))
    # shapes agree with the declared sizes
    assert a.x_train.shape[1] == a.n_inputs and a.x_test.shape[1] == a.n_inputs
    assert sum(a.output_groups) == a.n_outputs
    if a.loss_kind == "ce":
        assert a.y_train.dtype == torch.int64 and a.y_train.shape[1] == len(a.output_groups)
        for g, k in enumerate(a.output_groups):
            assert 0 <= a.y_train[:, g].min() and a.y_train[:, g].max() < k
    else:
        assert a.y_train.dtype == torch.float32 and a.y_train.shape[1] == a.n_outputs
    if a.vocab_size is None:
        assert a.x_train.dtype == torch.float32
    else:
        assert a.x_train.dtype == torch.int64 and a.x_train.max() < a.vocab_size
    assert DEFAULT_KEYS <= a.defaults.keys()
    assert a.defaults["bimt_reduction"] in ("sum", "mean")
    json.dumps(a.defaults)


@pytest.mark.parametrize("name", ["addmul", "tuple-add", "s4", "moons", "formula-sharing"])
def test_perfect_predictions_score_perfectly(name):
    t = small(name)
    out = perfect_output(t, t.y_test)
    assert float(t.loss(out, t.y_test)) < 1e-6
    if t.loss_kind == "ce":
        assert t.metric(out, t.y_test) == 1.0
        wrong = out.clone()
        wrong[0] = -wrong[0]  # first example: every group now wrong
        assert t.metric(wrong, t.y_test) == pytest.approx(1 - 1 / len(t.y_test))
    else:
        assert t.metric(out, t.y_test) == 0.0
    for f in t.functions:
        x, y, groups = t.function_data(f)
        o = perfect_output(t, y)
        assert float(t.loss(o, y, groups)) < 1e-6


# -- arithmetic -------------------------------------------------------------------------------
def decode_digits(block: torch.Tensor) -> torch.Tensor:
    """``(N, 20)`` two one-hot digit blocks (units first) -> ``(N,)`` numbers."""
    assert torch.equal(block.sum(1), torch.full((len(block),), 2.0))
    return block[:, :10].argmax(1) + 10 * block[:, 10:].argmax(1)


@pytest.mark.parametrize("heldout", [False, True])
def test_addmul_matches_its_definition(heldout):
    t = get_task("addmul", seed=5, n_train=2000, n_test=301, heldout=heldout)
    for x, y, fn_idx in ((t.x_train, t.y_train, "train_index"), (t.x_test, t.y_test, "test_index")):
        assert x.shape[1] == 42 and set(x.unique().tolist()) == {0.0, 1.0}
        a, b = decode_digits(x[:, :20]), decode_digits(x[:, 20:40])
        op = x[:, 40:].argmax(1)
        assert torch.equal(x[:, 40:].sum(1), torch.ones(len(x)))
        result = torch.where(op == 0, a + b, a * b) % 100
        assert torch.equal(y[:, 0], result % 10) and torch.equal(y[:, 1], result // 10)
        assert abs(int((op == 0).sum()) - int((op == 1).sum())) <= 1  # ops balanced
        add, mul = getattr(t.functions["add"], fn_idx), getattr(t.functions["mul"], fn_idx)
        assert torch.equal(add, torch.nonzero(op == 0).squeeze(1))
        assert torch.equal(mul, torch.nonzero(op == 1).squeeze(1))
    assert a.min() < 5 and a.max() > 94  # operands span [0, 100)


def encode_key(x: torch.Tensor) -> list[tuple]:
    return [tuple(r) for r in x.nonzero()[:, 1].reshape(len(x), -1).tolist()]


def test_addmul_heldout_keeps_test_inputs_out_of_training():
    t = get_task("addmul", seed=0, n_train=20000, n_test=2000, heldout=True)
    train, test = set(encode_key(t.x_train)), encode_key(t.x_test)
    assert len(set(test)) == len(test) and not train & set(test)
    plain = get_task("addmul", seed=0, n_train=20000, n_test=2000)
    assert set(encode_key(plain.x_train)) & set(encode_key(plain.x_test))  # the reference overlaps
    with pytest.raises(ModscopeError, match="heldout needs n_test"):
        get_task("addmul", n_test=20000, heldout=True)


def test_tuple_add_matches_its_definition():
    t = small("tuple-add", seed=3)
    x, y = t.x_test, t.y_test
    a1, b1, a2, b2 = (decode_digits(x[:, 20 * i : 20 * (i + 1)]) for i in range(4))
    r1, r2 = (a1 + b1) % 100, (a2 + b2) % 100
    assert torch.equal(y, torch.stack([r1 % 10, r1 // 10, r2 % 10, r2 // 10], 1))
    assert t.functions["first"].groups == (0, 1) and t.functions["second"].groups == (2, 3)
    out = perfect_output(t, y)
    out[:, 30:40] = out[:, 30:40].roll(1, dims=1)  # break the second tuple's tens digit only
    assert t.metric(out, y, groups=(0, 1)) == 1.0
    assert t.metric(out, y, groups=(2, 3)) == 0.0


def test_modadd_covers_every_pair_once():
    t = get_task("modadd", seed=4)
    x = torch.cat([t.x_train, t.x_test])
    y = torch.cat([t.y_train, t.y_test])[:, 0]
    assert len(t.x_train) == round(0.8 * 59**2) and len(x) == 59**2
    assert len(set(map(tuple, x.tolist()))) == 59**2
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 59)
    assert (t.vocab_size, t.n_tokens, t.n_inputs, t.output_groups) == (59, 2, 2, (59,))
    d = t.defaults
    assert d["embed_dim"] * t.n_tokens == 64 and d["hidden"] == [50, 50]
    assert (d["steps"], d["lr"], d["bimt_lambda"], d["bimt_top_k"]) == (20000, 1e-3, 0.1, 30)


def test_s4_is_the_group_table_of_s4():
    P, T = s4_elements(), s4_table()
    assert P.shape == (24, 4) and len({tuple(p) for p in P}) == 24
    assert (P[0] == np.arange(4)).all()  # index 0 is the identity
    assert (T[0] == np.arange(24)).all() and (T[:, 0] == np.arange(24)).all()
    for row in (T, T.T):  # Latin square: closure and cancellation
        assert (np.sort(row, axis=1) == np.arange(24)).all()
    i, j, k = np.meshgrid(np.arange(24), np.arange(24), np.arange(24), indexing="ij")
    assert (T[T[i, j], k] == T[i, T[j, k]]).all()  # associativity
    index = {tuple(p): n for n, p in enumerate(P)}
    for a, b in [(1, 2), (5, 17), (23, 9)]:  # convention: p_b after p_a
        assert T[a, b] == index[tuple(P[b][P[a]])]
    assert (T != T.T).any()  # S4 is not abelian, so the convention matters
    t = get_task("s4", seed=1)
    x = torch.cat([t.x_train, t.x_test])
    assert len(set(map(tuple, x.tolist()))) == 576 and len(t.x_train) == round(0.8 * 576)
    assert torch.equal(torch.cat([t.y_train, t.y_test])[:, 0], torch.from_numpy(T)[x[:, 0], x[:, 1]])
    assert list(permutations(range(4)))[T[3, 4]] == tuple(P[4][P[3]])


# -- formulas and moons -----------------------------------------------------------------------
def test_formulas_match_their_definitions():
    t = get_task("formula-independence", seed=2)
    x, y = t.x_train.double(), t.y_train.double()
    assert t.x_train.shape == (100, 4) and x.abs().max() <= 1 and x.min() < -0.9 and x.max() > 0.9
    assert torch.allclose(y[:, 0], (x[:, 0] + x[:, 2]) ** 3, atol=1e-5)
    assert torch.allclose(y[:, 1], x[:, 1] ** 2 + torch.sin(torch.pi * x[:, 3]), atol=1e-5)
    t = get_task("formula-sharing", seed=2)
    x, y = t.x_test.double(), t.y_test.double()
    assert x.shape == (100, 3)
    assert torch.allclose(y, torch.stack([x[:, 0] ** 2, x[:, 0] ** 2 + x[:, 1] ** 2,
                                          (x**2).sum(1)], 1), atol=1e-5)
    t = get_task("formula-composition", seed=2)
    x, y = t.x_test.double(), t.y_test.double()
    expect = torch.sqrt((x[:, 0] - x[:, 1]) ** 2 + (x[:, 2] - x[:, 3]) ** 2)
    assert torch.allclose(y[:, 0], expect, atol=1e-5)
    assert t.defaults["hidden"] == [20, 20, 20, 20] and t.defaults["activation"] == "silu"
    for name in ("formula-independence", "formula-sharing"):
        t = get_task(name)
        assert list(t.functions) == [f"y{i + 1}" for i in range(t.n_outputs)]
        assert all(t.functions[f"y{i + 1}"].groups == (i,) for i in range(t.n_outputs))
        assert t.defaults["hidden"] == [20, 20] and t.defaults["bimt_top_k"] == 5
        # a function's loss looks only at its own column
        out = t.y_test.clone()
        out[:, 0] += 1.0
        assert t.metric(out, t.y_test, groups=(0,)) == pytest.approx(1.0)
        assert t.metric(out, t.y_test, groups=(1,)) == 0.0


def test_moons():
    t = get_task("moons", seed=7)
    assert t.x_train.shape == (200, 2) and t.x_test.shape == (200, 2)
    assert t.y_train[:, 0].bincount().tolist() == [100, 100]
    assert not torch.equal(t.x_train, t.x_test)  # a separate test draw
    assert t.defaults["batch_size"] is None and t.defaults["bimt_y_star"] == 0.2


# -- images -----------------------------------------------------------------------------------
@pytest.mark.parametrize("pairs", [1, 2, 3])
def test_incontext_linreg_matches_its_definition(pairs):
    from modscope.tasks.incontext import sequence_weights, to_tokens

    t = get_task("incontext-linreg", seed=4, n_sequences=250, pairs=pairs, train_frac=0.8)
    assert (len(t.x_train), len(t.x_test)) == (200, 50)
    assert t.x_train.shape[1] == 2 * (2 * pairs - 1) and t.y_train.shape == (200, pairs)
    assert t.output_groups == (1,) * pairs and set(t.functions) == {f"y{i + 1}" for i in range(pairs)}
    for x, y in ((t.x_train, t.y_train), (t.x_test, t.y_test)):
        tok = to_tokens(x).double()
        w = sequence_weights(x, y).double()
        assert torch.all(w.abs() <= 1) and w.std() > 0.3  # U(-1, 1)
        xs = tok[:, 0::2, 1]  # [0, x_t] tokens
        assert torch.all((xs >= 1) & (xs <= 3)) and torch.all(tok[:, 0::2, 0] == 0)
        torch.testing.assert_close(y.double(), w[:, None] * xs, rtol=1e-5, atol=1e-6)  # y = w x
        # the y tokens before the last x hold y_1 .. y_{T-1}, their x feature is 0
        torch.testing.assert_close(tok[:, 1::2, 0], y[:, :-1].double())
        assert torch.all(tok[:, 1::2, 1] == 0)
    # the split is a partition of the sequences: no weight in both
    w_train = set(sequence_weights(t.x_train, t.y_train).tolist())
    assert not w_train & set(sequence_weights(t.x_test, t.y_test).tolist())
    with pytest.raises(ModscopeError, match="train_frac"):
        get_task("incontext-linreg", n_sequences=10, train_frac=0.99)
    with pytest.raises(ModscopeError, match="pairs must be >= 1"):
        get_task("incontext-linreg", pairs=0)


def test_digits_split_is_stratified_and_scaled():
    t = get_task("digits")
    assert t.x_train.shape == (1437, 64) and t.x_test.shape == (360, 64)
    assert t.input_shape == (8, 8) and t.x_train.min() == 0 and t.x_train.max() == 1
    counts = t.y_test[:, 0].bincount().tolist()
    assert len(counts) == 10 and max(counts) - min(counts) <= 2


def test_halves_places_two_digits_side_by_side():
    digits, t = get_task("digits"), small("halves", seed=9)
    assert t.input_shape == (8, 16) and t.output_groups == (10, 10)
    assert t.functions["left"].groups == (0,) and t.functions["right"].groups == (1,)
    for x, y, ref_x, ref_y in ((t.x_train, t.y_train, digits.x_train, digits.y_train),
                               (t.x_test, t.y_test, digits.x_test, digits.y_test)):
        img = x.reshape(-1, 8, 16)
        for side in (0, 1):
            half = img[:, :, 8 * side : 8 * side + 8].reshape(len(x), 64)
            match = torch.cdist(half, ref_x) == 0  # each half is one image of the split
            assert match.any(1).all()
            first = match.float().argmax(1)
            assert torch.equal(ref_y[first, 0], y[:, side])


def test_class_functions():
    t = get_task("digits")
    fns = class_functions(t)
    assert list(fns) == [f"not-{c}" for c in range(10)]
    t.functions.update(fns)  # how masks use them
    for c, f in enumerate(fns.values()):
        for split in ("train", "test"):
            _, y, groups = t.function_data(f"not-{c}", split)
            assert groups is None and (y[:, 0] != c).all()
        assert len(f.test_index) == int((t.y_test[:, 0] != c).sum())
        assert len(f.train_index) == int((t.y_train[:, 0] != c).sum())
    with pytest.raises(ModscopeError, match="one output group"):
        class_functions(small("addmul"))
    with pytest.raises(ModscopeError, match="one output group"):
        class_functions(get_task("formula-composition"))


# -- IDX and npz files ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 5) % 120 - (0 if dtype == "uint8" else 40)).astype(dtype)
    arr = arr.reshape(2, 3, 5)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == arr.dtype and back.shape == arr.shape and (back == arr).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from(["u1", "i1", ">i2", "<i2", "i4", "f4", ">f8"]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    gz=st.booleans(),
)
def test_idx_round_trip_property(tmp_path, arr, gz):
    path = tmp_path / "prop-idx"
    write_idx(path, arr, compress=gz)
    back = read_idx(path)
    assert back.shape == arr.shape and back.dtype.newbyteorder("=") == back.dtype
    np.testing.assert_array_equal(back, arr)  # NaNs compare equal here


def test_idx_header_is_the_standard_one(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.array([7, 2, 1], dtype=np.uint8))
    assert path.read_bytes() == b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + bytes([7, 2, 1])
    # gzip is detected by content, whatever the file name
    (tmp_path / "plain-name").write_bytes(gzip.compress(path.read_bytes()))
    assert read_idx(tmp_path / "plain-name").tolist() == [7, 2, 1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "not an IDX file"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02", "truncated IDX data"),
        (b"\x00\x00\x0c\x01\x00\x00\x00\x02" + b"\x00" * 7, "truncated IDX data"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "bytes after the IDX data"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ],
)
def test_idx_errors(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ModscopeError, match=message):
        read_idx(path)


def test_idx_missing_file_and_truncated_gzip(tmp_path):
    with pytest.raises(ModscopeError, match="no such file"):
        read_idx(tmp_path / "nope")
    full = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03" + bytes(3))
    (tmp_path / "cut.gz").write_bytes(full[:-6])
    with pytest.raises(ModscopeError, match="corrupt gzip"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(ModscopeError, match="cannot store dtype"):
        write_idx(tmp_path / "c", np.zeros(2, dtype=np.complex64))


def fake_mnist(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n)


def write_mnist_dir(path, arrays, gz=True, dotted=False):
    path.mkdir()
    names = {"x_train": "train-images", "y_train": "train-labels",
             "x_test": "t10k-images", "y_test": "t10k-labels"}
    for key, stem in names.items():
        kind = "idx3" if key.startswith("x") else "idx1"
        name = f"{stem}{'.' if dotted else '-'}{kind}-ubyte{'.gz' if gz else ''}"
        write_idx(path / name, arrays[key].astype(np.uint8))
    return path


@pytest.fixture
def mnist_arrays():
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = fake_mnist(rng, 12), fake_mnist(rng, 5)
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}


@pytest.mark.parametrize(("gz", "dotted"), [(True, False), (False, False), (False, True)])
def test_mnist_from_idx_directory(tmp_path, mnist_arrays, gz, dotted):
    d = write_mnist_dir(tmp_path / "mnist", mnist_arrays, gz=gz, dotted=dotted)
    t = get_task("mnist", data=d)
    assert t.input_shape == (28, 28) and t.n_inputs == 784 and t.n_classes == 10
    assert t.x_train.shape == (12, 784) and t.x_test.shape == (5, 784)
    expect = torch.from_numpy(mnist_arrays["x_train"].reshape(12, -1) / 255.0).float()
    assert torch.allclose(t.x_train, expect)
    assert t.y_test[:, 0].tolist() == mnist_arrays["y_test"].tolist()
    assert t.params["data"] == str(d.resolve())
    assert_same(t, get_task("mnist", **json.loads(json.dumps(t.params))))
    lim = get_task("fashion-mnist", data=d, limit=4)
    assert torch.equal(lim.x_train, t.x_train[:4]) and torch.equal(lim.x_test, t.x_test)
    with pytest.raises(ModscopeError, match="limit must be >= 1"):
        get_task("mnist", data=d, limit=0)


def test_mnist_from_npz(tmp_path, mnist_arrays):
    path = tmp_path / "mnist.npz"
    np.savez(path, **mnist_arrays)
    t = get_task("mnist", data=str(path))
    assert t.x_train.shape == (12, 784) and t.x_train.max() <= 1
    flat = {**mnist_arrays, "x_train": mnist_arrays["x_train"].reshape(12, 784) / 255.0,
            "x_test": mnist_arrays["x_test"].reshape(5, 784) / 255.0}
    np.savez(tmp_path / "flat.npz", **flat)
    f = get_task("mnist", data=tmp_path / "flat.npz")
    assert f.input_shape == (28, 28) and torch.allclose(f.x_train, t.x_train)


def test_mnist_and_fashion_without_data(tmp_path, monkeypatch):
    with pytest.raises(ModscopeError, match="needs data=PATH"):
        get_task("mnist")
    with pytest.raises(ModscopeError, match="no data at"):
        get_task("mnist", data=tmp_path / "missing")
    spec = dataclasses.replace(TASKS["fashion-mnist"], default_data=str(tmp_path / "none"))
    monkeypatch.setitem(registry_mod.TASKS, "fashion-mnist", spec)
    with pytest.raises(ModscopeError, match="dataset-fashion-mnist"):
        get_task("fashion-mnist")


def _variant(arrays, **changes):
    return {**arrays, **changes}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: _variant(a, y_train=a["y_train"][:-1]), "12 images but 11 labels"),
        (lambda a: _variant(a, y_test=a["y_test"] + 10), r"labels must lie in \[0, 10\)"),
        (lambda a: _variant(a, y_test=a["y_test"][:, None]), "labels must be one-dimensional"),
        (lambda a: _variant(a, x_test=a["x_test"][:, :20]), "train images are"),
        (lambda a: _variant(a, x_train=a["x_train"][:, None]), "images must be"),
        (lambda a: _variant(a, x_train=a["x_train"] * 2.0), r"float pixels must .* \[0, 1\]"),
        (lambda a: _variant(a, x_train=a["x_train"].astype(np.int32) + 1), r"\[0, 255\]"),
        (lambda a: _variant(a, y_train=a["y_train"].astype(float)), "labels must be integers"),
        (lambda a: _variant(a, x_test=a["x_test"][:0], y_test=a["y_test"][:0]), "no examples"),
        (lambda a: {k: v for k, v in a.items() if k != "y_test"}, "missing arrays y_test"),
    ],
)
def test_npz_errors(tmp_path, mnist_arrays, change, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **change(mnist_arrays))
    with pytest.raises(ModscopeError, match=message):
        load_image_data(path)


def test_npz_refuses_pickles_and_non_npz(tmp_path, mnist_arrays):
    path = tmp_path / "obj.npz"
    np.savez(path, **{**mnist_arrays, "y_train": np.array([object()] * 12, dtype=object)})
    with pytest.raises(ModscopeError, match="unreadable .npz"):
        load_image_data(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ModscopeError, match="not a readable .npz"):
        load_image_data(tmp_path / "junk.npz")


def test_idx_directory_errors(tmp_path, mnist_arrays):
    d = write_mnist_dir(tmp_path / "m", mnist_arrays)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ModscopeError, match="missing t10k-labels-idx1-ubyte"):
        load_image_data(d)
    write_idx(d / "t10k-labels-idx1-ubyte", mnist_arrays["y_test"][:3].astype(np.uint8))
    with pytest.raises(ModscopeError, match="5 images but 3 labels"):
        load_image_data(d)


def test_accuracy_of_a_regression_task_is_a_one_line_refusal():
    task = get_task("incontext-linreg", n_sequences=20)
    with pytest.raises(ModscopeError, match="is a regression task: no accuracy"):  # was a TypeError
        task.correct(torch.zeros(2, 2), torch.zeros(2, 2))
