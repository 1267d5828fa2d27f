"""The run summary: latency percentiles, throughput, SLO attainment and utilization, computed
from the record files alone (so a summary can be recomputed from any run directory).

Definitions (all times in simulated seconds):

* **Window.** ``start_s`` is the first arrival of any request. If ``duration_s`` is given the
  window is ``[start_s, start_s + duration_s]``; otherwise it ends at the last ``finish_s``
  of a finished request, so ``duration_s = max(finish_s) - min(arrival_s)``.
* **Latency** (TTFT, TPOT, end-to-end) is taken over finished requests only; TPOT skips
  requests with fewer than two generated tokens (their ``tpot_s`` is NaN). Percentiles use
  ``numpy.percentile(..., method="linear")`` (Hyndman and Fan type 7, numpy's default): the
  q-th percentile of n sorted values ``x_0..x_{n-1}`` is interpolated at rank ``q/100*(n-1)``.
* **Throughput** divides totals over finished requests by the window's ``duration_s``:
  requests/s, prompt (input) tokens/s, generated (output) tokens/s, their sum, and output
  tokens/s per chip (``num_chips`` is every chip the layout pays for).
* **SLO.** A finished request meets the SLO when ``ttft_s <= slo_ttft_s`` and
  ``tpot_s <= slo_tpot_s`` (a limit given as None is not checked; a request with a NaN TPOT,
  i.e. one output token, has no inter-token gap and passes the TPOT limit). ``attainment`` is
  the fraction of finished requests meeting it, ``attainment_all`` the fraction of all
  requests (rejected, failed and unfinished ones count as misses); goodput is the
  throughput of requests meeting it. With no limit at all, the SLO fields are null.
* **Steps.** Mean batch size time-weighted ``sum(num_seqs * step_s) / sum(step_s)`` and
  token-weighted ``sum(num_seqs * tokens) / sum(tokens)`` (the batch the average token was
  computed in; tokens = prefill + decode tokens of the step); utilizations are weighted by
  ``step_s``. A replica's busy fraction is the part of the window covered by its steps.

Everything is JSON-ready: NaN becomes null, so an empty run gives nulls, not a crash.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clustersim.records.quantiles import Reader, stream_stats
from clustersim.records.writer import to_jsonable
from clustersim.serving.request import Status

PERCENTILES: tuple[int, ...] = (50, 90, 99)
PERCENTILE_METHOD = "linear"

TableSource = str | os.PathLike[str] | pa.Table

_STEP_COLUMNS = (
    "start_s",
    "replica",
    "step_s",
    "num_seqs",
    "num_prefill_tokens",
    "num_decode_tokens",
    "compute_util",
    "hbm_util",
)


def _read_columns(source: TableSource, columns: tuple[str, ...]) -> pa.Table:
    """The named columns of a table or of an Arrow IPC file, read batch by batch so only
    those columns stay in memory."""
    if isinstance(source, pa.Table):
        return source.select(list(columns))
    batches = list(_iter_batches(source, columns))
    if batches:
        return pa.Table.from_batches(batches)
    with pa.OSFile(os.fspath(source)) as handle:
        return pa.ipc.open_file(handle).schema.empty_table().select(list(columns))


def iter_request_batches(source: TableSource, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    """The named columns of a record file (or table), one record batch at a time."""
    return _iter_batches(source, columns)


def _iter_batches(source: TableSource, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    """Record batches of a table or an Arrow IPC file, one at a time (bounded memory: plain
    reads, not a memory map, whose touched pages would count against the process)."""
    if isinstance(source, pa.Table):
        yield from source.select(list(columns)).to_batches()
        return
    with pa.OSFile(os.fspath(source)) as handle:
        reader = pa.ipc.open_file(handle)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i).select(list(columns))




def _is(status: pa.ChunkedArray, value: Status) -> np.ndarray:
    """Boolean mask of rows whose status is `value`."""
    return np.asarray(pc.equal(status, value.value).to_numpy(zero_copy_only=False), dtype=bool)


def _f64(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_numpy(), dtype=np.float64)


def latency_stats(values: np.ndarray) -> dict[str, float | int | None]:
    """Count, mean and p50/p90/p99 (numpy "linear") of the finite values; None when empty.

    >>> s = latency_stats(np.array([0.1, 0.2, 0.3, 0.4, 0.5, np.nan]))
    >>> s["count"], round(s["p90"], 12)  # rank 0.9 * 4 = 3.6: 0.4 + 0.6 * (0.5 - 0.4)
    (5, 0.46)
    """
    x = values[np.isfinite(values)]
    if x.size == 0:
        return _stats(0, math.nan, [])
    return _stats(int(x.size), float(np.mean(x)), np.percentile(x, PERCENTILES, method=PERCENTILE_METHOD).tolist())


def _stats(count: int, mean: float, percentiles: Sequence[float]) -> dict[str, float | int | None]:
    """The latency section's shape: count, mean, p50/p90/p99 (None for all but count when empty)."""
    if count == 0:
        return {"count": 0, "mean": None} | {f"p{q}": None for q in PERCENTILES}
    return {"count": count, "mean": mean} | {f"p{q}": float(v) for q, v in zip(PERCENTILES, percentiles, strict=True)}


