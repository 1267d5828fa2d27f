"""Look at a topology: a summary (chips, switches, links, bisection, diameter, injection
bandwidth) and a picture (self-contained HTML/SVG laid out here, or PNG if matplotlib is
installed; it is not a dependency). `show_topology` is what `clustersim topology show` prints.
"""

from __future__ import annotations

import html
import importlib.util
import math
from collections import Counter
from pathlib import Path

import networkx as nx

from clustersim.errors import SpecError
from clustersim.topology.files import load_topology
from clustersim.topology.graph import CONTAINS, chips, num_links

MAX_MINCUT_NODES = 1500
MAX_DRAW_NODES = 1200
CUBE = 4  # chips per edge of a TPU v5p/v7 cube
COLORS = {"chip": "#2b7bb9", "nvswitch": "#e08a1e", "nic": "#7a7a7a", "leaf": "#4d9e4d", "spine": "#9d4d9e",
          "ocs": "#c0392b", "host": "#555", "switch_tray": "#e0b01e"}


def _single_torus(g: nx.DiGraph) -> bool:
    return bool(g.graph.get("torus_dims")) and len({d for _, d in g.nodes(data="domain") if d is not None}) == 1 \
        and all(k in ("chip", "host") for _, k in g.nodes(data="kind"))  # hosts are containers, off every path


def torus_bisection_bytes_s(g: nx.DiGraph) -> float:
    """Cut a torus in half across each dimension (coordinate < k // 2 on one side) and add the
    bandwidth of the chip-to-chip links leaving the low half; the thinnest such cut. On a full
    torus that is lines x (2 if wrapped) x link bw; links missing from an edited file simply
    do not count.

    >>> from clustersim.topology.torus import tpu_slice
    >>> torus_bisection_bytes_s(tpu_slice("v6e")) / 1e12  # 16 rows x 2 wrap cuts x 90 GB/s
    2.88
    """
    dims = g.graph["torus_dims"]
    coord = {n: c for n, c in g.nodes(data="coord") if c is not None and g.nodes[n].get("kind") == "chip"}
    cuts = []
    for d, k in enumerate(dims):
        if k < 2:
            continue
        cuts.append(sum(
            data["bw_bytes_s"] for u, v, data in g.edges(data=True)
            if u in coord and v in coord and coord[u][d] < k // 2 <= coord[v][d]
        ))
    return min(cuts, default=0.0)


def mincut_bisection_bytes_s(g: nx.DiGraph) -> float:
    """Max flow (= min cut) from the first half of the chips to the second half, one direction."""
    cs = chips(g)
    half = len(cs) // 2
    h = nx.DiGraph()
    h.add_edges_from((u, v, {"capacity": d["bw_bytes_s"]}) for u, v, d in g.edges(data=True))
    h.add_edges_from(("__src", c, {"capacity": math.inf}) for c in cs[:half])
    h.add_edges_from((c, "__dst", {"capacity": math.inf}) for c in cs[half : 2 * half])
    return nx.maximum_flow_value(h, "__src", "__dst")


