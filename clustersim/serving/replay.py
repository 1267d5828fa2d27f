"""Trace replay streamed from the file, in bounded memory, optionally repeated back to back.

A run must never start on a trace that breaks at row 90,000 (the run directory would be
half written), yet holding a million RequestSpecs costs far more than the requests in
flight. So `check()` parses every row once before the run, keeping per row only 16 bytes
(arrival, prompt and output lengths in flat arrays) up to `MAX_KEPT_ROWS` rows, and only
counts beyond that; `requests()` then replays the arrays, or streams the file again when
it was too long to keep.

`repeat` replays the file k times; copy j is shifted by j periods, a period being the
trace's span plus one mean gap, so copies join without a burst at the seam. Request ids
continue across copies (copy j, row i -> j * n + i).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clustersim.errors import ScenarioError
from clustersim.serving.request import RequestSpec
from clustersim.serving.traces import iter_trace


MAX_KEPT_ROWS = 2_000_000
"""Rows whose lengths and arrivals the check pass keeps (32 MB); longer traces are re-read."""


@dataclass(frozen=True, slots=True)
class ReplayShape:
    """What the check pass learnt: requests per copy, the arrival of the last one, and the
    rows themselves (arrival_s, prompt, output arrays) when the trace is short enough."""

    num_requests: int
    span_s: float
    rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

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
        """Parse every row once (TraceError on the first bad one); keep the rows as flat
        arrays when there are at most MAX_KEPT_ROWS of them, else only counts."""
        num, last_s = 0, 0.0
        arrivals: list[float] | None = []
        prompts: list[int] = []
        outputs: list[int] = []
        for spec in self._one_copy():
            num += 1
            last_s = spec.arrival_s
            if arrivals is not None:
                arrivals.append(spec.arrival_s)
                prompts.append(spec.num_prompt_tokens)
                outputs.append(spec.num_output_tokens)
                if num % 65536 == 0 and num >= MAX_KEPT_ROWS:
                    arrivals = None
                    prompts, outputs = [], []
        if arrivals is None or num > MAX_KEPT_ROWS:
            return ReplayShape(num, last_s)
        rows = (np.array(arrivals, dtype=np.float64), np.array(prompts, dtype=np.int32),
                np.array(outputs, dtype=np.int32))
        return ReplayShape(num, last_s, rows)

    def _copy_rows(self, shape: ReplayShape) -> Iterator[tuple[int, float, int, int]]:
        """(id, arrival_s, prompt, output) of one copy, from the kept arrays or the file."""
        if shape.rows is not None:
            arrivals, prompts, outputs = (column.tolist() for column in shape.rows)
            return zip(range(len(arrivals)), arrivals, prompts, outputs)
        return ((s.request_id, s.arrival_s, s.num_prompt_tokens, s.num_output_tokens) for s in self._one_copy())

    def requests(self, shape: ReplayShape) -> Iterator[RequestSpec]:
        """The arrivals of every copy in order (call after `check`, which gave `shape`)."""
        period_s = shape.period_s
        limit = self.max_requests
        issued = 0
        for copy in range(self.repeat):
            offset_s, first_id = copy * period_s, copy * shape.num_requests
            for request_id, arrival_s, prompt, output in self._copy_rows(shape):
                if limit is not None and issued >= limit:
                    return
                arrival_s += offset_s
                if self.horizon_s is not None and arrival_s >= self.horizon_s:
                    return
                yield RequestSpec(first_id + request_id, arrival_s, prompt, output)
                issued += 1

    def expected_span_s(self, shape: ReplayShape) -> float:
        """Arrival of the last request of the last copy (before horizon and max_requests)."""
        span = (self.repeat - 1) * shape.period_s + shape.span_s
        return min(span, self.horizon_s) if self.horizon_s is not None else span
