"""Trace replay streamed from the file, in bounded memory, optionally repeated back to back.

A run must never start on a trace that breaks at row 90,000 (the run directory would be
half written), yet holding a million RequestSpecs costs far more than the requests in
flight. So a replay reads the file twice: `check()` parses every row once, keeping only
counts, before the run; `requests()` streams the rows again while the run consumes them.

`repeat` replays the file k times; copy j is shifted by j periods, a period being the
trace's span plus one mean gap, so copies join without a burst at the seam. Request ids
continue across copies (copy j, row i -> j * n + i).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clustersim.errors import ScenarioError
from clustersim.serving.request import RequestSpec
from clustersim.serving.traces import iter_trace


@dataclass(frozen=True, slots=True)
class ReplayShape:
    """What the check pass learnt: requests per copy and the arrival of the last one."""

    num_requests: int
    span_s: float

    @property
    def period_s(self) -> float:
        """Shift between copies: the span plus one mean inter-arrival gap.

        >>> ReplayShape(5, 8.0).period_s
        10.0
        """
        if self.num_requests < 2:
            return self.span_s
        return self.span_s * self.num_requests / (self.num_requests - 1)


@dataclass(frozen=True, slots=True)
class TraceReplay:
    """A trace file as a request stream: `time_scale`, an `end_s` window (trace seconds),
    `repeat` copies, at most `max_requests` in all, arrivals before `horizon_s` only."""

    path: Path
    format: str = "auto"
    time_scale: float = 1.0
    repeat: int = 1
    max_requests: int | None = None
    end_s: float | None = None
    horizon_s: float | None = None

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ScenarioError(f"workload.repeat={self.repeat}, must be an integer >= 1")

    def _one_copy(self) -> Iterator[RequestSpec]:
        return iter_trace(self.path, self.format, time_scale=self.time_scale, end_s=self.end_s,
                          max_requests=self.max_requests)

    def check(self) -> ReplayShape:
        """Parse every row once (TraceError on the first bad one); keep only counts."""
        num, last_s = 0, 0.0
        for spec in self._one_copy():
            num += 1
            last_s = spec.arrival_s
        return ReplayShape(num, last_s)

    def requests(self, shape: ReplayShape) -> Iterator[RequestSpec]:
        """The arrivals of every copy in order (call after `check`, which gave `shape`)."""
        period_s = shape.period_s
        limit = self.max_requests
        issued = 0
        for copy in range(self.repeat):
            offset_s, first_id = copy * period_s, copy * shape.num_requests
            for spec in self._one_copy():
                if limit is not None and issued >= limit:
                    return
                arrival_s = spec.arrival_s + offset_s
                if self.horizon_s is not None and arrival_s >= self.horizon_s:
                    return
                yield RequestSpec(first_id + spec.request_id, arrival_s,
                                  spec.num_prompt_tokens, spec.num_output_tokens)
                issued += 1

    def expected_span_s(self, shape: ReplayShape) -> float:
        """Arrival of the last request of the last copy (before horizon and max_requests)."""
        span = (self.repeat - 1) * shape.period_s + shape.span_s
        return min(span, self.horizon_s) if self.horizon_s is not None else span
