"""Request-trace parsers: stream `RequestSpec`s from public LLM-serving traces.

Formats (`TRACE_FORMATS`), detected from the file's first line (or a .jsonl name):

- ``azure``: Azure LLM inference trace 2023 (and the 2024 one-week variant, same header):
  ``TIMESTAMP,ContextTokens,GeneratedTokens``; wall-clock timestamps such as
  ``2023-11-16 18:17:03.9799600`` (up to 9 fractional digits, optional ``+00:00``/``Z``).
  Parsed to integer nanoseconds, so 7-digit fractions are kept exactly.
- ``burstgpt``: BurstGPT ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``
  (extra columns such as ``Session ID`` are ignored); ``Timestamp`` in seconds.
- ``mooncake``: Mooncake JSONL, one object a line with ``timestamp`` (ms), ``input_length``,
  ``output_length`` and optionally ``hash_ids`` (prefix-block hashes, validated, not kept).
- ``clustersim``: our own CSV ``arrival_s,num_prompt_tokens,num_output_tokens``.

Policies, the same for every format:

- Request ids count from 0 over the requests emitted, in file order; ``arrival_s`` is the
  time since the file's first data row, times ``time_scale`` (0.5 halves every gap, so it
  doubles the rate).
- Rows must be sorted by time (equal times allowed). None of these formats documents unsorted
  rows, so a row earlier than the one before it is a `TraceError`, never silently sorted.
- A prompt must have >= 1 token (a model needs a token to produce logits).
- Output tokens 0: clustersim needs >= 1 generated token. ``zero_output`` chooses:
  ``"error"`` (TraceError), ``"skip"`` (drop the row, counted in `TraceStats`) or
  ``"clamp"`` (raise it to 1, counted). The default is ``"skip"`` for BurstGPT, where
  ``Response tokens`` 0 marks a failed request, and ``"error"`` for every other format,
  where 0 has no documented meaning.
- Every malformed row is a `TraceError` naming the file, the line, the column, the value and
  what is valid. Blank lines are ignored. An empty file or one without data rows is an error.
- Files ending in ``.gz`` are read through gzip.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from clustersim.errors import ScenarioError, TraceError
from clustersim.serving.request import RequestSpec

TRACE_FORMATS = ("azure", "burstgpt", "mooncake", "clustersim")
ZERO_OUTPUT_POLICIES = ("error", "skip", "clamp")
ZeroOutput = Literal["error", "skip", "clamp"]

_INT_RE = re.compile(r"[0-9]{1,18}")  # int64-safe; Python refuses > 4300 digits
_FLOAT_RE = re.compile(r"[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_WALL_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_SHOWN_CHARS = 60


@dataclass(frozen=True, slots=True)
class TraceStats:
    """What a load did: rows read, requests kept, rows dropped or changed, and why."""

    path: str
    format: str
    num_rows: int  # data rows parsed (reading stops early at max_requests or end_s)
    num_requests: int
    num_skipped_zero_output: int
    num_clamped_zero_output: int
    num_before_window: int  # rows earlier than start_s
    span_s: float  # arrival_s of the last request (0.0 when none)
    total_prompt_tokens: int
    total_output_tokens: int


@dataclass(frozen=True, slots=True)
class Trace:
    """Requests of a trace and the stats of the load that produced them."""

    requests: tuple[RequestSpec, ...]
    stats: TraceStats


@dataclass(frozen=True, slots=True)
class _CsvFormat:
    """Column names of a CSV trace format and how to read its time column."""

    name: str
    time_col: str
    prompt_col: str
    output_col: str
    parse_time: Callable[[str], int | float | None]  # None when malformed
    time_valid: str  # what a valid time looks like, for messages
    units_per_s: float  # time units in one second
    zero_output: ZeroOutput


def _parse_wall_ns(text: str) -> int | None:
    """Nanoseconds since the Unix epoch of a wall-clock timestamp (naive = UTC), or None.

    >>> _parse_wall_ns("1970-01-01 00:00:01.0000001")
    1000000100
    >>> _parse_wall_ns("1970-01-01 01:00:00+01:00")
    0
    >>> _parse_wall_ns("2023-13-01 00:00:00") is None
    True
    """
    match = _WALL_RE.fullmatch(text.strip())
    if match is None:
        return None
    whole, frac, tz = match.groups()
    try:
        stamp = datetime.fromisoformat(whole + ("+00:00" if tz in (None, "Z") else tz))
    except ValueError:
        return None
    whole_s = (stamp - _EPOCH) // timedelta(seconds=1)
    frac_ns = int((frac or "0").ljust(9, "0"))
    return whole_s * 1_000_000_000 + frac_ns


def _parse_seconds(text: str) -> float | None:
    """A finite decimal number >= 0, or None (rejects 'nan', 'inf', '1_0', '-1').

    >>> _parse_seconds(" 12.5 "), _parse_seconds("1e3"), _parse_seconds("nan")
    (12.5, 1000.0, None)
    """
    text = text.strip()
    if _FLOAT_RE.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


_AZURE = _CsvFormat(
    name="azure",
    time_col="TIMESTAMP",
    prompt_col="ContextTokens",
    output_col="GeneratedTokens",
    parse_time=_parse_wall_ns,
    time_valid="a timestamp like '2023-11-16 18:17:03.9799600' (optional +HH:MM)",
    units_per_s=1e9,
    zero_output="error",
)
_BURSTGPT = _CsvFormat(
    name="burstgpt",
    time_col="Timestamp",
    prompt_col="Request tokens",
    output_col="Response tokens",
    parse_time=_parse_seconds,
    time_valid="a finite number of seconds >= 0",
    units_per_s=1.0,
    zero_output="skip",
)
_CLUSTERSIM = _CsvFormat(
    name="clustersim",
    time_col="arrival_s",
    prompt_col="num_prompt_tokens",
    output_col="num_output_tokens",
    parse_time=_parse_seconds,
    time_valid="a finite number of seconds >= 0",
    units_per_s=1.0,
    zero_output="error",
)
_CSV_FORMATS = {f.name: f for f in (_AZURE, _BURSTGPT, _CLUSTERSIM)}
_MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")
_EXPECTED = (
    "azure header 'TIMESTAMP,ContextTokens,GeneratedTokens', "
    "burstgpt header with 'Timestamp,Request tokens,Response tokens', "
    "clustersim header 'arrival_s,num_prompt_tokens,num_output_tokens', "
    "or mooncake JSON lines"
)


def _shown(value: object) -> str:
    """repr of a bad value, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 3] + "..."


