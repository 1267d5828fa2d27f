"""From a measurement row to the clustersim setup that reproduces it (or the reason it can't).

Rows that differ only in metric and value share one `Setup`, hence one simulation.
Choices (each a documented approximation, not a per-row constant):

- chip, model: resolved through the catalog (names or aliases; `--models DIR` adds models).
  Unknown -> skipped with the catalog's message.
- precision -> (weight_dtype, kv_dtype): a string containing fp4 (nvfp4, mxfp4) -> fp4
  weights, fp8 KV; fp8 -> fp8/fp8; int8 (e.g. "int8-weight(bf16 compute)") -> int8 weights
  with math at the bf16 rate (the chip has no int8 peak in the catalog), bf16 KV; int4 ->
  int4/bf16 (also AWQ, GPTQ, w4a16); w8a8 / w8a16 -> int8/bf16; float8 / e4m3 -> fp8;
  bf16/fp16 (bfloat16, float16) -> bf16/bf16; blank -> the model's own dtype, bf16 KV.
  Anything else is skipped ("precision not understood").
- parallelism: `TPn` sets the tensor-parallel degree; when n exceeds the row's chip count
  and is a multiple of it, n counts logical cores (Inferentia2 / Trainium1: 2 NeuronCores
  per chip, Trainium2: 4), so tp = chips. `DEPn` (attention data-parallel + expert parallel)
  on an MoE model is attn_dp = tp = ep = n (perf.ReplicaPerf.attn_dp): each rank keeps
  attention, dense layers and embeddings whole and the KV of its own sequences, experts split
  over n, all-to-all per MoE layer, no all-reduce; one sequence must fit one rank's KV.
  The engine's batch limits are then per rank (runner.py). "DP-attention + EPn" with no TP
  stated (LMSYS "EP32-class") is DEPn too. A DEP replica may span whole scale-up domains
  (DEP32 = 4 HGX nodes): its collectives cross the chips' scale-out NICs
  (perf.HierarchicalComm); other layouts stay within one domain. Under DEP, n need not
  divide num_experts (SGLang places 256 experts plus redundant copies on 72 ranks), and a
  prefill/decode row (one pool of a disaggregated deployment, per-chip metrics) may state a
  pool that does not divide the deployment's chip count (EP72 decode of 96 GPUs).
  `EPn` alone sets ep; "tp=8" and "tensor-parallel-size 8" read as TP8. Pipeline stages
  (PPn, TP4xPP2, pp=2) are not simulated here: such a row is skipped with that reason rather
  than run as more, smaller replicas. Replicas = chips / chips-per-replica (not a divisor ->
  skipped).
  Blank or not understood (e.g. "PD disaggregation ...") -> clustersim's plan: the smallest
  tp (dividing the heads, dividing the chip count, within the scale-up domain) whose
  replica holds KV for `PLAN_MIN_SEQS` sequences of isl + osl, else the largest that fits;
  MoE models put experts on every chip of the replica (ep = tp).
- A tp that does not divide the attention heads (Neuron TP24 on a 64-head model; not DEP,
  whose ranks keep all heads): heads are
  padded up to a multiple of tp, as Neuron's compiler does; the padded heads cost their
  FLOPs and bytes (this is physics of those systems, not a fudge). When the stated TP counts
  logical cores (TP24 on 12 Inferentia2), the shards are the cores, so padding and KV-head
  placement follow the core count (`deployed_model`): query heads pad to a multiple of the
  cores (32 heads on 24 cores -> 48), and each core holds whole KV heads of its own, so
  fewer KV heads than cores are replicated (8 KV heads on 24 cores -> 24 copies: 3x the
  KV cache and K/V projection weights), as Transformers-NeuronX shards GQA over heads.
- lengths: isl/osl are means; simulations use fixed lengths rounded to whole tokens.
- engine limits: a `max-num-seqs N` or `max-num-batched-tokens N` stated in the row's
  source (the engine's configuration, e.g. a recipe's vLLM flags) is the run's batch limit
  or per-step token budget (`stated_limits`; runner.engine_limits), in place of the
  runner's defaults; a concurrency or offline row's stated number of prompts ("3000
  prompts") is the number of requests its run sends (`stated_num_prompts`); an offline row
  with a stated count is a finite burst, measured as tokens / makespan (runner); a
  concurrency row measured by a stable-window tool (perf_analyzer, genai-perf, AIPerf:
  `measures_steady_window`) is measured over the steady window, from a desynchronized start.
- serving stack: the engine the row's source names (`stack_of`, first match of `STACKS`):
  its `family/stack` efficiency entry when efficiency.yaml has one (perf.efficiency.resolve),
  else the family's factors. A source naming no engine gets "" (family factors).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from clustersim.catalog import Catalog, ChipSpec, ModelSpec
from clustersim.errors import ClusterSimError
from clustersim.fidelity.rows import Row
from clustersim.perf import ReplicaPerf, kv_capacity_tokens_per_rank
from clustersim.perf.efficiency import Efficiency, resolve

_DP_ATTENTION = re.compile(r"\bDP[- ]?ATTENTION\b|\bATTENTION[- ]?DP\b")

PLAN_MIN_SEQS = 128
"""Planner: a replica should hold KV for at least this many full sequences (isl + osl)."""

KV_RESERVE_FRACTION = 0.1
"""HBM kept out of the KV cache (vLLM's gpu_memory_utilization 0.9)."""

PHASE_MODES = ("prefill", "decode")
"""Modes measuring one pool of a disaggregated deployment (per-chip metrics of that pool)."""

FAMILY_GROUPS = {"nvidia": "NVIDIA", "amd": "AMD", "google": "TPU", "aws": "Neuron"}
"""Chip family prefix -> the hardware family the error report groups by."""


@dataclass(frozen=True, slots=True)
class Setup:
    """Everything a simulation needs from a row except its metric; hashable (cache key)."""

    chip: str
    model: str
    family: str
    num_chips: int
    tp: int
    ep: int
    num_replicas: int
    num_heads: int
    weight_dtype: str
    kv_dtype: str
    mode: str
    load: float | None
    isl: int
    osl: int
    ttft_limit_s: float | None
    tpot_limit_s: float | None
    attn_dp: int = 1
    """Attention data-parallel ranks: tp for a DEP row, else 1."""
    num_kv_heads: int = 0
    """KV heads as deployed (copies included, see `deployed_model`); 0: the model's own."""
    max_num_seqs: int = 0
    """Engine batch limit stated by the row's source (`stated_limits`); 0: the runner's default."""
    max_num_batched_tokens: int = 0
    """Engine per-step token budget stated by the row's source; 0: the runner's default."""
    num_requests: int = 0
    """Requests a concurrency or offline (burst) benchmark sent in all, stated by the row's
    source (`stated_num_prompts`); 0: the runner's default."""
    stack: str = ""
    """Serving stack named by the row's source (`stack_of`); "": none named."""
    steady_window: bool = False
    """A concurrency row measured by a stable-window tool (`measures_steady_window`): its run
    starts desynchronized and its metrics cover the steady window only (runner)."""


@dataclass(frozen=True, slots=True)
class Mapped:
    """A row with its setup, or with the reason it cannot be simulated."""

    row: Row
    setup: Setup | None
    reason: str = ""


def hardware_group(chip_family: str) -> str:
    """The report group (NVIDIA, AMD, TPU, Neuron) of a chip family name.

    >>> hardware_group("nvidia-hopper"), hardware_group("aws-neuron"), hardware_group("x")
    ('NVIDIA', 'Neuron', 'other')
    """
    return FAMILY_GROUPS.get(chip_family.split("-")[0].lower(), "other")


def dtypes_of(precision: str, model: ModelSpec) -> tuple[str, str] | None:
    """(weight_dtype, kv_dtype) for a precision string, None if not understood.

    >>> dtypes_of("fp4", None), dtypes_of("int8-weight(bf16 compute)", None), dtypes_of("fp8", None)
    (('fp4', 'fp8'), ('int8', 'bf16'), ('fp8', 'fp8'))
    >>> dtypes_of("AWQ", None), dtypes_of("W8A8", None), dtypes_of("float8_e4m3", None), dtypes_of("bfloat16", None)
    (('int4', 'bf16'), ('int8', 'bf16'), ('fp8', 'fp8'), ('bf16', 'bf16'))
    """
    p = precision.lower()
    if not p:
        return (model.weight_dtype, "bf16")
    if "fp4" in p:
        return ("fp4", "fp8")
    if "int4" in p or "w4" in p or "awq" in p or "gptq" in p:
        return ("int4", "bf16")
    if "int8" in p or "w8a8" in p or "w8a16" in p:
        return ("int8", "bf16")
    if "fp8" in p or "float8" in p or "e4m3" in p:
        return ("fp8", "fp8")
    if "bf16" in p or "fp16" in p or "bfloat16" in p or "float16" in p or p == "half":
        return ("bf16", "bf16")
    return None


_TP_SPELLED = re.compile(r"\bTP\s*[=:]\s*(\d+)|\bTENSOR[\s_-]*PARALLEL(?:ISM)?(?:[\s_-]*SIZE)?\s*[=:]?\s*(\d+)")
_PP = re.compile(r"\bPP\s*[=:]?\s*(\d+)|\bPIPELINE[\s_-]*PARALLEL(?:ISM)?(?:[\s_-]*SIZE)?\s*[=:]?\s*(\d+)|TP\d+\s*[X*]?\s*PP(\d+)")


def stated_pipeline_stages(text: str) -> int:
    """Pipeline stages a parallelism string states (PP2, TP4xPP2, pp=2), 1 if none.

    >>> stated_pipeline_stages("TP4xPP2"), stated_pipeline_stages("TP8 PP2"), stated_pipeline_stages("pp=4"), stated_pipeline_stages("TP8")
    (2, 2, 4, 1)
    """
    m = _PP.search(text.upper())
    return int(next(g for g in m.groups() if g)) if m else 1


def parse_parallelism(text: str) -> tuple[int | None, int | None]:
    """(tp, ep) stated by a parallelism string; None where not stated.

    >>> parse_parallelism("TP8"), parse_parallelism("DEP4 (attention-DP4 + EP4)"), parse_parallelism("")
    ((8, None), (4, 4), (None, None))
    >>> parse_parallelism("PD disaggregation; DP-attention + large EP (EP32-class prefill)")
    (32, 32)
    >>> parse_parallelism("tp=8"), parse_parallelism("tensor-parallel-size 4"), parse_parallelism("TP4xPP2")
    ((8, None), (4, None), (4, None))
    """
    t = text.upper()
    dep = re.search(r"\bDEP(\d+)", t)
    if dep:
        n = int(dep.group(1))
        return n, n
    tp = re.search(r"\bTP(\d+)", t) or _TP_SPELLED.search(t)
    ep = re.search(r"\bEP(\d+)\b", t)
    if _DP_ATTENTION.search(t) and ep and not tp:  # "DP-attention + large EP (EP32-class ...)": DEP32
        n = int(ep.group(1))
        return n, n
    if "PD" in t and "DISAGG" in t:  # no degree stated: let the planner choose
        return None, None
    tp_n = next((int(g) for g in tp.groups() if g), None) if tp else None
    return tp_n, (int(ep.group(1)) if ep else None)


def is_dep(text: str) -> bool:
    """Whether a parallelism string states attention data parallelism with EP (DEPn, or
    DP-attention with EPn and no TP).

    >>> is_dep("DEP4 (attention-DP4 + EP4)"), is_dep("TP8 EP8"), is_dep("PD disaggregation; DP-attention + large EP (EP72-class decode)")
    (True, False, True)
    """
    t = text.upper()
    if re.search(r"\bDEP\d+", t):
        return True
    return bool(_DP_ATTENTION.search(t) and re.search(r"\bEP\d+\b", t) and not re.search(r"\bTP\d+", t))


_LIMIT = {name: re.compile(rf"\b{name.replace('_', '[-_ ]')}\s*[=:]?\s*(\d+)", re.IGNORECASE)
          for name in ("max_num_seqs", "max_num_batched_tokens")}


def stated_limits(source: str) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) a row's source states as engine settings
    (vLLM's --max-num-seqs / --max-num-batched-tokens, in any of the -, _ or space
    spellings); 0 where not stated. Engine configuration, not a measurement: the runner
    schedules with it instead of its defaults.

    >>> stated_limits("vLLM TPU, TP8, max-num-batched-tokens 512, max-num-seqs 256, no prefix caching")
    (256, 512)
    >>> stated_limits("max_num_seqs=32"), stated_limits("MLPerf Offline")
    ((32, 0), (0, 0))
    """
    found = [_LIMIT[name].search(source) for name in ("max_num_seqs", "max_num_batched_tokens")]
    return tuple(int(m.group(1)) if m else 0 for m in found)  # type: ignore[return-value]


STACKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # vLLM TPU's PyTorch/XLA worker before V1 (the Feb-2025 recipe): a source naming V1 on PyTorch/XLA
    # (Apr-Jun 2025: ragged paged attention, today's scheduler) runs like the family (X121: +8%)
    ("vllm-torchxla", re.compile(r"(?s)^(?!.*(?:\bV1\b|VLLM_USE_V1)).*(?i:pytorch/xla|torch[-_]?xla)")),
    ("jetstream", re.compile(r"\bjetstream\b", re.IGNORECASE)),
    ("tensorrt-llm", re.compile(r"tensorrt[- ]llm|trtllm|\btrt[- ]llm\b", re.IGNORECASE)),
    ("sglang", re.compile(r"\bsglang\b", re.IGNORECASE)),
    ("transformers-neuronx", re.compile(r"transformers[- ]?neuronx", re.IGNORECASE)),
    ("optimum-neuron", re.compile(r"optimum-neuron", re.IGNORECASE)),  # HF's vLLM plugin over NxDI
    ("nxdi", re.compile(r"\bnxdi\b|neuronx-distributed-inference|nxd-inference", re.IGNORECASE)),
    ("llmboost", re.compile(r"\bllmboost\b", re.IGNORECASE)),
    ("vllm", re.compile(r"\bvllm\b", re.IGNORECASE)),
)
"""Serving stack name -> pattern of a row's source, tried in order (more specific first: the
pre-V1 PyTorch/XLA vLLM TPU recipe is not today's vLLM TPU, while V1 on PyTorch/XLA is;
optimum-neuron's vLLM plugin runs NxDI models but is its own serving layer, measured far
slower per step than AWS's NxDI runs)."""