def _ratio(num: float, den: float | None) -> float | None:
    if den is None or not den > 0 or not math.isfinite(num):
        return None
    return num / den


def summarize(
    requests: TableSource,
    steps: TableSource | None = None,
    *,
    num_chips: int,
    duration_s: float | None = None,
    slo_ttft_s: float | None = None,
    slo_tpot_s: float | None = None,
) -> dict[str, Any]:
    """Summarize a run from its `requests` records (path or table, `REQUESTS` schema) and
    optionally its `steps` records (`STEPS` schema); see the module docstring for every
    definition. `duration_s=None` measures the window from first arrival to last finish."""
    if num_chips < 1:
        raise ValueError(f"summarize: num_chips={num_chips}, must be >= 1")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"summarize: duration_s={duration_s}, must be a positive number or None")
    for name, limit in (("slo_ttft_s", slo_ttft_s), ("slo_tpot_s", slo_tpot_s)):
        if limit is not None and not limit >= 0:
            raise ValueError(f"summarize: {name}={limit}, must be >= 0 or None")

    totals = _request_totals(requests, slo_ttft_s, slo_tpot_s)
    counts = totals.pop("counts")
    num_total = sum(counts.values())
    num_finished = int(totals["num_finished"])
    arrival_min = totals["arrival_min"]

    start_s = arrival_min if num_total else None
    if start_s is None:
        end_s = None
    elif duration_s is not None:
        end_s = start_s + duration_s
    else:
        end_s = totals["finish_max"] if num_finished else None
    window_s = end_s - start_s if start_s is not None and end_s is not None else None

    input_tokens = totals["input_tokens"]
    output_tokens = totals["output_tokens"]
    output_tokens_s = _ratio(output_tokens, window_s)
    throughput = {
        "requests_s": _ratio(float(num_finished), window_s),
        "input_tokens_s": _ratio(input_tokens, window_s),
        "output_tokens_s": output_tokens_s,
        "total_tokens_s": _ratio(input_tokens + output_tokens, window_s),
        "output_tokens_s_per_chip": (
            None if output_tokens_s is None else output_tokens_s / num_chips
        ),
    }

    summary: dict[str, Any] = {
        "num_requests": {"total": num_total, **counts},
        "num_chips": num_chips,
        "window": {
            "start_s": start_s,
            "end_s": end_s,
            "duration_s": window_s,
            "duration_from": "given" if duration_s is not None else "first arrival to last finish",
        },
        "percentile_method": f"numpy.percentile method={PERCENTILE_METHOD!r}",
        "latency": {name: streamed_latency_stats(finished_values(requests, name)) for name in ("ttft_s", "tpot_s", "e2e_s")},
        "throughput": throughput,
        "slo": _slo(totals, num_finished, num_total, window_s, slo_ttft_s, slo_tpot_s),
        "steps": None if steps is None else _step_summary(steps, start_s, end_s),
    }
    return to_jsonable(summary)


