"""Cost over time: stream a run's steps into per-bucket power, energy, dollars and tokens
(`cost.arrow`), and the cost part of the summary.

Definitions (times in simulated seconds, t = 0 to the end of the run):

* **Activity** of a step is what drives dynamic power: `max(compute_util, hbm_util)` by
  default (the roofline's binding resource: memory-bound decode keeps SMs and HBM busy
  though its FLOP utilization is low), `compute_util` or 1 (`cost.utilization`).
* **Power** per chip = idle + (max - idle) x activity while a step runs, idle otherwise;
  every billed chip draws (idle replicas and, with `whole_systems`, unused chips too),
  plus each system's fixed draw; facility power = IT power x PUE. A step spanning a bucket
  boundary is split by its overlap.
* **Tokens** are counted at the step that produced them: input tokens when the prompt's
  prefill completes (`first_token_s`, the end of that step), output tokens when sampled
  (the first at `first_token_s`, then one per decode step). A token re-sampled after a
  preempted request's recomputation is not a decode-step token; those are added at the
  end of the run (`tokens_out_resampled`) so sums equal the requests table.
* **Input vs output dollars**: each step's cost is split between its prefill and decode
  tokens by token count (pure prefill steps -> input, pure decode -> output); idle cost is
  split in the same proportion. `usd_per_mtok_blended` = all cost / all tokens.
* **Idle capacity**: the time-proportional cost (capex, opex, rental, idle and fixed
  power) times the fraction of chip-seconds that ran no step.

Without steps.arrow (`run.record_steps: false`) the trace is one row for the whole run,
from each replica's engine busy time with activity 1 (an upper bound on power).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clustersim.cost.config import CostConfig
from clustersim.cost.model import J_PER_KWH, SECONDS_PER_YEAR, capex_usd_per_s, usd_per_mtok
from clustersim.cost.plan import plan_from_cost_summary
from clustersim.cost.schema import COST
from clustersim.cost.systems import CostPlan, asked_for, resolve_system
from clustersim.errors import ScenarioError
from clustersim.records import ArrowWriter, to_jsonable
from clustersim.records.quantiles import Reader
from clustersim.records.summary import finished_rows, iter_request_batches, streamed_latency_stats

KV_FULL_FRACTION = 0.95
"""A step with at least this share of its replica's KV blocks in use counts as KV-bound."""


