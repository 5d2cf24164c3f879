"""A built-in Task becomes `Data` once at the entry of mask training (issue 23): a task, its
``to_data()`` and the same tensors read by `load_data` give the same masks and the same measures
for the same seed."""

from __future__ import annotations

import pytest
import torch

from modscope.data import load_data
from modscope.masks import fit_logits, train_masks
from modscope.masks.data import FunctionData
from modscope.masks.frozen import FrozenNet, maskable_names
from modscope.tasks import class_functions
from tests.masks.test_masks import planted, random_mlp, random_task


def _same(a, b) -> None:
    assert a.functions == b.functions and a.layer_names == b.layer_names
    for f in a.functions:
        for n in a.layer_names:
            assert torch.equal(a.masks[f][n], b.masks[f][n]), (f, n)
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() - {"metric"} == db.keys() - {"metric"}  # Data runs name their metric (0.3.0's keys)
    for key in ("accuracy", "inverted_accuracy", "full_accuracy", "kept_fraction", "iou", "class_drop"):
        _close(da.get(key), db.get(key), key)


def _close(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif a is None:
        assert b is None, where
    else:
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), where


def test_a_task_its_data_and_the_same_arrays_give_identical_masks():
    net, task = planted()
    by_task = train_masks(net, task, steps=40, seed=3, batch_size=32)
    by_data = train_masks(net, task.to_data(), steps=40, seed=3, batch_size=32)
    arrays = load_data(
        {"x_train": task.x_train.numpy(), "y_train": task.y_train.numpy(), "x_test": task.x_test.numpy(),
         "y_test": task.y_test.numpy()},
        output_groups=task.output_groups,
    )
    arrays.functions = dict(task.functions)
    by_arrays = train_masks(net, arrays, steps=40, seed=3, batch_size=32)
    _same(by_task, by_data)
    _same(by_task, by_arrays)
    assert by_task.accuracy["A"]["A"] > 0.9  # and the masks learned: A keeps its half


def test_class_removal_masks_are_the_same_from_a_task_and_from_its_data():
    net, task = random_mlp([6, 10, 3], seed=2), random_task()
    one = train_masks(net, task, class_functions(task), steps=15, class_removal=True, seed=1)
    two = train_masks(net, task.to_data(), class_functions(task), steps=15, class_removal=True, seed=1)
    _same(one, two)
    assert set(one.class_drop["not-0"]) == {"0", "1", "2"}


def test_fit_logits_takes_a_task_as_data():
    net, task = planted()
    fz = FrozenNet(net, maskable_names(net))
    fns = [FunctionData("A", torch.arange(1024), (0,))]
    a = fit_logits(fz, task, fns, steps=5, seed=1)
    b = fit_logits(fz, task.to_data(), fns, steps=5, seed=1)
    assert torch.equal(a, b)
