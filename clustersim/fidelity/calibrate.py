"""Fit the per-family efficiency factors on measurement rows, and cross-validate the fit.

Procedure (deterministic: no randomness, fixed starting point and iteration budget):

1. Fit rows are those whose schedule does not depend on step times: offline and batch
   (every request waits at t=0), prefill and decode (one repeated step), and concurrency (a
   closed loop with no think time: every follow-up arrives at the step end where its
   predecessor finished, so arrivals are step indices, not times). Each distinct setup
   is simulated once with the prior factors while recording every step's `BatchLoad`; for
   new factors the same steps are re-timed with the perf model (exact: the batcher's
   choices depend only on tokens and KV blocks, never on time), giving every request's
   first-token and finish times, hence every metric. Server and qps rows are evaluated, not
   fitted (Poisson arrivals at fixed times: their schedules move with the factors).
2. Per chip family, parameters: compute and memory (fractions, mapped through a logistic
   onto [0.05, 0.95]) and step_overhead_s (log, within [1e-5, 0.05] s); attention_compute
   keeps its prior ratio to compute. A family with fewer than FULL_FIT_MIN_SETUPS distinct
   fit setups fits compute and memory only; with one setup, a single common scale. A family
   with at least COMM_FIT_MIN_SETUPS setups also fits comm_latency_s (log, within
   [COMM_LATENCY_LO_S, COMM_LATENCY_HI_S]): the alpha of one collective step, which only
   setups spanning several TP degrees and layer counts separate from step_overhead_s. Such
   a family whose prior has a context-encoding cost (context_overhead_s > 0: engines with a
   separately compiled prompt graph) fits it too (log, within the step-overhead bounds): the
   fixed cost of a prompt step, which batch-1 short-prompt TTFT rows next to decode-step
   TPOT rows of the same setups separate from step_overhead_s.
3. Loss: mean over the family's fit rows of the Cauchy loss log(1 + (e / 0.25)^2) of the
   log error e = ln(predicted / measured) (robust to the few rows whose engine setting we
   cannot know), plus REGULARIZATION x squared distance from the priors in the transformed
   parameters (keeps sparse families near the physics priors). Minimized by Nelder-Mead
   (our own implementation below) from the priors.
4. Serving stacks (hierarchical): rows whose (family, stack) has its own entry
   (efficiency.yaml `stacks:`, or named for a fit with `stacks=`) are left out of the
   family's fit and fitted on their own, after the family, starting from and regularized
   toward the family's fitted factors, with the same parameter-count rule by number of
   setups (one setup: one common scale of compute and memory). Only factors the fit moves
   are stored for the stack; the rest stay the family's.
5. k-fold cross-validation: distinct setups of a family (its stacks' included) are dealt into
   k folds in a fixed order; each fold's rows are predicted with factors fitted on the other
   folds: the family's fitted on its training rows, a stack's fitted from those on the
   stack's training rows, or the family's when the stack has none in training (so a
   one-setup stack shows its out-of-sample error under the family's factors).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from clustersim.catalog import Catalog
from clustersim.fidelity.mapping import Mapped, Setup
from clustersim.fidelity.runner import (
    concurrency_metrics,
    fixed_schedule_metrics,
    make_replica,
    run_fixed_schedule,
    run_setup,
)
from clustersim.perf import ReplicaPerf, decode_run_costs, step_time_s
from clustersim.perf.efficiency import OPTIONAL_FACTORS, Efficiency, resolve, stack_key
from clustersim.perf.load import BatchLoad
from clustersim.serving.engine import StepSpan

FIT_MODES = ("offline", "batch", "prefill", "decode", "concurrency")
"""Modes whose step schedule does not depend on step times (see the module docstring)."""
RECORDED_MODES = ("offline", "batch", "concurrency")
"""Fit modes simulated once and re-timed; prefill and decode are one step, timed directly."""
FULL_FIT_MIN_SETUPS = 4
COMM_FIT_MIN_SETUPS = 32
REGULARIZATION = 0.02
CAUCHY_SCALE = 0.25
MAX_EVALS = 160
FRACTION_LO, FRACTION_HI = 0.05, 0.95
MEMORY_LO = 0.6
"""Floor of the fitted HBM streaming efficiency: bandwidth-bound kernels (weight and KV reads)
reach 60-95% of peak on every family we model; a fit that wants less is absorbing missing
physics elsewhere (docs: the rejected Hopper fits at 0.43-0.48), so it is not allowed to."""
OVERHEAD_LO_S, OVERHEAD_HI_S = 1e-5, 0.05
COMM_LATENCY_LO_S, COMM_LATENCY_HI_S = 2e-7, 2e-5
MOE_FIT_MIN_SETUPS = 4
"""A family fits expert_compute (the grouped-GEMM rate of routed experts relative to dense
GEMMs) once its fit rows hold this many distinct MoE setups."""
EXPERT_LO = 0.2
"""Floor of the fitted expert_compute: grouped GEMMs below a fifth of the dense rate would be
absorbing something else (communication, imbalance), which has its own terms."""


class _StepLog:
    """Engine step sink keeping every committed step as (load, num_steps) calls: a span's
    first num_done steps are decode_run(load, num_done), or one step then a decode run of
    its tail when step 0 ended prefills. Committed, not planned: a closed loop's arrivals
    cut spans short (serving.engine), and only the steps that ran count."""

    def __init__(self) -> None:
        self.calls: list[tuple[BatchLoad, int]] = []

    def __call__(self, _replica_id: int, span: StepSpan, num_done: int) -> None:
        if span.tail is None:
            self.calls.append((span.plan.load, num_done))
        else:
            self.calls.append((span.plan.load, 1))
            if num_done > 1:
                self.calls.append((span.tail, num_done - 1))


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recorded fixed schedule: the steps, and at which step each request arrived (-1: at
    t=0), got its first token and finished (indices into the flattened step list)."""

    calls: tuple[tuple[BatchLoad, int], ...]
    first_step: np.ndarray
    finish_step: np.ndarray
    num_out: np.ndarray
    arrival_step: np.ndarray | None = None


