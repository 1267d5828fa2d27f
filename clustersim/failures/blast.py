"""Blast radius: which replicas a set of dead components takes down, slows or cuts off.

Pure: a topology graph, the placements and the ids of dead components in; an `Effect` out.
Rules:
- a dead chip (or its HBM) downs the replica placed on it; a dead host/compute tray downs
  the replicas on its chips; rack power downs every node of its rack (an NVL72 or HGX
  domain, a Trainium UltraServer, a 64-chip TPU cube);
- everything removed (dead nodes, dead links) is taken out of the graph; a replica still up
  whose collectives used a removed link is re-routed on the remaining graph: if GraphComm
  finds its chips cannot reach each other it is *partitioned* (counted down, weights kept),
  otherwise it is *degraded* and runs with the GraphComm built on the remaining graph (a
  dead NVSwitch chip leaves 17 of 18 planes; a dead torus link makes a detour).
- a dead optical circuit switch takes every circuit it patches. On a 3D TPU slice of 4x4x4
  cubes the cube-to-cube links (kind `ocs`) of one dimension at one face position (the
  other two coordinates mod 4) all pass through one OCS, on every cube of the slice: TPU v4
  wires 64 cubes with 48 OCS = 3 dimensions x 16 face positions (reliability.md s3). So an
  OCS fault kills no chip; it cuts those links at once, and the replicas whose collectives
  cross cubes on them are degraded (detour) or partitioned.
Component ids (see `components_of`): chip and switch nodes by name, `<chip>/hbm`, links as
`u|v` (names sorted; an `ocs` link's id is its transceivers, class optic), hosts
`host:...`, rack power `power:...`, optical switches `ocs:<domain>.<x|y|z>.<a>.<b>` (the
switch of that dimension's links whose other two coordinates are a, b mod 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import networkx as nx

from clustersim.collectives import GraphComm, PartitionError
from clustersim.topology.graph import host_of
from clustersim.topology.placement import ReplicaPlacement

LINK_CLASS = {"nvlink": "nvlink", "ici": "ici_link", "neuronlink": "ici_link", "ocs": "optic", "net": "optic"}
"""Link kind -> failure class. `pcie` (chip to its own NIC) is inside the host: not a component."""
NODE_CLASS = {"nvswitch": "nvswitch", "nic": "nic", "leaf": "leaf", "spine": "spine", "ocs": "ocs", "host": "host"}
TPU_CUBE = 4  # chips per cube edge: slices are built of 4x4x4 cubes (reliability.md s3)
AXES = "xyz"


@dataclass(frozen=True, slots=True)
class Effect:
    """What a set of dead components does to the deployment while they stay dead."""

    components: frozenset[str]
    down: frozenset[int]  # replicas that lost a chip (their weights must be reloaded)
    partitioned: frozenset[int] = frozenset()  # chips alive but unable to reach each other
    degraded: frozenset[int] = frozenset()  # still serving, with comms[r] on `graph`
    num_chips: int = 0  # dead chips
    graph: nx.DiGraph | None = field(default=None, compare=False)  # topology without the dead parts
    comms: dict[int, GraphComm] = field(default_factory=dict, compare=False)
    cube: str | None = None  # the one OCS cube holding every dead chip (TPU re-forming), else None
    chips: frozenset[str] = frozenset()  # names of the dead chips
    links: frozenset[tuple[str, str]] = frozenset()  # directed links taken out (dead links, links of dead nodes)

    @property
    def out(self) -> frozenset[int]:
        """Replicas not serving: down or partitioned."""
        return self.down | self.partitioned


def link_id(u: str, v: str) -> str:
    """The undirected id of link u<->v.

    >>> link_id("b", "a")
    'a|b'
    """
    a, b = sorted((str(u), str(v)))
    return f"{a}|{b}"


def normalize_component(component: str) -> str:
    """A component id with a link's two ends in canonical order ('v|u' -> 'u|v')."""
    return link_id(*component.split("|", 1)) if "|" in component else component


def _host_key(g: nx.DiGraph, chip: str) -> str | None:
    """The host of a chip on a graph without host nodes (see topology.graph.host_of)."""
    return host_of(g, chip)


