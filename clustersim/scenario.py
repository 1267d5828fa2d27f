"""Scenario files: the pydantic schema, loading, and errors that name field, value and fix.

A scenario says what to serve (model), on what (deployment: chip, parallelism, replicas),
against what traffic (workload), how the engines batch (engine), how requests are routed
(router) and what latency counts as good (slo). Defaults are embedded, so a scenario can
be a few lines. Validation here is about shape and ranges; `clustersim.build` checks the
cross-field physics (TP divides heads, the model fits in HBM) against the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clustersim.cost.config import CostConfig
from clustersim.errors import ScenarioError
from clustersim.failures.config import FailuresConfig

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lengths(_Strict):
    """Prompt/output token counts of generated requests."""

    kind: Literal["fixed", "uniform", "lognormal", "trace"] = "fixed"
    prompt_tokens: PositiveInt = 1024
    output_tokens: PositiveInt = 256
    prompt_tokens_max: PositiveInt | None = None  # uniform: upper bound (prompt_tokens is the lower)
    output_tokens_max: PositiveInt | None = None
    cv: Annotated[float, Field(gt=0)] = 1.0  # lognormal: coefficient of variation of both lengths
    path: str | None = None  # trace: sample (prompt, output) pairs from this trace file
    format: str = "auto"

    @model_validator(mode="after")
    def _check(self) -> "Lengths":
        if self.kind == "trace" and not self.path:
            raise ValueError("lengths.path is required when lengths.kind='trace'")
        for low, high in (("prompt_tokens", "prompt_tokens_max"), ("output_tokens", "output_tokens_max")):
            if getattr(self, high) is not None and getattr(self, high) < getattr(self, low):
                raise ValueError(f"lengths.{high}={getattr(self, high)} must be >= lengths.{low}={getattr(self, low)}")
        return self


class Workload(_Strict):
    """Traffic: open-loop Poisson/gamma, trace replay, closed-loop clients, or offline
    (every one of num_requests waiting at t=0: maximum-throughput benchmarks)."""

    kind: Literal["poisson", "gamma", "trace", "closed_loop", "offline"] = "poisson"
    rate_per_s: PositiveFloat | None = 2.0
    cv: PositiveFloat = 1.0  # gamma: coefficient of variation of inter-arrival times
    num_requests: PositiveInt | None = None
    duration_s: PositiveFloat | None = None
    lengths: Lengths = Lengths()
    path: str | None = None  # trace replay file
    format: str = "auto"
    time_scale: PositiveFloat = 1.0  # trace: multiply inter-arrival times (0.5 = twice the rate)
    repeat: PositiveInt = 1  # trace: replay the file this many times back to back (longer runs from short traces)
    num_clients: PositiveInt = 8  # closed loop
    think_time_s: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _check(self) -> "Workload":
        if self.kind == "trace" and not self.path:
            raise ValueError("workload.path is required when workload.kind='trace'")
        if self.repeat > 1 and self.kind != "trace":
            raise ValueError(f"workload.repeat={self.repeat} applies to kind='trace' only, not kind={self.kind!r}")
        if self.kind in ("poisson", "gamma") and self.rate_per_s is None:
            raise ValueError(f"workload.rate_per_s is required when workload.kind={self.kind!r}")
        if self.kind == "offline" and self.num_requests is None:
            raise ValueError("workload.num_requests is required when workload.kind='offline'")
        if self.kind in ("poisson", "gamma", "closed_loop") and self.num_requests is None and self.duration_s is None:
            raise ValueError(f"workload.kind={self.kind!r} needs num_requests or duration_s")
        return self


class Deployment(_Strict):
    """Replicas of the model: chip type, parallelism, dtypes, count."""

    chip: str = "H200"
    num_replicas: PositiveInt = 1
    tp: PositiveInt = 1
    ep: PositiveInt = 1
    pp: PositiveInt = 1
    weight_dtype: Literal["bf16", "fp16", "fp8", "int8", "fp4", "int4"] | None = None
    kv_dtype: Literal["bf16", "fp16", "fp8", "int8", "fp4"] = "bf16"
    attn_dp: PositiveInt = 1  # attention data-parallel ranks: 1 (plain TP) or tp = ep (DEP, MoE only)


class EngineConfig(_Strict):
    """Per-replica batching knobs (vLLM-style names)."""

    max_num_batched_tokens: PositiveInt = 8192
    max_num_seqs: PositiveInt = 256
    block_size: PositiveInt = 16
    kv_reserve_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    fast_forward: bool = True


class RouterConfig(_Strict):
    policy: Literal["round_robin", "least_outstanding_tokens", "least_outstanding_requests"] = "least_outstanding_tokens"


class Slo(_Strict):
    """Latency targets a request must meet to count toward goodput."""

    ttft_s: PositiveFloat | None = 2.0
    tpot_s: PositiveFloat | None = 0.1


class TopologyConfig(_Strict):
    """Where replicas sit on a physical interconnect: communication then comes from
    collectives routed on the graph, and links.arrow records the load of every link."""

    name: str  # a file in topologies/ (`clustersim topology show` lists them) or a path
    policy: Literal["pack", "spread"] = "pack"  # fill a domain first, or deal replicas over domains
    within: Literal["domain", "any"] = "domain"  # keep each replica in one scale-up domain
    link_bucket_s: PositiveFloat = 1.0  # time bucket of links.arrow


class RunConfig(_Strict):
    max_sim_s: PositiveFloat | None = None  # stop at this simulated time; unfinished requests are recorded as such
    record_steps: bool = True


class Scenario(_Strict):
    """A whole scenario file."""

    name: str = "scenario"
    seed: Annotated[int, Field(ge=0)] = 0
    model: str = "llama-3.1-8b"
    catalog_dirs: list[str] = []
    deployment: Deployment = Deployment()
    topology: TopologyConfig | None = None
    engine: EngineConfig = EngineConfig()
    router: RouterConfig = RouterConfig()
    workload: Workload = Workload(num_requests=200)
    slo: Slo = Slo()
    run: RunConfig = RunConfig()
    cost: CostConfig = CostConfig()
    failures: FailuresConfig = FailuresConfig()


def parse_scenario(data: Any, where: str = "scenario") -> Scenario:
    """Validate a decoded scenario mapping; errors name the place, field path and value."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: top level must be a mapping of fields, got {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, where)) from None


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's content; a missing file or bad YAML is a ScenarioError naming the line."""
    if not path.is_file():
        raise ScenarioError(f"{path}: {what} file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a YAML scenario file; relative paths inside it are resolved against its folder."""
    path = Path(path)
    data = read_yaml(path, "scenario")
    if isinstance(data, dict):
        data = resolve_paths(data, path.parent)
        for key, value in (overrides or {}).items():
            data[key] = value
    return parse_scenario(data, where=str(path))


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make trace paths and catalog dirs relative to the scenario file's folder."""
    data = dict(data)

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute() and (base / value).exists():
            return str(base / value)
        return value

    if isinstance(data.get("model"), str) and data["model"].endswith(".json"):
        data["model"] = fix(data["model"])
    workload = data.get("workload")
    if isinstance(workload, dict):
        workload = dict(workload)
        workload["path"] = fix(workload.get("path")) if "path" in workload else None
        if workload["path"] is None:
            workload.pop("path")
        lengths = workload.get("lengths")
        if isinstance(lengths, dict) and "path" in lengths:
            workload["lengths"] = {**lengths, "path": fix(lengths["path"])}
        data["workload"] = workload
    topology = data.get("topology")
    if isinstance(topology, dict) and isinstance(topology.get("name"), str):
        data["topology"] = {**topology, "name": fix(topology["name"])}
    if isinstance(data.get("catalog_dirs"), list):
        data["catalog_dirs"] = [fix(d) for d in data["catalog_dirs"]]
    return data


def _describe(exc: ValidationError, where: str) -> str:
    """One line per problem: `where: field.path=value: what is valid`."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        value = error.get("input")
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check its spelling; see README for the scenario fields)"
        elif error["type"] == "literal_error":
            message = f"must be one of {error.get('ctx', {}).get('expected', '')}"
        shown = "" if isinstance(value, dict) else f"={value!r}"
        lines.append(f"{where}: {field}{shown}: {message}")
    return "\n".join(lines)
