"""Scenario files: the pydantic schema, loading, and errors that name field, value and fix.

A scenario says what to serve (model), on what (deployment: chip, parallelism, replicas),
against what traffic (workload), how the engines batch (engine), how requests are routed
(router) and what latency counts as good (slo). Defaults are embedded, so a scenario can
be a few lines. Validation here is about shape and ranges; `clustersim.build` checks the
cross-field physics (TP divides heads, the model fits in HBM) against the catalog.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from clustersim.cost.config import CostConfig
from clustersim.errors import ScenarioError
from clustersim.failures.config import FailuresConfig

MAX_NUM_CHIPS = 1_000_000
"""Most chips a scenario may deploy (num_replicas x tp x pp): 1e6 is several times the largest
clusters built; beyond it a typo (an extra 000) would hang the run building engines."""

MAX_GENERATED_REQUESTS = 10_000_000
"""Most requests a generated open-loop or offline workload may hold (num_requests, or
rate_per_s x duration_s): arrivals are drawn up front, ~150 bytes each (1.5 GB at the cap).
Trace replays stream and closed loops draw in blocks, so only these kinds are capped."""

MAX_TOKENS = 100_000_000
"""Most prompt or output tokens per request a workload may ask for: far beyond any model's
context (longer requests are refused with a record anyway) and inside int64 arithmetic."""

MAX_COUNT = 1_000_000_000
"""Upper bound of other counts (clients, repeats, batch limits, block size): larger values
are typos, and bounding them keeps numpy int64 arithmetic exact."""

TraceFormat = Literal["auto", "azure", "burstgpt", "mooncake", "clustersim"]
"""`auto` plus serving.traces.TRACE_FORMATS (a test keeps the two in step), so a bad format is
refused with the schema, naming workload.format."""

PositiveInt = Annotated[int, Field(gt=0, le=MAX_COUNT)]
PositiveFloat = Annotated[float, Field(gt=0)]
TokenCount = Annotated[int, Field(gt=0, le=MAX_TOKENS)]


class _Strict(BaseModel):
    """Scenario sections: unknown fields refused, values frozen, no type coercion (a quoted
    "2" is not a number, 5.0 is not a count, true is not 1), finite floats only. An int
    is accepted where a float is expected."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Lengths(_Strict):
    """Prompt/output token counts of generated requests."""

    kind: Literal["fixed", "uniform", "lognormal", "trace"] = "fixed"
    prompt_tokens: TokenCount = 1024
    output_tokens: TokenCount = 256
    prompt_tokens_max: TokenCount | None = None  # uniform: upper bound (prompt_tokens is the lower)
    output_tokens_max: TokenCount | None = None
    cv: Annotated[float, Field(gt=0)] = 1.0  # lognormal: coefficient of variation of both lengths
    path: str | None = None  # trace: sample (prompt, output) pairs from this trace file
    format: TraceFormat = "auto"

    @model_validator(mode="after")
    def _check(self) -> "Lengths":
        if self.kind == "trace" and not self.path:
            raise ValueError("workload.lengths.path is required when workload.lengths.kind='trace'")
        for low, high in (("prompt_tokens", "prompt_tokens_max"), ("output_tokens", "output_tokens_max")):
            if getattr(self, high) is not None and getattr(self, high) < getattr(self, low):
                raise ValueError(
                    f"workload.lengths.{high}={getattr(self, high)}, must be >= workload.lengths.{low}={getattr(self, low)}"
                )
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
    format: TraceFormat = "auto"
    time_scale: PositiveFloat = 1.0  # trace: multiply inter-arrival times (0.5 = twice the rate)
    repeat: PositiveInt = 1  # trace: replay the file this many times back to back (longer runs from short traces)
    num_clients: Annotated[int, Field(gt=0, le=MAX_GENERATED_REQUESTS)] = 8  # closed loop
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
        if self.kind in ("poisson", "gamma", "offline"):
            self._check_size()
        return self

    def _check_size(self) -> None:
        """Generated arrivals are held in memory: at most MAX_GENERATED_REQUESTS of them."""
        cap = f"at most {MAX_GENERATED_REQUESTS:,} generated requests per run (use kind: trace with repeat, or closed_loop, for more)"
        if self.num_requests is not None:
            if self.num_requests > MAX_GENERATED_REQUESTS:
                raise ValueError(f"workload.num_requests={self.num_requests}, must be {cap}")
        elif self.rate_per_s is not None and self.duration_s is not None:
            expected = self.rate_per_s * self.duration_s
            if not expected <= MAX_GENERATED_REQUESTS:
                raise ValueError(
                    f"workload.rate_per_s={self.rate_per_s} x duration_s={self.duration_s} = {expected:.3g} requests, must be {cap}"
                )


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

    @model_validator(mode="after")
    def _check(self) -> "Deployment":
        num_chips = self.num_replicas * self.tp * self.pp
        if num_chips > MAX_NUM_CHIPS:
            raise ValueError(
                f"deployment.num_replicas={self.num_replicas} x tp={self.tp} x pp={self.pp} = {num_chips:,} chips, "
                f"must be at most {MAX_NUM_CHIPS:,} chips in all"
            )
        return self


