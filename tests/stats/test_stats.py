import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modscope.errors import ModscopeError
from modscope.stats import cohens_d, compare_to_null, p_value


def test_definitions_exactly():
    s = np.array([10.0, 10.2, 10.4, 10.1])
    c = compare_to_null(10.15, s)
    assert c.mean == pytest.approx(10.175)
    assert c.std == pytest.approx(np.sqrt(np.mean((s - 10.175) ** 2)))  # ddof 0
    assert c.z == pytest.approx((10.15 - 10.175) / c.std)
    assert c.p_value == pytest.approx((2 + 1) / (4 + 1))  # 10.0 and 10.1 are below


def test_p_value_floor_with_50_shuffles():
    c = compare_to_null(1.0, np.full(50, 2.0) + np.arange(50) * 1e-3)
    assert c.p_value == pytest.approx(1 / 51)


def test_constant_null():
    assert compare_to_null(3.0, [3.0, 3.0]).z == 0.0
    assert math.isnan(compare_to_null(2.0, [3.0, 3.0]).z)
    assert compare_to_null(2.0, [3.0, 3.0]).to_dict()["z"] is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.floats(-1e3, 1e3))
def test_p_value_bounds(samples, x):
    c = compare_to_null(x, samples)
    assert 1 / (len(samples) + 1) <= c.p_value <= 1.0


def test_cohens_d():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    assert cohens_d(a, b) == pytest.approx(-3.0)  # pooled sd 1
    assert cohens_d(b, a) == pytest.approx(3.0)
    with pytest.raises(ModscopeError, match="at least two values per group"):  # one line for a user
        cohens_d([1.0], [2.0, 3.0])
    with pytest.raises(ModscopeError, match="at least one sample"):
        p_value(0.5, [], True)
