"""The serving system above the engines: admission, routing, retries after failures.

Owns the path of every request from arrival to its one terminal record:
- a request that can never fit (KV capacity or model context) is REJECTED at once;
- otherwise the router picks an up replica; with none up it waits in the backlog;
- a request evicted by a replica failure is sent to another replica; if it held computed KV
  there (it had run) that KV is lost, it recomputes prompt + generated tokens and the
  resend counts as a retry, up to `max_retries`, then it is FAILED; a request that was only
  queued (no computed KV) lost nothing and is re-routed without counting a retry;
- finishing, rejection and failure call `on_record` exactly once per request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import simpy

from clustersim.serving.engine import Engine
from clustersim.serving.request import Request, RequestSpec, Status
from clustersim.serving.router import Router


@dataclass(slots=True)
class Cluster:
    """Router, replicas and the bookkeeping that keeps every request accounted for."""

    env: simpy.Environment
    router: Router
    max_tokens: int  # prompt + output - 1 must fit a replica's KV cache
    max_context: int  # prompt + output must fit the model's context window
    on_record: Callable[[Request], None]
    max_retries: int = 3
    engines: list[Engine] = field(default_factory=list)
    backlog: deque[Request] = field(default_factory=deque)
    down: set[int] = field(default_factory=set)  # replicas failed through this cluster

    def attach(self, engines: Sequence[Engine]) -> None:
        self.engines = list(engines)

    def arrive(self, spec: RequestSpec) -> None:
        """A new request arrives now."""
        request = Request(spec)
        total = spec.num_prompt_tokens + spec.num_output_tokens
        if total - 1 > self.max_tokens or total > self.max_context:
            request.status = Status.REJECTED
            self.on_record(request)
            return
        self._route(request)

    def _route(self, request: Request) -> None:
        if not self.down:
            replica = self.router.choose(None)  # every replica up: no list to build
        elif len(self.down) == len(self.engines):
            self.backlog.append(request)
            return
        else:
            replica = self.router.choose([i for i in range(len(self.engines)) if i not in self.down])
        self.router.dispatched(replica, _tokens(request))
        self.engines[replica].submit(request)

    def finished(self, request: Request) -> None:
        """Engine callback: the request produced its last token."""
        request.status = Status.FINISHED
        self.router.finished(request.replica, _tokens(request))
        self.on_record(request)

    def evicted(self, evicted: list[tuple[Request, bool]]) -> None:
        """Engine callback: a failed replica dropped these requests, each with whether it had
        computed KV there. Those that lost KV spend a retry (FAILED past max_retries); those
        that were only queued are re-routed as they are."""
        for request, lost_kv in evicted:
            self.router.finished(request.replica, _tokens(request))
            if lost_kv:
                request.num_retries += 1
                if request.num_retries > self.max_retries:
                    request.status = Status.FAILED
                    self.on_record(request)
                    continue
            self._route(request)

    def fail(self, replica: int) -> None:
        """The replica goes down now (its engine evicts what it holds, see `evicted`)."""
        self.down.add(replica)
        self.engines[replica].fail()

    def restore(self, replica: int) -> None:
        """The replica is back: it takes the backlog first."""
        self.down.discard(replica)
        self.engines[replica].restore()
        pending, self.backlog = self.backlog, deque()
        for request in pending:
            self._route(request)

    def unfinished(self) -> list[Request]:
        """Requests still held anywhere (for the records at the horizon)."""
        for engine in self.engines:
            engine.batcher.sync()
        held = [r for e in self.engines for r in (*e.batcher.running, *e.batcher.waiting)]
        return held + list(self.backlog)


def _tokens(request: Request) -> int:
    return request.spec.num_prompt_tokens + request.spec.num_output_tokens
