"""One model replica as the step-time model sees it: chip, model, parallelism, dtypes.

A replica is `tp x pp` chips serving one copy of the model. Tensor parallelism splits every
layer over `tp` chips (two all-reduces per layer); pipeline parallelism splits the layers
into `pp` stages; expert parallelism spreads the routed experts over `ep` of the chips and
moves tokens to them by all-to-all.

Attention data parallelism (`attn_dp`) is the other way to use a stage's `tp` chips for an
MoE model ("DEPn" in SGLang, TensorRT-LLM and vLLM): each of the n ranks runs attention,
dense layers, embedding and lm_head whole (replicated weights) for its own sequences (its own
KV cache), and the routed experts are spread over the same n ranks (ep = n). Two layouts are
supported: plain TP (attn_dp = 1) and DEP (attn_dp = tp = ep, attention TP 1 per rank).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clustersim.catalog.specs import DTYPE_BYTES, ChipSpec, ModelSpec
from clustersim.errors import SpecError
from clustersim.perf.comm import AlphaBetaComm, CommModel, HierarchicalComm
from clustersim.perf.efficiency import Efficiency, efficiency_for


def _check_dtype(where: str, dtype: str) -> None:
    if dtype not in DTYPE_BYTES:
        raise SpecError(f"{where}={dtype!r}, must be one of {', '.join(DTYPE_BYTES)}")


@dataclass(frozen=True, slots=True)
class ReplicaPerf:
    """Chip, model and layout of one replica; hashable, so cost models can cache on it.

    `weight_dtype` None means the model's own (`model.weight_dtype`); `efficiency` None means
    the chip family's factors (efficiency.yaml); `comm` None means an `AlphaBetaComm` over the
    chip's scale-up link at `efficiency.comm_bw` of its bandwidth with `efficiency.comm_latency_s`.
    All three are resolved at construction, so after it they are never None; hence
    `dataclasses.replace(r, chip=other)` keeps r's comm and efficiency: pass comm=None,
    efficiency=None as well to derive them from the new chip. A replica of more chips than
    one scale-up domain (wide expert parallelism across HGX nodes, pipeline stages on other
    nodes) gets a `HierarchicalComm` instead: traffic leaving a domain crosses each chip's
    scale-out NIC (`chip.scaleout_bw_bytes_s`) at the same `comm_bw` fraction.

    Rules checked here (SpecError otherwise): tp, ep, pp, attn_dp >= 1; attention TP
    (tp / attn_dp) divides num_heads (heads split evenly); pp <= num_layers; ep divides
    tp x pp (experts spread over whole groups of chips) and ep > 1 only for an MoE model;
    attn_dp is 1 or equals tp and ep on an MoE model (DEP); known dtypes. When num_kv_heads <
    tp, each KV head is stored on tp / num_kv_heads ranks (see memory.kv_replication).
    """

    chip: ChipSpec
    model: ModelSpec
    tp: int = 1
    ep: int = 1
    pp: int = 1
    weight_dtype: str | None = None
    kv_dtype: str = "bf16"
    comm: CommModel | None = None
    efficiency: Efficiency | None = None
    attn_dp: int = 1
    """Attention data-parallel ranks per stage: 1 (plain TP) or tp (DEP, with ep = tp)."""
    _constants: Any = field(default=None, init=False, repr=False, compare=False)
    """Per-replica precomputed terms of the step-time model, filled on first use."""

    def __post_init__(self) -> None:
        where = f"replica of {self.model.name} on {self.chip.name}"
        for name in ("tp", "ep", "pp", "attn_dp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"{where}: {name}={value!r}, must be an integer >= 1")
        if self.attn_dp > 1:
            if not self.model.is_moe:
                raise SpecError(f"{where}: attn_dp={self.attn_dp}, must be 1 for a dense model (num_experts=0)")
            if self.attn_dp != self.tp or self.ep != self.tp:
                raise SpecError(
                    f"{where}: attn_dp={self.attn_dp} with tp={self.tp}, ep={self.ep}: attention data "
                    "parallelism (DEP) needs attn_dp = tp = ep, or attn_dp=1 for plain TP"
                )
        if self.model.num_heads % self.attn_tp:
            divisors = [n for n in range(1, self.model.num_heads + 1) if self.model.num_heads % n == 0]
            raise SpecError(f"{where}: tp={self.tp}, must divide num_heads={self.model.num_heads} {tuple(divisors)}")
        if self.pp > self.model.num_layers:
            raise SpecError(f"{where}: pp={self.pp}, must be <= num_layers={self.model.num_layers}")
        if self.ep > 1 and not self.model.is_moe:
            raise SpecError(f"{where}: ep={self.ep}, must be 1 for a dense model (num_experts=0)")
        if self.num_chips % self.ep:
            raise SpecError(f"{where}: ep={self.ep}, must divide num_chips = tp x pp = {self.num_chips}")
        weight_dtype = self.model.weight_dtype if self.weight_dtype is None else self.weight_dtype
        _check_dtype(f"{where}: weight_dtype", weight_dtype)
        _check_dtype(f"{where}: kv_dtype", self.kv_dtype)
        efficiency = efficiency_for(self.chip) if self.efficiency is None else self.efficiency
        comm = self.comm
        spans_domains = self.num_chips > self.chip.scaleup_domain > 0 and self.chip.scaleout_bw_bytes_s > 0
        if comm is None and spans_domains:
            comm = HierarchicalComm(
                up_bw_bytes_s=self.chip.scaleup_bw_bytes_s * efficiency.comm_bw,
                out_bw_bytes_s=self.chip.scaleout_bw_bytes_s * efficiency.comm_bw,
                latency_s=efficiency.comm_latency_s,
                domain_size=self.chip.scaleup_domain,
            )
        if comm is None:
            comm = AlphaBetaComm(
                bw_bytes_s=self.chip.scaleup_bw_bytes_s * efficiency.comm_bw,
                latency_s=efficiency.comm_latency_s,
            )
        object.__setattr__(self, "weight_dtype", weight_dtype)
        object.__setattr__(self, "efficiency", efficiency)
        object.__setattr__(self, "comm", comm)

    @property
    def num_chips(self) -> int:
        """Chips holding this replica: tp x pp."""
        return self.tp * self.pp

    @property
    def attn_tp(self) -> int:
        """Ranks one sequence's attention is split over: tp / attn_dp (1 under DEP)."""
        return self.tp // self.attn_dp