def _request_totals(requests: TableSource, slo_ttft_s: float | None, slo_tpot_s: float | None) -> dict[str, Any]:
    """One streamed pass over the request records: counts by status, first arrival, and over
    finished requests their number, last finish, token sums and the SLO's met sums."""
    counts = {s.value: 0 for s in Status}
    out: dict[str, Any] = dict.fromkeys(("num_finished", "input_tokens", "output_tokens", "num_met",
                                          "met_input_tokens", "met_output_tokens"), 0.0)
    out |= {"arrival_min": math.inf, "finish_max": -math.inf}
    columns = ("arrival_s", "finish_s", "ttft_s", "tpot_s", "num_prompt_tokens", "num_generated_tokens")
    for batch in _iter_batches(requests, ("status", *columns)):
        status = batch.column("status")
        for item in pc.value_counts(status).to_pylist():
            counts[str(item["values"])] += int(item["counts"])
        if batch.num_rows:
            out["arrival_min"] = min(out["arrival_min"], float(_f64(batch.column("arrival_s")).min()))
        finished = _is(status, Status.FINISHED)
        if not finished.any():
            continue
        finish, ttft, tpot, prompt, generated = (_f64(batch.column(c))[finished] for c in columns[1:])
        out["num_finished"] += int(finished.sum())
        out["finish_max"] = max(out["finish_max"], float(finish.max()))
        out["input_tokens"] += float(prompt.sum())
        out["output_tokens"] += float(generated.sum())
        met = np.ones(ttft.shape, dtype=bool)
        if slo_ttft_s is not None:
            met &= ttft <= slo_ttft_s
        if slo_tpot_s is not None:
            met &= np.isnan(tpot) | (tpot <= slo_tpot_s)
        out["num_met"] += int(met.sum())
        out["met_input_tokens"] += float(prompt[met].sum())
        out["met_output_tokens"] += float(generated[met].sum())
    out["counts"] = counts
    return out


def finished_values(requests: TableSource, column: str) -> Reader:
    """A re-readable pass over one numeric column of the finished requests, batch by batch."""
    def read() -> Iterator[np.ndarray]:
        for (values,) in finished_rows(requests, (column,)):
            yield values
    return read


def finished_rows(requests: TableSource, columns: tuple[str, ...]) -> Iterator[tuple[np.ndarray, ...]]:
    """The named numeric columns of the finished requests as float64 arrays, batch by batch
    (one read of the records for all of them)."""
    for batch in _iter_batches(requests, ("status", *columns)):
        finished = _is(batch.column("status"), Status.FINISHED)
        yield tuple(_f64(batch.column(c))[finished] for c in columns)


def streamed_latency_stats(reader: Reader) -> dict[str, float | int | None]:
    """`latency_stats` of values read in passes (records.quantiles): the same percentiles,
    memory bounded whatever the number of requests."""
    return _stats(*stream_stats(reader, PERCENTILES))


def _slo(totals: dict[str, Any], num_finished: int, num_total: int, window_s: float | None,
         slo_ttft_s: float | None, slo_tpot_s: float | None) -> dict[str, Any]:
    """SLO attainment and goodput over finished requests (sums from `_request_totals`)."""
    out: dict[str, Any] = {"ttft_s": slo_ttft_s, "tpot_s": slo_tpot_s}
    keys = ("num_met", "attainment", "attainment_all", "goodput_requests_s",
            "goodput_output_tokens_s", "goodput_tokens_s")
    if slo_ttft_s is None and slo_tpot_s is None:
        return out | dict.fromkeys(keys)
    num_met = int(totals["num_met"])
    return out | {
        "num_met": num_met,
        "attainment": _ratio(num_met, num_finished),
        "attainment_all": _ratio(num_met, num_total),
        "goodput_requests_s": _ratio(num_met, window_s),
        "goodput_output_tokens_s": _ratio(totals["met_output_tokens"], window_s),
        "goodput_tokens_s": _ratio(totals["met_input_tokens"] + totals["met_output_tokens"], window_s),
    }