class _Buckets:
    """Growable per-bucket sums (bucket count is known only at the end of the stream)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.data = {name: np.zeros(16) for name in names}

    def add(self, name: str, index: np.ndarray, weights: np.ndarray) -> None:
        if index.size == 0:
            return
        need = int(index.max()) + 1
        if need > self.data[name].size:
            for key, arr in self.data.items():
                self.data[key] = np.concatenate([arr, np.zeros(max(need, 2 * arr.size) - arr.size)])
        self.data[name][:need] += np.bincount(index, weights=weights, minlength=need)

    def folded(self, name: str, num_buckets: int) -> np.ndarray:
        """Sums per bucket, anything at or past the last bucket folded into it."""
        arr = self.data[name]
        out = np.zeros(num_buckets)
        head = min(num_buckets, arr.size)
        out[:head] = arr[:head]
        if arr.size > num_buckets:
            out[-1] += arr[num_buckets:].sum()
        return out


def _activity(batch: pa.RecordBatch, how: str) -> np.ndarray:
    if how == "busy":
        return np.ones(batch.num_rows)
    compute = np.asarray(batch.column("compute_util").to_numpy(), dtype=np.float64)
    if how == "compute":
        return np.clip(compute, 0.0, 1.0)
    hbm = np.asarray(batch.column("hbm_util").to_numpy(), dtype=np.float64)
    return np.clip(np.maximum(compute, hbm), 0.0, 1.0)


def _bucket(times: np.ndarray, bucket_s: float) -> np.ndarray:
    return np.maximum(np.floor(times / bucket_s), 0).astype(np.int64)


def _scan_steps(path: Path, bucket_s: float, how: str, sums: _Buckets) -> dict[str, float]:
    """Stream steps.arrow batch by batch into bucket sums; return run-wide totals."""
    tot = dict.fromkeys(("step_s", "seqs_s", "in_share_s", "kv_full_s", "end_s", "decode", "sampled"), 0.0)
    with pa.OSFile(os.fspath(path)) as handle:  # plain reads: a memory map's touched pages stay resident
        _scan_batches(pa.ipc.open_file(handle), bucket_s, how, sums, tot)
    return tot


def _scan_batches(reader: pa.ipc.RecordBatchFileReader, bucket_s: float, how: str, sums: _Buckets,
                  tot: dict[str, float]) -> None:
    has_sampled = "num_sampled" in reader.schema.names
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        if batch.num_rows == 0:
            continue
        start = np.asarray(batch.column("start_s").to_numpy(), dtype=np.float64)
        dur = np.asarray(batch.column("step_s").to_numpy(), dtype=np.float64)
        end = start + dur
        act = _activity(batch, how)
        prefill = np.asarray(batch.column("num_prefill_tokens").to_numpy(), dtype=np.float64)
        decode = np.asarray(batch.column("num_decode_tokens").to_numpy(), dtype=np.float64)
        seqs = np.asarray(batch.column("num_seqs").to_numpy(), dtype=np.float64)
        used = np.asarray(batch.column("kv_blocks_used").to_numpy(), dtype=np.float64)
        total = np.asarray(batch.column("kv_blocks_total").to_numpy(), dtype=np.float64)
        b0, b1 = _bucket(start, bucket_s), _bucket(end, bucket_s)
        same = b0 == b1
        sums.add("busy", b0[same], dur[same])
        sums.add("active", b0[same], dur[same] * act[same])
        for j in np.flatnonzero(~same):  # steps crossing a boundary: split by overlap
            edges = np.arange(b0[j], b1[j] + 1)
            lo = np.maximum(edges * bucket_s, start[j])
            hi = np.minimum((edges + 1) * bucket_s, end[j])
            part = np.clip(hi - lo, 0.0, None)
            sums.add("busy", edges, part)
            sums.add("active", edges, part * act[j])
        out = decode
        if has_sampled:
            out = np.asarray(batch.column("num_sampled").to_numpy(), dtype=np.float64)
            tot["sampled"] += float(out.sum())
        sums.add("out", b1, out)
        sums.add("steps", b1, np.ones(batch.num_rows))
        tokens = prefill + decode
        share = np.divide(prefill, tokens, out=np.zeros_like(tokens), where=tokens > 0)
        tot["step_s"] += float(dur.sum())
        tot["seqs_s"] += float(seqs @ dur)
        tot["in_share_s"] += float(share @ dur)
        tot["kv_full_s"] += float(dur[(total > 0) & (used >= KV_FULL_FRACTION * total)].sum())
        tot["end_s"] = max(tot["end_s"], float(end.max()))
        tot["decode"] += float(decode.sum())
    tot["has_sampled"] = float(has_sampled)


def _request_extent(path: Path) -> tuple[float, float]:
    """(the latest arrival, first-token or finish time of any request; total generated
    tokens), in one streamed pass over the records."""
    latest, generated = -math.inf, 0.0
    for batch in iter_request_batches(path, ("arrival_s", "first_token_s", "finish_s", "num_generated_tokens")):
        for name in ("arrival_s", "first_token_s", "finish_s"):
            times = np.asarray(batch.column(name).to_numpy(), dtype=np.float64)
            times = times[np.isfinite(times)]
            if times.size:
                latest = max(latest, float(times.max()))
        generated += float(np.nansum(np.asarray(batch.column("num_generated_tokens").to_numpy(), dtype=np.float64)))
    return latest, generated


def _add_input_tokens(path: Path, sums: _Buckets, bucket_s: float, count_first: bool) -> None:
    """Prompt tokens (and, when steps do not say, first tokens) by the bucket of their first
    token, streamed."""
    for batch in iter_request_batches(path, ("first_token_s", "num_prompt_tokens")):
        first = np.asarray(batch.column("first_token_s").to_numpy(), dtype=np.float64)
        got_first = np.isfinite(first)
        index = _bucket(first[got_first], bucket_s)
        sums.add("in", index, np.asarray(batch.column("num_prompt_tokens").to_numpy(), dtype=np.float64)[got_first])
        if count_first:
            sums.add("first", index, np.ones(index.size))


def _per_request_usd(path: Path, per_in: float, per_out: float) -> Reader:
    """Each finished request's cost, prompt x per_in + generated x per_out, pass by pass."""
    def read() -> Iterator[np.ndarray]:
        for prompt, generated in finished_rows(path, ("num_prompt_tokens", "num_generated_tokens")):
            yield prompt * per_in + generated * per_out
    return read


