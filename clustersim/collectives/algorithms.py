"""Collective algorithms as linear plans: time(B) = alpha_s + beta_s_per_byte x B.

Each plan embeds an algorithm's logical transfers on the physical graph (routing.py) and
keeps the bytes each directed link carries per byte of message (`load_per_byte`). Then
beta = max over links(load / bandwidth) and alpha = steps x (longest route latency of a step
+ the graph's software `step_latency_s`). A hierarchical plan runs phases one after another,
so its alpha and beta are the sums of its phases'.

Message size B per kind (NCCL's "size"): all_reduce, the buffer each rank holds;
all_gather, the gathered output; reduce_scatter, the input each rank holds; all_to_all, the
bytes each rank sends in total, its own 1/n share included (that share stays local); send,
the bytes moved.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass

import networkx as nx

from clustersim.collectives.routing import Edge, Router, add_load, ring_moves, seconds_per_byte
from clustersim.topology.figures import NVLS_REDUCTION_EFFICIENCY

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send")


@dataclass(frozen=True)
class Plan:
    """One algorithm for one group: time_s(B) = alpha_s + beta_s_per_byte x B."""

    algorithm: str
    num_steps: int
    alpha_s: float
    beta_s_per_byte: float
    load_per_byte: dict[Edge, float]

    def time_s(self, num_bytes: float) -> float:
        return self.alpha_s + self.beta_s_per_byte * num_bytes


def _plan(router: Router, name: str, steps: int, transfers: list[tuple[str, str, float]]) -> Plan:
    load, lat = add_load(router, transfers)
    step_lat = router.g.graph.get("step_latency_s", 0.0)
    return Plan(name, steps, steps * (lat + step_lat), seconds_per_byte(router.g, load), load)


def _ring_factor(kind: str, n: int) -> tuple[float, int]:
    """Bytes per logical ring hop (per byte of B) and steps: 2(n-1)/n and 2(n-1) for an
    all-reduce, (n-1)/n and n-1 for all-gather / reduce-scatter."""
    mult = 2 if kind == "all_reduce" else 1
    return mult * (n - 1) / n, mult * (n - 1)


def ring_plan(router: Router, kind: str, group: list[str]) -> Plan:
    """Unidirectional ring in group order."""
    n = len(group)
    per_hop, steps = _ring_factor(kind, n)
    return _plan(router, "ring", steps, [(group[i], group[(i + 1) % n], per_hop) for i in range(n)])


def _rounds_plan(router: Router, name: str, rounds: list[list[tuple[str, str, float]]]) -> Plan:
    """Rounds run one after another (each costs its own longest route + step latency); all
    rounds' bytes share the links."""
    load: dict[Edge, float] = {}
    step_lat = router.g.graph.get("step_latency_s", 0.0)
    alpha = 0.0
    for transfers in rounds:
        _, lat = add_load(router, transfers, into=load)
        alpha += lat + step_lat
    return Plan(name, len(rounds), alpha, seconds_per_byte(router.g, load), load)