def _durations(replica: ReplicaPerf, calls: Sequence[tuple[BatchLoad, int]]) -> np.ndarray:
    parts = []
    for load, n in calls:
        if n == 1:
            parts.append(np.array([step_time_s(replica, load)]))
        else:
            parts.append(decode_run_costs(replica, load, n).step_s)
    return np.concatenate(parts) if parts else np.zeros(0)


def record_schedule(setup: Setup, catalog: Catalog, eff: Efficiency) -> Schedule:
    """Simulate a batch, offline or concurrency setup once and keep its schedule for re-timing."""
    replica, capacity = make_replica(setup, catalog, eff)
    log = _StepLog()
    done = run_fixed_schedule(setup, replica, capacity, on_steps=log)
    ends = np.cumsum(_durations(replica, log.calls))

    def index(times: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(ends, times * (1 - 1e-9), side="left"), len(ends) - 1)

    arrival = np.array([r.spec.arrival_s for r in done])
    return Schedule(
        tuple(log.calls),
        index(np.array([r.first_token_s for r in done])),
        index(np.array([r.finish_s for r in done])),
        np.array([r.spec.num_output_tokens for r in done], dtype=float),
        np.where(arrival > 0, index(arrival), -1),
    )


def retimed_metrics(setup: Setup, schedule: Schedule, replica: ReplicaPerf) -> dict[str, float]:
    """The metrics of `setup` had its recorded steps been timed by `replica`'s perf model."""
    ends = np.cumsum(_durations(replica, schedule.calls))
    first, finish = ends[schedule.first_step], ends[schedule.finish_step]
    arrival = np.zeros_like(first)
    if schedule.arrival_step is not None:
        arrival = np.where(schedule.arrival_step >= 0, ends[np.maximum(schedule.arrival_step, 0)], 0.0)
    if setup.mode == "concurrency":
        return concurrency_metrics(setup, arrival, first, finish, schedule.num_out)
    return fixed_schedule_metrics(setup, arrival, first, finish, schedule.num_out)


