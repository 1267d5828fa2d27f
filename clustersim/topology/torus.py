"""Torus systems: Google TPU slices (2D v5e/v6e, 3D v5p/v7) and AWS Trainium2.

Chips relay traffic (`chips_forward=True`) and carry a `coord`; the graph carries
`torus_dims` and `torus_wrap`, which the router uses for dimension-order routing.

Wrap-around rule (TPU). v5e/v6e: a dimension wraps only when it spans the full 16 chips
(systems.csv: "wraparound only on full 16-length axes"). v5p/v7: slices are built from
4x4x4 cubes whose faces are patched through optical circuit switches (OCS); following
Google's v4/v5p slice docs we give wrap-around in every dimension when the slice is made of
whole cubes (every dimension a multiple of 4) and none otherwise. An OCS circuit is a fixed
light path once configured, so a cube-to-cube link is a direct chip-to-chip edge of kind
`ocs` (a little longer latency), not a node that could be routed through; the graph records
`num_cubes` for the count of 64-chip racks.
"""

from __future__ import annotations

import itertools
import math

import networkx as nx

from clustersim.errors import SpecError
from clustersim.topology import figures as fig
from clustersim.topology.graph import add_hosts, add_link, check_choice, check_int, new_graph
from clustersim.topology.nvidia import add_rail_fabric


def chip_name(prefix: str, coord: tuple[int, ...]) -> str:
    """Node name of the chip at `coord`: 'c1.2.3' (with an optional 'u0.' domain prefix)."""
    return prefix + "c" + ".".join(map(str, coord))


def add_torus(
    g: nx.DiGraph,
    dims: tuple[int, ...],
    wrap: tuple[bool, ...],
    link_bw_bytes_s: tuple[float, ...],
    latency_s: float,
    kind: str,
    domain: int = 0,
    prefix: str = "",
    cube: int = 0,
) -> list[str]:
    """Add a torus/mesh of chips; links along dim d have link_bw_bytes_s[d]. If `cube` > 0,
    links that cross a cube boundary (coordinate multiple of `cube`) are kind 'ocs'.
    Returns the chips in row-major order of coordinates."""
    nodes = []
    for coord in itertools.product(*(range(k) for k in dims)):
        name = chip_name(prefix, coord)
        g.add_node(name, kind="chip", domain=domain, coord=coord)
        nodes.append(name)
    for coord in itertools.product(*(range(k) for k in dims)):
        for d, k in enumerate(dims):
            if k < 2 or (coord[d] == k - 1 and (not wrap[d] or k < 3)):
                continue
            nxt = list(coord)
            nxt[d] = (coord[d] + 1) % k
            crosses = cube > 0 and nxt[d] % cube == 0
            link_kind = "ocs" if crosses else kind
            lat = latency_s + (fig.OCS_LATENCY_S if crosses else 0.0)
            add_link(g, chip_name(prefix, coord), chip_name(prefix, tuple(nxt)), link_bw_bytes_s[d], lat, link_kind)
    return nodes


def tpu_slice(version: str = "v5e", shape: tuple[int, ...] | None = None) -> nx.DiGraph:
    """A TPU slice of `shape` (default: the full pod). 2D for v5e/v6e (up to 16x16), 3D for
    v5p/v7 (up to the pod shape in figures.TPU_POD_SHAPES).

    >>> g = tpu_slice("v5p", (4, 4, 4)); g.number_of_nodes(), g.out_degree("c0.0.0")
    (64, 6)
    >>> tpu_slice("v5e", (4, 4)).out_degree("c1.1")  # 4x4 of a 16x16 pod: mesh, no wrap
    4
    """
    check_choice("tpu_slice", "version", version, fig.TPU_POD_SHAPES)
    pod = fig.TPU_POD_SHAPES[version]
    shape = pod if shape is None else shape
    valid = f"must be a list of {len(pod)} integers, each from 1 up to the pod's {list(pod)}, e.g. {[min(4, p) for p in pod]}"
    if not isinstance(shape, (list, tuple)):
        raise SpecError(f"tpu_slice: shape={shape!r} for {version}, {valid}")
    if (
        len(shape) != len(pod)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
        or any(not 1 <= s <= p for s, p in zip(shape, pod))
    ):
        raise SpecError(f"tpu_slice: shape={list(shape)} for {version}, {valid}")
    shape = tuple(shape)
    if len(pod) == 2:
        wrap = tuple(s == p for s, p in zip(shape, pod))
        cube = 0
    else:
        whole_cubes = all(s % 4 == 0 for s in shape)
        wrap = tuple(whole_cubes for _ in shape)
        cube = 4
    bw = fig.TPU_LINK_BW_BYTES_S[version]
    name = f"tpu-{version}-" + "x".join(map(str, shape))
    g = new_graph(name, "tpu_slice", dict(version=version, shape=list(shape)), fig.TPU_STEP_LATENCY_S, True)
    g.graph.update(torus_dims=shape, torus_wrap=wrap)
    if cube:
        g.graph["num_cubes"] = math.prod(math.ceil(s / 4) for s in shape)
    add_torus(g, shape, wrap, (bw,) * len(shape), fig.ICI_LATENCY_S, "ici", cube=cube)
    add_hosts(g)
    return g


def trn2(num_chips: int = 64, num_ultraservers: int = 1, leaf_down_ports: int = 32) -> nx.DiGraph:
    """Trainium2: a 16-chip trn2 server (4x4 torus, NeuronLink 128 GB/s/dir per link) or a
    64-chip UltraServer (4 servers; chips with the same (x, y) form a ring across servers:
    a 4x4x4 torus whose Z links are thinner, 64 GB/s/dir). Several UltraServers are joined by
    EFA (200 Gb/s per chip) on a non-blocking Clos (modelled as a 1-rail fat-tree). Link
    figures are DERIVED from per-chip totals and UNCERTAIN (AWS does not say uni/bidir).

    >>> g = trn2(64); g.out_degree("u0.c0.0.0"), g.number_of_nodes()
    (6, 64)
    """
    if num_chips not in (16, 64) or isinstance(num_chips, bool) or not isinstance(num_chips, int):
        raise SpecError(f"trn2: num_chips={num_chips!r}, must be 16 (server) or 64 (UltraServer)")
    check_int("trn2", "num_ultraservers", num_ultraservers, 1)
    check_int("trn2", "leaf_down_ports", leaf_down_ports, 1)
    dims = (4, 4) if num_chips == 16 else (4, 4, 4)
    bw = (fig.TRN2_INTRA_LINK_BW_BYTES_S,) * 2 + ((fig.TRN2_INTER_LINK_BW_BYTES_S,) if num_chips == 64 else ())
    wrap = (True,) * len(dims)
    params = dict(num_chips=num_chips, num_ultraservers=num_ultraservers, leaf_down_ports=leaf_down_ports)
    g = new_graph(f"trn2-{num_chips}x{num_ultraservers}", "trn2", params, fig.GPU_STEP_LATENCY_S, True)
    g.graph.update(torus_dims=dims, torus_wrap=wrap)
    domains = [
        add_torus(g, dims, wrap, bw, fig.NEURONLINK_LATENCY_S, "neuronlink", domain=u, prefix=f"u{u}.")
        for u in range(num_ultraservers)
    ]
    if num_ultraservers > 1:
        add_rail_fabric(g, domains, fig.TRN2_EFA_BW_BYTES_S, 1, leaf_down_ports, 1.0)
    add_hosts(g)
    return g
