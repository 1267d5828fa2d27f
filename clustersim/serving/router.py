"""Routing arrivals across replicas.

Policies see only what a real router sees at arrival time: how many requests and tokens
it has sent to each replica that have not finished. "Outstanding tokens" of a replica is
the sum of prompt + requested output tokens of its unfinished requests; it changes only
at dispatch and finish, so fast-forwarded and single-stepped runs route identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

POLICIES = ("round_robin", "least_outstanding_tokens", "least_outstanding_requests")


@dataclass(slots=True)
class Router:
    """Chooses a replica for each request among those that can hold it."""

    policy: str
    num_replicas: int
    outstanding_tokens: list[int] = field(default_factory=list)
    outstanding_requests: list[int] = field(default_factory=list)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"router.policy={self.policy!r}, must be one of {', '.join(POLICIES)}")
        self.outstanding_tokens = [0] * self.num_replicas
        self.outstanding_requests = [0] * self.num_replicas

    def choose(self, eligible: Sequence[int]) -> int:
        """Pick one of the eligible replica indices (non-empty, ascending); ties go to the lowest index."""
        if self.policy == "round_robin":
            for offset in range(self.num_replicas):
                candidate = (self._next + offset) % self.num_replicas
                if candidate in eligible:
                    self._next = (candidate + 1) % self.num_replicas
                    return candidate
        if self.policy == "least_outstanding_requests":
            return min(eligible, key=lambda i: (self.outstanding_requests[i], i))
        return min(eligible, key=lambda i: (self.outstanding_tokens[i], i))

    def dispatched(self, replica: int, num_tokens: int) -> None:
        self.outstanding_tokens[replica] += num_tokens
        self.outstanding_requests[replica] += 1

    def finished(self, replica: int, num_tokens: int) -> None:
        self.outstanding_tokens[replica] -= num_tokens
        self.outstanding_requests[replica] -= 1
