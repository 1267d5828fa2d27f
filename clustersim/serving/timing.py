"""The engine's StepTimer backed by the perf model of one replica.

Utilizations are not computed per step here: the step records derive them in bulk from
flops, bytes and the peaks below (`utilization`), one formula for single steps and
fast-forwarded spans alike, so both paths give bitwise-equal records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clustersim.perf import ReplicaPerf, decode_run_costs, decode_run_ends, step_cost, step_cost_rows, step_time_s
from clustersim.perf.load import BatchLoad


@dataclass(slots=True)
class PerfTimer:
    """StepTimer for `replica`: (step_s, flops, hbm_bytes) per step, and the replica's peak
    FLOP/s and HBM bytes/s, from which the step records derive utilization."""

    replica: ReplicaPerf
    peak_flops_s: float = field(init=False)
    peak_bytes_s: float = field(init=False)

    def __post_init__(self) -> None:
        chips = self.replica.num_chips
        self.peak_flops_s = self.replica.chip.peak_flops_s(self.replica.weight_dtype) * chips
        self.peak_bytes_s = self.replica.chip.hbm_bw_bytes_s * chips

    def step(self, load: BatchLoad) -> tuple[float, float, float]:
        cost = step_cost(self.replica, load)
        return cost.step_s, cost.flops, cost.hbm_bytes

    def decode_run(self, load: BatchLoad, num_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        run = decode_run_costs(self.replica, load, num_steps)
        return run.step_s, run.flops, run.hbm_bytes

    def step_s(self, load: BatchLoad) -> float:
        return step_time_s(self.replica, load)

    def decode_ends(self, load: BatchLoad, num_steps: int, start_s: float) -> Sequence[float]:
        return decode_run_ends(self.replica, load, num_steps, start_s)

    def step_rows(self, num_tokens: np.ndarray, num_seqs: np.ndarray, num_sampled: np.ndarray,
                  attn_pairs: np.ndarray, kv_read_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return step_cost_rows(self.replica, num_tokens, num_seqs, num_sampled, attn_pairs, kv_read_tokens)


def utilization(amount: np.ndarray, step_s: np.ndarray, peak: np.ndarray | float) -> np.ndarray:
    """Fraction of peak used over each step: amount / (step_s x peak), as float32 records.

    >>> utilization(np.array([50.0]), np.array([0.5]), 200.0)
    array([0.5], dtype=float32)
    """
    return (amount / (step_s * peak)).astype(np.float32)
