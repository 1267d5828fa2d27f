"""Conventions every topology graph follows, and small helpers to build and check them.

A topology is an `nx.DiGraph`. Each physical link is two directed edges, one per direction,
each with `bw_bytes_s` (unidirectional), `latency_s` and `kind` (nvlink, ici, neuronlink,
pcie, net, ocs). Nodes carry `kind` (one of NODE_KINDS); chips also carry `domain` (the
scale-up domain: NVL72 rack, HGX server, TPU slice, Trainium UltraServer) and, on a torus,
`coord`. Graph attributes: `name`, `builder`, `params`, `step_latency_s` (software cost per
collective step), `chips_forward` (chips relay traffic, as TPU/Trainium chips do on a torus)
and, for torus systems, `torus_dims` / `torus_wrap` (the chips' coordinate space).
"""

from __future__ import annotations

import networkx as nx

from clustersim.errors import SpecError

NODE_KINDS = frozenset({"chip", "nvswitch", "switch_tray", "host", "nic", "leaf", "spine", "ocs"})
EDGE_ATTRS = ("bw_bytes_s", "latency_s", "kind")


def add_link(g: nx.DiGraph, u: str, v: str, bw_bytes_s: float, latency_s: float, kind: str) -> None:
    """Add one physical link u<->v: two directed edges with the same figures.

    >>> g = nx.DiGraph(); add_link(g, "a", "b", 1e9, 1e-6, "nvlink"); sorted(g.edges)
    [('a', 'b'), ('b', 'a')]
    """
    g.add_edge(u, v, bw_bytes_s=float(bw_bytes_s), latency_s=float(latency_s), kind=kind)
    g.add_edge(v, u, bw_bytes_s=float(bw_bytes_s), latency_s=float(latency_s), kind=kind)


def chips(g: nx.DiGraph) -> list[str]:
    """The chip nodes, in insertion order (builders insert them in a meaningful order)."""
    return [n for n, kind in g.nodes(data="kind") if kind == "chip"]


def num_links(g: nx.DiGraph) -> int:
    """Physical links: directed edges whose reverse exists count once."""
    return sum(1 for u, v in g.edges if not g.has_edge(v, u) or str(u) < str(v))


def validate_graph(g: nx.DiGraph, where: str) -> None:
    """Raise SpecError naming `where`, the node or edge, the field and the bad value."""
    if not isinstance(g, nx.DiGraph):
        raise SpecError(f"{where}: topology must be a networkx DiGraph, got {type(g).__name__}")
    for n, data in g.nodes(data=True):
        kind = data.get("kind")
        if kind not in NODE_KINDS:
            raise SpecError(f"{where}: node {n!r} kind={kind!r}, must be one of {sorted(NODE_KINDS)}")
    for u, v, data in g.edges(data=True):
        for attr in EDGE_ATTRS:
            if attr not in data:
                raise SpecError(f"{where}: edge ({u!r}, {v!r}) lacks field {attr!r}")
        bw, lat = data["bw_bytes_s"], data["latency_s"]
        if not isinstance(bw, (int, float)) or not bw > 0:
            raise SpecError(f"{where}: edge ({u!r}, {v!r}) bw_bytes_s={bw!r}, must be a number > 0")
        if not isinstance(lat, (int, float)) or lat < 0:
            raise SpecError(f"{where}: edge ({u!r}, {v!r}) latency_s={lat!r}, must be a number >= 0")
    if not chips(g):
        raise SpecError(f"{where}: topology has no node of kind 'chip'")


def new_graph(name: str, builder: str, params: dict, step_latency_s: float, chips_forward: bool) -> nx.DiGraph:
    """An empty topology with the graph attributes every builder sets."""
    return nx.DiGraph(
        name=name,
        builder=builder,
        params=dict(params),
        step_latency_s=float(step_latency_s),
        chips_forward=bool(chips_forward),
    )