def stack_of(source: str) -> str:
    """The serving stack a row's source names (first match in `STACKS`), "" when none.

    >>> stack_of("vLLM TPU (PyTorch/XLA era), v6e-4"), stack_of("JetStream experimental/jax, v5e-8")
    ('vllm-torchxla', 'jetstream')
    >>> stack_of("vLLM V1 TPU backend (PyTorch/XLA era), v6e-1")
    'vllm'
    >>> stack_of("MLPerf v5.1, NVIDIA, TensorRT-LLM"), stack_of("trtllm-bench offline"), stack_of("Krai, vLLM 0.9.2")
    ('tensorrt-llm', 'tensorrt-llm', 'vllm')
    >>> stack_of("optimum-neuron vLLM (NxDI backend)"), stack_of("Transformers NeuronX, Neuron 2.18.1")
    ('optimum-neuron', 'transformers-neuronx')
    >>> stack_of("aws-neuron-sdk libraries/nxd-inference/tutorials/trn2-llama3.3-70b-tutorial.rst, NxDI")
    'nxdi'

    >>> stack_of("LMSYS/SGLang blog"), stack_of("NVIDIA NIM 1.8.0"), stack_of("vllmx"), stack_of("")
    ('sglang', '', '', '')
    """
    return next((name for name, pattern in STACKS if pattern.search(source)), "")


