"""Exact percentiles of a column too long to hold: a few passes over the data, bounded memory.

The summary reports numpy's "linear" percentiles (Hyndman and Fan type 7) of per-request
latencies. Sorting every value would keep 8 bytes per request; instead the values are read
again as often as needed (they live in the run's Arrow file): a first pass counts them, then
each wanted order statistic is narrowed by histograms of the values inside a shrinking range
until its bin holds few enough values to sort. The answer is the same number numpy gives on
the whole array; memory is a histogram plus at most `max_held` values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

Reader = Callable[[], Iterable[np.ndarray]]
"""Returns a fresh pass over the values, chunk by chunk (NaN and infinities are skipped)."""

NUM_BINS = 4096
MAX_HELD = 1 << 18
MAX_PASSES = 64


def _finite(reader: Reader) -> Iterator[np.ndarray]:
    for chunk in reader():
        chunk = np.asarray(chunk, dtype=np.float64)
        yield chunk[np.isfinite(chunk)]


def stream_stats(reader: Reader, percentiles: Sequence[float], max_held: int = MAX_HELD,
                 num_bins: int = NUM_BINS) -> tuple[int, float, list[float]]:
    """(count, mean, percentiles) of the finite values; mean NaN and percentiles empty when
    there are none. Percentiles equal numpy.percentile(values, q, method="linear").

    >>> data = [np.array([0.5, 0.1, np.nan]), np.array([0.4, 0.2, 0.3])]
    >>> n, mean, (p50, p90) = stream_stats(lambda: data, (50, 90))
    >>> n, round(mean, 12), p50, round(p90, 12)
    (5, 0.3, 0.3, 0.46)
    """
    count, total, low, high = 0, 0.0, math.inf, -math.inf
    for chunk in _finite(reader):
        if chunk.size:
            count += chunk.size
            total += math.fsum(chunk)
            low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    if count == 0:
        return 0, math.nan, []
    values = [_percentile(reader, count, low, high, q, max_held, num_bins) for q in percentiles]
    return count, total / count, values


def _percentile(reader: Reader, count: int, low: float, high: float, q: float, max_held: int,
                num_bins: int) -> float:
    """numpy's linear interpolation between the order statistics around rank q/100 (n-1)."""
    quantile = np.true_divide(q, 100)
    virtual = (count - 1) * quantile
    below = math.floor(virtual)
    gamma = float(virtual - below)
    lo_value = order_statistic(reader, count, low, high, int(below), max_held, num_bins)
    if below + 1 >= count:
        return lo_value
    hi_value = order_statistic(reader, count, low, high, int(below) + 1, max_held, num_bins)
    return float(_lerp(np.float64(lo_value), np.float64(hi_value), np.float64(gamma)))


def _lerp(a: np.float64, b: np.float64, t: np.float64) -> np.float64:
    """numpy's percentile interpolation, operation for operation (numpy/lib/_function_base_impl)."""
    diff = b - a
    if t >= 0.5:
        return b - diff * (1 - t)
    return a + diff * t


def order_statistic(reader: Reader, count: int, low: float, high: float, rank: int, max_held: int = MAX_HELD,
                    num_bins: int = NUM_BINS) -> float:
    """The rank-th smallest (0-based) finite value, low and high being the minimum and maximum.

    Each pass histograms the values in [lo, hi] and keeps the bin holding the rank; once
    that bin holds at most max_held values (or cannot be split further) they are sorted.

    >>> order_statistic(lambda: [np.array([3.0, 1.0]), np.array([2.0, 2.0])], 4, 1.0, 3.0, 2)
    2.0
    """
    lo, hi, before = low, high, 0  # `before`: values below lo
    for _ in range(MAX_PASSES):
        if lo == hi:
            return lo
        edges = np.linspace(lo, hi, num_bins + 1)
        counts = np.zeros(num_bins, dtype=np.int64)
        for chunk in _finite(reader):
            inside = chunk[(chunk >= lo) & (chunk <= hi)]
            counts += np.bincount(_bins(inside, edges), minlength=num_bins)
        cumulative = np.cumsum(counts)
        target = int(np.searchsorted(cumulative, rank - before, side="right"))
        new_before = before + (int(cumulative[target - 1]) if target else 0)
        new_lo, new_hi = float(edges[target]), float(edges[target + 1])
        if counts[target] <= max_held or (new_lo, new_hi) == (lo, hi):
            held = [chunk[_bins(chunk, edges, lo, hi) == target] for chunk in _finite(reader)]
            return float(np.sort(np.concatenate(held))[rank - new_before])
        lo, hi, before = new_lo, np.nextafter(new_hi, -math.inf) if target < num_bins - 1 else new_hi, new_before
    held = [chunk[(chunk >= lo) & (chunk <= hi)] for chunk in _finite(reader)]  # ulp-wide window: sort it
    return float(np.sort(np.concatenate(held))[rank - before])


def _bins(values: np.ndarray, edges: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Bin index of each value: edges[i] <= v < edges[i + 1], the last bin closed; values
    outside [lo, hi] (when given) get -1."""
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    if lo is not None:
        index = np.where((values >= lo) & (values <= hi), index, -1)
    return index
