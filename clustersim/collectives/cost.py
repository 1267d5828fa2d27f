"""Collective cost on a topology graph: pick the fastest algorithm, report time and link load.

time = steps x latency + max over links(bytes on link / link bandwidth), where "latency" is
the longest route latency of a step plus the graph's software `step_latency_s`, and bytes on
a link come from routing every logical transfer of the algorithm (see algorithms.py for the
message-size convention of each kind). Groups whose chips cannot reach each other raise
PartitionError; nothing returns a silent infinity.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from clustersim.collectives.algorithms import KINDS, Plan, plans_for
from clustersim.collectives.routing import Edge, Router
from clustersim.errors import PlacementError


@dataclass(frozen=True)
class CollectiveCost:
    """Result of one collective: seconds, bytes per directed link, the algorithm and its steps."""

    time_s: float
    per_link_bytes: dict[Edge, float]
    algorithm: str
    num_steps: int

    @property
    def max_link_bytes(self) -> float:
        return max(self.per_link_bytes.values(), default=0.0)


def check_group(graph: nx.DiGraph, group: list[str] | tuple[str, ...]) -> list[str]:
    """The group as a list of distinct chip nodes of `graph`, or PlacementError naming the bad one."""
    group = list(group)
    if not group:
        raise PlacementError("collective: group is empty, must hold >= 1 chip")
    for c in group:
        if c not in graph or graph.nodes[c].get("kind") != "chip":
            raise PlacementError(f"collective: group member {c!r} is not a chip of topology {graph.graph.get('name')!r}")
    if len(set(group)) != len(group):
        raise PlacementError(f"collective: group {group} repeats a chip")
    return group


def best_plan(plans: list[Plan], num_bytes: float, algorithm: str | None = None) -> Plan:
    """The fastest plan at this size, or the named one (ValueError listing the valid names)."""
    if algorithm is not None:
        named = [p for p in plans if p.algorithm == algorithm]
        if not named:
            raise ValueError(f"algorithm={algorithm!r} does not apply here; valid: {sorted({p.algorithm for p in plans})}")
        plans = named
    return min(plans, key=lambda p: (p.time_s(num_bytes), p.num_steps))


def collective(
    graph: nx.DiGraph | Router,
    kind: str,
    group: list[str],
    num_bytes: float,
    algorithm: str | None = None,
) -> CollectiveCost:
    """Cost of collective `kind` (one of KINDS) over `group` for a `num_bytes` message.
    Pass a Router instead of the graph to reuse routes across calls."""
    router = graph if isinstance(graph, Router) else Router(graph)
    if kind not in KINDS:
        raise ValueError(f"collective: kind={kind!r}, must be one of {KINDS}")
    if num_bytes < 0:
        raise ValueError(f"collective: num_bytes={num_bytes!r}, must be >= 0")
    group = check_group(router.g, group)
    if len(group) == 1:
        return CollectiveCost(0.0, {}, "none", 0)
    plan = best_plan(plans_for(router, kind, group), num_bytes, algorithm)
    per_link = {e: x * num_bytes for e, x in plan.load_per_byte.items()}
    return CollectiveCost(plan.time_s(num_bytes), per_link, plan.algorithm, plan.num_steps)


def all_reduce(graph, group, num_bytes, algorithm=None) -> CollectiveCost:
    """All-reduce of a `num_bytes` buffer held by every rank."""
    return collective(graph, "all_reduce", group, num_bytes, algorithm)


def all_gather(graph, group, num_bytes, algorithm=None) -> CollectiveCost:
    """All-gather whose gathered output is `num_bytes` (each rank holds num_bytes / n)."""
    return collective(graph, "all_gather", group, num_bytes, algorithm)


def reduce_scatter(graph, group, num_bytes, algorithm=None) -> CollectiveCost:
    """Reduce-scatter of a `num_bytes` input per rank (each keeps num_bytes / n reduced)."""
    return collective(graph, "reduce_scatter", group, num_bytes, algorithm)


def all_to_all(graph, group, num_bytes, algorithm=None) -> CollectiveCost:
    """All-to-all where each rank sends `num_bytes` in total, num_bytes / n to each rank."""
    return collective(graph, "all_to_all", group, num_bytes, algorithm)


def send(graph, src: str, dst: str, num_bytes: float) -> CollectiveCost:
    """Point-to-point transfer src -> dst of `num_bytes`."""
    return collective(graph, "send", [src, dst], num_bytes)


def bus_bandwidth_bytes_s(kind: str, num_bytes: float, n: int, time_s: float) -> float:
    """NCCL-tests bus bandwidth: algbw = bytes / time, times 2(n-1)/n for all-reduce and
    (n-1)/n for all-gather, reduce-scatter and all-to-all (1 for send).

    >>> bus_bandwidth_bytes_s("all_reduce", 8e9, 8, 0.035) / 1e9  # 8 GB in 35 ms on 8 GPUs
    400.0
    """
    factor = {"all_reduce": 2 * (n - 1) / n, "send": 1.0}.get(kind, (n - 1) / n)
    return num_bytes / time_s * factor
