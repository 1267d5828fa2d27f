"""Conventions every topology graph follows, and small helpers to build and check them.

A topology is an `nx.DiGraph`. Each physical link is two directed edges, one per direction,
each with `bw_bytes_s` (unidirectional), `latency_s` and `kind` (nvlink, ici, neuronlink,
pcie, net, ocs). Nodes carry `kind` (one of NODE_KINDS); chips also carry `domain` (the
scale-up domain: NVL72 rack, HGX server, TPU slice, Trainium UltraServer) and, on a torus,
`coord`. Graph attributes: `name`, `builder`, `params`, `step_latency_s` (software cost per
collective step), `chips_forward` (chips relay traffic, as TPU/Trainium chips do on a torus)
and, for torus systems, `torus_dims` / `torus_wrap` (the chips' coordinate space).

Containment is not a link: a `switch_tray` node holds its NVSwitch chips through ONE-WAY
edges of kind `contains` (tray -> switch, bw_bytes_s = latency_s = 0). Nothing can enter a
container, so no route ever crosses one, and `num_links` does not count them.

How each node kind of the issue is represented (builders in nvidia.py and torus.py):
- chip, nvswitch, nic, leaf, spine: nodes on the communication paths.
- switch_tray: a node (NVL72: 9 per rack, 2 NVSwitch chips each) with `contains` edges;
  the switches also keep their `tray` attribute.
- host (compute tray / server): a `host` node named `host:<domain>.<which>` holding its chips
  by `contains` edges (`add_hosts`, rule in `host_of`: the chips' `tray` attribute on NVIDIA
  systems, 4 GPUs per NVL72 compute tray and 8 per HGX server; a 2x2 chip block on a TPU
  torus; the 16-chip server on Trainium2). A host is not on the NVLink/ICI path, so it is a
  container, like a switch tray; a dead host takes its chips.
- OCS: a configured optical circuit is a fixed light path, so it is a chip-to-chip link of
  kind `ocs` (slightly longer latency), not a node; the graph records `num_cubes`.
"""

from __future__ import annotations

import math

import networkx as nx

from clustersim.errors import SpecError

NODE_KINDS = frozenset({"chip", "nvswitch", "switch_tray", "host", "nic", "leaf", "spine", "ocs"})
EDGE_ATTRS = ("bw_bytes_s", "latency_s", "kind")
CONTAINS = "contains"
"""Edge kind of a one-way containment edge (container -> member): not a link, never routed."""
CONTAINER_KINDS = frozenset({"switch_tray", "host"})


def add_link(g: nx.DiGraph, u: str, v: str, bw_bytes_s: float, latency_s: float, kind: str) -> None:
    """Add one physical link u<->v: two directed edges with the same figures.

    >>> g = nx.DiGraph(); add_link(g, "a", "b", 1e9, 1e-6, "nvlink"); sorted(g.edges)
    [('a', 'b'), ('b', 'a')]
    """
    g.add_edge(u, v, bw_bytes_s=float(bw_bytes_s), latency_s=float(latency_s), kind=kind)
    g.add_edge(v, u, bw_bytes_s=float(bw_bytes_s), latency_s=float(latency_s), kind=kind)


def add_contains(g: nx.DiGraph, container: str, member: str) -> None:
    """Record that `container` (a switch tray) holds `member`: one edge, container -> member,
    of kind `contains` with zero bandwidth and latency, so routing can never enter it.

    >>> g = nx.DiGraph(); add_contains(g, "tray0", "sw0"); list(g.edges(data="kind"))
    [('tray0', 'sw0', 'contains')]
    """
    g.add_edge(container, member, bw_bytes_s=0.0, latency_s=0.0, kind=CONTAINS)


def chips(g: nx.DiGraph) -> list[str]:
    """The chip nodes, in insertion order (builders insert them in a meaningful order)."""
    return [n for n, kind in g.nodes(data="kind") if kind == "chip"]


