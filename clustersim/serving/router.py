"""Routing arrivals across replicas.

Policies see only what a real router sees at arrival time: how many requests and tokens
it has sent to each replica that have not finished. "Outstanding tokens" of a replica is
the sum of prompt + requested output tokens of its unfinished requests; it changes only
at dispatch and finish, so fast-forwarded and single-stepped runs route identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

POLICIES = ("round_robin", "least_outstanding_tokens", "least_outstanding_requests")


@dataclass(slots=True)
class Router:
    """Chooses a replica for each request among those that can hold it."""

    policy: str
    num_replicas: int
    outstanding_tokens: np.ndarray = field(init=False)
    outstanding_requests: np.ndarray = field(init=False)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"router.policy={self.policy!r}, must be one of {', '.join(POLICIES)}")
        self.outstanding_tokens = np.zeros(self.num_replicas, dtype=np.int64)
        self.outstanding_requests = np.zeros(self.num_replicas, dtype=np.int64)

    def choose(self, eligible: Sequence[int] | None = None) -> int:
        """Pick a replica among `eligible` indices (None = all); ties go to the lowest index."""
        if self.policy == "round_robin":
            for offset in range(self.num_replicas):
                candidate = (self._next + offset) % self.num_replicas
                if eligible is None or candidate in eligible:
                    self._next = (candidate + 1) % self.num_replicas
                    return candidate
            raise ValueError("Router.choose: no eligible replica")
        load = self.outstanding_requests if self.policy == "least_outstanding_requests" else self.outstanding_tokens
        if eligible is None:
            return int(load.argmin())  # first minimum: lowest index wins ties
        return min(eligible, key=lambda i: (int(load[i]), i))

    def dispatched(self, replica: int, num_tokens: int) -> None:
        self.outstanding_tokens[replica] += num_tokens
        self.outstanding_requests[replica] += 1

    def finished(self, replica: int, num_tokens: int) -> None:
        self.outstanding_tokens[replica] -= num_tokens
        self.outstanding_requests[replica] -= 1