def diameter_hops(g: nx.DiGraph) -> tuple[int, str]:
    """Longest shortest path between chips, in links, and how it was found."""
    if _single_torus(g):
        d = sum(k // 2 if w and k > 2 else k - 1 for k, w in zip(g.graph["torus_dims"], g.graph["torus_wrap"]))
        return d, "analytic (torus)"
    cs = chips(g)
    firsts = {}
    for c in cs:  # one chip per domain, plus the last: builders are symmetric within a domain
        firsts.setdefault(g.nodes[c].get("domain", 0), c)
    probes = list(firsts.values()) + [cs[-1]]
    chipset = set(cs)
    worst = 0
    for c in probes:
        lengths = nx.single_source_shortest_path_length(g, c)
        if len(chipset & lengths.keys()) < len(cs):
            return -1, "disconnected"
        worst = max(worst, max(lengths[x] for x in cs))
    return worst, f"BFS from {len(probes)} chips (one per domain)"


def summarize(g: nx.DiGraph) -> dict:
    """Counts, bisection bandwidth (unidirectional bytes/s; method named), diameter and the
    per-chip injection bandwidth by link kind."""
    kinds = Counter(k for _, k in g.nodes(data="kind"))
    cs = chips(g)
    if _single_torus(g):
        bisection, method = torus_bisection_bytes_s(g), "analytic: thinnest mid-cut of the torus"
    elif g.number_of_nodes() <= MAX_MINCUT_NODES:
        bisection, method = mincut_bisection_bytes_s(g), "max-flow min cut between chip halves (first/second half in order)"
    else:
        bisection, method = float("nan"), f"not computed (> {MAX_MINCUT_NODES} nodes)"
    inject = Counter()
    for _, _, d in g.out_edges(cs[0], data=True):
        inject[d["kind"]] += d["bw_bytes_s"]
    diameter, diameter_method = diameter_hops(g)
    return {
        "name": g.graph.get("name", ""),
        "chips": len(cs),
        "switches": {k: n for k, n in sorted(kinds.items()) if k not in ("chip", "host")},
        "hosts": kinds.get("host", 0),
        "links": num_links(g),
        "links_by_kind": dict(sorted(Counter(
            d["kind"] for u, v, d in g.edges(data=True) if d["kind"] != CONTAINS and (str(u) < str(v) or not g.has_edge(v, u))
        ).items())),
        "bisection_bytes_s": bisection,
        "bisection_method": method,
        "diameter_hops": diameter,
        "diameter_method": diameter_method,
        "injection_bytes_s": dict(inject),
    }


def _layout(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Torus chips on a grid (3D: z-slices side by side); otherwise one row per node kind."""
    pos = {}
    rows = ["spine", "leaf", "nic", "chip", "nvswitch", "ocs", "host", "switch_tray"]
    if all("coord" in d for _, d in g.nodes(data=True)):
        for n, d in g.nodes(data=True):
            c = tuple(d["coord"]) + (0, 0)
            dom = d.get("domain", 0)
            dims = g.graph.get("torus_dims", (1, 1, 1)) + (1,)
            pos[n] = ((c[0] + (dims[0] + 1) * (c[2] + dom * dims[2])) * 40.0 + 30, c[1] * 40.0 + 30)
        return pos
    by_kind = {k: [n for n, kk in g.nodes(data="kind") if kk == k] for k in rows}
    width = max(len(v) for v in by_kind.values())
    for r, k in enumerate(r for r in rows if by_kind[r]):
        members = by_kind[k]
        gap = max(14.0, width * 14.0 / max(1, len(members)))
        for i, n in enumerate(members):
            pos[n] = (i * gap + 20, r * 120.0 + 30)
    return pos


def domains(g: nx.DiGraph) -> list[int]:
    """The scale-up domains of a topology (NVL72 racks, HGX servers, UltraServers, a slice)."""
    return sorted({d for n, d in g.nodes(data="domain") if d is not None and g.nodes[n].get("kind") == "chip"})


def cube_nodes(g: nx.DiGraph, cube: tuple[int, ...]) -> list[str]:
    """The chips of 4x4x4 cube `cube` (cube coordinates: chip coordinate // 4) of a 3D TPU
    slice; SpecError naming the cube and the valid range otherwise.

    >>> from clustersim.topology.torus import tpu_slice
    >>> len(cube_nodes(tpu_slice("v7", (8, 8, 8)), (1, 0, 1)))
    64
    """
    dims = tuple(g.graph.get("torus_dims") or ())
    name = g.graph.get("name", "")
    if g.graph.get("builder") != "tpu_slice" or len(dims) != 3:
        raise SpecError(f"part=cube:{'.'.join(map(str, cube))}: topology {name!r} is not a 3D TPU slice built of 4x4x4 cubes; "
                        "use a domain number instead")
    num = tuple(math.ceil(k / CUBE) for k in dims)
    if len(cube) != 3 or any(not 0 <= c < m for c, m in zip(cube, num)):
        valid = ", ".join(f"{axis} in 0..{m - 1}" for axis, m in zip("XYZ", num))
        raise SpecError(f"part=cube:{'.'.join(map(str, cube))}: topology {name!r} (shape {list(dims)}) has cubes {valid}")
    return [n for n in chips(g) if tuple(x // CUBE for x in g.nodes[n]["coord"]) == tuple(cube)]


def select_part(g: nx.DiGraph, part: str) -> tuple[list[str] | int, str]:
    """Parse a `--part` value: 'N' (domain N: a rack, server or UltraServer, with its switches
    and NICs) or 'cube:X.Y.Z' (one 4x4x4 cube of a 3D TPU slice). Returns draw()'s subset."""
    text = part.strip()
    if text.startswith("cube:"):
        try:
            cube = tuple(int(x) for x in text.removeprefix("cube:").split("."))
        except ValueError:
            raise SpecError(f"part={part!r}: a cube is cube:X.Y.Z with integers, e.g. cube:0.0.0") from None
        return cube_nodes(g, cube), f"cube {'.'.join(map(str, cube))}"
    try:
        domain = int(text)
    except ValueError:
        raise SpecError(f"part={part!r}: must be a domain number (rack/server/UltraServer) or cube:X.Y.Z") from None
    return domain, f"domain {domain}"


def _pick(g: nx.DiGraph, subset) -> tuple[nx.DiGraph, str]:
    if subset is None:
        if g.number_of_nodes() <= MAX_DRAW_NODES:
            return g, "whole graph"
        if g.graph.get("torus_dims"):
            keep = [n for n, c in g.nodes(data="coord") if c is not None and all(x < CUBE for x in c)]
            return g.subgraph(keep), "first 4x4x4 cube (graph too big to draw whole)"
        subset = domains(g)[0]
    if isinstance(subset, int) and not isinstance(subset, bool):
        valid = domains(g)
        if subset not in valid:
            raise SpecError(f"part={subset}: topology {g.graph.get('name')!r} has domains {valid[0]}..{valid[-1]}")
        keep = [n for n, d in g.nodes(data="domain") if d == subset]
        return g.subgraph(keep), f"domain {subset}"
    missing = [n for n in subset if n not in g]
    if missing:
        raise SpecError(f"draw: subset nodes {missing[:5]} are not in topology {g.graph.get('name')!r}")
    return g.subgraph(subset), f"{len(subset)} chosen nodes"


PICTURE_SUFFIXES = (".html", ".htm", ".png")


def check_picture_path(path: Path) -> None:
    """SpecError unless `path` ends in .html/.htm, or .png with matplotlib installed (it is
    optional: not a dependency of clustersim)."""
    path = Path(path)
    if path.suffix.lower() not in PICTURE_SUFFIXES:
        raise SpecError(f"picture={str(path)!r}: suffix {path.suffix or '(none)'!r}, must be one of {list(PICTURE_SUFFIXES)}")
    if path.suffix.lower() == ".png" and importlib.util.find_spec("matplotlib") is None:
        raise SpecError(f"picture={str(path)!r}: PNG needs the Python package 'matplotlib', which is not installed "
                        "(pip install matplotlib), or write an .html picture instead (no extra package)")


def draw(g: nx.DiGraph, path: Path, subset=None, what: str | None = None) -> Path:
    """Write a picture of `g` (or `subset`: a domain number or a list of nodes, titled `what`)
    to `path`: .html = self-contained SVG, .png = matplotlib if installed."""
    path = Path(path)
    check_picture_path(path)
    h, picked = _pick(g, subset)
    what = what or picked
    pos = _layout(h)
    if path.suffix.lower() == ".png":
        import matplotlib  # noqa: PLC0415 (optional; check_picture_path found it)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        fig, ax = plt.subplots(figsize=(12, 8))
        nx.draw(h.to_undirected(), pos, ax=ax, node_size=20, width=0.3,
                node_color=[COLORS.get(k, "#000") for _, k in h.nodes(data="kind")])
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
    w = max((x for x, _ in pos.values()), default=0) + 40
    ht = max((y for _, y in pos.values()), default=0) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{ht:.0f}">']
    for u, v, d in h.edges(data=True):
        if str(u) < str(v) or not h.has_edge(v, u):
            (x1, y1), (x2, y2) = pos[u], pos[v]
            tip = html.escape(f"{u} - {v}: {d['kind']} {d['bw_bytes_s'] / 1e9:g} GB/s/dir")
            color = "#c0392b" if d["kind"] == "ocs" else "#999"
            parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
                         f'stroke-width="0.6"><title>{tip}</title></line>')
    for n, k in h.nodes(data="kind"):
        x, y = pos[n]
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{COLORS.get(k, "#000")}">'
                     f"<title>{html.escape(f'{n} ({k})')}</title></circle>")
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{c}">&#9679; {k}</span>' for k, c in COLORS.items())
    title = html.escape(f"{g.graph.get('name', '')}: {what}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                    f"<body><h3>{title}</h3><p>{legend}</p>{''.join(parts)}</body></html>\n")
    return path


def _gb(x: float) -> str:
    return "n/a" if x != x else f"{x / 1e9:,.1f} GB/s"


def representation(g: nx.DiGraph) -> list[str]:
    """Lines saying how the node kinds that are not all nodes here are represented (graph.py)."""
    lines = []
    kinds = Counter(k for _, k in g.nodes(data="kind"))
    held = Counter(g.nodes[u]["kind"] for u, _, k in g.edges(data="kind") if k == CONTAINS)
    if kinds["switch_tray"]:
        lines.append(f"trays      {kinds['switch_tray']} switch_tray nodes hold {held['switch_tray']} switch chips by "
                     "one-way 'contains' edges (not links, never routed)")
    if kinds["host"]:
        sizes = Counter(u for u, _, k in g.edges(data="kind") if k == CONTAINS and g.nodes[u]["kind"] == "host")
        per = "/".join(map(str, sorted(set(sizes.values()))))
        lines.append(f"hosts      {kinds['host']} host nodes (compute trays / servers) of {per} chips each, holding "
                     "them by 'contains' edges (not on the NVLink/ICI path)")
    num_ocs = sum(1 for u, v, k in g.edges(data="kind") if k == "ocs" and str(u) < str(v))
    if num_ocs or g.graph.get("num_cubes"):
        lines.append(f"OCS        {num_ocs} optical circuits between {g.graph.get('num_cubes', '?')} cubes, as chip-to-chip links "
                     "of kind 'ocs' (a configured circuit is a fixed light path), not nodes")
    return lines


def show_topology(name_or_path: str | Path, picture: Path | None = None, part: str | None = None) -> str:
    """Printable summary of a topology file, and a picture of it (or of one `part`: a domain
    number or cube:X.Y.Z, see select_part) when `picture` is given. Plain text: print it
    without markup (the methods are in square brackets)."""
    if part is not None and picture is None:
        raise SpecError(f"part={part!r} selects what to draw: give a picture path too (.html, or .png with matplotlib)")
    if picture is not None:
        check_picture_path(Path(picture))  # before the (slow) summary
    g = load_topology(name_or_path)
    subset, what = select_part(g, part) if part is not None else (None, None)
    s = summarize(g)
    lines = [
        f"topology   {s['name']}  ({g.graph.get('source_file', '')})",
        f"chips      {s['chips']}",
        "switches   " + (", ".join(f"{k}: {n}" for k, n in s["switches"].items()) or "none (direct links)"),
        f"links      {s['links']}  (" + ", ".join(f"{k}: {n}" for k, n in s["links_by_kind"].items()) + ")",
        f"bisection  {_gb(s['bisection_bytes_s'])} per direction  [{s['bisection_method']}]",
        f"diameter   {s['diameter_hops']} hops  [{s['diameter_method']}]",
        "injection  " + ", ".join(f"{k} {_gb(v)}" for k, v in s["injection_bytes_s"].items()) + " per chip per direction",
        *representation(g),
    ]
    if picture is not None:
        lines.append(f"picture    {draw(g, Path(picture), subset, what)}")
    return "\n".join(lines)


__all__ = ["cube_nodes", "draw", "select_part", "show_topology", "summarize", "torus_bisection_bytes_s", "mincut_bisection_bytes_s"]