def num_links(g: nx.DiGraph) -> int:
    """Physical links: directed edges whose reverse exists count once; `contains` edges
    are not links.

    >>> g = nx.DiGraph(); add_link(g, "a", "b", 1e9, 0.0, "nvlink"); add_contains(g, "t", "a"); num_links(g)
    1
    """
    return sum(1 for u, v, k in g.edges(data="kind") if k != CONTAINS and (not g.has_edge(v, u) or str(u) < str(v)))


def validate_graph(g: nx.DiGraph, where: str) -> None:
    """Raise SpecError naming `where`, the node or edge, the field, the bad value and what is valid."""
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
        if data["kind"] == CONTAINS:
            _check_contains(g, u, v, where)
            continue
        bw, lat = data["bw_bytes_s"], data["latency_s"]
        if not _is_number(bw) or not 0 < bw < math.inf:
            raise SpecError(f"{where}: edge ({u!r}, {v!r}) bw_bytes_s={bw!r}, must be a finite number > 0")
        if not _is_number(lat) or not 0 <= lat < math.inf:
            raise SpecError(f"{where}: edge ({u!r}, {v!r}) latency_s={lat!r}, must be a finite number >= 0")
    if not chips(g):
        raise SpecError(f"{where}: topology has no node of kind 'chip'")
    if "torus_dims" in g.graph or "torus_wrap" in g.graph:
        _check_torus(g, where)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_contains(g: nx.DiGraph, u: str, v: str, where: str) -> None:
    """A containment edge goes one way, from a container, with zero bandwidth and latency."""
    if g.nodes[u].get("kind") not in CONTAINER_KINDS:
        raise SpecError(
            f"{where}: edge ({u!r}, {v!r}) kind={CONTAINS!r} starts at a {g.nodes[u].get('kind')!r} node, "
            f"must start at one of {sorted(CONTAINER_KINDS)}"
        )
    if g.has_edge(v, u):
        raise SpecError(f"{where}: edge ({v!r}, {u!r}) reverses a {CONTAINS!r} edge; containment must be one-way (container -> member)")
    data = g.edges[u, v]
    if data["bw_bytes_s"] != 0 or data["latency_s"] != 0:
        raise SpecError(
            f"{where}: edge ({u!r}, {v!r}) kind={CONTAINS!r} has bw_bytes_s={data['bw_bytes_s']!r}, "
            f"latency_s={data['latency_s']!r}; both must be 0 (containment carries no traffic)"
        )


def _plain(x: object) -> object:
    """Tuples as lists, so messages show values the way the file spells them."""
    return list(x) if isinstance(x, tuple) else x


def _check_torus(g: nx.DiGraph, where: str) -> None:
    """torus_dims: integers >= 1; torus_wrap: booleans, one per dimension; every chip a
    distinct in-range `coord` of that many dimensions within its domain."""
    dims, wrap = _plain(g.graph.get("torus_dims")), _plain(g.graph.get("torus_wrap"))
    if not isinstance(dims, (list, tuple)) or not dims or not all(_is_number(k) and k == int(k) and k >= 1 for k in dims):
        raise SpecError(f"{where}: graph torus_dims={dims!r}, must be a non-empty list of integers >= 1, e.g. [4, 4, 4]")
    if not isinstance(wrap, (list, tuple)) or not all(isinstance(w, bool) for w in wrap):
        raise SpecError(f"{where}: graph torus_wrap={wrap!r}, must be a list of booleans, one per dimension of torus_dims={list(dims)}")
    if len(wrap) != len(dims):
        raise SpecError(
            f"{where}: graph torus_dims={list(dims)} has {len(dims)} dimensions but torus_wrap={list(wrap)} has {len(wrap)}; "
            "they must have one entry per dimension"
        )
    seen: dict[tuple, str] = {}
    for n in chips(g):
        coord = _plain(g.nodes[n].get("coord"))
        if coord is None:
            raise SpecError(f"{where}: chip {n!r} has no 'coord'; every chip of a torus (torus_dims={list(dims)}) needs one")
        if (
            not isinstance(coord, (list, tuple)) or len(coord) != len(dims)
            or not all(_is_number(c) and c == int(c) and 0 <= c < k for c, k in zip(coord, dims))
        ):
            valid = ", ".join(f"0..{k - 1}" for k in dims)
            raise SpecError(f"{where}: chip {n!r} coord={coord!r}, "
                            f"must be {len(dims)} integers in ({valid}) (torus_dims={list(dims)})")
        key = (g.nodes[n].get("domain", 0), tuple(int(c) for c in coord))
        if key in seen:
            raise SpecError(f"{where}: chips {seen[key]!r} and {n!r} share domain {key[0]} coord={list(key[1])}; coords must be unique per domain")
        seen[key] = n


