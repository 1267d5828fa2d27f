"""Placement: which chips each replica's parallel groups run on.

A replica has pp pipeline stages of `stage_size = max(tp, ep)` chips (ep and tp must divide
one another: experts are sharded over the TP chips or over several TP groups of a stage).
Its chips are listed stage by stage; the TP group of a stage is its first tp chips, the EP
group its first ep chips, so `GraphComm.build(graph, chips, stage_size)` sees the TP group
as the first tp chips.

- within="domain": a replica stays inside one scale-up domain (an NVL72 rack, an HGX server,
  a TPU slice, a Trainium UltraServer). On a switch fabric it takes consecutive GPUs; on a
  torus a contiguous box (sub-torus) whose stages are slabs of the box, the box shape chosen
  to fit the most boxes in the domain, then the most cubic.
- within="any": replicas take consecutive chips in domain order and may span domains (the
  collectives then go over the scale-out fabric: hierarchical algorithms, NIC-bound).
- policy="pack" fills a domain before the next; "spread" deals replicas round-robin over
  domains (fewer replicas per rack: failures and power spread out).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import networkx as nx

from clustersim.errors import PlacementError
from clustersim.topology.graph import chips as chip_nodes


@dataclass(frozen=True, slots=True)
class ReplicaPlacement:
    """The chips of one replica, stage by stage (stage k = chips[k*stage_size:(k+1)*stage_size])."""

    index: int
    chips: tuple[str, ...]
    tp: int
    ep: int
    pp: int

    @property
    def stage_size(self) -> int:
        return max(self.tp, self.ep)

    def stage(self, k: int) -> tuple[str, ...]:
        return self.chips[k * self.stage_size : (k + 1) * self.stage_size]

    def tp_groups(self) -> list[tuple[str, ...]]:
        """Every TP group: consecutive tp chips of each stage."""
        return [s[i : i + self.tp] for k in range(self.pp) for s in [self.stage(k)] for i in range(0, len(s), self.tp)]

    def ep_groups(self) -> list[tuple[str, ...]]:
        return [s[i : i + self.ep] for k in range(self.pp) for s in [self.stage(k)] for i in range(0, len(s), self.ep)]


def _check_ints(num_replicas: int, tp: int, ep: int, pp: int, policy: str, within: str) -> None:
    for name, value in (("num_replicas", num_replicas), ("tp", tp), ("ep", ep), ("pp", pp)):
        if not isinstance(value, int) or value < 1:
            raise PlacementError(f"placement: {name}={value!r}, must be an integer >= 1")
    if tp % ep and ep % tp:
        raise PlacementError(f"placement: tp={tp}, ep={ep}, one must divide the other")
    if policy not in ("pack", "spread"):
        raise PlacementError(f"placement: policy={policy!r}, must be 'pack' or 'spread'")
    if within not in ("domain", "any"):
        raise PlacementError(f"placement: within={within!r}, must be 'domain' or 'any'")


def _domains(graph: nx.DiGraph, exclude: frozenset[str]) -> dict[int, list[str]]:
    """Free chips of each domain in their natural order (local index or coordinate)."""
    out: dict[int, list[str]] = defaultdict(list)
    for c in chip_nodes(graph):
        out[graph.nodes[c].get("domain", 0)].append(c)
    for d, members in out.items():
        members.sort(key=lambda c: (graph.nodes[c].get("local", 0), tuple(graph.nodes[c].get("coord", ()))))
    return {d: [c for c in m if c not in exclude] for d, m in sorted(out.items())}


def _factorizations(n: int, dims: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Ordered ways to write n as a product of len(dims) factors, factor d <= dims[d]."""
    if len(dims) == 1:
        return [(n,)] if n <= dims[0] else []
    out = []
    for f in range(1, min(n, dims[0]) + 1):
        if n % f == 0:
            out += [(f,) + rest for rest in _factorizations(n // f, dims[1:])]
    return out


def _torus_boxes(graph: nx.DiGraph, members: list[str], stage: int, pp: int) -> list[list[str]]:
    """Disjoint boxes (chip lists, stage-major, each stage a slab) inside one torus domain,
    using only free `members`. Chooses the stage shape and stacking dimension that fit the
    most boxes, then the most cubic."""
    dims = tuple(graph.graph["torus_dims"])
    at = {tuple(graph.nodes[c]["coord"]): c for c in members}
    best: tuple | None = None
    for shape in _factorizations(stage, dims):
        for j in range(len(dims)):
            box = tuple(s * pp if d == j else s for d, s in enumerate(shape))
            if any(b > k for b, k in zip(box, dims)):
                continue
            origins = itertools.product(*(range(0, k - b + 1, b) for b, k in zip(box, dims)))
            found = []
            for o in origins:
                slabs = []
                for p in range(pp):
                    ranges = [range(o[d] + (p * s if d == j else 0), o[d] + (p * s if d == j else 0) + s) for d, s in enumerate(shape)]
                    slabs += [at.get(c) for c in itertools.product(*ranges)]
                if all(slabs):
                    found.append(slabs)
            score = (-len(found), max(box), box)
            if found and (best is None or score < best[0]):
                best = (score, found)
    return best[1] if best else []


def _slots(graph: nx.DiGraph, members: list[str], size: int, stage: int, pp: int) -> list[list[str]]:
    """Disjoint replica-sized chip lists inside one domain."""
    if graph.graph.get("torus_dims") and all("coord" in graph.nodes[c] for c in members):
        return _torus_boxes(graph, members, stage, pp)
    return [members[i : i + size] for i in range(0, len(members) - size + 1, size)]


def place_replicas(
    graph: nx.DiGraph,
    num_replicas: int,
    tp: int,
    ep: int = 1,
    pp: int = 1,
    policy: str = "pack",
    within: str = "domain",
    exclude: frozenset[str] | set[str] = frozenset(),
) -> list[ReplicaPlacement]:
    """Map `num_replicas` replicas of tp x ep x pp onto free chips (not in `exclude`).

    >>> from clustersim.topology.nvidia import nvl72
    >>> [p.chips[:2] for p in place_replicas(nvl72(), 2, tp=4)]
    [('r0.g0', 'r0.g1'), ('r0.g4', 'r0.g5')]
    """
    _check_ints(num_replicas, tp, ep, pp, policy, within)
    stage = max(tp, ep)
    size = stage * pp
    name = graph.graph.get("name", "topology")
    domains = _domains(graph, frozenset(exclude))
    if within == "any":
        free = [c for members in domains.values() for c in members]
        if num_replicas * size > len(free):
            raise PlacementError(
                f"placement on {name}: num_replicas={num_replicas} x {size} chips (tp={tp}, ep={ep}, pp={pp}) "
                f"= {num_replicas * size} chips, only {len(free)} free"
            )
        chunks = [free[i * size : (i + 1) * size] for i in range(num_replicas)]
    else:
        largest = max((len(m) for m in domains.values()), default=0)
        if size > largest:
            raise PlacementError(
                f"placement on {name}: a replica needs {size} chips (tp={tp}, ep={ep}, pp={pp}), the largest "
                f"domain has {largest} free; use within='any' to span domains"
            )
        per_domain = [_slots(graph, m, size, stage, pp) for m in domains.values()]
        if policy == "pack":
            order = [slot for slots in per_domain for slot in slots]
        else:
            order = [s for tier in itertools.zip_longest(*per_domain) for s in tier if s is not None]
        if len(order) < num_replicas:
            raise PlacementError(
                f"placement on {name}: num_replicas={num_replicas} of {size} chips (tp={tp}, ep={ep}, pp={pp}) "
                f"within one domain each; only {len(order)} fit"
            )
        chunks = order[:num_replicas]
    placements = [ReplicaPlacement(i, tuple(c), tp, ep, pp) for i, c in enumerate(chunks)]
    check_disjoint(placements, graph)
    return placements


def check_disjoint(placements: list[ReplicaPlacement], graph: nx.DiGraph | None = None) -> None:
    """PlacementError if two replicas share a chip, or a chip is not in `graph`."""
    owner: dict[str, int] = {}
    for p in placements:
        for c in p.chips:
            if graph is not None and (c not in graph or graph.nodes[c].get("kind") != "chip"):
                raise PlacementError(f"placement: replica {p.index} chip {c!r} is not a chip of the topology")
            if c in owner:
                raise PlacementError(f"placement: chip {c!r} is in replica {owner[c]} and replica {p.index} (overlap)")
            owner[c] = p.index
        if len(p.chips) != p.stage_size * p.pp:
            raise PlacementError(
                f"placement: replica {p.index} has {len(p.chips)} chips, needs max(tp, ep) x pp = {p.stage_size * p.pp}"
            )
    return None


def used_chips(placements: list[ReplicaPlacement]) -> frozenset[str]:
    """Chips taken by placements (pass as `exclude` to place another pool beside them)."""
    return frozenset(c for p in placements for c in p.chips)


def chips_needed(num_replicas: int, tp: int, ep: int = 1, pp: int = 1) -> int:
    """num_replicas x max(tp, ep) x pp.

    >>> chips_needed(3, tp=4, ep=8, pp=2)
    48
    """
    return num_replicas * max(tp, ep) * pp