def tree_plan(router: Router, kind: str, group: list[str]) -> Plan:
    """Binary tree in group order: reduce to rank 0 level by level, then broadcast back; each
    tree edge carries the whole buffer once each way. Few steps (2 x depth), more bytes: wins
    for small messages."""
    n = len(group)
    levels: dict[int, list[tuple[str, str, float]]] = defaultdict(list)
    for i in range(1, n):
        parent = group[(i - 1) // 2]
        levels[int(math.log2(i + 1))].append((group[i], parent, 1.0))
    up = [levels[d] for d in sorted(levels, reverse=True)]
    down = [[(p, c, x) for c, p, x in lvl] for lvl in reversed(up)]
    return _rounds_plan(router, "tree", up + down)


def halving_doubling_plan(router: Router, kind: str, group: list[str]) -> Plan:
    """Recursive halving (reduce-scatter) and/or doubling (all-gather), n a power of two:
    log2(n) steps each; at step s a rank swaps B / 2^(s+1) with the rank n / 2^(s+1) away."""
    n = len(group)
    halving = []
    for s in range(int(math.log2(n))):
        dist, amount = n >> (s + 1), 1.0 / 2 ** (s + 1)
        halving.append([(group[i], group[i ^ dist], amount) for i in range(n)])
    rounds = {"all_reduce": halving + halving[::-1], "reduce_scatter": halving}.get(kind, halving[::-1])
    return _rounds_plan(router, "halving_doubling", rounds)


def nvls_plan(router: Router, kind: str, group: list[str]) -> Plan | None:
    """In-switch reduction (NVLink SHARP): each GPU sends its buffer once into the switch
    planes and receives the reduced buffer once, so each direction of a GPU's NVLinks carries
    B instead of the ring's 2(n-1)/n x B; the switches reduce at NVLS_REDUCTION_EFFICIENCY of
    that link-limited rate (measured). All-reduce only; all GPUs must hang off the same
    NVLS-capable switches."""
    g = router.g
    if kind != "all_reduce":
        return None
    planes = None
    for chip in group:
        sws = frozenset(v for v in g.successors(chip) if g.nodes[v].get("nvls") and g.has_edge(v, chip))
        if not sws or (planes is not None and sws != planes):
            return None
        planes = sws
    # switch s reduces chunk s of every GPU, so all GPUs split the buffer alike: chunk s gets
    # a share proportional to the thinnest link (either direction) any GPU has to s
    width = {sw: min(min(g.edges[c, sw]["bw_bytes_s"], g.edges[sw, c]["bw_bytes_s"]) for c in group) for sw in planes}
    total = sum(width.values())
    load: dict[Edge, float] = {}
    lat = 0.0
    for chip in group:
        for sw in planes:
            load[(chip, sw)] = load[(sw, chip)] = width[sw] / total
            lat = max(lat, g.edges[chip, sw]["latency_s"] + g.edges[sw, chip]["latency_s"])
    step_lat = g.graph.get("step_latency_s", 0.0)
    # the switches' reduction throughput, not the links, bounds NVLS (figures.NVLS_REDUCTION_EFFICIENCY)
    beta = seconds_per_byte(g, load) / NVLS_REDUCTION_EFFICIENCY
    return Plan("nvls", 2, 2 * (lat / 2 + step_lat), beta, load)


def box_shape(router: Router, group: list[str]) -> list[list[int]] | None:
    """Per-dimension sorted coordinate sets if the group is exactly their product inside one
    torus domain (a box, maybe strided), else None."""
    coords = [router.coord(c) for c in group]
    if not router.dims or any(c is None for c in coords):
        return None
    if len({router.g.nodes[c].get("domain", 0) for c in group}) != 1:
        return None
    axes = [sorted({c[d] for c in coords}) for d in range(len(router.dims))]
    if math.prod(len(a) for a in axes) != len(set(coords)) or len(set(coords)) != len(group):
        return None
    return axes


def _lines(router: Router, domain: int, axes: list[list[int]], d: int):
    """Chips of each line of the box along dimension d, in coordinate order."""
    others = [axes[e] if e != d else [None] for e in range(len(axes))]
    for fixed in itertools.product(*others):
        yield [router.at[(domain, tuple(x if e != d else c for e, x in enumerate(fixed)))] for c in axes[d]]


def torus_rings_plan(router: Router, kind: str, group: list[str]) -> Plan | None:
    """Bidirectional rings along each dimension of a box group, all dimensions at once: the
    buffer is split into D parts, part j reduces along the dimensions in an order rotated by
    j, and each ring sends half its chunk each way round. On a wrapped line of k chips every
    link direction then carries (k-1)/k x chunk / 2 per phase; without wrap-around the ring's
    closing hop runs back along the line, doubling the load (the route shows it)."""
    axes = box_shape(router, group)
    if axes is None:
        return None
    active = [d for d, a in enumerate(axes) if len(a) > 1]
    if not active:
        return None
    mult = 2 if kind == "all_reduce" else 1
    per_dim = defaultdict(float)
    for j in range(len(active)):
        buf = 1.0 / len(active)
        for d in active[j:] + active[:j]:
            k = len(axes[d])
            per_dim[d] += mult * (k - 1) / k * buf / 2
            buf /= k
    domain = router.g.nodes[group[0]].get("domain", 0)
    load: dict[Edge, float] = {}
    alpha = 0.0
    step_lat = router.g.graph.get("step_latency_s", 0.0)
    for d in active:
        k = len(axes[d])
        transfers = []
        for line in _lines(router, domain, axes, d):
            for i in range(k):
                a, b = line[i], line[(i + 1) % k]
                transfers += [(a, b, per_dim[d]), (b, a, per_dim[d])]
        _, lat = add_load(router, transfers, into=load)
        alpha += mult * (k - 1) * (lat + step_lat)
    steps = sum(mult * (len(axes[d]) - 1) for d in active)
    return Plan("torus_rings", steps, alpha, seconds_per_byte(router.g, load), load)


def _a2a_torus_load(router: Router, group: list[str], axes: list[list[int]]) -> dict[Edge, float] | None:
    """All-to-all link loads on a box under DOR, line by line: traffic moving along dimension
    d sits on a line whose other coordinates are the destination's (dims < d) and the source's
    (dims > d), so every line of the box carries B/k_d for each (from, to) pair on it.
    Returns None if a DOR link is missing (then route pair by pair)."""
    domain = router.g.nodes[group[0]].get("domain", 0)
    load: dict[Edge, float] = {}
    for d, k_phys in enumerate(router.dims):
        axis = axes[d]
        k = len(axis)
        if k < 2:
            continue
        steps: dict[tuple[int, int], float] = defaultdict(float)  # (from coord, +1/-1) -> bytes/B
        for a, b in itertools.permutations(axis, 2):
            for frac, hops in ring_moves(a, b, k_phys, router.wrap[d]):
                sign = 1 if hops > 0 else -1
                for h in range(abs(hops)):
                    steps[((a + sign * h) % k_phys, sign)] += frac / k
        others = [axes[e] if e != d else [0] for e in range(len(axes))]
        for fixed in itertools.product(*others):
            for (pos, sign), amount in steps.items():
                c = list(fixed)
                c[d] = pos
                u = router.at.get((domain, tuple(c)))
                c[d] = (pos + sign) % k_phys
                v = router.at.get((domain, tuple(c)))
                if u is None or v is None or not router.g.has_edge(u, v):
                    return None
                load[(u, v)] = load.get((u, v), 0.0) + amount
    return load


def all_to_all_plan(router: Router, group: list[str]) -> Plan:
    """Direct all-to-all: every rank sends B/n to each other rank at once (one step)."""
    n = len(group)
    axes = box_shape(router, group)
    load = _a2a_torus_load(router, group, axes) if axes is not None else None
    step_lat = router.g.graph.get("step_latency_s", 0.0)
    if load is None:
        load, lat = add_load(router, [(a, b, 1.0 / n) for a in group for b in group if a != b])
    else:  # latency: longest DOR route from one corner (to the middle or the far corner)
        domain = router.g.nodes[group[0]].get("domain", 0)
        corner = router.at[(domain, tuple(a[0] for a in axes))]
        far = [router.at[(domain, tuple(a[len(a) // 2] for a in axes))], router.at[(domain, tuple(a[-1] for a in axes))]]
        lat = max(router.route(corner, f).latency_s for f in far)
    return Plan("direct", 1, lat + step_lat, seconds_per_byte(router.g, load), load)


def flat_plans(router: Router, kind: str, group: list[str]) -> list[Plan]:
    """Every single-phase algorithm that applies to this group and kind."""
    if kind == "all_to_all":
        return [all_to_all_plan(router, group)]
    plans = [ring_plan(router, kind, group)]
    for make in (torus_rings_plan, nvls_plan):
        p = make(router, kind, group)
        if p is not None:
            plans.append(p)
    if len(group) & (len(group) - 1) == 0:
        plans.append(halving_doubling_plan(router, kind, group))
    if kind == "all_reduce":
        plans.append(tree_plan(router, kind, group))
    return plans


def _concurrent(router: Router, name: str, kind: str, groups: list[list[str]], scale: float) -> Plan:
    """The bandwidth-best flat plan of each group, all groups at once on B x scale bytes."""
    load: dict[Edge, float] = defaultdict(float)
    alpha, steps = 0.0, 0
    for grp in groups:
        best = min(flat_plans(router, kind, grp), key=lambda p: (p.beta_s_per_byte, p.alpha_s))
        alpha, steps = max(alpha, best.alpha_s), max(steps, best.num_steps)
        for e, x in best.load_per_byte.items():
            load[e] += x * scale
    return Plan(name, steps, alpha, seconds_per_byte(router.g, load), dict(load))


def hierarchical_plan(router: Router, kind: str, group: list[str]) -> Plan | None:
    """For a group spread evenly over r > 1 scale-up domains, m > 1 chips each: reduce-scatter
    inside each domain, all-reduce B/m across domains among chips of the same local rank (each
    over its own NIC: rails), all-gather inside. All-gather and reduce-scatter keep their half."""
    if kind not in ("all_reduce", "all_gather", "reduce_scatter"):
        return None
    by_domain: dict[int, list[str]] = defaultdict(list)
    for c in group:
        by_domain[router.g.nodes[c].get("domain", 0)].append(c)
    doms = list(by_domain.values())
    m = len(doms[0])
    if len(doms) < 2 or m < 2 or any(len(d) != m for d in doms):
        return None
    rails = [[d[i] for d in doms] for i in range(m)]
    if kind == "all_reduce":
        phases = [("reduce_scatter", doms, 1.0), ("all_reduce", rails, 1.0 / m), ("all_gather", doms, 1.0)]
    elif kind == "all_gather":
        phases = [("all_gather", rails, 1.0 / m), ("all_gather", doms, 1.0)]
    else:
        phases = [("reduce_scatter", doms, 1.0), ("reduce_scatter", rails, 1.0 / m)]
    parts = [_concurrent(router, "hierarchical", k, grps, s) for k, grps, s in phases]
    load: dict[Edge, float] = defaultdict(float)
    for p in parts:
        for e, x in p.load_per_byte.items():
            load[e] += x
    return Plan(
        "hierarchical",
        sum(p.num_steps for p in parts),
        sum(p.alpha_s for p in parts),
        sum(p.beta_s_per_byte for p in parts),
        dict(load),
    )


def plans_for(graph_or_router: nx.DiGraph | Router, kind: str, group: list[str]) -> list[Plan]:
    """All candidate plans for `kind` on `group` (len >= 2); send uses group[0] -> group[1]."""
    router = graph_or_router if isinstance(graph_or_router, Router) else Router(graph_or_router)
    if kind == "send":
        return [_plan(router, "p2p", 1, [(group[0], group[1], 1.0)])]
    plans = flat_plans(router, kind, group)
    h = hierarchical_plan(router, kind, group)
    return plans + ([h] if h is not None else [])
