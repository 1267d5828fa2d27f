"""Topology files: load by name (topologies/NAME.yaml|json) or path, save explicit graphs.

Two forms, both with `format: clustersim-topology/1`, `name`, `description`, `provenance`:
- builder form (YAML): `builder` (one of BUILDERS) and `params` (its keyword arguments).
  Small, diffable and exact for big pods: the graph is rebuilt from code.
- explicit form (JSON): `graph`, the networkx node-link data (edges under "links"), for
  hand-made or edited topologies; every node and link is spelled out.
Every load validates the graph (graph.validate_graph); errors name file, field and value.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from clustersim.errors import SpecError
from clustersim.topology.graph import validate_graph
from clustersim.topology.nvidia import hgx, nvl72
from clustersim.topology.torus import tpu_slice, trn2

FORMAT = "clustersim-topology/1"
BUILDERS = {"nvl72": nvl72, "hgx": hgx, "tpu_slice": tpu_slice, "trn2": trn2}
TOPOLOGY_DIR = Path(__file__).resolve().parent / "ready"  # symlink to the top-level topologies/, shipped in the wheel
_TUPLE_GRAPH_ATTRS = ("torus_dims", "torus_wrap")


def topology_names(directory: Path = TOPOLOGY_DIR) -> list[str]:
    """Names of the ready topology files."""
    return sorted(p.stem for p in directory.glob("*") if p.suffix in (".yaml", ".yml", ".json"))


def resolve(name_or_path: str | Path, directory: Path = TOPOLOGY_DIR) -> Path:
    """The file for a name or path, or SpecError listing the known names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for suffix in (".yaml", ".yml", ".json"):
        candidate = directory / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    raise SpecError(f"topology {str(name_or_path)!r}: no such file or name; known names: {topology_names(directory)}")


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot parse ({exc})") from exc
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: top level is {type(doc).__name__}, must be a mapping")
    if doc.get("format") != FORMAT:
        raise SpecError(f"{path}: format={doc.get('format')!r}, must be {FORMAT!r}")
    return doc


def build_from(path: Path | str, builder: Any, params: Any) -> nx.DiGraph:
    """Call the named builder with params, turning bad names/values into SpecError."""
    if builder not in BUILDERS:
        raise SpecError(f"{path}: builder={builder!r}, must be one of {sorted(BUILDERS)}")
    if not isinstance(params, dict):
        raise SpecError(f"{path}: params={params!r}, must be a mapping of {builder} arguments")
    valid = set(inspect.signature(BUILDERS[builder]).parameters)
    for key in params:
        if key not in valid:
            raise SpecError(f"{path}: params.{key}={params[key]!r} is not an argument of {builder}; valid: {sorted(valid)}")
    try:
        return BUILDERS[builder](**params)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{path}: params={params!r} rejected by {builder}: {exc}") from exc


def _normalize(g: nx.DiGraph) -> nx.DiGraph:
    """JSON turns tuples into lists; put coordinates and torus attributes back to tuples."""
    for attr in _TUPLE_GRAPH_ATTRS:
        if isinstance(g.graph.get(attr), list):
            g.graph[attr] = tuple(g.graph[attr])
    for _, data in g.nodes(data=True):
        if isinstance(data.get("coord"), list):
            data["coord"] = tuple(data["coord"])
    return g


def load_topology(name_or_path: str | Path, directory: Path = TOPOLOGY_DIR) -> nx.DiGraph:
    """The validated graph of a topology file given by name or path.

    >>> load_topology("gb200-nvl72").graph["builder"]
    'nvl72'
    """
    path = resolve(name_or_path, directory)
    doc = _read(path)
    if "builder" in doc:
        g = build_from(path, doc.get("builder"), doc.get("params", {}))
    elif "graph" in doc:
        data = doc["graph"]
        if not isinstance(data, dict) or "nodes" not in data or "links" not in data:
            raise SpecError(f"{path}: graph must be node-link data with 'nodes' and 'links'")
        try:
            g = _normalize(nx.node_link_graph(data, directed=True, multigraph=False, edges="links"))
        except (KeyError, TypeError, nx.NetworkXError) as exc:
            raise SpecError(f"{path}: graph is not valid node-link data ({exc})") from exc
    else:
        raise SpecError(f"{path}: needs field 'builder' (with 'params') or 'graph'")
    g.graph["name"] = doc.get("name", path.stem)
    g.graph["source_file"] = str(path)
    validate_graph(g, str(path))
    return g


def save_topology(g: nx.DiGraph, path: Path, description: str, provenance: list[str]) -> Path:
    """Write `g` in explicit node-link JSON form (one node or link per line, so diffs are small)."""
    data = nx.node_link_data(g, edges="links")
    data["graph"] = {k: v for k, v in data["graph"].items() if k != "source_file"}
    lines = [
        "{",
        f'  "format": {json.dumps(FORMAT)},',
        f'  "name": {json.dumps(g.graph.get("name", path.stem))},',
        f'  "description": {json.dumps(description)},',
        f'  "provenance": {json.dumps(provenance)},',
        '  "graph": {',
        f'    "directed": true, "multigraph": false, "graph": {json.dumps(data["graph"], sort_keys=True)},',
        '    "nodes": [',
        ",\n".join("      " + json.dumps(n, sort_keys=True) for n in data["nodes"]),
        "    ],",
        '    "links": [',
        ",\n".join("      " + json.dumps(e, sort_keys=True) for e in data["links"]),
        "    ]",
        "  }",
        "}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