class EngineConfig(_Strict):
    """Per-replica batching knobs (vLLM-style names)."""

    max_num_batched_tokens: PositiveInt = 8192
    max_num_seqs: PositiveInt = 256
    block_size: PositiveInt = 16
    kv_reserve_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    fast_forward: bool = True
    stack: str = ""  # serving stack with its own efficiency entry (efficiency.yaml `stacks:`); "": the family's


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
    link_detail: Literal["link", "class"] = "link"  # links.arrow rows per link, or per link kind (big graphs)


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
    """Validate a decoded scenario mapping; errors name the place, field path and value.

    Strict for the whole tree (sections other modules own included): YAML-native types
    only, no coercion, and no NaN or infinity anywhere.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: top level must be a mapping of fields, got {type(data).__name__}")
    bad = _first_non_finite(data, ())
    if bad is not None:
        loc, value = bad
        info = _field_at(loc)
        expected = _expected(info) if info is not None else None
        valid = expected if expected and "finite" in expected else "a finite number"
        raise ScenarioError(f"{where}: {_path(loc)}={value}, must be {valid}")
    try:
        return Scenario.model_validate(data, strict=True)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, where)) from None


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's content; a missing, unreadable or non-UTF-8 file or bad YAML is a
    ScenarioError naming the file (and the line, for YAML errors)."""
    if not path.is_file():
        raise ScenarioError(f"{path}: {what} file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{path}: {what} file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ScenarioError(f"{path}{line}: not valid YAML ({problem})") from None
    except (ValueError, RecursionError) as exc:  # an integer of > 4300 digits; nesting deeper than Python's stack
        raise ScenarioError(f"{path}: not a usable YAML {what} file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


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


_MAX_SHOWN_CHARS = 80
_RANGE_TYPES = {
    "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "bool_type", "bool_parsing",
    "string_type", "finite_number", "greater_than", "greater_than_equal", "less_than", "less_than_equal",
    "literal_error", "list_type", "model_type", "model_attributes_type", "dict_type", "none_required",
}
"""pydantic error types whose message is replaced by what the field accepts."""


def _describe(exc: ValidationError, where: str) -> str:
    """One line per field in error: `where: field.path=value, must be <what is valid>`."""
    lines: dict[str, str] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        field = _path(loc) or "(top level)"
        if field in lines:
            continue
        value = error.get("input")
        kind = error["type"]
        if kind == "extra_forbidden":
            lines[field] = f"{where}: {field}: {_unknown_field(loc)}"
            continue
        if kind == "invalid_key":  # a YAML key that is not a string (`1: x`)
            lines[field] = f"{where}: {_path(loc[:-1]) or '(top level)'}: key {loc[-1]!r}, must be a field name (a string)"
            continue
        if kind == "value_error":  # a model validator's own message, which names its fields
            message = str(error.get("ctx", {}).get("error") or error["msg"]).removeprefix("Value error, ")
            lines[field] = f"{where}: {message}" if not loc or message.startswith(field.split("[")[0]) else f"{where}: {field}: {message}"
            continue
        info = _field_at(loc)
        expected = _expected(info) if info is not None and kind in _RANGE_TYPES else None
        shown = "" if isinstance(value, dict) else f"={_shown(value)}"
        if expected:
            lines[field] = f"{where}: {field}{shown}, must be {expected}"
        else:
            lines[field] = f"{where}: {field}{shown}: {error['msg']}"
    return "\n".join(lines.values())


def _path(loc: tuple[Any, ...]) -> str:
    """A field path as written in messages.

    >>> _path(("failures", "scripted", 0, "at_s"))
    'failures.scripted[0].at_s'
    >>> _path(("workload", "a\\nb"))
    "workload['a\\\\nb']"
    """
    text = ""
    for part in loc:
        if isinstance(part, int) or not str(part).isidentifier():  # list index, or a key such as 'a b' or 'x\ny'
            text += f"[{part!r}]" if not isinstance(part, int) else f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 3] + "..."


def _first_non_finite(data: Any, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], float] | None:
    """The first NaN or infinity in a decoded scenario, with its path (YAML's .inf, .nan)."""
    if isinstance(data, float) and not math.isfinite(data):
        return loc, data
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, (list, tuple)):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        found = _first_non_finite(value, (*loc, key))
        if found is not None:
            return found
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (through Optional, list, Annotated), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _walk(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model at the end of a field path and the last field's info; (None, None) where
    the path leaves the schema (free-form mappings such as failures.classes)."""
    model: type[BaseModel] | None = Scenario
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):  # a list item: same model
            continue
        if model is None or part not in model.model_fields:
            return None, None
        info = model.model_fields[part]
        model = _model_in(info.annotation)
    return model, info


def _field_at(loc: tuple[Any, ...]) -> FieldInfo | None:
    return _walk(loc)[1] if loc else None


def _unknown_field(loc: tuple[Any, ...]) -> str:
    """'unknown field; valid fields of workload: ...' (with a close match when there is one)."""
    model = _walk(loc[:-1])[0] if len(loc) > 1 else Scenario
    if model is None:
        return "unknown field"
    names = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    section = f" of {_path(loc[:-1])}" if len(loc) > 1 else ""
    return f"unknown field; {hint}valid fields{section}: {', '.join(names)}"


def _expected(info: FieldInfo) -> str | None:
    """What a field accepts, in words: 'an integer > 0 and <= 1,000,000,000, or null'."""
    return _accepts(info.annotation, list(info.metadata))


def _accepts(annotation: Any, metadata: list[Any]) -> str | None:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *extra = typing.get_args(annotation)
        return _accepts(base, metadata + extra)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        parts = [_accepts(arg, metadata) for arg in args if arg is not type(None)]
        if any(part is None for part in parts):
            return None
        text = " or ".join(str(part) for part in parts)
        return f"{text}, or null" if type(None) in args else text
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(annotation))
    if origin is list:
        return "a list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"a mapping with fields {', '.join(annotation.model_fields)}"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    if annotation not in names:
        return None
    return names[annotation] + _bounds(metadata)


def _bounds(metadata: list[Any]) -> str:
    """' > 0 and <= 1' from annotated-types constraints (also inside Field(...) infos)."""
    flat: list[Any] = []
    for item in metadata:
        flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    words = []
    for item in flat:
        for cls, attr, sign in ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="),
                                (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "<=")):
            if isinstance(item, cls):
                bound = getattr(item, attr)
                words.append(f"{sign} {bound:,}" if isinstance(bound, int) and abs(bound) >= 10_000 else f"{sign} {bound}")
    return " " + " and ".join(words) if words else ""