# ---- parameters <-> efficiency ---------------------------------------------------------


def _to_unit(value: float, lo: float = FRACTION_LO) -> float:
    p = (min(max(value, lo + 1e-6), FRACTION_HI - 1e-6) - lo) / (FRACTION_HI - lo)
    return math.log(p / (1 - p))


def _from_unit(z: float, lo: float = FRACTION_LO) -> float:
    return lo + (FRACTION_HI - lo) / (1 + math.exp(-max(min(z, 50.0), -50.0)))


def _to_overhead(value: float) -> float:
    return math.log(min(max(value, OVERHEAD_LO_S), OVERHEAD_HI_S))


def _from_overhead(z: float) -> float:
    return min(max(math.exp(max(min(z, 10.0), -50.0)), OVERHEAD_LO_S), OVERHEAD_HI_S)


def _to_comm_latency(value: float) -> float:
    return math.log(min(max(value, COMM_LATENCY_LO_S), COMM_LATENCY_HI_S))


def _from_comm_latency(z: float) -> float:
    return min(max(math.exp(max(min(z, 10.0), -50.0)), COMM_LATENCY_LO_S), COMM_LATENCY_HI_S)


def param_names(num_setups: int, fits_context: bool = False, fits_expert: bool = False) -> tuple[str, ...]:
    """The factors fitted for a family with `num_setups` distinct fit setups, in order ("scale":
    one common scale of compute and memory); context_overhead_s only when `fits_context` (its
    prior is nonzero), expert_compute only when `fits_expert` (enough MoE setups).

    >>> param_names(1), param_names(4), param_names(32, True)
    (('scale',), ('compute', 'memory', 'step_overhead_s'), ('compute', 'memory', 'step_overhead_s', 'comm_latency_s', 'context_overhead_s'))
    >>> param_names(9, fits_expert=True)
    ('compute', 'memory', 'step_overhead_s', 'expert_compute')
    """
    if num_setups <= 1:
        return ("scale",)
    names = ["compute", "memory"]
    if num_setups >= FULL_FIT_MIN_SETUPS:
        names.append("step_overhead_s")
    if num_setups >= COMM_FIT_MIN_SETUPS:
        names.append("comm_latency_s")
        if fits_context:
            names.append("context_overhead_s")
    if fits_expert:
        names.append("expert_compute")
    return tuple(names)


def num_params(num_setups: int, fits_context: bool = False, fits_expert: bool = False) -> int:
    """How many factors `param_names` fits (1 to 6).

    >>> num_params(1), num_params(3), num_params(4), num_params(32), num_params(32, True), num_params(4, True)
    (1, 2, 3, 4, 5, 3)
    """
    return len(param_names(num_setups, fits_context, fits_expert))


_POSITIONAL = ("compute", "memory", "step_overhead_s", "comm_latency_s", "context_overhead_s")


def _to_expert(value: float) -> float:
    return math.log(min(max(value, EXPERT_LO), 1.0))


def _from_expert(z: float) -> float:
    return min(max(math.exp(max(min(z, 10.0), -50.0)), EXPERT_LO), 1.0)


_TRANSFORMS: dict[str, tuple[Callable[[float], float], Callable[[float], float]]] = {
    "step_overhead_s": (_to_overhead, _from_overhead),
    "comm_latency_s": (_to_comm_latency, _from_comm_latency),
    "context_overhead_s": (_to_overhead, _from_overhead),
    "expert_compute": (_to_expert, _from_expert),
}
"""Fitted factors set on their own (to and from the fit's unbounded space); compute and memory
are set together because attention_compute keeps its ratio to compute."""


def _names(x: Sequence[float], names: Sequence[str] | int | None) -> tuple[str, ...]:
    """`names`, or by count (of x, or the int given): 1 -> a common scale, else positional."""
    if names is None or isinstance(names, int):
        n = len(x) if names is None else names
        return ("scale",) if n == 1 else _POSITIONAL[:n]
    return tuple(names)


