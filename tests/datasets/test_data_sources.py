"""The user's data (issue 17, items 1-2): every source reads the same examples, files are memory
mapped (batches, never the whole split), functions name classes, outputs or predicates, and a
metric summed over batches equals the metric of the whole split."""

import gzip

import numpy as np
import pytest
import torch

from modscope.data import Data, class_functions, function_where, load_data, metrics, parse_function
from modscope.data.accumulate import Accumulator
from modscope.data.idx import write_idx
from modscope.errors import ModscopeError
from modscope.tasks import get_task


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (40, 6, 6), dtype=np.uint8),
        "y_train": rng.integers(0, 4, 40),
        "x_test": rng.integers(0, 256, (30, 6, 6), dtype=np.uint8),
        "y_test": rng.integers(0, 4, 30),
    }


def _all(split):
    return [torch.cat(parts) for parts in zip(*[(x, y) for _, x, y in split.batches(7)], strict=True)]


def test_every_source_gives_the_same_examples(tmp_path, arrays):
    np.savez(tmp_path / "d.npz", **arrays)
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, tmp_path / "d.pt")
    folder = tmp_path / "idx"
    folder.mkdir()
    names = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    for k, name in names.items():
        write_idx(folder / name, arrays[k].astype(np.uint8))
    want_x = torch.from_numpy(arrays["x_test"]).float() / 255.0
    want_y = torch.from_numpy(arrays["y_test"])[:, None]
    npz, idx = load_data(tmp_path / "d.npz"), load_data(folder)
    assert isinstance(npz.test.x, np.memmap) and isinstance(idx.test.x, np.memmap)  # read from disk
    for data in (npz, idx):
        x, y = _all(data.test)
        torch.testing.assert_close(x, want_x)
        assert torch.equal(y, want_y) and data.n_classes == 4 and len(data.train) == 40
    pt = load_data(tmp_path / "d.pt")  # tensors as saved: no scaling
    x, y = _all(pt.test)
    assert torch.equal(x, torch.from_numpy(arrays["x_test"]).float()) and torch.equal(y, want_y)
    ds = torch.utils.data.TensorDataset(want_x, want_y[:, 0])
    for data in (
        load_data(ds),
        load_data(torch.utils.data.DataLoader(ds, batch_size=8)),
        load_data((want_x, want_y)),
    ):
        x, y = _all(data.test)
        torch.testing.assert_close(x, want_x)
        assert torch.equal(y, want_y)
        rows = data.test.rows(np.array([29, 0, 5]))
        torch.testing.assert_close(rows[0], want_x[[29, 0, 5]])


def test_functions_by_class_number_name_output_and_predicate(arrays):
    data = load_data({k: v for k, v in arrays.items()}, class_names=("a", "b", "c", "d"))
    f = parse_function("ab=0,b", data)
    y = arrays["y_test"]
    assert f.test_index.tolist() == np.flatnonzero(np.isin(y, [0, 1])).tolist()
    assert f.train_index.tolist() == np.flatnonzero(np.isin(arrays["y_train"], [0, 1])).tolist()
    assert parse_function("rest=not:3", data).test_index.tolist() == np.flatnonzero(y != 3).tolist()
    per_class = class_functions(data)
    assert list(per_class) == ["not-0", "not-1", "not-2", "not-3"]
    bright = function_where("bright", data, lambda x, y: x.flatten(1).mean(1) > 127.5)  # arrays: not scaled
    want = np.flatnonzero(arrays["x_test"].reshape(30, -1).mean(1) > 127.5)
    assert 0 < want.size < 30
    assert bright.test_index.tolist() == want.tolist()
    grouped = Data(data.test, kind="classification", output_groups=(4, 4), n_classes=None)
    assert parse_function("first=outputs:0", grouped).groups == (0,)
    for bad, words in [
        ("x=7", "does not exist"),
        ("x=cat", "no class"),
        ("nothing", "name=classes"),
        ("x=outputs:5", "output groups"),
    ]:
        with pytest.raises(ModscopeError, match=words):
            parse_function(bad, grouped if "outputs" in bad else data)


def test_streamed_metric_equals_the_whole_split_metric():
    task = get_task("digits", seed=0)
    data = task.to_data()
    torch.manual_seed(0)
    out = torch.randn(3, len(data.test), 10)  # three networks' outputs
    fn = parse_function("low=0,1,2", data)
    acc = Accumulator(data, 10, 3, [fn])
    for idx, _, y in data.test.batches(50):
        acc.add(idx, out[:, torch.from_numpy(idx)], y)
    metric, per_class, per_fn = acc.result()
    y = task.y_test
    np.testing.assert_allclose(metric, metrics.metric(out, y, "ce", (10,)).numpy())
    np.testing.assert_allclose(per_class, metrics.per_class_accuracy(out, y, 10).numpy())
    sel = fn.test_index
    np.testing.assert_allclose(per_fn[:, 0], metrics.metric(out[:, sel], y[sel], "ce", (10,)).numpy())


def test_bad_data_is_one_line():
    cases = [
        (lambda: load_data("/no/such/file.npz"), "no such"),
        (lambda: load_data({"x_test": np.zeros((3, 2))}), "go together"),
        (lambda: load_data({"x_test": np.zeros((3, 2)), "y_test": np.zeros(4)}), "3 inputs but 4 labels"),
        (lambda: load_data({"x_test": np.zeros((2, 2)), "y_test": np.array([0.5, 1.0])}), "whole numbers"),
        (lambda: load_data(42), "cannot read data"),
        (lambda: load_data({"x": np.zeros((2, 2)), "y": np.array([0, 5])}).groups(3), "up to class 5"),
    ]
    for make, words in cases:
        with pytest.raises(ModscopeError, match=words) as info:
            make()
        assert "\n" not in str(info.value)


def test_gzip_idx_is_read_whole_and_plain_idx_is_mapped(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", a)
    (tmp_path / "b.idx.gz").write_bytes(gzip.compress((tmp_path / "a.idx").read_bytes()))
    from modscope.data.idx import map_idx

    assert isinstance(map_idx(tmp_path / "a.idx"), np.memmap)
    assert np.array_equal(map_idx(tmp_path / "b.idx.gz"), a)


def test_map_idx_refuses_a_cut_header_as_read_idx_does(tmp_path):
    # map_idx and read_idx parse one header: a file cut inside it is one line from both, not numpy's error
    write_idx(tmp_path / "a.idx", np.zeros((2, 3, 4), dtype=np.uint8))
    (tmp_path / "cut.idx").write_bytes((tmp_path / "a.idx").read_bytes()[:9])
    from modscope.data.idx import map_idx, read_idx

    for read in (map_idx, read_idx):
        with pytest.raises(ModscopeError, match=r"truncated IDX header \(9 of 16 bytes\)"):
            read(tmp_path / "cut.idx")
