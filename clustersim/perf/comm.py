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


@dataclass(frozen=True, slots=True)
class HierarchicalComm:
    """Collectives over ranks spread across scale-up domains of `domain_size` chips, joined by
    the scale-out network (each chip's NIC): the intra-domain share of the traffic moves over
    the scale-up link (`up_bw_bytes_s`), the rest over the NIC (`out_bw_bytes_s`), both at
    once; the slower bounds the time. `latency_s` per communication step, as in
    `AlphaBetaComm`. Groups within one domain cost exactly what `AlphaBetaComm` charges.

    - all-to-all over n ranks (d per domain): of each rank's bytes, (d-1)/n go to its own
      domain and (n-d)/n leave it: max((d-1)/n x bytes / up, (n-d)/n x bytes / out)
      + (n-1) x latency;
    - all-reduce (hierarchical): reduce-scatter and all-gather inside the domain, ring
      all-reduce of the 1/d shard over the m = n/d domains: 2(d-1)/d x bytes / up
      + 2(m-1)/m x bytes/d / out + (2(d-1) + 2(m-1)) x latency;
    - send: over the NIC, bytes / out + latency.

    >>> c = HierarchicalComm(up_bw_bytes_s=400e9, out_bw_bytes_s=50e9, latency_s=1e-6, domain_size=8)
    >>> round(c.all_to_all_s(32e6, 32) * 1e6, 3)  # max(7/32 x 32e6 / 4e11, 24/32 x 32e6 / 5e10) + 31 us = 480 + 31
    511.0
    >>> round(c.all_reduce_s(16e6, 16) * 1e6, 3)  # 2 x 7/8 x 16e6 / 4e11 + 2 x 1/2 x 2e6 / 5e10 + (14 + 2) us = 70 + 40 + 16
    126.0
    >>> c.all_to_all_s(4e6, 8) == AlphaBetaComm(400e9, 1e-6).all_to_all_s(4e6, 8)
    True
    """

    up_bw_bytes_s: float
    out_bw_bytes_s: float
    latency_s: float
    domain_size: int

    def _inside(self) -> AlphaBetaComm:
        return AlphaBetaComm(self.up_bw_bytes_s, self.latency_s)

    def all_reduce_s(self, num_bytes: float, group_size: int) -> float:
        d = self.domain_size
        if group_size <= d:
            return self._inside().all_reduce_s(num_bytes, group_size)
        m = group_size / d
        time_s = 2.0 * (d - 1) / d * num_bytes / self.up_bw_bytes_s
        time_s += 2.0 * (m - 1) / m * (num_bytes / d) / self.out_bw_bytes_s
        return time_s + (2.0 * (d - 1) + 2.0 * (m - 1)) * self.latency_s

    def all_to_all_s(self, num_bytes: float, group_size: int) -> float:
        d = self.domain_size
        if group_size <= d:
            return self._inside().all_to_all_s(num_bytes, group_size)
        inside_s = (d - 1) / group_size * num_bytes / self.up_bw_bytes_s
        outside_s = (group_size - d) / group_size * num_bytes / self.out_bw_bytes_s
        return max(inside_s, outside_s) + (group_size - 1) * self.latency_s

    def send_s(self, num_bytes: float) -> float:
        return num_bytes / self.out_bw_bytes_s + self.latency_s