def factors_from(prior: Efficiency, x: Sequence[float], names: Sequence[str] | None = None) -> Efficiency:
    """Efficiency from transformed parameters x, one per name of `names` (default, by length:
    1: common scale; 2: compute, memory; 3: + step overhead; 4: + collective step latency;
    5: + context-encoding step cost)."""
    z = dict(zip(_names(x, names), x, strict=True))
    zc, zm = _to_unit(prior.compute), _to_unit(prior.memory, MEMORY_LO)
    if "scale" in z:
        zc, zm = zc + z["scale"], zm + z["scale"]
    zc, zm = z.get("compute", zc), z.get("memory", zm)
    compute, memory = _from_unit(zc), _from_unit(zm, MEMORY_LO)
    attention = min(1.0, prior.attention_compute * compute / prior.compute)
    alone = {name: _TRANSFORMS[name][1](value) for name, value in z.items() if name in _TRANSFORMS}
    return dataclasses.replace(prior, compute=compute, memory=memory, attention_compute=attention, **alone)


def _start(prior: Efficiency, names: Sequence[str] | int) -> list[float]:
    """The priors as transformed parameters (`names`, or their count as in `factors_from`)."""
    start = {"scale": 0.0, "compute": _to_unit(prior.compute), "memory": _to_unit(prior.memory, MEMORY_LO)}
    return [start[n] if n in start else _TRANSFORMS[n][0](getattr(prior, n)) for n in _names((), names)]


# ---- optimizer -------------------------------------------------------------------------