def _cube_key(g: nx.DiGraph, chip: str) -> str | None:
    """The OCS cube of a chip on a 3D TPU slice built of cubes, else None."""
    coord = g.nodes[chip].get("coord")
    if g.graph.get("builder") != "tpu_slice" or not g.graph.get("num_cubes") or coord is None or len(coord) != 3:
        return None
    return f"{g.nodes[chip].get('domain', 0)}.cube" + ".".join(str(c // TPU_CUBE) for c in coord)


def _ocs_key(g: nx.DiGraph, u: str, v: str) -> str | None:
    """The optical circuit switch patching cube-to-cube link u-v of a 3D TPU slice, else None.

    >>> from clustersim.topology import tpu_slice
    >>> _ocs_key(tpu_slice("v7", (8, 4, 4)), "c3.1.2", "c4.1.2")
    'ocs:0.x.1.2'
    """
    cu, cv = g.nodes[u].get("coord"), g.nodes[v].get("coord")
    if g.graph.get("builder") != "tpu_slice" or cu is None or cv is None or len(cu) != 3:
        return None
    (d,) = [e for e in range(3) if cu[e] != cv[e]]
    face = ".".join(str(cu[e] % TPU_CUBE) for e in range(3) if e != d)
    return f"ocs:{g.nodes[u].get('domain', 0)}.{AXES[d]}.{face}"


def _power_key(g: nx.DiGraph, node: str) -> str | None:
    """The rack whose power feeds a node: its 64-chip cube on a 3D TPU slice (one cube is one
    rack, reliability.md s3), half a Trainium2 UltraServer (two racks of 2 servers, DESIGN.md),
    else its whole domain (an NVL72 rack, an HGX server, a 2D TPU slice: ASSUMPTION)."""
    data = g.nodes[node]
    if "domain" not in data:
        return None
    if data.get("kind") == "nic":  # a NIC sits in its chip's rack
        node = next((c for c in g.predecessors(node) if g.nodes[c].get("kind") == "chip"), node)
        data = g.nodes[node]
    elif data.get("kind") == "host":  # so does a host (it holds its chips)
        node = next((c for c in g.successors(node) if g.nodes[c].get("kind") == "chip"), node)
        data = g.nodes[node]
    if data.get("kind") == "chip":
        cube = _cube_key(g, node)
        if cube is not None:
            return f"power:{cube}"
        coord = data.get("coord")
        if g.graph.get("builder") == "trn2" and coord is not None and len(coord) == 3:
            return f"power:{data['domain']}.rack{coord[2] // 2}"
    return f"power:{data['domain']}"


class BlastModel:
    """Components of one placed topology and the effect of any set of them being dead
    (cached per set: faults are rare, re-routing is not cheap)."""

    def __init__(self, graph: nx.DiGraph, placements: Sequence[ReplicaPlacement]) -> None:
        self.graph = graph
        self.placements = list(placements)
        self.owner = {c: p.index for p in self.placements for c in p.chips}
        self.members: dict[str, tuple[str, frozenset[str], frozenset[tuple[str, str]]]] = {}
        self._index()
        self._used_edges: dict[int, frozenset[tuple[str, str]]] = {}
        self._cache: dict[frozenset[str], Effect] = {}
        used_cubes = {_cube_key(graph, c) for c in self.owner}
        all_cubes = {_cube_key(graph, n) for n, k in graph.nodes(data="kind") if k == "chip"}
        self.num_spare_cubes = len(all_cubes - used_cubes - {None})

    def _add(self, component: str, cls: str, nodes: Iterable[str] = (), edges: Iterable[tuple[str, str]] = ()) -> None:
        old = self.members.get(component)
        nodes, edges = frozenset(nodes), frozenset(edges)
        if old is not None:
            nodes, edges = nodes | old[1], edges | old[2]
        self.members[component] = (cls, nodes, edges)

    def _index(self) -> None:
        g = self.graph
        has_hosts = any(k == "host" for _, k in g.nodes(data="kind"))
        for n, data in g.nodes(data=True):
            kind = data.get("kind")
            if kind == "chip":
                self._add(n, "chip", [n])
                self._add(f"{n}/hbm", "hbm", [n])
                host = _host_key(g, n)
                if host is not None and not has_hosts:
                    self._add(host, "host", [n])
            elif kind in NODE_CLASS:
                extra = [c for c in g.successors(n) if g.nodes[c].get("kind") == "chip"] if kind == "host" else []
                self._add(n, NODE_CLASS[kind], [n, *extra])
            power = _power_key(g, n)
            if power is not None:
                self._add(power, "rack_power", [n])
        for u, v, kind in g.edges(data="kind"):
            if kind in LINK_CLASS and str(u) < str(v):
                self._add(link_id(u, v), LINK_CLASS[kind], (), [(u, v), (v, u)])
                switch = _ocs_key(g, u, v) if kind == "ocs" else None
                if switch is not None:
                    self._add(switch, "ocs", (), [(u, v), (v, u)])

    def components(self) -> list[tuple[str, str]]:
        """(component id, failure class) of every component, in a stable order."""
        return [(c, m[0]) for c, m in self.members.items()]

    def class_of(self) -> dict[str, str]:
        return {c: m[0] for c, m in self.members.items()}

    def _edges_used(self, r: int) -> frozenset[tuple[str, str]]:
        if r not in self._used_edges:
            p = self.placements[r]
            comm = GraphComm.build(self.graph, p.chips, p.stage_size)
            self._used_edges[r] = frozenset(e for load in comm.loads.values() for e, x in load.items() if x > 0)
        return self._used_edges[r]

    def effect(self, components: Iterable[str]) -> Effect:
        """The combined effect of every component in `components` being dead at once."""
        key = frozenset(normalize_component(c) for c in components)
        if key not in self._cache:
            self._cache[key] = self._effect(key)
        return self._cache[key]

    def _effect(self, key: frozenset[str]) -> Effect:
        g = self.graph
        nodes: set[str] = set()
        edges: set[tuple[str, str]] = set()
        for c in key:
            if c not in self.members:
                raise KeyError(f"blast radius: component {c!r} is not in topology {g.graph.get('name')!r}")
            _, n, e = self.members[c]
            nodes |= n
            edges |= e
        dead_chips = {n for n in nodes if g.nodes[n].get("kind") == "chip"}
        down = frozenset(self.owner[c] for c in dead_chips if c in self.owner)
        cubes = {_cube_key(g, c) for c in dead_chips}
        cube = next(iter(cubes)) if len(cubes) == 1 and None not in cubes and down else None
        if not nodes and not edges:
            return Effect(key, down)
        removed = {e for e in edges if g.has_edge(*e)} | {e for n in nodes for e in (*g.in_edges(n), *g.out_edges(n))}
        rest = g.copy()
        rest.remove_edges_from(edges)
        rest.remove_nodes_from(nodes)
        partitioned, degraded, comms = set(), set(), {}
        for p in self.placements:
            if p.index in down or len(p.chips) < 2 or not (self._edges_used(p.index) & removed):
                continue
            try:
                comms[p.index] = GraphComm.build(rest, p.chips, p.stage_size)
                degraded.add(p.index)
            except PartitionError:
                partitioned.add(p.index)
        return Effect(key, down, frozenset(partitioned), frozenset(degraded), len(dead_chips), rest, comms, cube,
                      frozenset(dead_chips), frozenset(e for e in removed if g.edges[e].get("kind") != "contains"))


def blast_radius(graph: nx.DiGraph, placements: Sequence[ReplicaPlacement], component: str | Iterable[str]) -> Effect:
    """Effect of one dead component (or a set) on a placed topology (see BlastModel).

    >>> from clustersim.topology import nvl72
    >>> from clustersim.topology.placement import place_replicas
    >>> g = nvl72(); ps = place_replicas(g, 2, tp=4)
    >>> sorted(blast_radius(g, ps, "r0.g5").down), sorted(blast_radius(g, ps, "r0.sw0").degraded)
    ([1], [0, 1])
    """
    return BlastModel(graph, placements).effect([component] if isinstance(component, str) else component)


def components_of(graph: nx.DiGraph) -> list[tuple[str, str]]:
    """(component id, failure class) of every failable part of a topology.

    >>> from clustersim.topology import hgx
    >>> sorted({cls for _, cls in components_of(hgx("h100", num_servers=1))})
    ['chip', 'hbm', 'host', 'nvlink', 'nvswitch', 'rack_power']
    """
    return BlastModel(graph, []).components()


class ReplicaBlast:
    """No-topology fallback: chips grouped by replica only; a chip or its HBM downs its replica.
    Components `rep<r>.chip<i>` (class chip) and `rep<r>.chip<i>/hbm` (class hbm).

    >>> b = ReplicaBlast(2, 4); len(b.components()), sorted(b.effect(["rep1.chip3/hbm"]).down)
    (16, [1])
    """

    num_spare_cubes = 0

    def __init__(self, num_replicas: int, chips_per_replica: int) -> None:
        self.owner = {f"rep{r}.chip{i}": r for r in range(num_replicas) for i in range(chips_per_replica)}

    def components(self) -> list[tuple[str, str]]:
        return [(c, cls) for chip in self.owner for c, cls in ((chip, "chip"), (f"{chip}/hbm", "hbm"))]

    def class_of(self) -> dict[str, str]:
        return dict(self.components())

    def effect(self, components: Iterable[str]) -> Effect:
        chips = {c.split("/")[0] for c in components}
        for c in chips:
            if c not in self.owner:
                raise KeyError(f"blast radius: component {c!r} is not a chip of the deployment")
        down = frozenset(self.owner[c] for c in chips)
        return Effect(frozenset(components), down, num_chips=len(chips), chips=frozenset(chips))
