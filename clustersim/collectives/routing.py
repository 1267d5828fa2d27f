"""Physical routes of logical transfers: which directed links carry what share of the bytes.

Two rules, chosen per transfer:
- dimension-order routing (DOR) between chips of one torus domain: correct dimension 0 first,
  then 1, ...; each along the shorter way round (split half/half when both ways are equally
  long on a wrapped ring). A failed link on the DOR path is replaced by one shortest detour
  around it, so the rest of the route (and every other route) keeps its links.
- otherwise ECMP over hop-count shortest paths: at each node the flow splits equally over
  the next hops that lie on a shortest path. Chips relay traffic only when the graph says so
  (`chips_forward`, true on a torus); switches, NICs and OCS always do.
The split never depends on bandwidth, so raising a link's bandwidth never moves traffic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import networkx as nx

from clustersim.errors import ClusterSimError

Edge = tuple[str, str]


class PartitionError(ClusterSimError):
    """Two chips of a group have no path between them (links or switches removed)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Share of a transfer's bytes on each directed link, and the latency of its longest path."""

    share: dict[Edge, float]
    latency_s: float


EMPTY = Route({}, 0.0)


def ring_moves(a: int, b: int, k: int, wrap: bool) -> list[tuple[float, int]]:
    """Ways to go from a to b on a line/ring of k positions: (fraction, signed hop count).

    >>> ring_moves(0, 3, 4, True), ring_moves(0, 2, 4, True), ring_moves(0, 3, 4, False)
    ([(1.0, -1)], [(0.5, 2), (0.5, -2)], [(1.0, 3)])
    """
    if a == b:
        return [(1.0, 0)]
    if not wrap or k < 3:
        return [(1.0, b - a)]
    fwd = (b - a) % k
    bwd = k - fwd
    if fwd < bwd:
        return [(1.0, fwd)]
    if bwd < fwd:
        return [(1.0, -bwd)]
    return [(0.5, fwd), (0.5, -bwd)]


