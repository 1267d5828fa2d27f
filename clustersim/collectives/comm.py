"""`GraphComm`: the perf model's CommModel answered from the topology graph.

Built once per placed replica: for each kind and sub-group size it keeps every applicable
algorithm as a line alpha_s + beta_s_per_byte x B (beta = max link load per byte / bandwidth,
computed once by routing), so a call is O(number of algorithms), and picking the cheapest
line at B is the size-class choice (tree for small messages, ring/NVLS for large ones).
The sub-group of size s is the first s placed chips (placement puts a TP group first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from clustersim.collectives.algorithms import plans_for
from clustersim.collectives.cost import check_group
from clustersim.collectives.routing import Edge, Router


def graph_fingerprint(graph: nx.DiGraph) -> int:
    """Hash of the links and their figures: two graphs that route alike hash alike."""
    return hash(tuple(sorted((str(u), str(v), d["bw_bytes_s"], d["latency_s"]) for u, v, d in graph.edges(data=True))))


def _divisors(n: int) -> list[int]:
    return [s for s in range(2, n + 1) if n % s == 0]


@dataclass(frozen=True, slots=True)
class GraphComm:
    """Collective times of one placed group on one topology (implements perf.comm.CommModel).

    send_s is the pipeline hand-off chips[0] -> chips[stage_size] (the first chip of the next
    stage), or chips[0] -> chips[1] when the replica has one stage.
    """

    topology: str
    fingerprint: int
    chips: tuple[str, ...]
    stage_size: int
    lines: dict[tuple[str, int], tuple[tuple[str, float, float], ...]] = field(compare=False, hash=False, repr=False)
    loads: dict[tuple[str, int, str], dict[Edge, float]] = field(compare=False, hash=False, repr=False)

    @classmethod
    def build(
        cls,
        graph: nx.DiGraph,
        chips: list[str] | tuple[str, ...],
        stage_size: int | None = None,
        group_sizes: list[int] | None = None,
        kinds: tuple[str, ...] = ("all_reduce", "all_to_all"),
        router: Router | None = None,
    ) -> GraphComm:
        """Route every algorithm for each kind and sub-group size (default: every divisor of
        len(chips)) once. Raises PartitionError if the placed chips cannot reach each other."""
        chips = tuple(check_group(graph, chips))
        router = router or Router(graph)
        stage = stage_size or len(chips)
        lines: dict = {}
        loads: dict = {}
        sizes = group_sizes or _divisors(len(chips))
        for kind in kinds:
            for s in sizes:
                plans = plans_for(router, kind, list(chips[:s]))
                lines[(kind, s)] = tuple((p.algorithm, p.alpha_s, p.beta_s_per_byte) for p in plans)
                loads.update({(kind, s, p.algorithm): p.load_per_byte for p in plans})
        if len(chips) > 1:
            dst = chips[stage] if stage < len(chips) else chips[1]
            p = plans_for(router, "send", [chips[0], dst])[0]
            lines[("send", 2)] = ((p.algorithm, p.alpha_s, p.beta_s_per_byte),)
            loads[("send", 2, p.algorithm)] = p.load_per_byte
        name = str(graph.graph.get("name", ""))
        return cls(name, graph_fingerprint(graph), chips, stage, lines, loads)

    def _best(self, kind: str, num_bytes: float, group_size: int) -> tuple[str, float]:
        options = self.lines.get((kind, group_size))
        if options is None:
            valid = sorted(s for k, s in self.lines if k == kind)
            raise ValueError(f"GraphComm({self.topology}): {kind} group_size={group_size} not built; built sizes {valid}")
        alg, alpha, beta = min(options, key=lambda o: o[1] + o[2] * num_bytes)
        return alg, alpha + beta * num_bytes

    def time_s(self, kind: str, num_bytes: float, group_size: int) -> float:
        """Seconds of `kind` on the first `group_size` chips (0.0 for one chip)."""
        return 0.0 if group_size <= 1 else self._best(kind, num_bytes, group_size)[1]

    def all_reduce_s(self, num_bytes: float, group_size: int) -> float:
        return self.time_s("all_reduce", num_bytes, group_size)

    def all_to_all_s(self, num_bytes: float, group_size: int) -> float:
        return self.time_s("all_to_all", num_bytes, group_size)

    def send_s(self, num_bytes: float) -> float:
        return 0.0 if len(self.chips) < 2 else self._best("send", num_bytes, 2)[1]

    def link_bytes(self, kind: str, num_bytes: float, group_size: int) -> dict[Edge, float]:
        """Bytes each directed link carries for this collective (what links.arrow accumulates)."""
        if group_size <= 1:
            return {}
        alg, _ = self._best(kind, num_bytes, group_size)
        return {e: x * num_bytes for e, x in self.loads[(kind, group_size, alg)].items()}