def _step_summary(steps: TableSource, start_s: float | None, end_s: float | None) -> dict[str, Any]:
    """Batch size, utilization and per-replica busy fraction, streamed batch by batch."""
    num_steps = 0
    sum_step_s = sum_seqs_time = sum_tokens = sum_seqs_tokens = 0.0
    sum_compute_time = sum_hbm_time = 0.0
    busy_s: dict[int, float] = {}
    have_window = start_s is not None and end_s is not None and end_s > start_s
    for batch in _iter_batches(steps, _STEP_COLUMNS):
        if batch.num_rows == 0:
            continue
        start = _f64(batch.column("start_s"))
        step_s = _f64(batch.column("step_s"))
        seqs = _f64(batch.column("num_seqs"))
        tokens = _f64(batch.column("num_prefill_tokens")) + _f64(batch.column("num_decode_tokens"))
        num_steps += batch.num_rows
        sum_step_s += float(step_s.sum())
        sum_seqs_time += float(seqs @ step_s)
        sum_tokens += float(tokens.sum())
        sum_seqs_tokens += float(seqs @ tokens)
        sum_compute_time += float(_f64(batch.column("compute_util")) @ step_s)
        sum_hbm_time += float(_f64(batch.column("hbm_util")) @ step_s)
        replica = np.asarray(batch.column("replica").to_numpy(), dtype=np.int64)
        if have_window:
            overlap = np.minimum(start + step_s, end_s) - np.maximum(start, start_s)
            overlap = np.clip(overlap, 0.0, None)
        else:
            overlap = np.zeros_like(step_s)
        ids, inverse = np.unique(replica, return_inverse=True)
        per_replica = np.bincount(inverse, weights=overlap, minlength=ids.size)
        for rid, s in zip(ids.tolist(), per_replica.tolist(), strict=True):
            busy_s[rid] = busy_s.get(rid, 0.0) + s

    busy_fraction = (
        {str(rid): busy_s[rid] / (end_s - start_s) for rid in sorted(busy_s)} if have_window else {}
    )
    return {
        "num_steps": num_steps,
        "busy_s": sum_step_s,
        "mean_num_seqs_time_weighted": _ratio(sum_seqs_time, sum_step_s),
        "mean_num_seqs_token_weighted": _ratio(sum_seqs_tokens, sum_tokens),
        "mean_num_tokens_per_step": _ratio(sum_tokens, num_steps),
        "compute_util_mean": _ratio(sum_compute_time, sum_step_s),
        "hbm_util_mean": _ratio(sum_hbm_time, sum_step_s),
        "busy_fraction": busy_fraction,
        "busy_fraction_mean": (
            float(np.mean(list(busy_fraction.values()))) if busy_fraction else None
        ),
    }


def littles_law(
    requests: TableSource, *, start_s: float | None = None, end_s: float | None = None
) -> tuple[float, float]:
    """Both sides of Little's law, L = lambda x W, from the request records, as a sanity
    check of a run: `(mean_in_system, throughput_x_latency)`.

    Requests that entered the system are the finished and unfinished ones (rejected and
    failed requests carry no exit time and are left out). The window defaults to
    [first arrival, last finish]. L is the time-average number in system: each request's
    interval [arrival_s, finish_s] (unfinished: until the window's end) clipped to the
    window, summed, divided by the window's length. lambda is the number of those arrivals
    inside the window over its length; W the mean `e2e_s` of the finished ones among them.
    When every request finished inside the window the two sides agree exactly; unfinished
    requests and edge effects of a narrower window make them drift apart. NaN when the
    window is empty.

    >>> t = pa.table({"status": ["finished", "finished", "unfinished"],
    ...               "arrival_s": [0.0, 1.0, 2.0], "finish_s": [2.0, 3.0, float("nan")]})
    >>> littles_law(t)  # L = (2 + 2 + 1) / 3; lambda x W = 3/3 x 2
    (1.6666666666666667, 2.0)
    """
    table = _read_columns(requests, ("status", "arrival_s", "finish_s"))
    status = table.column("status")
    is_finished = _is(status, Status.FINISHED)
    is_unfinished = _is(status, Status.UNFINISHED)
    entered = is_finished | is_unfinished
    arrival = _f64(table.column("arrival_s"))[entered]
    finish = _f64(table.column("finish_s"))[entered]
    done = is_finished[entered]
    if arrival.size == 0:
        return (math.nan, math.nan)
    t0 = float(arrival.min()) if start_s is None else start_s
    t1 = (float(finish[done].max()) if done.any() else math.nan) if end_s is None else end_s
    if not t1 > t0:
        return (math.nan, math.nan)
    exit_s = np.where(done, finish, t1)
    in_system_s = np.clip(np.minimum(exit_s, t1) - np.maximum(arrival, t0), 0.0, None)
    mean_in_system = float(in_system_s.sum()) / (t1 - t0)
    arrived = (arrival >= t0) & (arrival <= t1)
    latency = finish[arrived & done] - arrival[arrived & done]
    mean_latency = float(latency.mean()) if latency.size else math.nan
    return (mean_in_system, int(arrived.sum()) / (t1 - t0) * mean_latency)
