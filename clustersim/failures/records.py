"""events.arrow (one row per failure-side event) and the failure part of summary.json.

A replica is *down* from the `fail` or `partition` row that lists it (rows list only the
replicas newly taken out) until the `reload_done` row that lists it; everything the summary
says about availability is read back from those rows, so it checks the injector rather
than repeating it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clustersim.perf import step_time_s
from clustersim.perf.load import BatchLoad
from clustersim.records.links import PerfHistory
from clustersim.records.summary import TableSource, iter_request_batches

EVENT_KINDS = ("fail", "repair", "reconfig", "reload_start", "reload_done", "degrade", "restore_bw", "partition")
DOWN_KINDS = ("fail", "partition")

EVENTS: pa.Schema = pa.schema(
    [
        pa.field(n, t, metadata={"description": d})
        for n, t, d in [
            ("time_s", pa.float64(), "simulated time of the event"),
            ("component", pa.string(), "component id (chip, 'u|v' link, host:..., power:...), or replica<r>"),
            ("component_class", pa.string(), "failure class (chip, hbm, host, nvswitch, ...) or 'replica'"),
            ("kind", pa.string(), "one of " + ", ".join(EVENT_KINDS)),
            ("affected_replicas", pa.list_(pa.int32()), "replicas this event changes (newly down, degraded, back)"),
            ("affected_chips", pa.int32(), "len(affected_chip_ids): chips the component kills (0 for links and switches)"),
            ("recovery_s", pa.float64(), "fail/partition/degrade: repair time; reload_start: reload time; "
             "reconfig: OCS reconfiguration time; reload_done: how long the replica was out"),
            ("affected_chip_ids", pa.list_(pa.string()), "names of the chips the component kills (fail, repair, "
             "reconfig and the partition/degrade/restore_bw rows of the same fault); empty on reload rows"),
            ("affected_links", pa.list_(pa.string()), "directed links 'src->dst' the component takes out (dead links "
             "and every link of a dead node), as src/dst in links.arrow; same rows as affected_chip_ids"),
        ]
    ],
    metadata={"clustersim.table": "events"},
)


def event_row(
    time_s: float, component: str, component_class: str, kind: str, replicas: Iterable[int], num_chips: int,
    recovery_s: float, chips: Iterable[str] = (), links: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """One EVENTS row (lists sorted, links written 'src->dst').

    >>> row = event_row(1.0, "a|b", "nvlink", "fail", {2, 1}, 0, 60.0, links=[("b", "a"), ("a", "b")])
    >>> row["affected_replicas"], row["affected_links"]
    ([1, 2], ['a->b', 'b->a'])
    """
    assert kind in EVENT_KINDS, kind
    return {
        "time_s": float(time_s),
        "component": component,
        "component_class": component_class,
        "kind": kind,
        "affected_replicas": sorted(int(r) for r in replicas),
        "affected_chips": int(num_chips),
        "recovery_s": float(recovery_s),
        "affected_chip_ids": sorted(str(c) for c in chips),
        "affected_links": [f"{u}->{v}" for u, v in sorted((str(u), str(v)) for u, v in links)],
    }


def down_intervals(events: pa.Table, num_replicas: int, horizon_s: float) -> list[list[tuple[float, float]]]:
    """Per replica, its out-of-service intervals clipped to [0, horizon_s].

    >>> t = pa.Table.from_pylist([event_row(10, "c", "chip", "fail", [0], 1, 5),
    ...                           event_row(20, "replica0", "replica", "reload_done", [0], 0, 10)], schema=EVENTS)
    >>> down_intervals(t, 2, 100.0)
    [[(10.0, 20.0)], []]
    """
    since: list[float | None] = [None] * num_replicas
    out: list[list[tuple[float, float]]] = [[] for _ in range(num_replicas)]
    for row in events.select(["time_s", "kind", "affected_replicas"]).to_pylist():
        t = min(row["time_s"], horizon_s)
        for r in row["affected_replicas"]:
            if row["kind"] in DOWN_KINDS and since[r] is None:
                since[r] = t
            elif row["kind"] == "reload_done" and since[r] is not None:
                out[r].append((since[r], t))
                since[r] = None
    for r, s in enumerate(since):
        if s is not None:
            out[r].append((s, horizon_s))
    return out


def _service_up_s(intervals: list[list[tuple[float, float]]], horizon_s: float) -> float:
    """Time with at least one replica up: horizon minus time when all are down (sweep)."""
    edges = sorted((t, d) for iv in intervals for a, b in iv for t, d in ((a, 1), (b, -1)))
    num_down, last, all_down_s = 0, 0.0, 0.0
    for t, d in edges:
        if num_down == len(intervals):
            all_down_s += t - last
        num_down += d
        last = t
    if num_down == len(intervals) and intervals:
        all_down_s += horizon_s - last
    return horizon_s - all_down_s


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def failure_summary(events: pa.Table, requests: TableSource, num_replicas: int, horizon_s: float,
                    num_lost_tokens: int = 0) -> dict[str, Any]:
    """Availability per replica and for the service, mean capacity online, goodput lost to
    failed requests, tokens recomputed (engines' num_lost_tokens), observed replica MTTF.

    replica availability = 1 - down time / horizon; service availability = fraction of the
    horizon with at least one replica up; mean capacity online = mean replica availability;
    observed replica MTTF = total up time / number of times a replica went down. `requests`
    (a table or requests.arrow) is read batch by batch.
    """
    intervals = down_intervals(events, num_replicas, horizon_s)
    down_s = [sum(b - a for a, b in iv) for iv in intervals]
    avail = [1.0 - d / horizon_s if horizon_s > 0 else 1.0 for d in down_s]
    num_outages = sum(len(iv) for iv in intervals)
    up_s = num_replicas * horizon_s - sum(down_s)
    kinds = events.column("kind").to_pylist()
    classes = events.column("component_class").to_pylist()
    fails_by_class: dict[str, int] = {}
    for k, c in zip(kinds, classes):
        if k == "fail":
            fails_by_class[c] = fails_by_class.get(c, 0) + 1
    lost = _failed_request_sums(requests)
    num_faults = sum(fails_by_class.values())
    return {
        "horizon_s": horizon_s,
        "num_faults": num_faults,
        "faults_by_class": dict(sorted(fails_by_class.items())),
        "num_replica_outages": num_outages,
        "replica_availability": avail,
        "service_availability": _service_up_s(intervals, horizon_s) / horizon_s if horizon_s > 0 else 1.0,
        "mean_capacity_online": float(np.mean(avail)) if avail else 1.0,
        "replica_down_s": down_s,
        "observed_replica_mttf_s": _finite(up_s / num_outages) if num_outages else None,
        "observed_mean_time_between_faults_s": horizon_s / num_faults if num_faults else None,
        "num_failed_requests": lost["num_failed"],
        "goodput_lost_tokens": lost["lost_tokens"],
        "goodput_lost_output_tokens": lost["lost_output_tokens"],
        "num_retries": lost["num_retries"],
        "tokens_recomputed": int(num_lost_tokens),
        "num_degrade_events": int(pc.sum(pc.equal(events.column("kind"), "degrade")).as_py() or 0),
    }


def _failed_request_sums(requests: TableSource) -> dict[str, int]:
    """Failed requests, their prompt + output and output tokens, and every request's retries,
    summed batch by batch (`num_retries` counts 0 when the table has no such column)."""
    names = ("status", "num_prompt_tokens", "num_output_tokens")
    source_names = requests.column_names if isinstance(requests, pa.Table) else None
    with_retries = source_names is None or "num_retries" in source_names
    sums = dict.fromkeys(("num_failed", "lost_tokens", "lost_output_tokens", "num_retries"), 0)
    for batch in iter_request_batches(requests, names + ("num_retries",) * with_retries):
        failed = np.asarray(pc.equal(batch.column("status"), "failed").to_numpy(zero_copy_only=False), dtype=bool)
        prompt = np.asarray(batch.column("num_prompt_tokens").to_numpy(), dtype=np.int64)
        output = np.asarray(batch.column("num_output_tokens").to_numpy(), dtype=np.int64)
        sums["num_failed"] += int(failed.sum())
        sums["lost_tokens"] += int((prompt[failed] + output[failed]).sum())
        sums["lost_output_tokens"] += int(output[failed].sum())
        if with_retries:
            sums["num_retries"] += int(np.asarray(batch.column("num_retries").to_numpy(), dtype=np.int64).sum())
    return sums


REFERENCE_STEP = BatchLoad(num_tokens=32 + 512, num_prefill_tokens=512, num_seqs=33, num_sampled=32,
                           attn_pairs=32 * 2049.0 + 512 * 513 / 2, kv_read_tokens=32 * 2049 + 512)
"""The step that measures a replica's speed: 32 decodes at 2,048 tokens of context plus one
512-token prompt chunk (a mid-size serving step: its GEMMs, KV reads and collectives all count)."""


def effective_capacity(history: PerfHistory, horizon_s: float, step: BatchLoad = REFERENCE_STEP) -> float:
    """Mean over replicas and over [0, horizon_s] of each replica's speed relative to its healthy
    self: healthy step time / current step time on `step` (a degraded fabric slows the
    collectives), 0 while out of service. `mean_capacity_online` counts a degraded replica as
    whole; this does not.

    >>> from clustersim.perf import ReplicaPerf
    >>> from clustersim.catalog import load_catalog
    >>> cat = load_catalog()
    >>> healthy = ReplicaPerf(cat.chips["H100"], cat.models["llama-3.1-8b"], tp=2)
    >>> h = PerfHistory([healthy]); h.record(0, 50.0, None)  # out for the second half
    >>> effective_capacity(h, 100.0)
    0.5
    """
    if horizon_s <= 0:
        return 1.0
    total = 0.0
    for times, perfs in zip(history.times, history.perfs):
        healthy_s = step_time_s(perfs[0], step)
        ends = [*times[1:], math.inf]
        for start, end, perf in zip(times, ends, perfs):
            span = min(end, horizon_s) - max(start, 0.0)
            if perf is not None and span > 0:
                total += span * healthy_s / step_time_s(perf, step)
    return total / (horizon_s * len(history.times)) if history.times else 1.0
