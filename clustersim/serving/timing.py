"""The engine's StepTimer backed by the perf model of one replica.

Utilizations are derived here from flops and bytes with one formula for single steps and
fast-forwarded spans alike, so both paths give bitwise-equal records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clustersim.perf import ReplicaPerf, decode_run_costs, step_cost
from clustersim.perf.load import BatchLoad


@dataclass(slots=True)
class PerfTimer:
    """StepTimer for `replica`: (step_s, flops, hbm_bytes, compute_util, hbm_util)."""

    replica: ReplicaPerf
    _peak_flops_s: float = field(init=False)
    _peak_bytes_s: float = field(init=False)

    def __post_init__(self) -> None:
        chips = self.replica.num_chips
        self._peak_flops_s = self.replica.chip.peak_flops_s(self.replica.weight_dtype) * chips
        self._peak_bytes_s = self.replica.chip.hbm_bw_bytes_s * chips

    def step(self, load: BatchLoad) -> tuple[float, float, float, float, float]:
        cost = step_cost(self.replica, load)
        return (
            cost.step_s,
            cost.flops,
            cost.hbm_bytes,
            cost.flops / (cost.step_s * self._peak_flops_s),
            cost.hbm_bytes / (cost.step_s * self._peak_bytes_s),
        )

    def decode_run(self, load: BatchLoad, num_steps: int) -> tuple[np.ndarray, ...]:
        run = decode_run_costs(self.replica, load, num_steps)
        return (
            run.step_s,
            run.flops,
            run.hbm_bytes,
            run.flops / (run.step_s * self._peak_flops_s),
            run.hbm_bytes / (run.step_s * self._peak_bytes_s),
        )