class Router:
    """Routes on one graph, caching distances per destination and routes per pair.

    The graph must not change while a Router is in use (build a new Router after a failure).
    """

    def __init__(self, graph: nx.DiGraph) -> None:
        self.g = graph
        forward_chips = bool(graph.graph.get("chips_forward", False))
        self._forwards = {n: forward_chips or k != "chip" for n, k in graph.nodes(data="kind")}
        self._dist: dict[str, dict[str, int]] = {}
        self._routes: dict[Edge, Route] = {}
        self.dims: tuple[int, ...] = tuple(graph.graph.get("torus_dims", ()))
        self.wrap: tuple[bool, ...] = tuple(graph.graph.get("torus_wrap", ()))
        self.at: dict[tuple[int, tuple[int, ...]], str] = {}
        if self.dims:
            for n, data in graph.nodes(data=True):
                if data.get("kind") == "chip" and "coord" in data:
                    self.at[(data.get("domain", 0), tuple(data["coord"]))] = n

    def coord(self, node: str) -> tuple[int, ...] | None:
        """Torus coordinate of a chip, or None off-torus."""
        c = self.g.nodes[node].get("coord") if self.dims else None
        return tuple(c) if c is not None else None

    def route(self, src: str, dst: str) -> Route:
        """The route of one transfer src -> dst; raises PartitionError if dst is unreachable."""
        key = (src, dst)
        hit = self._routes.get(key)
        if hit is None:
            hit = EMPTY if src == dst else (self._dor(src, dst) or self._ecmp(src, dst))
            self._routes[key] = hit
        return hit

    def _dor(self, src: str, dst: str) -> Route | None:
        a, b = self.coord(src), self.coord(dst)
        nodes = self.g.nodes
        if a is None or b is None or nodes[src].get("domain", 0) != nodes[dst].get("domain", 0):
            return None
        domain = nodes[src].get("domain", 0)
        paths: list[tuple[float, tuple[int, ...], float]] = [(1.0, a, 0.0)]
        share: dict[Edge, float] = defaultdict(float)
        for d, k in enumerate(self.dims):
            nxt_paths = []
            for w, cur, lat in paths:
                for frac, hops in ring_moves(cur[d], b[d], k, self.wrap[d]):
                    step = 1 if hops > 0 else -1
                    pos = list(cur)
                    for _ in range(abs(hops)):
                        u = self.at[(domain, tuple(pos))]
                        pos[d] = (pos[d] + step) % k
                        v = self.at.get((domain, tuple(pos)))
                        if v is None:
                            return None
                        for x, y in self._hop(u, v):
                            share[(x, y)] += w * frac
                            lat += self.g.edges[x, y]["latency_s"]
                    nxt_paths.append((w * frac, tuple(pos), lat))
            paths = nxt_paths
        return Route(dict(share), max(lat for _, _, lat in paths))

    def _hop(self, u: str, v: str) -> list[Edge]:
        """The link u -> v, or, if it is gone, one shortest detour (first next hop in name
        order at each node). A single path, not a split: the failed link's whole load lands on
        the detour, which must cross another link of the same dimension, so no surviving link
        carries less than before and the failure can never look like a speed-up."""
        if self.g.has_edge(u, v):
            return [(u, v)]
        dist = self._dist_to(v)
        if u not in dist:
            raise PartitionError(f"route: no path from {u!r} to {v!r} (group partitioned)")
        path, node = [], u
        while node != v:
            nxt = min(
                x for x in self.g.successors(node)
                if dist.get(x) == dist[node] - 1 and (x == v or self._forwards[x])
            )
            path.append((node, nxt))
            node = nxt
        return path

    def _dist_to(self, dst: str) -> dict[str, int]:
        """Hops from every node to dst, never relaying through a non-forwarding node."""
        dist = self._dist.get(dst)
        if dist is None:
            dist = {dst: 0}
            frontier = [dst]
            while frontier:
                nxt = []
                for v in frontier:
                    if v != dst and not self._forwards[v]:
                        continue
                    for u in self.g.predecessors(v):
                        if u not in dist:
                            dist[u] = dist[v] + 1
                            nxt.append(u)
                frontier = nxt
            self._dist[dst] = dist
        return dist

    def _ecmp(self, src: str, dst: str) -> Route:
        dist = self._dist_to(dst)
        if src not in dist:
            raise PartitionError(f"route: no path from {src!r} to {dst!r} (group partitioned)")
        flow = {src: 1.0}
        lat = {src: 0.0}
        share: dict[Edge, float] = {}
        layer = [src]
        for _ in range(dist[src]):
            nxt: list[str] = []
            for u in layer:
                hops = [
                    v for v in self.g.successors(u)
                    if dist.get(v) == dist[u] - 1 and (v == dst or self._forwards[v])
                ]
                part = flow[u] / len(hops)
                for v in hops:
                    share[(u, v)] = share.get((u, v), 0.0) + part
                    if v not in flow:
                        flow[v] = 0.0
                        lat[v] = 0.0
                        nxt.append(v)
                    flow[v] += part
                    lat[v] = max(lat[v], lat[u] + self.g.edges[u, v]["latency_s"])
            layer = nxt
        return Route(share, lat[dst])


def add_load(
    router: Router, transfers: list[tuple[str, str, float]], into: dict[Edge, float] | None = None
) -> tuple[dict[Edge, float], float]:
    """Route each (src, dst, amount) and add amount x share to every link; return the loads
    and the longest route latency. Every transfer's amount leaves src and reaches dst intact
    (bytes are conserved along routes)."""
    load: dict[Edge, float] = {} if into is None else into
    worst = 0.0
    for src, dst, amount in transfers:
        r = router.route(src, dst)
        worst = max(worst, r.latency_s)
        for e, s in r.share.items():
            load[e] = load.get(e, 0.0) + amount * s
    return load, worst


def seconds_per_byte(g: nx.DiGraph, load: dict[Edge, float]) -> float:
    """max over links of load / bandwidth (load in bytes per byte of message)."""
    edges = g.edges
    return max((x / edges[e]["bw_bytes_s"] for e, x in load.items()), default=0.0)