_PROMPTS = re.compile(r"\b(\d[\d,]*)\s+(?:[A-Za-z-]+\s+)?(?:prompts|requests)\b", re.IGNORECASE)


def stated_num_prompts(source: str) -> int:
    """How many prompts a row's source says the benchmark sent (e.g. vLLM's `--num-prompts`,
    written "3000 prompts", "1000 OpenOrca requests"); 0 when not stated. A closed loop's
    TTFT mean and p99 depend on it (the first `load` requests arrive together: 2% of 3000
    requests, 25% of 4 x load), and a burst of N prompts measures tokens / makespan.

    >>> stated_num_prompts("vllm bench serve random 3000 prompts, ignore-eos"), stated_num_prompts("1,000 prompts")
    (3000, 1000)
    >>> stated_num_prompts("1000 OpenOrca requests all at once"), stated_num_prompts("guidellm synchronous")
    (1000, 0)
    """
    m = _PROMPTS.search(source)
    return int(m.group(1).replace(",", "")) if m else 0


_STEADY_TOOLS = re.compile(r"\b(?:genai-perf|aiperf|perf[_ ]analyzer)\b", re.IGNORECASE)


def measures_steady_window(source: str) -> bool:
    """Whether a row's source names a benchmark tool that reports a stable measurement window
    (Triton perf_analyzer and its front ends genai-perf and AIPerf measure in windows until
    consecutive windows agree, so the opening burst of a closed loop is not in the figures);
    `vllm bench serve` and guidellm report every request of the run.

    >>> measures_steady_window("NVIDIA NIM docs, AIPerf closed loop c=25"), measures_steady_window("genai-perf")
    (True, True)
    >>> measures_steady_window("vllm bench serve random 3000 prompts"), measures_steady_window("guidellm concurrent")
    (False, False)
    """
    return bool(_STEADY_TOOLS.search(source))


