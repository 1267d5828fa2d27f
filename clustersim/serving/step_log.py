"""Buffers engine step records and hands them to the steps.arrow writer in large chunks.

Engines report each committed span as (replica, span, num_done); building Arrow columns
per span costs more than the step itself, so spans are kept as-is and turned into
columns a few thousand at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clustersim.records import ArrowWriter
from clustersim.serving.engine import COUNT_COLUMNS, StepSpan
from clustersim.serving.timing import utilization


@dataclass(slots=True)
class StepLog:
    """StepSink that batches spans into column arrays for an ArrowWriter."""

    writer: ArrowWriter
    flush_every: int = 1024
    _pending: list[tuple[int, StepSpan, int]] = field(default_factory=list)

    def __call__(self, replica_id: int, span: StepSpan, num_done: int) -> None:
        self._pending.append((replica_id, span, num_done))
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write every buffered span's rows, in the order they were committed."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        counts = np.fromiter((n for _, _, n in pending), dtype=np.int64, count=len(pending))

        def repeat(values, dtype) -> np.ndarray:
            return np.repeat(np.fromiter(values, dtype=dtype, count=len(pending)), counts)

        def cut(index: int) -> np.ndarray:
            return np.concatenate([span.costs[index][:n] for _, span, n in pending])

        starts = np.concatenate([
            np.concatenate(([span.start_s], span.ends_s[: n - 1])) if n > 1 else np.array([span.start_s])
            for _, span, n in pending
        ])
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))

        def per_step(first, rest) -> np.ndarray:
            """Step 0 of each span from `first`, its other steps from `rest`."""
            values = repeat(rest, np.int32)
            values[offsets] = np.fromiter(first, dtype=np.int32, count=len(pending))
            return values

        step_s, flops, hbm_bytes = cut(0), cut(1), cut(2)
        firsts, rests = zip(*(s.first_and_rest() for _, s, _ in pending))
        counted = {name: per_step((f[i] for f in firsts), (r[i] for r in rests)) for i, name in enumerate(COUNT_COLUMNS)}
        self.writer.extend({
            "start_s": starts,
            "replica": repeat((r for r, _, _ in pending), np.int32),
            "step_s": step_s,
            "flops": flops,
            "hbm_bytes": hbm_bytes,
            "compute_util": utilization(flops, step_s, repeat((s.peaks[0] for _, s, _ in pending), np.float64)),
            "hbm_util": utilization(hbm_bytes, step_s, repeat((s.peaks[1] for _, s, _ in pending), np.float64)),
            "kv_blocks_used": np.concatenate([s.kv_used[:n] for _, s, n in pending]).astype(np.int32),
            "kv_blocks_total": repeat((s.kv_total for _, s, _ in pending), np.int32),
            "num_waiting": repeat((s.num_waiting for _, s, _ in pending), np.int32),
            **counted,
        })
