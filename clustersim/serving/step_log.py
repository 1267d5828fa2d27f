"""Engine step records, built in bulk: steps.arrow rows from committed spans.

Engines report each committed span as (replica, span, num_done) and keep no per-step
figures: a span knows its loads (step 0's, and the decode load the rest advance from), its
end times and its KV use (given, or as block phases). `step_columns` turns thousands of
spans into rows at once: each row's load, then its step time, FLOPs and bytes from the
timer's vectorized `step_rows` (bitwise equal to `step` of that load), so fast-forwarded and
single-stepped runs write the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from clustersim.perf.load import BatchLoad
from clustersim.records import ArrowWriter
from clustersim.serving.batcher import phase_matrix
from clustersim.serving.engine import COUNT_COLUMNS, StepSpan, StepTimer
from clustersim.serving.timing import utilization

Committed = tuple[int, StepSpan, int]
"""(replica_id, span, num_done): the span's first num_done steps completed."""

_LOAD_FIELDS = ("num_tokens", "num_seqs", "num_sampled", "attn_pairs", "kv_read_tokens")


@dataclass(slots=True)
class StepLog:
    """StepSink that batches spans into column arrays for an ArrowWriter."""

    writer: ArrowWriter
    flush_every: int = 4096
    _pending: list[Committed] = field(default_factory=list)

    def __call__(self, replica_id: int, span: StepSpan, num_done: int) -> None:
        self._pending.append((replica_id, span, num_done))
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write every buffered span's rows, in the order they were committed."""
        pending, self._pending = self._pending, []
        if pending:
            self.writer.extend(step_columns(pending))


def span_columns(replica_id: int, span: StepSpan, num_done: int) -> dict[str, np.ndarray]:
    """The steps.arrow columns of one span's first num_done steps."""
    return step_columns([(replica_id, span, num_done)])


def step_columns(pending: Sequence[Committed]) -> dict[str, np.ndarray]:
    """The steps.arrow columns of the committed spans, in order, one row per step."""
    table = np.array([_span_values(r, span, n) for r, span, n in pending], dtype=np.float64)
    spans = dict(zip(_SPAN_VALUES, table.T))  # exact: every integer here is far below 2**53
    counts = spans["num_done"].astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    span_of_row = np.repeat(np.arange(len(pending)), counts)
    step_of_row = np.arange(int(counts.sum())) - offsets[span_of_row]
    first = step_of_row == 0

    def rows(name: str, dtype=np.int64) -> np.ndarray:
        return spans[name].astype(dtype)[span_of_row]

    # rows 1.. advance the rest load by one token per sequence and step, from step 0 (no
    # tail) or step 1 (tail), exactly as perf.advance_decode
    grown = (step_of_row - rows("has_tail")) * rows("rest_num_seqs")
    loads = {
        "num_tokens": np.where(first, rows("num_tokens"), rows("rest_num_tokens")),
        "num_seqs": np.where(first, rows("num_seqs"), rows("rest_num_seqs")),
        "num_sampled": np.where(first, rows("num_sampled"), rows("rest_num_sampled")),
        "attn_pairs": np.where(first, rows("attn_pairs", np.float64), rows("rest_attn_pairs", np.float64) + grown),
        "kv_read_tokens": np.where(first, rows("kv_read_tokens"), rows("rest_kv_read_tokens") + grown),
    }
    step_s, flops, hbm_bytes = _costs(pending, span_of_row, loads)
    columns = {
        "start_s": np.fromiter(chain.from_iterable(_starts(span, n) for _, span, n in pending), dtype=np.float64,
                               count=len(span_of_row)),
        "replica": rows("replica", np.int32),
        "step_s": step_s,
        "flops": flops,
        "hbm_bytes": hbm_bytes,
        "compute_util": utilization(flops, step_s, rows("peak_flops_s", np.float64)),
        "hbm_util": utilization(hbm_bytes, step_s, rows("peak_bytes_s", np.float64)),
        "kv_blocks_used": _kv_used(pending, span_of_row, step_of_row, offsets, rows("kv_start")).astype(np.int32),
        "kv_blocks_total": rows("kv_total", np.int32),
        "num_waiting": rows("num_waiting", np.int32),
    }
    for name in COUNT_COLUMNS:
        columns[name] = np.where(first, rows(name, np.int32), rows("rest_" + name, np.int32))
    return columns


