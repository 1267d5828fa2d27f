"""links.arrow: bytes moved over every interconnect link, per time bucket.

Built from steps.arrow after a run (streamed by record batch): each step of replica r with
T tokens issues the collectives `perf.comm_volume.comm_calls(replica_r, T)`; their per-link
bytes come from the replica's GraphComm (routed once per kind, size and algorithm). With
failures on, a replica's GraphComm changes over the run (a dead NVSwitch or torus link
re-routes it, a repair restores it): a `PerfHistory` records each change and a step is
routed with the model in force when it starts, so no bytes land on a dead link. A step's
bytes land in the bucket where the step starts. Steps of one replica with the same token
count and the same model in one bucket are routed once and multiplied.

=============== ======= ===============================================================
column          type    meaning
=============== ======= ===============================================================
bucket_start_s  float64 start of the time bucket
bucket_s        float64 bucket length
src             string  link's sending node (topology node name)
dst             string  link's receiving node
kind            string  link kind as in the topology: nvlink, ici, neuronlink, ocs (a
                        cube-to-cube optical link), pcie (chip to its NIC), net
                        (scale-out fabric: NIC-leaf-spine)
bytes           float64 bytes carried src -> dst in the bucket
utilization     float32 bytes / (bw_bytes_s x bucket_s)
max_utilization float32 the busiest single link's utilization (= utilization per link)
=============== ======= ===============================================================

With `topology.link_detail: class` (for big graphs: a 9,216-chip pod has ~55k directed
links), a bucket has one row per link kind instead: src `class:<kind>`, dst `all`, `bytes`
summed over every link of that kind, `utilization` = bytes / (the kind's total bandwidth x
bucket_s), i.e. the kind's mean load, and `max_utilization` its busiest link's.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import numpy as np
import pyarrow as pa

from clustersim.perf import ReplicaPerf
from clustersim.perf.comm_volume import comm_calls
from clustersim.records.writer import ArrowWriter, WriteStats

LINKS = pa.schema([
    pa.field("bucket_start_s", pa.float64()),
    pa.field("bucket_s", pa.float64()),
    pa.field("src", pa.string()),
    pa.field("dst", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("bytes", pa.float64()),
    pa.field("utilization", pa.float32()),
    pa.field("max_utilization", pa.float32()),
])
LINK_DETAILS = ("link", "class")


def step_link_bytes(replica: ReplicaPerf, num_tokens: int) -> dict[tuple[str, str], float]:
    """Bytes per directed link of one step of num_tokens tokens on a graph-placed replica."""
    comm = replica.comm
    if not hasattr(comm, "link_bytes"):
        return {}
    total: dict[tuple[str, str], float] = defaultdict(float)
    for kind, num_bytes, group_size, count in comm_calls(replica, num_tokens):
        for edge, value in comm.link_bytes(kind, num_bytes, group_size).items():
            total[edge] += value * count
    return total


class PerfHistory:
    """Each replica's perf model over simulated time (its `comm` is what routes the bytes).

    `record(r, t, perf)` says replica r runs on `perf` from time t on (None: out of service,
    it moves no bytes); several records at one instant keep the last. A step starting at
    time t uses the model in force at t.

    >>> h = PerfHistory(["healthy"])
    >>> h.record(0, 3.0, "degraded"); h.record(0, 8.0, None); h.record(0, 9.0, "healthy")
    >>> [h.at(0, t) for t in (0.0, 2.99, 3.0, 8.5, 9.0)]
    ['healthy', 'healthy', 'degraded', None, 'healthy']
    """

    def __init__(self, initial: Sequence[ReplicaPerf | None]) -> None:
        self.times: list[list[float]] = [[-float("inf")] for _ in initial]
        self.perfs: list[list[ReplicaPerf | None]] = [[p] for p in initial]

    def record(self, replica: int, time_s: float, perf: ReplicaPerf | None) -> None:
        times, perfs = self.times[replica], self.perfs[replica]
        if time_s == times[-1]:
            perfs[-1] = perf
        elif perf is not perfs[-1]:
            times.append(time_s)
            perfs.append(perf)

    def at(self, replica: int, time_s: float) -> ReplicaPerf | None:
        return self.perfs[replica][bisect_right(self.times[replica], time_s) - 1]

    @property
    def num_changes(self) -> int:
        return sum(len(t) - 1 for t in self.times)


def write_link_trace(
    path: Path, steps_path: Path, replicas: Sequence[ReplicaPerf], graph: nx.DiGraph, bucket_s: float,
    history: PerfHistory | None = None, detail: str = "link",
) -> WriteStats:
    """Stream steps.arrow into links.arrow (see the module docstring); `history` (failures
    on) gives each replica's model over time, else `replicas` hold for the whole run.

    steps.arrow is in commit order, so a bucket is complete once every later batch starts
    after it; buckets are held until then (a watermark one bucket behind the earliest start
    of the batch being read) and written in time order. A step committed very late (a
    multi-step span longer than the batch window) may add a second row for a bucket already
    written: sum `bytes` by (bucket_start_s, src, dst) to be safe.
    """
    if detail not in LINK_DETAILS:
        raise ValueError(f"write_link_trace detail={detail!r}, must be one of {LINK_DETAILS}")
    if history is not None and not history.num_changes:
        history = None
    flush = _flush if detail == "link" else _flush_classes(graph)
    per_tokens: dict[tuple[int, int], dict[tuple[str, str], float]] = {}
    held: dict[int, dict[tuple[str, str], float]] = {}
    with ArrowWriter(path, LINKS, metadata={"topology": str(graph.graph.get("name", ""))}) as writer:
        with pa.OSFile(str(steps_path)) as source:  # not a memory map: touched pages would stay resident
            reader = pa.ipc.open_file(source)
            for index in range(reader.num_record_batches):
                batch = reader.get_batch(index)
                if batch.num_rows == 0:
                    continue
                starts = batch.column("start_s").to_numpy()
                replica_ids = batch.column("replica").to_numpy()
                tokens = (batch.column("num_prefill_tokens").to_numpy().astype(np.int64)
                          + batch.column("num_decode_tokens").to_numpy())
                buckets = np.floor(starts / bucket_s).astype(np.int64)
                rows = zip(buckets.tolist(), replica_ids.tolist(), tokens.tolist(), starts.tolist())
                for bucket, replica, num_tokens, start_s in rows:
                    perf = replicas[replica] if history is None else history.at(replica, start_s)
                    key = (id(perf), num_tokens)
                    if key not in per_tokens:
                        per_tokens[key] = step_link_bytes(perf, num_tokens) if perf is not None else {}
                    acc = held.setdefault(bucket, defaultdict(float))
                    for edge, value in per_tokens[key].items():
                        acc[edge] += value
                watermark = int(buckets.min()) - 1
                for bucket in sorted(b for b in held if b < watermark):
                    flush(writer, graph, bucket, bucket_s, held.pop(bucket))
        for bucket in sorted(held):
            flush(writer, graph, bucket, bucket_s, held.pop(bucket))
    return writer.stats


def _flush(writer: ArrowWriter, graph: nx.DiGraph, bucket: int, bucket_s: float, acc: dict) -> None:
    if not acc:
        return
    edges = sorted(acc)
    moved = np.array([acc[e] for e in edges])
    bw = np.array([graph.edges[e]["bw_bytes_s"] for e in edges])
    writer.extend({
        "bucket_start_s": np.full(len(edges), bucket * bucket_s),
        "bucket_s": np.full(len(edges), bucket_s),
        "src": [str(u) for u, _ in edges],
        "dst": [str(v) for _, v in edges],
        "kind": [str(graph.edges[e].get("kind", "")) for e in edges],
        "bytes": moved,
        "utilization": (moved / (bw * bucket_s)).astype(np.float32),
        "max_utilization": (moved / (bw * bucket_s)).astype(np.float32),
    })


def class_bandwidth(graph: nx.DiGraph) -> dict[str, float]:
    """Total directed bandwidth (bytes/s) of every link kind (containment edges excluded).

    >>> g = nx.DiGraph(); g.add_edge("a", "b", kind="ici", bw_bytes_s=2.0); g.add_edge("b", "a", kind="ici", bw_bytes_s=2.0)
    >>> class_bandwidth(g)
    {'ici': 4.0}
    """
    total: dict[str, float] = defaultdict(float)
    for _, _, data in graph.edges(data=True):
        if data.get("kind") != "contains":
            total[str(data.get("kind", ""))] += float(data["bw_bytes_s"])
    return dict(total)


def _flush_classes(graph: nx.DiGraph):  # type: ignore[no-untyped-def]
    """A flush that writes one row per link kind (see the module docstring)."""
    class_bw = class_bandwidth(graph)

    def flush(writer: ArrowWriter, graph: nx.DiGraph, bucket: int, bucket_s: float, acc: dict) -> None:
        if not acc:
            return
        moved: dict[str, float] = defaultdict(float)
        busiest: dict[str, float] = defaultdict(float)
        for edge, value in acc.items():
            data = graph.edges[edge]
            kind = str(data.get("kind", ""))
            moved[kind] += value
            busiest[kind] = max(busiest[kind], value / (data["bw_bytes_s"] * bucket_s))
        kinds = sorted(moved)
        total = np.array([moved[k] for k in kinds])
        writer.extend({
            "bucket_start_s": np.full(len(kinds), bucket * bucket_s),
            "bucket_s": np.full(len(kinds), bucket_s),
            "src": [f"class:{k}" for k in kinds],
            "dst": ["all"] * len(kinds),
            "kind": kinds,
            "bytes": total,
            "utilization": (total / (np.array([class_bw[k] for k in kinds]) * bucket_s)).astype(np.float32),
            "max_utilization": np.array([busiest[k] for k in kinds], dtype=np.float32),
        })

    return flush