def write_cost_trace(
    run_dir: str | os.PathLike[str],
    built: Any,
    cost_cfg: CostConfig,
    *,
    end_s: float | None = None,
    busy_s: Sequence[float] | None = None,
    where: str = "scenario",
) -> dict[str, Any]:
    """Write `run_dir/cost.arrow` and return the summary's `cost` section (JSON-ready).

    `built` is the run's `clustersim.build.Built`; `end_s` the end of the costed window
    (default: the last step end or request event); `busy_s` each replica's engine busy
    time, used only when the run recorded no steps. When the deployment's chip has no
    cost figures and the scenario asked for none, returns `available: false` with the
    reason instead of failing the run.
    """
    run_dir = Path(run_dir)
    if not cost_cfg.enabled:
        return {"available": False, "reason": "cost.enabled is false"}
    chips_per_replica = int(built.replica.num_chips)
    num_replicas = int(built.scenario.deployment.num_replicas)
    try:
        plan = resolve_system(cost_cfg, built.chip, chips_per_replica, where)
    except ScenarioError as exc:
        if asked_for(cost_cfg):
            raise
        return {"available": False, "reason": str(exc)}
    steps_path = run_dir / "steps.arrow"
    requests_path = run_dir / "requests.arrow"
    latest_s, generated = _request_extent(requests_path)
    bucket_s = float(cost_cfg.bucket_s)
    sums = _Buckets(("busy", "active", "out", "steps", "in", "first"))
    if steps_path.exists():
        tot = _scan_steps(steps_path, bucket_s, cost_cfg.utilization, sums)
    else:
        tot = _no_steps_totals(busy_s, num_replicas)
    end = float(end_s) if end_s is not None else max(tot["end_s"], latest_s, 0.0)
    if not steps_path.exists():
        bucket_s = max(end, 1e-12)  # one row for the whole run
        busy = np.array([tot["step_s"]])
        sums.add("busy", np.array([0]), busy)
        sums.add("active", np.array([0]), busy)
    _add_input_tokens(requests_path, sums, bucket_s, not tot.get("has_sampled"))
    num_buckets = max(1, math.ceil(end / bucket_s - 1e-9)) if end > 0 else 1
    return _finish(run_dir, built, cost_cfg, plan, sums, tot, requests_path, generated, end, bucket_s, num_buckets,
                   chips_per_replica)


def _no_steps_totals(busy_s: Sequence[float] | None, num_replicas: int) -> dict[str, float]:
    if busy_s is None:
        raise ValueError("write_cost_trace: the run has no steps.arrow; pass busy_s (each engine's busy time)")
    total = float(sum(busy_s))
    return {"step_s": total, "seqs_s": math.nan, "in_share_s": math.nan, "kv_full_s": math.nan,
            "end_s": 0.0, "decode": math.nan, "sampled": 0.0, "has_sampled": 0.0, "no_steps": 1.0}