_SPAN_VALUES = (
    "replica", "num_done", "has_tail", "kv_total", "num_waiting", "kv_start", "peak_flops_s", "peak_bytes_s",
    "num_tokens", "num_seqs", "num_sampled", "attn_pairs", "kv_read_tokens",
    "rest_num_tokens", "rest_num_seqs", "rest_num_sampled", "rest_attn_pairs", "rest_kv_read_tokens",
    *COUNT_COLUMNS, *("rest_" + name for name in COUNT_COLUMNS),
)


def _span_values(replica_id: int, span: StepSpan, num_done: int) -> tuple[float, ...]:
    """One span's scalars in _SPAN_VALUES order: its step 0 load and the load later steps
    advance from (the plan's own when step 0 did not end prefills)."""
    head = span.plan.load
    rest = head if span.tail is None else span.tail
    first_counts, rest_counts = span.first_and_rest()
    return (replica_id, num_done, span.tail is not None, span.kv_total, span.num_waiting, span.kv_start,
            span.timer.peak_flops_s, span.timer.peak_bytes_s,
            head.num_tokens, head.num_seqs, head.num_sampled, head.attn_pairs, head.kv_read_tokens,
            rest.num_tokens, rest.num_seqs, rest.num_sampled, rest.attn_pairs, rest.kv_read_tokens,
            *first_counts, *rest_counts)


def _starts(span: StepSpan, num_done: int) -> Sequence[float]:
    """Start times of a span's first num_done steps: its start, then each step's end."""
    return (span.start_s, *span.ends_s[: num_done - 1])


def _costs(pending: Sequence[Committed], span_of_row: np.ndarray,
           loads: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step_s, flops, hbm_bytes) per row, from each span's own timer (a failure may have
    swapped a replica's timer mid-run)."""
    timers: dict[int, StepTimer] = {}
    for _, span, _ in pending:
        timers.setdefault(id(span.timer), span.timer)
    if len(timers) == 1:
        return _timer_rows(next(iter(timers.values())), *(loads[name] for name in _LOAD_FIELDS))
    out = tuple(np.empty(len(span_of_row)) for _ in range(3))
    timer_of_span = np.fromiter((id(s.timer) for _, s, _ in pending), dtype=np.int64, count=len(pending))
    for key, timer in timers.items():
        rows = np.flatnonzero(timer_of_span[span_of_row] == key)
        figures = _timer_rows(timer, *(loads[name][rows] for name in _LOAD_FIELDS))
        for column, values in zip(out, figures):
            column[rows] = values
    return out


def _timer_rows(timer: StepTimer, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """The timer's step figures of each row: its vectorized `step_rows`, else `step` per row."""
    step_rows = getattr(timer, "step_rows", None)
    if step_rows is not None:
        return step_rows(*columns)
    figures = [timer.step(BatchLoad(num_tokens=int(t), num_seqs=int(s), num_sampled=int(k), attn_pairs=float(p),
                                    kv_read_tokens=int(r)))
               for t, s, k, p, r in zip(*columns)]
    return tuple(np.array(column, dtype=np.float64) for column in zip(*figures)) if figures else \
        tuple(np.empty(0) for _ in range(3))


def _kv_used(pending: Sequence[Committed], span_of_row: np.ndarray, step_of_row: np.ndarray, offsets: np.ndarray,
             kv_start: np.ndarray) -> np.ndarray:
    """KV blocks in use during each row's step: given by the span, else its start plus the
    blocks its requests' phases add step by step (KVPhases), cumulated per span."""
    increments = np.zeros(len(span_of_row), dtype=np.int64)
    phased = [(index, span.kv_phases) for index, (_, span, n) in enumerate(pending)
              if span.kv_used is None and span.kv_phases is not None and n > 1]
    if phased:
        block_size = phased[0][1].block_size
        assert all(p.block_size == block_size for _, p in phased), "one KV block size per run"
        phases = phase_matrix([p for _, p in phased])
        which = np.full(len(pending), -1, dtype=np.int64)
        which[[index for index, _ in phased]] = np.arange(len(phased))
        row_phases = which[span_of_row]
        take = (row_phases >= 0) & (step_of_row > 0)
        increments[take] = phases[row_phases[take], step_of_row[take] % block_size]
    totals = np.cumsum(increments)
    used = kv_start + totals - totals[offsets][span_of_row]  # increments are 0 at each span's step 0
    for index, (_, span, num_done) in enumerate(pending):
        if span.kv_used is not None:
            used[offsets[index]: offsets[index] + num_done] = span.kv_used[:num_done]
    return used
