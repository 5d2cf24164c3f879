"""Settings come as one config dataclass or as keyword options, never both, never a silent winner."""

import pytest
import torch

import modscope
from modscope import KnockoutConfig, MaskConfig, ModscopeError, TrainConfig
from modscope.tasks import get_task
from modscope.training.models import MLP


def test_train_takes_a_config_or_options_with_the_same_result():
    task = get_task("formula-independence", n_train=16, n_test=8)
    a = modscope.train(task, TrainConfig(steps=3, hidden=(4,), seed=1), progress=False)
    b = modscope.train(task, steps=3, hidden=(4,), seed=1, progress=False)
    sa, sb = a.checkpoint.state_dict, b.checkpoint.state_dict
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.checkpoint.train_config == b.checkpoint.train_config


def test_a_resolved_config_resolves_to_itself():
    task = get_task("digits")
    once = TrainConfig(epochs=0.5, batch_size=64, hidden="32,16").resolve(task)
    assert once.steps == 12 and once.hidden == (32, 16)
    assert once.resolve(task) == once


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: modscope.train(t, TrainConfig(steps=2), steps=3), "not both"),
        (lambda t: modscope.train(t, stepz=2), "unknown option"),
        (lambda t: modscope.train(t, MaskConfig()), "expected a TrainConfig"),
        (lambda t: modscope.train(t, steps=2, epochs=1), "steps or epochs"),
        (lambda t: modscope.train(t, steps=2, prune_epochs=1), "target sparsity"),
    ],
)
def test_conflicting_or_unknown_training_settings_are_one_line_errors(call, message):
    with pytest.raises(ModscopeError, match=message):
        call(get_task("formula-independence", n_train=8, n_test=8))


def test_mask_and_knockout_configs_check_themselves():
    with pytest.raises(ModscopeError, match="steps"):
        MaskConfig(steps=0)
    with pytest.raises(ModscopeError, match="tau"):
        MaskConfig(tau=0)
    with pytest.raises(ModscopeError, match="smallest p-value"):
        KnockoutConfig(n_random=10, alpha=0.05)
    with pytest.raises(ModscopeError, match="split"):
        KnockoutConfig(split="valid")
    assert MaskConfig(batch_size=64).sparsity_weight == pytest.approx(1e-4 / 64)


def test_masks_and_knockout_take_a_config_or_options_not_both():
    task = get_task("formula-independence", n_train=16, n_test=8)
    net = MLP((4, 6, 2))
    with pytest.raises(ModscopeError, match="not both"):
        modscope.train_masks(net, task, config=MaskConfig(steps=2), steps=3)
    labels = [0, 0, 1, 1, 0, 1]
    with pytest.raises(ModscopeError, match="not both"):
        modscope.knockout(net, task, [labels], KnockoutConfig(n_random=20), n_random=30)
    a = modscope.knockout(net, task, [labels], KnockoutConfig(n_random=20, seed=3)).to_dict()
    b = modscope.knockout(net, task, [labels], n_random=20, seed=3).to_dict()
    assert a == b