def _bad(path: str, line: int, column: str, value: object, valid: str) -> TraceError:
    return TraceError(f"{path} line {line}: {column}={_shown(value)}, must be {valid}")


def _lines(path: Path) -> Iterator[str]:
    """Decoded lines of a trace (UTF-8, BOM tolerated; gzip when the name ends in .gz),
    line by line so a bad byte or a broken gzip stream is reported with its line number."""
    line = 0
    try:
        handle = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as exc:
        raise TraceError(f"{path}: cannot open trace ({exc.strerror or exc})") from exc
    with handle:
        try:
            for line, raw in enumerate(handle, start=1):
                yield raw.decode("utf-8-sig" if line == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise TraceError(f"{path} line {line}: not UTF-8 text ({exc.reason} at byte "
                             f"{exc.start})") from exc
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile, truncated stream
            raise TraceError(f"{path} line {line + 1}: unreadable ({exc})") from exc


def _first_line(path: Path) -> tuple[int, str]:
    """Number and text of the first non-blank line; a TraceError for an empty file."""
    lines = _lines(path)
    try:
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                return number, raw.strip()
    finally:
        lines.close()
    raise TraceError(f"{path}: empty file, expected {_EXPECTED}")


def _csv_header(line: str) -> list[str]:
    return [name.strip() for name in next(csv.reader(io.StringIO(line)))]


def detect_format(path: str | Path) -> str:
    """Name of the trace format of `path` (one of TRACE_FORMATS): mooncake for a .jsonl name
    or a first line starting with '{', else the CSV format whose columns the header has."""
    path = Path(path)
    number, line = _first_line(path)
    if line.startswith("{") or path.name.removesuffix(".gz").endswith(".jsonl"):
        return "mooncake"
    try:
        header = set(_csv_header(line))
    except csv.Error as exc:
        raise TraceError(f"{path} line {number}: unreadable header ({exc}), "
                         f"expected {_EXPECTED}") from exc
    for fmt in _CSV_FORMATS.values():
        if {fmt.time_col, fmt.prompt_col, fmt.output_col} <= header:
            return fmt.name
    raise TraceError(f"{path} line {number}: header {_shown(line)} matches no format, "
                     f"expected {_EXPECTED}")


def _parse_count(path: str, line: int, column: str, text: str, minimum: int) -> int:
    stripped = text.strip()
    if _INT_RE.fullmatch(stripped) is None or int(stripped) < minimum:
        raise _bad(path, line, column, text, f"an integer >= {minimum} (at most 18 digits)")
    return int(stripped)


# line, time in format units, time as written (str or JSON value), prompt, output tokens
_RawRow = tuple[int, "int | float", object, int, int]


def _csv_rows(path: Path, fmt: _CsvFormat) -> Iterator[_RawRow]:
    """Rows of a CSV trace with their line numbers; values checked, policies not applied."""
    name = str(path)
    lines = _lines(path)
    reader = csv.reader(lines)
    header: list[str] | None = None
    try:
        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue  # blank line
            if header is None:
                header = [field.strip() for field in row]
                index = _column_index(name, line, header, fmt)
                continue
            if len(row) != len(header):
                raise _ragged(name, line, header, row)
            time = fmt.parse_time(row[index[0]])
            if time is None:
                raise _bad(name, line, fmt.time_col, row[index[0]], fmt.time_valid)
            prompt = _parse_count(name, line, fmt.prompt_col, row[index[1]], 1)
            output = _parse_count(name, line, fmt.output_col, row[index[2]], 0)
            yield line, time, row[index[0]], prompt, output
    except csv.Error as exc:
        raise TraceError(f"{name} line {reader.line_num}: unreadable CSV ({exc})") from exc
    finally:
        lines.close()
    if header is None:
        raise TraceError(f"{name}: empty file, expected {_EXPECTED}")


def _column_index(
    path: str, line: int, header: list[str], fmt: _CsvFormat,
) -> tuple[int, int, int]:
    """Positions of the time, prompt and output columns, or a TraceError naming the missing."""
    needed = (fmt.time_col, fmt.prompt_col, fmt.output_col)
    missing = [col for col in needed if col not in header]
    if missing:
        raise TraceError(
            f"{path} line {line}: header {_shown(','.join(header))} lacks column(s) "
            f"{', '.join(missing)}; format {fmt.name} needs {','.join(needed)}"
        )
    time_i, prompt_i, output_i = (header.index(col) for col in needed)
    return time_i, prompt_i, output_i


def _ragged(path: str, line: int, header: list[str], row: list[str]) -> TraceError:
    if len(row) < len(header):
        return TraceError(
            f"{path} line {line}: {header[len(row)]} missing "
            f"(row has {len(row)} fields, header has {len(header)}: {','.join(header)})"
        )
    return TraceError(
        f"{path} line {line}: {len(row) - len(header)} field(s) after {header[-1]} "
        f"(row has {len(row)} fields, header has {len(header)}: {','.join(header)})"
    )


def _json_count(path: str, line: int, obj: dict[str, object], key: str, minimum: int) -> int:
    value = obj[key]
    if type(value) is not int or value < minimum:
        raise _bad(path, line, key, value, f"an integer >= {minimum}")
    return value


def _mooncake_rows(path: Path) -> Iterator[_RawRow]:
    """Rows of a Mooncake JSONL trace with their line numbers; values checked."""
    name = str(path)
    num_lines = 0
    lines = _lines(path)
    try:
        for line, raw in enumerate(lines, start=1):
            if raw.strip():
                num_lines += 1
                yield _mooncake_row(name, line, raw)
    finally:
        lines.close()
    if num_lines == 0:
        raise TraceError(f"{name}: empty file, expected {_EXPECTED}")


def _mooncake_row(path: str, line: int, raw: str) -> _RawRow:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise TraceError(f"{path} line {line}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise TraceError(f"{path} line {line}: {_shown(obj)} is not a JSON object with keys "
                         f"{', '.join(_MOONCAKE_KEYS)}")
    for key in _MOONCAKE_KEYS:
        if key not in obj:
            raise TraceError(f"{path} line {line}: {key} missing, each line needs keys "
                             f"{', '.join(_MOONCAKE_KEYS)}")
    stamp = obj["timestamp"]
    if type(stamp) not in (int, float) or not math.isfinite(stamp) or stamp < 0:
        raise _bad(path, line, "timestamp", stamp, "a finite number of milliseconds >= 0")
    prompt = _json_count(path, line, obj, "input_length", 1)
    output = _json_count(path, line, obj, "output_length", 0)
    hash_ids = obj.get("hash_ids", [])
    if not isinstance(hash_ids, list) or any(type(h) is not int or h < 0 for h in hash_ids):
        raise _bad(path, line, "hash_ids", hash_ids, "a list of integers >= 0")
    return line, stamp, stamp, prompt, output


@dataclass(slots=True)
class _Counts:
    """Running tallies of one load, turned into TraceStats at the end."""

    num_rows: int = 0
    num_requests: int = 0
    num_skipped: int = 0
    num_clamped: int = 0
    num_before_window: int = 0
    last_arrival_s: float = 0.0
    total_prompt_tokens: int = 0
    total_output_tokens: int = 0


def _check_options(
    fmt_name: str, max_requests: int | None, time_scale: float,
    start_s: float, end_s: float | None, zero_output: str | None,
) -> None:
    """Reject bad keyword options before any reading (ScenarioError: they are not file data)."""
    if fmt_name != "auto" and fmt_name not in TRACE_FORMATS:
        raise ScenarioError(f"trace format={fmt_name!r}, must be 'auto' or one of {TRACE_FORMATS}")
    if max_requests is not None and (type(max_requests) is not int or max_requests < 0):
        raise ScenarioError(f"trace max_requests={max_requests!r}, must be None or an integer >= 0")
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise ScenarioError(f"trace time_scale={time_scale!r}, must be a finite number > 0")
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ScenarioError(f"trace start_s={start_s!r}, must be a finite number >= 0")
    if end_s is not None and not end_s > start_s:
        raise ScenarioError(f"trace end_s={end_s!r}, must be None or > start_s={start_s!r}")
    if zero_output is not None and zero_output not in ZERO_OUTPUT_POLICIES:
        raise ScenarioError(
            f"trace zero_output={zero_output!r}, must be None or one of {ZERO_OUTPUT_POLICIES}"
        )


def _requests(
    path: Path, fmt_name: str, max_requests: int | None, time_scale: float,
    start_s: float, end_s: float | None, zero_output: str | None, counts: _Counts,
) -> Iterator[RequestSpec]:
    """Pick the format's row reader, apply the policies, close the file when done."""
    if fmt_name == "auto":
        fmt_name = detect_format(path)
    if fmt_name == "mooncake":
        rows, units_per_s, time_col, output_col, policy = (
            _mooncake_rows(path), 1e3, "timestamp", "output_length", "error")
    else:
        fmt = _CSV_FORMATS[fmt_name]
        rows, units_per_s, time_col, output_col, policy = (
            _csv_rows(path, fmt), fmt.units_per_s, fmt.time_col, fmt.output_col,
            fmt.zero_output)
    policy = zero_output or policy
    try:
        yield from _apply(str(path), rows, units_per_s, time_col, output_col, policy,
                          max_requests, time_scale, start_s, end_s, counts)
    finally:
        rows.close()  # release the file at once when the caller stops early


def _apply(
    name: str, rows: Iterator[_RawRow], units_per_s: float, time_col: str, output_col: str,
    policy: str, max_requests: int | None, time_scale: float, start_s: float,
    end_s: float | None, counts: _Counts,
) -> Iterator[RequestSpec]:
    """Time base, window, ordering and zero-output policy over checked raw rows."""
    first: int | float | None = None
    prev: tuple[int, int | float, object] | None = None
    for line, time, time_text, prompt, output in rows:
        counts.num_rows += 1
        if prev is not None and time < prev[1]:
            raise TraceError(
                f"{name} line {line}: {time_col}={_shown(time_text)} is earlier than line "
                f"{prev[0]}'s {_shown(prev[2])}; rows must be sorted by {time_col} "
                f"(equal times allowed)"
            )
        prev = (line, time, time_text)
        if first is None:
            first = time
        rel_s = (time - first) / units_per_s  # exact ints for azure and mooncake
        if end_s is not None and rel_s >= end_s:
            break
        if rel_s < start_s:
            counts.num_before_window += 1
            continue
        if output == 0:
            if policy == "skip":
                counts.num_skipped += 1
                continue
            if policy == "error":
                raise _bad(name, line, output_col, 0,
                           "an integer >= 1 (pass zero_output='skip' or 'clamp' to accept 0)")
            counts.num_clamped += 1
            output = 1
        if max_requests is not None and counts.num_requests >= max_requests:
            break
        arrival_s = (rel_s - start_s) * time_scale
        yield RequestSpec(counts.num_requests, arrival_s, prompt, output)
        counts.num_requests += 1
        counts.last_arrival_s = arrival_s
        counts.total_prompt_tokens += prompt
        counts.total_output_tokens += output
        if max_requests is not None and counts.num_requests >= max_requests:
            break
    if counts.num_rows == 0:
        raise TraceError(f"{name}: no data rows, expected at least one request")


def iter_trace(
    path: str | Path,
    format: str = "auto",
    *,
    max_requests: int | None = None,
    time_scale: float = 1.0,
    start_s: float = 0.0,
    end_s: float | None = None,
    zero_output: ZeroOutput | None = None,
) -> Iterator[RequestSpec]:
    """Stream the requests of a trace file (bounded memory); see the module docstring.

    `start_s`/`end_s` keep rows whose time since the first row lies in [start_s, end_s),
    in the trace's own seconds (before `time_scale`); kept arrivals are measured from start_s.
    Options are checked now; file errors surface while iterating.
    """
    _check_options(format, max_requests, time_scale, start_s, end_s, zero_output)
    return _requests(Path(path), format, max_requests, time_scale, start_s, end_s,
                     zero_output, _Counts())


def load_trace(
    path: str | Path,
    format: str = "auto",
    *,
    max_requests: int | None = None,
    time_scale: float = 1.0,
    start_s: float = 0.0,
    end_s: float | None = None,
    zero_output: ZeroOutput | None = None,
) -> Trace:
    """Read a whole trace into memory, with the stats of what was skipped or clamped."""
    _check_options(format, max_requests, time_scale, start_s, end_s, zero_output)
    fmt_name = detect_format(path) if format == "auto" else format
    counts = _Counts()
    requests = tuple(_requests(Path(path), fmt_name, max_requests, time_scale, start_s, end_s,
                               zero_output, counts))
    stats = TraceStats(
        path=str(path),
        format=fmt_name,
        num_rows=counts.num_rows,
        num_requests=counts.num_requests,
        num_skipped_zero_output=counts.num_skipped,
        num_clamped_zero_output=counts.num_clamped,
        num_before_window=counts.num_before_window,
        span_s=counts.last_arrival_s,
        total_prompt_tokens=counts.total_prompt_tokens,
        total_output_tokens=counts.total_output_tokens,
    )
    return Trace(requests, stats)


def read_trace(
    path: str | Path,
    format: str = "auto",
    *,
    max_requests: int | None = None,
    time_scale: float = 1.0,
    start_s: float = 0.0,
    end_s: float | None = None,
    zero_output: ZeroOutput | None = None,
) -> list[RequestSpec]:
    """Read a whole trace into a list of RequestSpec (load_trace without the stats)."""
    trace = load_trace(path, format, max_requests=max_requests, time_scale=time_scale,
                       start_s=start_s, end_s=end_s, zero_output=zero_output)
    return list(trace.requests)