def _finish(
    run_dir: Path, built: Any, cfg: CostConfig, plan: CostPlan, sums: _Buckets, tot: dict[str, float],
    requests_path: Path, generated: float, end: float, bucket_s: float, n: int, chips_per_replica: int,
) -> dict[str, Any]:
    sysc = plan.system
    num_deployed = chips_per_replica * int(built.scenario.deployment.num_replicas)
    num_systems = math.ceil(num_deployed / sysc.num_chips) if cfg.whole_systems else num_deployed / sysc.num_chips
    num_billed = num_systems * sysc.num_chips
    starts = np.arange(n) * bucket_s
    dur = np.clip(np.minimum(starts + bucket_s, end) - starts, 0.0, None) if end > 0 else np.zeros(n)
    busy = sums.folded("busy", n) * chips_per_replica
    active = sums.folded("active", n) * chips_per_replica
    chip_s = num_billed * dur
    known_power = sysc.chip_max_w is not None and sysc.chip_idle_w is not None and sysc.fixed_w is not None
    if known_power:
        idle_j = sysc.chip_idle_w * chip_s + sysc.fixed_w * num_systems * dur
        it_j = idle_j + (sysc.chip_max_w - sysc.chip_idle_w) * active
    else:
        idle_j = it_j = np.full(n, np.nan)
    energy_j = it_j * plan.pue
    usd_per_j = plan.electricity_usd_per_kwh / J_PER_KWH
    zeros = np.zeros(n)
    if plan.mode == "capex":
        capex = capex_usd_per_s(sysc.capex_usd or 0.0, sysc.cost_of_capital, sysc.lifetime_years) * num_systems * dur
        opex = sysc.opex_usd_per_year / SECONDS_PER_YEAR * num_systems * dur
        power = energy_j * usd_per_j
        rental = zeros
        fixed_power = idle_j * plan.pue * usd_per_j
    else:
        capex = opex = power = fixed_power = zeros
        rental = (sysc.rental_usd_per_chip_hour or 0.0) / 3600.0 * chip_s
    idle_frac = np.divide(chip_s - busy, chip_s, out=np.zeros(n), where=chip_s > 0).clip(0.0, 1.0)
    idle_usd = idle_frac * (capex + opex + rental + fixed_power)
    total = capex + power + opex + rental
    tokens_in = np.rint(sums.folded("in", n)).astype(np.int64)
    tokens_out = np.rint(sums.folded("out", n) + sums.folded("first", n)).astype(np.int64)
    resampled = 0
    if tot.get("no_steps"):
        tokens_out[:] = int(generated)  # one bucket: every generated token
    elif not tot.get("has_sampled"):
        resampled = int(round(generated - tokens_out.sum()))  # re-samples after recomputation
        tokens_out[-1] += max(resampled, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = {
            "start_s": starts, "duration_s": dur, "system": [sysc.name] * n, "mode": [plan.mode] * n,
            "num_chips": np.full(n, float(num_billed)), "busy_chip_s": busy, "active_chip_s": active,
            "it_power_w": np.where(dur > 0, it_j / np.where(dur > 0, dur, 1.0), 0.0),
            "facility_power_w": np.where(dur > 0, energy_j / np.where(dur > 0, dur, 1.0), 0.0),
            "energy_j": energy_j, "capex_usd": capex, "power_usd": power, "opex_usd": opex, "rental_usd": rental,
            "idle_usd": idle_usd, "total_usd": total, "tokens_in": tokens_in, "tokens_out": tokens_out,
            "num_steps": np.rint(sums.folded("steps", n)).astype(np.int64),
        }
    meta = {"scenario": built.scenario.name, "seed": str(built.scenario.seed), "system": sysc.name, "mode": plan.mode}
    with ArrowWriter(run_dir / "cost.arrow", COST, metadata=meta) as writer:
        writer.extend(columns)
    summary = _summary(plan, tot, requests_path, end, num_deployed, num_systems, num_billed,
                       {k: float(np.sum(v)) for k, v in columns.items() if k not in ("system", "mode", "start_s", "num_chips")})
    summary["tokens_out_resampled"] = resampled
    summary["file"] = {"rows": writer.stats.num_rows, "bytes": writer.stats.num_bytes}
    summary["bucket_s"] = bucket_s
    summary["num_buckets"] = n
    if cfg.facility_power_mw is not None and sysc.peak_it_w and summary["tokens_s_per_chip"] == summary["tokens_s_per_chip"]:
        summary["facility"] = plan_from_cost_summary(summary, plan, cfg.facility_power_mw, cfg.target_load).as_dict()
    return to_jsonable(summary)


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _summary(
    plan: CostPlan, tot: dict[str, float], requests_path: Path, end: float,
    num_deployed: int, num_systems: float, num_billed: float, s: dict[str, float],
) -> dict[str, Any]:
    sysc = plan.system
    total = s["total_usd"]
    t_in, t_out = s["tokens_in"], s["tokens_out"]
    in_share = _share(tot["in_share_s"], tot["step_s"]) if math.isfinite(tot["in_share_s"]) else None
    if in_share is None:  # no steps: split by token counts
        in_share = _share(t_in, t_in + t_out) or 0.0
    usd_in, usd_out = total * in_share, total * (1.0 - in_share)
    per_in = usd_in / t_in if t_in > 0 else 0.0
    per_out = usd_out / t_out if t_out > 0 else 0.0
    mean_it_w = s["energy_j"] / plan.pue / end if end > 0 else math.nan
    mean_fac_w = s["energy_j"] / end if end > 0 else math.nan
    tokens_s = (t_in + t_out) / end if end > 0 else math.nan
    out_s = t_out / end if end > 0 else math.nan
    peak = sysc.peak_it_w
    provisioned_w = peak * num_systems * plan.pue if peak is not None else math.nan
    return {
        "available": True,
        "system": sysc.name,
        "mode": plan.mode,
        "pue": plan.pue,
        "electricity_usd_per_kwh": plan.electricity_usd_per_kwh,
        "num_systems": num_systems,
        "num_chips_billed": num_billed,
        "assumptions": list(sysc.assumptions),
        "window_s": end,
        "usd_total": total,
        "usd_per_hour": total / end * 3600.0 if end > 0 else None,
        "usd_per_mtok_input": usd_per_mtok(usd_in, t_in),
        "usd_per_mtok_output": usd_per_mtok(usd_out, t_out),
        "usd_per_mtok_blended": usd_per_mtok(total, t_in + t_out),
        "usd_per_request": streamed_latency_stats(_per_request_usd(requests_path, per_in, per_out)),
        "tokens_in": int(t_in),
        "tokens_out": int(t_out),
        "tokens_s_per_chip": tokens_s / num_deployed,
        "output_tokens_s_per_chip": out_s / num_deployed,
        "tokens_s_per_mw": tokens_s / (mean_fac_w / 1e6) if mean_fac_w > 0 else None,
        "tokens_s_per_mw_provisioned": tokens_s / (provisioned_w / 1e6) if provisioned_w > 0 else None,
        "mean_it_power_w": mean_it_w,
        "mean_facility_power_w": mean_fac_w,
        "provisioned_facility_power_w": provisioned_w,
        "energy_j": s["energy_j"],
        "energy_kwh": s["energy_j"] / J_PER_KWH,
        "facility_j_per_output_token": s["energy_j"] / t_out if t_out > 0 else None,
        "busy_fraction": _share(s["busy_chip_s"], num_billed * end),
        "activity_mean_when_busy": _share(s["active_chip_s"], s["busy_chip_s"]),
        "mean_batch_size": _share(tot["seqs_s"], tot["step_s"]) if math.isfinite(tot["seqs_s"]) else None,
        "kv_full_busy_fraction": _share(tot["kv_full_s"], tot["step_s"]) if math.isfinite(tot["kv_full_s"]) else None,
        "input_cost_share": in_share,
        "breakdown": {
            "capex_usd": s["capex_usd"],
            "power_usd": s["power_usd"],
            "opex_usd": s["opex_usd"],
            "rental_usd": s["rental_usd"],
            "idle_usd": s["idle_usd"],
            "capex_share": _share(s["capex_usd"], total),
            "power_share": _share(s["power_usd"], total),
            "opex_share": _share(s["opex_usd"], total),
            "rental_share": _share(s["rental_usd"], total),
            "idle_capacity_share": _share(s["idle_usd"], total),
        },
    }
