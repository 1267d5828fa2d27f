"""The one tie rule for events at the same simulated time, in one place.

SimPy orders events by (time, priority, insertion id). Every engine step is a normal
timeout. Arrivals (and other exogenous inputs: failures, client think-time ends) use
`arrival_timeout`, scheduled with URGENT priority, so an arrival at exactly the instant a
step ends is always seen by the plan that follows that step, whatever the insertion order.
Fast-forwarded decode spans follow the same rule (see serving.engine).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator

import simpy
from simpy.core import NORMAL, URGENT

from clustersim.serving.request import RequestSpec


def triggered_event(env: simpy.Environment, value: object = None) -> simpy.Event:
    """An event already triggered with `value`, as simpy.Timeout builds itself: it fires when
    the caller puts it on the queue (callbacks only, no generator process needed)."""
    event = simpy.Event(env)
    event._ok = True
    event._value = value
    return event


def event_in(env: simpy.Environment, delay_s: float, priority: int = NORMAL, value: object = None) -> simpy.Event:
    """A triggered event scheduled delay_s from now at `priority` (engine steps: NORMAL)."""
    event = triggered_event(env, value)
    env.schedule(event, priority, delay_s)
    return event


def arrival_at(env: simpy.Environment, time_s: float) -> simpy.Event:
    """An arrival-priority event at exactly `time_s`. SimPy schedules at now + delay, and
    now + (t - now) can miss t by an ulp: a request recorded as arriving at t would then be
    seen by a step that starts an ulp before t. So the absolute time goes on the queue as is
    (SimPy 4's (time, priority, id, event) entries; tests check the instant)."""
    if not time_s >= env.now:
        raise ValueError(f"arrival_at time_s={time_s}, must be >= now={env.now}")
    event = triggered_event(env)
    heapq.heappush(env._queue, (time_s, URGENT, next(env._eid), event))
    return event


def arrival_timeout(env: simpy.Environment, delay_s: float) -> simpy.Event:
    """An event that fires after delay_s, before any step ending at the same instant."""
    if delay_s < 0:
        raise ValueError(f"arrival_timeout delay_s={delay_s}, must be >= 0")
    return event_in(env, delay_s, URGENT)


class ArrivalFeed:
    """Releases requests at their arrival times, in order, as `arrival_timeout`s would (URGENT
    priority), but by callbacks on scheduled events instead of a generator process: an
    arrival costs one event and no process resume. Requests due now are released at once."""

    __slots__ = ("_env", "_specs", "_deliver", "_due")

    def __init__(self, env: simpy.Environment, specs: Iterable[RequestSpec],
                 deliver: Callable[[RequestSpec], None]) -> None:
        self._env = env
        self._specs: Iterator[RequestSpec] = iter(specs)
        self._deliver = deliver
        self._due: RequestSpec | None = None
        self._schedule(env.now)  # like a process start: the first release happens in an event

    def _schedule(self, time_s: float) -> None:
        event = arrival_at(self._env, time_s)
        event.callbacks.append(self._release)

    def _release(self, _event: simpy.Event) -> None:
        now = self._env.now
        if self._due is not None:
            spec, self._due = self._due, None
            self._deliver(spec)
        for spec in self._specs:
            if spec.arrival_s > now:
                self._due = spec
                self._schedule(spec.arrival_s)
                return
            self._deliver(spec)
