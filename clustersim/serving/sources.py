"""Request sources: the scenario's workload section turned into what the run loop consumes.

A source hands the run its initial requests (all open-loop arrivals, or one per
closed-loop client at t=0) and, for closed loops, a client's next request when its
previous one ends. Everything random comes from the generators passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

from clustersim.scenario import Lengths, Scenario
from clustersim.serving.replay import TraceReplay
from clustersim.serving.request import RequestSpec
from clustersim.serving.workload import (
    ClosedLoopSource,
    FixedLengths,
    LengthDist,
    LognormalLengths,
    LognormalTokens,
    TraceLengths,
    UniformLengths,
    gamma_arrivals,
    open_loop_requests,
    poisson_arrivals,
)


@dataclass(slots=True)
class RequestSource:
    """Initial requests plus, for closed loops, the next request of a finished client."""

    requests: Iterable[RequestSpec]  # in arrival order; a trace replay streams them
    closed_loop: ClosedLoopSource | None = None
    _span_s: float = field(default=0.0)

    def initial(self) -> Iterable[RequestSpec]:
        return self.requests

    def next_after(self, done: RequestSpec, now_s: float) -> RequestSpec | None:
        if self.closed_loop is None or done.client_id < 0:
            return None
        return self.closed_loop.next_request(done.client_id, now_s)

    def expected_span_s(self) -> float:
        """A guess of the arrival span, for progress bars only."""
        return self._span_s


def length_dist(lengths: Lengths) -> LengthDist:
    """The length distribution a scenario's `workload.lengths` names."""
    if lengths.kind == "fixed":
        return FixedLengths(lengths.prompt_tokens, lengths.output_tokens)
    if lengths.kind == "uniform":
        return UniformLengths(
            lengths.prompt_tokens,
            lengths.prompt_tokens_max or lengths.prompt_tokens,
            lengths.output_tokens,
            lengths.output_tokens_max or lengths.output_tokens,
        )
    if lengths.kind == "lognormal":
        return LognormalLengths(
            LognormalTokens(lengths.prompt_tokens, lengths.cv, max_tokens=lengths.prompt_tokens_max),
            LognormalTokens(lengths.output_tokens, lengths.cv, max_tokens=lengths.output_tokens_max),
        )
    assert lengths.path is not None
    return TraceLengths.from_trace(lengths.path, lengths.format)


def make_source(scenario: Scenario, workload_rng: np.random.Generator, lengths_rng: np.random.Generator) -> RequestSource:
    """Build the scenario's request source (arrival times and lengths from separate streams)."""
    wl = scenario.workload
    horizon = scenario.run.max_sim_s
    if wl.kind == "trace":
        assert wl.path is not None
        replay = TraceReplay(Path(wl.path), wl.format, wl.time_scale, wl.repeat, wl.num_requests,
                             end_s=wl.duration_s, horizon_s=horizon)
        shape = replay.check()  # every row parsed now, before the run directory is touched
        return RequestSource(replay.requests(shape), None, replay.expected_span_s(shape))
    dist = length_dist(wl.lengths)
    if wl.kind == "closed_loop":
        num = wl.num_requests if wl.num_requests is not None else 10**9
        loop = ClosedLoopSource(lengths_rng, wl.num_clients, dist, num, wl.think_time_s)
        return RequestSource(loop.first_requests(), loop, wl.duration_s or 0.0)
    if wl.kind == "offline":
        assert wl.num_requests is not None
        return RequestSource(open_loop_requests(lengths_rng, np.zeros(wl.num_requests), dist), None, 0.0)
    assert wl.rate_per_s is not None
    limit = {"num_requests": wl.num_requests} if wl.num_requests is not None else {"horizon_s": wl.duration_s}
    if wl.kind == "poisson":
        arrivals = poisson_arrivals(workload_rng, wl.rate_per_s, **limit)
    else:
        arrivals = gamma_arrivals(workload_rng, wl.rate_per_s, wl.cv, **limit)
    if horizon is not None:
        arrivals = arrivals[arrivals < horizon]
    specs = open_loop_requests(lengths_rng, arrivals, dist)
    return RequestSource(specs, None, float(arrivals[-1]) if arrivals.size else 0.0)
