"""Exact streamed percentiles equal numpy's on the whole array, in bounded memory."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.records.quantiles import order_statistic, stream_stats

values_strategy = st.lists(
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1.5, 2.0, float("nan"), float("inf")])),
    min_size=0, max_size=300)


@settings(max_examples=200, deadline=None)
@given(values=values_strategy, cuts=st.lists(st.integers(0, 300), max_size=5),
       percentiles=st.lists(st.floats(0, 100), min_size=1, max_size=4), max_held=st.integers(1, 8),
       num_bins=st.integers(2, 16))
def test_streamed_percentiles_equal_numpy(values, cuts, percentiles, max_held, num_bins):
    # tiny bins and holds force several refinement passes
    array = np.array(values, dtype=np.float64)
    chunks = np.split(array, sorted(set(c for c in cuts if c <= len(array))))
    count, mean, got = stream_stats(lambda: chunks, percentiles, max_held=max_held, num_bins=num_bins)
    finite = array[np.isfinite(array)]
    assert count == finite.size
    if finite.size == 0:
        assert got == []
        return
    assert got == [float(np.percentile(finite, q, method="linear")) for q in percentiles]
    assert np.isclose(mean, np.mean(finite), rtol=1e-12, atol=1e-9)


def test_order_statistic_by_hand():
    # sorted: 1, 2, 2, 3, 7 -> ranks 0..4
    chunks = [np.array([7.0, 2.0]), np.array([1.0, np.nan, 3.0, 2.0])]
    assert [order_statistic(lambda: chunks, 5, 1.0, 7.0, r, max_held=1, num_bins=2) for r in range(5)] == \
        [1.0, 2.0, 2.0, 3.0, 7.0]
