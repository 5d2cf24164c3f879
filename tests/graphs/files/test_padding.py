"""The torch recurrent layer the ONNX and Keras readers build from a file's weights."""

import numpy as np
import pytest
import torch

from modscope.errors import ModscopeError
from modscope.graphs.files.padding import recurrent_module


def _parts(hidden: int, inputs: int, gates: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = [(gates * hidden, inputs), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,)]
    return [rng.normal(size=s).astype(np.float32) for s in shapes]


def test_the_module_holds_the_files_weights():
    parts = _parts(3, 5)
    module = recurrent_module("LSTM", 3, [parts], batch_first=True)
    assert not module.training
    np.testing.assert_array_equal(module.weight_hh_l0.detach().numpy(), parts[1])
    assert module(torch.zeros(2, 7, 5))[0].shape == (2, 7, 3)


@pytest.mark.parametrize("broken", [1, 2])
def test_weights_that_disagree_with_the_config_are_one_line(broken):
    # a crafted file: the recurrent weights (or a bias) sized for another hidden width
    parts = _parts(3, 5)
    parts[broken] = _parts(4, 5)[broken]
    with pytest.raises(ModscopeError, match="weights and its config disagree") as err:
        recurrent_module("LSTM", 3, [parts], batch_first=True)
    assert "\n" not in str(err.value)


def test_input_weights_that_are_not_a_matrix_are_one_line():
    parts = _parts(3, 5)
    parts[0] = parts[0].ravel()
    with pytest.raises(ModscopeError, match="1-D, not 2-D"):
        recurrent_module("GRU", 3, [parts], batch_first=False)
