"""The failure injector: a SimPy process that applies a fault schedule to the serving cluster.

State is the set of faults in force. After every fault and every repair the injector asks
the blast model for the combined effect of that set and moves each replica to it:
- out (a dead chip, or partitioned): `cluster.fail(r)` (its requests are retried elsewhere);
- back in: it reloads (weights lost: bytes per chip / reload bandwidth + engine init;
  partition only: engine init), then `cluster.restore(r)`. A replica hit again while it
  reloads starts over when its last blocker is repaired, so overlapping faults on one
  replica bring it back only when all are fixed;
- degraded: `degrade(r, graph, comm)` when its comm graph changes, `degrade(r, None, None)`
  when it is whole again;
- `on_service(r, serving)` (optional) right after `cluster.fail(r)` (False) and
  `cluster.restore(r)` (True), so a caller can keep each replica's state over time.
TPU slices re-form around a dead cube through the OCS: if the dead chips of a fault lie in
one cube and a spare cube is free, the fault is absorbed (it no longer counts toward the
effect), the replicas on that cube are out for `reconfig_s` plus a weight reload onto the
spare cube, and the spare returns to the pool when the dead cube is repaired.
Fault and repair times use `arrival_timeout` (URGENT): a fault at the instant a step ends
cuts that step (see serving.clock and engine.fail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import simpy

from clustersim.failures.blast import Effect
from clustersim.failures.records import event_row
from clustersim.failures.schedule import Fault
from clustersim.serving.clock import arrival_timeout

DegradeFn = Callable[[int, "nx.DiGraph | None", Any], None]
"""degrade(replica, graph, comm): run on `comm` (a GraphComm on `graph`); (r, None, None) = healthy."""
ServiceFn = Callable[[int, bool], None]
"""on_service(replica, serving): the replica was just taken out (False) or put back (True)."""


@dataclass(slots=True)
class _ReplicaState:
    out: bool = False
    lost_weights: bool = False
    reloading: bool = False
    generation: int = 0
    since_s: float = 0.0
    degraded_key: frozenset[str] | None = None


class FailureInjector:
    """Applies `faults` to `cluster` (see module docstring); rows go to `on_event`."""

    def __init__(
        self,
        env: simpy.Environment,
        cluster: Any,
        faults: Sequence[Fault],
        effect_of: Callable[[Iterable[str]], Effect],
        reload_s: Callable[[int], float],
        on_event: Callable[[dict], None],
        degrade: DegradeFn | None = None,
        reinit_s: float = 0.0,
        reconfig_s: float = 10.0,
        num_spare_cubes: int = 0,
        on_service: ServiceFn | None = None,
    ) -> None:
        self.env = env
        self.cluster = cluster
        self.faults = sorted(faults, key=lambda f: (f.time_s, f.component))
        self.effect_of = effect_of
        self.reload_s = reload_s
        self.on_event = on_event
        self.degrade = degrade
        self.reinit_s = reinit_s
        self.reconfig_s = reconfig_s
        self.num_spare_cubes = num_spare_cubes
        self.on_service = on_service
        self.active: list[Fault] = []  # faults in force that count toward the effect
        self.absorbed: list[Fault] = []  # faults routed around by an OCS re-form
        self.reconfiguring: dict[int, int] = {}  # replica -> re-forms in progress
        self.replicas = [_ReplicaState() for _ in cluster.engines]
        self.effect = effect_of(())
        self.process = env.process(self._run())

    def _emit(self, component: str, cls: str, kind: str, replicas: Iterable[int], recovery_s: float,
              parts: Effect | None = None) -> None:
        """One events row; `parts` (the component's own effect) names its chips and links."""
        chips, links = (parts.chips, parts.links) if parts is not None else ((), ())
        self.on_event(event_row(self.env.now, component, cls, kind, replicas, len(chips), recovery_s, chips, links))

    def _run(self):
        for fault in self.faults:
            if fault.time_s > self.env.now:
                yield arrival_timeout(self.env, fault.time_s - self.env.now)
            self._fail(fault)
            self.env.process(self._repair_later(fault))

    def _fail(self, fault: Fault) -> None:
        single = self.effect_of((fault.component,))
        if single.cube is not None and self.num_spare_cubes > 0:
            self.num_spare_cubes -= 1
            self.absorbed.append(fault)
            for r in single.down:
                self.reconfiguring[r] = self.reconfiguring.get(r, 0) + 1
            self.env.process(self._reconfigured(single.down))
            newly = self._sync()
            self._rows(fault, "fail", newly, single)
            self._emit(fault.component, fault.component_class, "reconfig", single.down, self.reconfig_s, single)
            return
        self.active.append(fault)
        self._rows(fault, "fail", self._sync(), single)

    def _repair_later(self, fault: Fault):
        yield arrival_timeout(self.env, fault.repair_s)
        if fault in self.absorbed:
            self.absorbed.remove(fault)
            self.num_spare_cubes += 1
            changes: dict[str, set[int]] = {}
        else:
            self.active.remove(fault)
            changes = self._sync()
        back = changes.get("back", set())
        single = self.effect_of((fault.component,))
        self._emit(fault.component, fault.component_class, "repair", back, fault.repair_s, single)
        if changes.get("restore_bw"):
            self._emit(fault.component, fault.component_class, "restore_bw", changes["restore_bw"], fault.repair_s, single)

    def _reconfigured(self, replicas: frozenset[int]):
        yield arrival_timeout(self.env, self.reconfig_s)
        for r in replicas:
            self.reconfiguring[r] -= 1
            if not self.reconfiguring[r]:
                del self.reconfiguring[r]
        self._sync()

    def _rows(self, fault: Fault, kind: str, changes: dict[str, set[int]], single: Effect) -> None:
        self._emit(fault.component, fault.component_class, kind, changes.get("down", set()), fault.repair_s, single)
        for extra in ("partition", "degrade", "restore_bw"):
            if changes.get(extra):
                self._emit(fault.component, fault.component_class, extra, changes[extra], fault.repair_s, single)

    def _sync(self) -> dict[str, set[int]]:
        """Move every replica to the effect of the faults now in force; returns who changed."""
        self.effect = effect = self.effect_of(f.component for f in self.active)
        changes: dict[str, set[int]] = {k: set() for k in ("down", "partition", "back", "degrade", "restore_bw")}
        for r, state in enumerate(self.replicas):
            lost = r in effect.down or r in self.reconfiguring
            if lost or r in effect.partitioned:
                state.lost_weights |= lost
                if not state.out:
                    state.out, state.since_s = True, self.env.now
                    self._set_degraded(r, None, changes)
                    changes["down" if lost else "partition"].add(r)
                    self.cluster.fail(r)
                    if self.on_service is not None:
                        self.on_service(r, False)
                state.generation += 1  # cancels a reload in progress
                state.reloading = False
            elif state.out:
                if not state.reloading:
                    changes["back"].add(r)
                    self.env.process(self._reload(r))
            else:
                self._set_degraded(r, effect, changes)
        return changes

    def _set_degraded(self, r: int, effect: Effect | None, changes: dict[str, set[int]]) -> None:
        state = self.replicas[r]
        key = effect.components if effect is not None and r in effect.degraded else None
        if key == state.degraded_key:
            return
        state.degraded_key = key
        if key is None:
            changes["restore_bw"].add(r)
            if self.degrade is not None:
                self.degrade(r, None, None)
        else:
            changes["degrade"].add(r)
            if self.degrade is not None:
                self.degrade(r, effect.graph, effect.comms.get(r))

    def _reload(self, r: int):
        state = self.replicas[r]
        state.reloading = True
        generation = state.generation
        duration_s = self.reload_s(r) if state.lost_weights else self.reinit_s
        self._emit(f"replica{r}", "replica", "reload_start", [r], duration_s)
        yield arrival_timeout(self.env, duration_s)
        if state.generation != generation:
            return  # hit again while reloading: a later repair starts a new reload
        state.out = state.reloading = state.lost_weights = False
        self.cluster.restore(r)
        if self.on_service is not None:
            self.on_service(r, True)
        self._emit(f"replica{r}", "replica", "reload_done", [r], self.env.now - state.since_s)
        changes: dict[str, set[int]] = {"degrade": set(), "restore_bw": set()}
        self._set_degraded(r, self.effect, changes)
        if changes["degrade"]:
            self._emit(f"replica{r}", "replica", "degrade", [r], 0.0)


def start_failures(
    env: simpy.Environment,
    cluster: Any,
    faults: Sequence[Fault],
    effect_of: Callable[[Iterable[str]], Effect],
    reload_s: Callable[[int], float],
    on_event: Callable[[dict], None],
    degrade: DegradeFn | None = None,
    **options: Any,
) -> FailureInjector:
    """Start the injector process (options: reinit_s, reconfig_s, num_spare_cubes, on_service)."""
    return FailureInjector(env, cluster, faults, effect_of, reload_s, on_event, degrade, **options)