def padded_model(model: ModelSpec, tp: int) -> ModelSpec:
    """`model` with attention heads padded up to a multiple of `tp` (unchanged if it divides).

    >>> from clustersim.catalog.specs import ModelSpec
    >>> m = ModelSpec("m", 2, 64, 64, 8, 1, 128, 100, "gqa", 64, "doctest")
    >>> padded_model(m, 12).num_heads, padded_model(m, 8).num_heads
    (72, 64)
    """
    if model.num_heads % tp == 0:
        return model
    return dataclasses.replace(model, num_heads=-(-model.num_heads // tp) * tp)


def deployed_model(model: ModelSpec, num_shards: int) -> ModelSpec:
    """`model` as laid out over `num_shards` tensor-parallel shards that each hold whole
    heads: query heads padded up to a multiple of num_shards (`padded_model`), and KV heads
    raised to ceil(num_kv_heads / num_shards) x num_shards, the copies stored when every
    shard keeps whole KV heads of its own (MLA's shared latent is left alone).

    >>> from clustersim.catalog.specs import ModelSpec
    >>> m = ModelSpec("m", 2, 64, 32, 8, 1, 128, 100, "gqa", 64, "doctest")
    >>> d = deployed_model(m, 24)  # 32 heads -> 48; 8 KV heads -> ceil(8/24) x 24 = 24 copies
    >>> d.num_heads, d.num_kv_heads, deployed_model(m, 4).num_kv_heads
    (48, 24, 8)
    """
    padded = padded_model(model, num_shards)
    if model.attention == "mla" or model.num_kv_heads % num_shards == 0:
        return padded
    kv_heads = -(-model.num_kv_heads // num_shards) * num_shards
    return dataclasses.replace(padded, num_kv_heads=kv_heads)


def _laid_out(model: ModelSpec, attn_tp: int, num_shards: int) -> ModelSpec:
    """The model a replica runs: heads padded to attention TP, or laid out over the logical
    cores a stated TP counts (num_shards > 0; KV cache replication over chips is otherwise
    the step-time model's own, memory.kv_replication)."""
    return deployed_model(model, num_shards) if num_shards else padded_model(model, attn_tp)


def _capacity(chip: ChipSpec, model: ModelSpec, tp: int, ep: int, wdt: str, kvdt: str, eff: Efficiency,
              attn_dp: int = 1, num_shards: int = 0) -> int:
    """KV tokens of the longest sequence the replica holds (one rank's share under DEP);
    num_shards: the logical cores the stated TP counts (0: tp)."""
    replica = ReplicaPerf(chip=chip, model=_laid_out(model, tp // attn_dp, num_shards), tp=tp, ep=ep, weight_dtype=wdt,
                          kv_dtype=kvdt, efficiency=eff, attn_dp=attn_dp)
    return kv_capacity_tokens_per_rank(replica, reserve_fraction=KV_RESERVE_FRACTION)


def _plan(chip: ChipSpec, model: ModelSpec, num_chips: int, wdt: str, kvdt: str, seq_tokens: int, eff: Efficiency) -> tuple[int, int] | None:
    """clustersim's (tp, ep) for a blank parallelism (see module docstring), None if nothing fits."""
    fitting = []
    for tp in range(1, min(num_chips, chip.scaleup_domain) + 1):
        if num_chips % tp or model.num_heads % tp:
            continue
        ep = tp if model.is_moe and model.num_experts % tp == 0 else 1
        capacity = _capacity(chip, model, tp, ep, wdt, kvdt, eff)
        if capacity >= seq_tokens:
            fitting.append((tp, ep, capacity))
    for tp, ep, capacity in fitting:
        if capacity >= PLAN_MIN_SEQS * seq_tokens:
            return tp, ep
    return (fitting[-1][0], fitting[-1][1]) if fitting else None


def map_row(row: Row, catalog: Catalog, efficiency: dict[str, Efficiency]) -> Mapped:
    """The setup that reproduces `row`, or why there is none."""
    try:
        chip = catalog.chip(row.chip)
    except ClusterSimError as exc:
        return Mapped(row, None, f"unknown chip: {exc}")
    try:
        model = catalog.model(row.model)
    except ClusterSimError as exc:
        return Mapped(row, None, f"unknown model: {exc}")
    source = dict(row.fields).get("source", "")
    stack = stack_of(source)
    eff = resolve(efficiency, chip.family, stack)
    if eff is None:
        return Mapped(row, None, f"chip family {chip.family!r} has no efficiency factors")
    dtypes = dtypes_of(row.precision, model)
    if dtypes is None:
        return Mapped(row, None, f"precision {row.precision!r} not understood")
    wdt, kvdt = dtypes
    isl, osl = max(1, round(row.isl)), max(1, round(row.osl))
    if stated_pipeline_stages(row.parallelism) > 1:
        return Mapped(row, None, f"parallelism {row.parallelism!r}: pipeline parallelism is not simulated by the "
                                 "fidelity runner (one replica's steps run back to back; valid: TPn, EPn, DEPn, DPn)")
    tp, ep = parse_parallelism(row.parallelism)
    attn_dp = 1
    num_shards = 0  # logical cores when the stated TP counts them
    if tp is None:
        plan = _plan(chip, model, row.num_chips, wdt, kvdt, isl + osl, eff)
        if plan is None:
            return Mapped(row, None, f"{model.name} in {wdt} does not fit on {row.num_chips} x {chip.name} within its scale-up domain")
        tp, ep = plan
    else:
        if tp > row.num_chips and tp % row.num_chips == 0:
            num_shards, tp = tp, row.num_chips  # TP counted in logical cores (NeuronCores)
        dep = is_dep(row.parallelism) and model.is_moe
        one_pool = row.mode in PHASE_MODES and tp <= row.num_chips  # the measured pool need not divide the deployment
        if row.num_chips % tp and not one_pool:
            return Mapped(row, None, f"parallelism {row.parallelism!r}: tp={tp} does not divide chips={row.num_chips}")
        spans_domains = dep and tp % chip.scaleup_domain == 0 and chip.scaleout_bw_bytes_s > 0
        if tp > chip.scaleup_domain and not spans_domains:
            return Mapped(row, None, f"parallelism {row.parallelism!r}: tp={tp} exceeds the {chip.name} scale-up domain of {chip.scaleup_domain}"
                          " (only DEP replicas spanning whole domains may cross the scale-out network)")
        if ep is None:
            ep = tp if model.is_moe and model.num_experts % tp == 0 else 1
        if not model.is_moe:
            ep = 1
        elif (model.num_experts % ep and not dep) or tp % ep:  # DEP: uneven (or redundant) expert placement allowed
            return Mapped(row, None, f"parallelism {row.parallelism!r}: ep={ep} must divide num_experts={model.num_experts} and tp={tp}")
        if dep and ep == tp:
            attn_dp = tp
        if _capacity(chip, model, tp, ep, wdt, kvdt, eff, attn_dp, num_shards) < isl + osl:
            return Mapped(row, None, f"{model.name} in {wdt} with tp={tp} does not fit one sequence of {isl + osl} tokens in {chip.name} HBM")
    deployed = _laid_out(model, tp // attn_dp, num_shards)
    max_num_seqs, max_num_batched_tokens = stated_limits(source)
    num_requests = stated_num_prompts(source) if row.mode in ("concurrency", "offline") else 0
    setup = Setup(
        chip=chip.name, model=model.name, family=chip.family, num_chips=row.num_chips, tp=tp, ep=ep,
        num_replicas=max(1, row.num_chips // tp), num_heads=deployed.num_heads,
        weight_dtype=wdt, kv_dtype=kvdt, mode=row.mode, load=row.load, isl=isl, osl=osl,
        ttft_limit_s=row.ttft_limit_s, tpot_limit_s=row.tpot_limit_s, attn_dp=attn_dp,
        num_kv_heads=deployed.num_kv_heads, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
        num_requests=num_requests, stack=stack,
        steady_window=row.mode == "concurrency" and not num_requests and measures_steady_window(source),
    )
    return Mapped(row, setup)
