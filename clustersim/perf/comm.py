"""Collective communication cost behind one small Protocol.

The step-time model asks only three questions of the fabric: how long an all-reduce, an
all-to-all and a point-to-point send take for a given number of bytes. `AlphaBetaComm`
answers them with the textbook alpha-beta model on one uniform link per rank; a
graph-based model (collectives/) can replace it later behind the same `CommModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class CommModel(Protocol):
    """Seconds for the collectives a replica's step needs.

    Implementations must be hashable and immutable (a `ReplicaPerf` is a cache key), pure,
    and return 0.0 for a group of one rank.
    """

    def all_reduce_s(self, num_bytes: float, group_size: int) -> float:
        """All-reduce of a `num_bytes` buffer held by each of `group_size` ranks."""
        ...

    def all_to_all_s(self, num_bytes: float, group_size: int) -> float:
        """All-to-all in which each rank sends `num_bytes` in total (its own share included)."""
        ...

    def send_s(self, num_bytes: float) -> float:
        """One point-to-point transfer of `num_bytes` (a pipeline-stage hand-off)."""
        ...


@dataclass(frozen=True, slots=True)
class AlphaBetaComm:
    """Alpha-beta collectives over a per-rank link of `bw_bytes_s` (unidirectional, as
    achieved) with `latency_s` per communication step.

    - ring all-reduce: 2(n-1)/n x bytes / bw + 2(n-1) x latency
    - all-to-all: (n-1)/n x bytes / bw + (n-1) x latency (the 1/n share a rank keeps stays local)
    - send: bytes / bw + latency

    >>> c = AlphaBetaComm(bw_bytes_s=100e9, latency_s=1e-6)
    >>> round(c.all_reduce_s(4e6, 4) * 1e6, 3)  # 2*3/4*4e6/1e11 s + 6 us = 60 + 6 us
    66.0
    >>> round(c.all_to_all_s(4e6, 4) * 1e6, 3)  # 3/4*4e6/1e11 s + 3 us = 30 + 3 us
    33.0
    >>> c.all_reduce_s(4e6, 1), c.all_to_all_s(4e6, 1)
    (0.0, 0.0)
    >>> round(c.send_s(1e6) * 1e6, 3)
    11.0
    """

    bw_bytes_s: float
    latency_s: float

    def all_reduce_s(self, num_bytes: float, group_size: int) -> float:
        if group_size <= 1:
            return 0.0
        steps = group_size - 1
        return 2.0 * steps / group_size * num_bytes / self.bw_bytes_s + 2.0 * steps * self.latency_s

    def all_to_all_s(self, num_bytes: float, group_size: int) -> float:
        if group_size <= 1:
            return 0.0
        steps = group_size - 1
        return steps / group_size * num_bytes / self.bw_bytes_s + steps * self.latency_s

    def send_s(self, num_bytes: float) -> float:
        return num_bytes / self.bw_bytes_s + self.latency_s