def host_of(g: nx.DiGraph, chip: str) -> str | None:
    """The host (compute tray / server) of a chip: NVIDIA `tray` attribute; TPU: a 2x2 chip
    block (4 chips per host, TPU v4 tray: reliability.md s3; ASSUMPTION for v5e/v6e/v7);
    Trainium2: the 16-chip server (z plane of an UltraServer); None when the graph has no rule.

    >>> g = nx.DiGraph(builder="tpu_slice"); g.add_node("c", kind="chip", domain=0, coord=(3, 2, 5))
    >>> host_of(g, "c")
    'host:0.1.1.5'
    """
    data = g.nodes[chip]
    domain = data.get("domain", 0)
    if "tray" in data:
        return f"host:{domain}.tray{data['tray']}"
    coord = data.get("coord")
    if coord is None:
        return None
    builder = g.graph.get("builder")
    if builder == "tpu_slice":
        return "host:" + ".".join(map(str, (domain, coord[0] // 2, coord[1] // 2, *coord[2:])))
    if builder == "trn2":
        return f"host:{domain}.s{coord[2] if len(coord) > 2 else 0}"
    return None


def add_hosts(g: nx.DiGraph) -> None:
    """One `host` node per compute tray / server (see `host_of`), holding its chips."""
    members: dict[str, list[str]] = {}
    for n, kind in list(g.nodes(data="kind")):
        if kind == "chip":
            host = host_of(g, n)
            if host is not None:
                members.setdefault(host, []).append(n)
    for host, chips in members.items():
        g.add_node(host, kind="host", domain=g.nodes[chips[0]].get("domain", 0))
        for chip in chips:
            add_contains(g, host, chip)


def new_graph(name: str, builder: str, params: dict, step_latency_s: float, chips_forward: bool) -> nx.DiGraph:
    """An empty topology with the graph attributes every builder sets."""
    return nx.DiGraph(
        name=name,
        builder=builder,
        params=dict(params),
        step_latency_s=float(step_latency_s),
        chips_forward=bool(chips_forward),
    )


# ---- builder parameters: checked by every builder, so a file and a Python call get the same
# one-line errors ("nvl72: num_racks='two', must be an integer >= 1").


def check_int(where: str, name: str, value: object, lo: int, hi: int | None = None) -> int:
    """`value` if it is an integer in [lo, hi], else SpecError naming it and the valid range.

    >>> check_int("nvl72", "num_racks", 2, 1)
    2
    >>> check_int("nvl72", "num_racks", 2.5, 1)
    Traceback (most recent call last):
    clustersim.errors.SpecError: nvl72: num_racks=2.5, must be an integer >= 1
    """
    valid = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        raise SpecError(f"{where}: {name}={value!r}, must be {valid}")
    return value


def check_positive(where: str, name: str, value: object) -> float:
    """`value` as a float if it is a finite number > 0, else SpecError.

    >>> check_positive("hgx", "oversubscription", 2)
    2.0
    """
    if not _is_number(value) or not 0 < value < math.inf:
        raise SpecError(f"{where}: {name}={value!r}, must be a finite number > 0")
    return float(value)


def check_choice(where: str, name: str, value: object, valid: list | tuple | frozenset | dict) -> object:
    """`value` if it is one of `valid`, else SpecError listing them."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value not in valid:
        raise SpecError(f"{where}: {name}={value!r}, must be one of {sorted(valid)}")
    return value