def nelder_mead(f: Callable[[np.ndarray], float], x0: Sequence[float], step: float = 0.5,
                max_evals: int = MAX_EVALS, tol: float = 1e-6) -> tuple[np.ndarray, float]:
    """Minimize f from x0 (standard reflection/expansion/contraction/shrink); deterministic.

    >>> x, fx = nelder_mead(lambda v: float((v[0] - 1) ** 2 + (v[1] + 2) ** 2), [0.0, 0.0], max_evals=400)
    >>> [round(float(c), 3) for c in x], round(fx, 6)
    ([1.0, -2.0], 0.0)
    """
    n = len(x0)
    simplex = [np.array(x0, dtype=float)]
    for i in range(n):
        v = np.array(x0, dtype=float)
        v[i] += step
        simplex.append(v)
    values = [f(v) for v in simplex]
    evals = n + 1
    while evals < max_evals:
        order = np.argsort(values, kind="stable")
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if abs(values[-1] - values[0]) <= tol * (1 + abs(values[0])):
            break
        centroid = np.mean(simplex[:-1], axis=0)
        xr = centroid + (centroid - simplex[-1])
        fr = f(xr)
        evals += 1
        if fr < values[0]:
            xe = centroid + 2 * (centroid - simplex[-1])
            fe = f(xe)
            evals += 1
            simplex[-1], values[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (simplex[-1] - centroid) if fr >= values[-1] else centroid + 0.5 * (xr - centroid)
            fc = f(xc)
            evals += 1
            if fc < min(fr, values[-1]):
                simplex[-1], values[-1] = xc, fc
            else:
                for i in range(1, n + 1):
                    simplex[i] = simplex[0] + 0.5 * (simplex[i] - simplex[0])
                    values[i] = f(simplex[i])
                evals += n
    best = int(np.argmin(values))
    return simplex[best], float(values[best])


# ---- the fit ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FitData:
    """Fit rows of one family (or of one of its stacks) with what re-timing them needs."""

    family: str
    items: tuple[Mapped, ...]
    schedules: dict[Setup, Schedule]
    stack: str = ""
    """The stack fitted apart from the family ("": the family's own rows)."""

    @property
    def key(self) -> str:
        """Its key in the efficiency table: `family` or `family/stack`."""
        return stack_key(self.family, self.stack)


def fit_key(setup: Setup, stacks: Collection[str]) -> str:
    """The fit group of a setup: its `family/stack` key when that is in `stacks`, else its family.

    >>> s = Setup("c", "m", "f", 1, 1, 1, 1, 8, "bf16", "bf16", "batch", None, 1, 1, None, None, stack="x")
    >>> fit_key(s, {"f/x"}), fit_key(s, {"f/y"})
    ('f/x', 'f')
    """
    key = stack_key(setup.family, setup.stack)
    return key if setup.stack and key in stacks else setup.family


def fit_data(mapped: Sequence[Mapped], catalog: Catalog, table: dict[str, Efficiency],
             stacks: Collection[str] = ()) -> dict[str, FitData]:
    """Fit rows grouped by chip family, and apart from it by `family/stack` for the stack keys
    in `table` or `stacks`; fixed schedules recorded once with `table`'s factors."""
    known = {k for k in table if "/" in k} | set(stacks)
    by_key: dict[str, list[Mapped]] = {}
    for item in mapped:
        if item.setup is not None and item.setup.mode in FIT_MODES:
            by_key.setdefault(fit_key(item.setup, known), []).append(item)
    data = {}
    for key, items in sorted(by_key.items()):
        family, _, stack = key.partition("/")
        schedules = {}
        for setup in dict.fromkeys(i.setup for i in items):
            assert setup is not None
            if setup.mode in RECORDED_MODES:
                eff = resolve(table, family, stack)
                assert eff is not None
                schedules[setup] = record_schedule(setup, catalog, eff)
        data[key] = FitData(family, tuple(items), schedules, stack)
    return data


def predict(data: FitData, catalog: Catalog, eff: Efficiency, items: Sequence[Mapped] | None = None) -> list[tuple[Mapped, float | None]]:
    """Predicted value of each fit row (None when the metric is not produced) under `eff`."""
    items = data.items if items is None else items
    cache: dict[Setup, dict[str, float]] = {}
    out = []
    for item in items:
        setup = item.setup
        assert setup is not None
        if setup not in cache:
            if setup in data.schedules:
                replica, _ = make_replica(setup, catalog, eff)
                cache[setup] = retimed_metrics(setup, data.schedules[setup], replica)
            else:
                cache[setup] = run_setup(setup, catalog, eff).metrics
        metrics = cache[setup]
        value = metrics.get(item.row.metric)
        if value is None and item.row.metric == "input_tok_s_per_chip" and "output_tok_s_per_chip" in metrics:
            value = metrics["output_tok_s_per_chip"] * setup.isl / setup.osl
        out.append((item, value))
    return out


def _loss(pairs: Sequence[tuple[Mapped, float | None]]) -> float:
    terms = [math.log1p((math.log(v / m.row.value) / CAUCHY_SCALE) ** 2) for m, v in pairs if v and v > 0]
    return sum(terms) / len(terms) if terms else 0.0


def fitted_names(items: Sequence[Mapped], catalog: Catalog, prior: Efficiency) -> tuple[str, ...]:
    """The factors a fit over `items` moves (`param_names` by their distinct and MoE setups)."""
    setups = {i.setup for i in items if i.setup is not None}
    moe = sum(catalog.model(s.model).is_moe for s in setups)
    return param_names(len(setups), prior.context_overhead_s > 0.0, moe >= MOE_FIT_MIN_SETUPS)


def fit_family(data: FitData, catalog: Catalog, prior: Efficiency, items: Sequence[Mapped] | None = None) -> Efficiency:
    """Factors of one family minimizing the module's loss over `items` (default all its fit rows)."""
    items = data.items if items is None else items
    if not items:
        return prior
    names = fitted_names(items, catalog, prior)
    x0 = _start(prior, names)

    def objective(x: np.ndarray) -> float:
        eff = factors_from(prior, list(x), names)
        reg = REGULARIZATION * float(np.sum((np.asarray(x) - np.asarray(x0)) ** 2))
        return _loss(predict(data, catalog, eff, items)) + reg

    x, _ = nelder_mead(objective, x0)
    return factors_from(prior, list(x), names)


def fit(mapped: Sequence[Mapped], catalog: Catalog, table: dict[str, Efficiency],
        data: dict[str, FitData] | None = None, current: dict[str, Efficiency] | None = None) -> dict[str, Efficiency]:
    """A new table: every family with fit rows refitted from its priors in `table`, then
    every stack in `data` refitted from its family's new factors (or, for a family not in
    `data`, its factors in `current`, default `table`); the other entries as in `table`."""
    data = fit_data(mapped, catalog, table) if data is None else data
    current = table if current is None else current
    new = dict(table)
    for key, d in data.items():
        if not d.stack:
            new[key] = fit_family(d, catalog, table[key])
    for key, d in data.items():
        if d.stack:
            base = new[d.family] if d.family in data else current[d.family]
            new[key] = dataclasses.replace(fit_family(d, catalog, base), stack=d.stack)
    return new


def cross_validate(mapped: Sequence[Mapped], catalog: Catalog, table: dict[str, Efficiency], k: int = 5,
                   data: dict[str, FitData] | None = None) -> list[tuple[Mapped, float | None]]:
    """Held-out predictions of every fit row: each family's setups (its stacks' included)
    dealt into k folds in sorted order, each fold predicted with factors fitted on the rest
    (module docstring, step 5)."""
    data = fit_data(mapped, catalog, table) if data is None else data
    out: list[tuple[Mapped, float | None]] = []
    for family in sorted({d.family for d in data.values()}):
        own = data.get(family)
        stacks = [d for d in data.values() if d.family == family and d.stack]
        setups = sorted({i.setup for d in ([own] if own else []) + stacks for i in d.items}, key=repr)
        folds = {s: n % k for n, s in enumerate(setups)}
        for fold in range(k):
            eff = table[family]
            if own is not None:
                train = [i for i in own.items if folds[i.setup] != fold]
                eff = fit_family(own, catalog, table[family], train) if train else table[family]
                out.extend(predict(own, catalog, eff, [i for i in own.items if folds[i.setup] == fold]))
            for d in stacks:
                held = [i for i in d.items if folds[i.setup] == fold]
                if not held:
                    continue
                train = [i for i in d.items if folds[i.setup] != fold]
                out.extend(predict(d, catalog, fit_family(d, catalog, eff, train) if train else eff, held))
    return out


# ---- storing the fit -------------------------------------------------------------------

_PRIOR_FIELDS = ("compute", "memory", "attention_compute", "step_overhead_s", "comm_latency_s", "context_overhead_s",
                 "expert_compute")


def prior_table(text: str, table: dict[str, Efficiency]) -> dict[str, Efficiency]:
    """`table` with each fitted factor replaced by the `prior:` value kept beside it in the
    efficiency.yaml `text` (factors never fitted keep their values): fits and
    cross-validation always start from, and regularize toward, the physics priors."""
    import yaml

    families = yaml.safe_load(text).get("families", {})
    out = dict(table)
    for family, entry in families.items():
        if family not in out or not isinstance(entry, dict):
            continue
        priors = {n: float(entry[n]["prior"]) for n in _PRIOR_FIELDS
                  if isinstance(entry.get(n), dict) and "prior" in entry[n]}
        if priors:
            out[family] = dataclasses.replace(out[family], **priors)
    return out


_FACTOR_ORDER = ("compute", "memory", "attention_compute", "comm_bw", "step_overhead_s", "layer_overhead_s", "comm_latency_s", "gemm_half_rows",
                 "kv_bucket_min_tokens", "context_overhead_s", "expert_compute")


FIT_BEGIN, FIT_END = "# --- fit provenance", "# --- end of fit provenance"


def efficiency_yaml(original_text: str, fitted: dict[str, Efficiency], date: str, provenance: dict[str, str]) -> str:
    """The efficiency.yaml text with the families in `provenance` refitted: their values from
    `fitted`, `fitted: <date>`, each fitted factor's prior kept beside it (`prior:`), every
    `why` kept, and one provenance line per family in a comment block under the header
    (other families keep their values and their earlier provenance lines)."""
    import yaml

    data = yaml.safe_load(original_text)
    header = original_text[: original_text.index("schema:")].rstrip("\n").split("\n")
    notes = {}
    if FIT_BEGIN in header:
        block = header[header.index(FIT_BEGIN) + 1: header.index(FIT_END)]
        notes = dict(line[4:].split(": ", 1) for line in block if line.startswith("#   ") and ": " in line)
        header = header[: header.index(FIT_BEGIN)] + header[header.index(FIT_END) + 1:]
    notes.update({family: f"{note} ({date})" for family, note in provenance.items()})
    lines = [*header, FIT_BEGIN, "# Fitted (latest fit date per family in parentheses):"]
    lines += [f"#   {family}: {note}" for family, note in sorted(notes.items())]
    lines += [FIT_END, f"schema: {data.get('schema', 1)}", "families:"]
    for family, entry in data["families"].items():
        changed = family in provenance and family in fitted
        lines.append(f"  {family}:")
        lines.append(f"    fitted: {date if changed else entry.get('fitted', 'prior')}")
        for name in _FACTOR_ORDER:
            if name in OPTIONAL_FACTORS and name not in entry:
                continue
            factor = entry[name]
            value = getattr(fitted[family], name) if changed else factor["value"]
            prior = factor.get("prior", factor["value"] if changed and name in _PRIOR_FIELDS else None)
            extra = "" if prior is None else f", prior: {_num(name, float(prior))}"
            lines.append(f"    {name}: {{value: {_num(name, float(value))}{extra}, why: {_quote(str(factor['why']))}}}")
    lines += _stack_lines(data, fitted, date, provenance)
    return "\n".join(lines) + "\n"


STACK_FACTOR_WHY = "fitted on this stack's rows, from and regularized toward the family's fitted factors (prior: the family's value at the fit)"


def _stack_lines(data: dict, fitted: dict[str, Efficiency], date: str, provenance: dict[str, str]) -> list[str]:
    """The `stacks:` section: entries refitted now (in `provenance`) list the factors whose
    fitted value differs from their family's, with the family's value as `prior:`; the
    others are written back as they were."""
    old = data.get("stacks") or {}
    keys = sorted(set(old) | {k for k in provenance if "/" in k and k in fitted})
    if not keys:
        return []
    lines = ["stacks:"]
    for key in keys:
        entry = old.get(key, {})
        refit = key in provenance and key in fitted
        why = entry.get("why") or (f"rows whose source names the {key.partition('/')[2]} serving stack "
                                   "(fidelity.mapping.STACKS), fitted apart from the family")
        lines += [f"  {key}:", f"    fitted: {date if refit else entry.get('fitted', 'prior')}", f"    why: {_quote(str(why))}"]
        if refit:
            eff, family = fitted[key], fitted[key.partition("/")[0]]
            names = [n for n in _PRIOR_FIELDS if _num(n, getattr(eff, n)) != _num(n, getattr(family, n))]
            for name in names:
                factor_why = entry.get(name, {}).get("why", STACK_FACTOR_WHY) if isinstance(entry.get(name), dict) else STACK_FACTOR_WHY
                lines.append(f"    {name}: {{value: {_num(name, getattr(eff, name))}, prior: {_num(name, getattr(family, name))}, "
                             f"why: {_quote(str(factor_why))}}}")
            if not names:  # the fit left every factor at the family's: keep one so the entry stays valid
                lines.append(f"    compute: {{value: {_num('compute', eff.compute)}, prior: {_num('compute', family.compute)}, "
                             f"why: {_quote(STACK_FACTOR_WHY)}}}")
        else:
            for name in _FACTOR_ORDER:
                if isinstance(entry.get(name), dict):
                    factor = entry[name]
                    extra = f", prior: {_num(name, float(factor['prior']))}" if "prior" in factor else ""
                    lines.append(f"    {name}: {{value: {_num(name, float(factor['value']))}{extra}, why: {_quote(str(factor['why']))}}}")
    return lines


def _num(name: str, value: float) -> str:
    """Seconds in exponent form with a dot (YAML 1.1 reads 1e-05 as a string), fractions to 3 places."""
    return f"{value:.3e}" if name.endswith("_s") else f"{value:.3f}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
