"""Measurement rows: the calibration CSV schema read into typed records.

A malformed row (a missing column, a number that is not one, an unknown mode or metric) is
an input error: ClusterSimError naming the file, line, row id, column and value. A row that
is well formed but names a chip or model clustersim lacks is *not* an error here: the
mapping step lists it as skipped with its reason.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from clustersim.errors import ClusterSimError

COLUMNS = (
    "id", "chip", "chips", "model", "precision", "isl", "osl", "mode", "load",
    "ttft_p99_limit_ms", "tpot_p99_limit_ms", "parallelism", "metric", "value", "source",
)
MODES = ("offline", "batch", "concurrency", "qps", "server", "prefill", "decode")
METRICS = (
    "output_tok_s_total", "output_tok_s_per_chip", "input_tok_s_per_chip", "ttft_p50_ms",
    "ttft_p99_ms", "ttft_mean_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_mean_ms",
)
NEEDS_LOAD = ("batch", "concurrency", "qps")


@dataclass(frozen=True, slots=True)
class Row:
    """One published measurement: the setup, the metric and its measured value.

    Lengths are mean tokens (floats as published); limits are seconds (None when blank);
    `load` is clients (concurrency), requests (batch) or requests/s (qps), None otherwise.
    `fields` keeps the row exactly as read, for the result file.
    """

    line: int
    id: str
    chip: str
    num_chips: int
    model: str
    precision: str
    isl: float
    osl: float
    mode: str
    load: float | None
    ttft_limit_s: float | None
    tpot_limit_s: float | None
    parallelism: str
    metric: str
    value: float
    fields: tuple[tuple[str, str], ...]


def _where(path: Path, line: int, row_id: str, column: str, value: str) -> str:
    return f"{path}: line {line} (row id {row_id or '?'}): column {column}={value!r}"


def _number(path: Path, line: int, row_id: str, raw: dict[str, str], column: str,
            positive: bool = True, optional: bool = False) -> float | None:
    text = (raw.get(column) or "").strip()
    if not text:
        if optional:
            return None
        raise ClusterSimError(f"{_where(path, line, row_id, column, text)}: is empty, must be a number > 0")
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        raise ClusterSimError(f"{_where(path, line, row_id, column, text)}: not a number") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise ClusterSimError(f"{_where(path, line, row_id, column, text)}: must be a finite number > 0")
    return value


def parse_row(path: Path, line: int, raw: dict[str, str]) -> Row:
    """Validate one CSV record (a dict of column -> text) into a Row."""
    row_id = (raw.get("id") or "").strip()
    if not row_id:
        raise ClusterSimError(f"{_where(path, line, row_id, 'id', '')}: is empty, every row needs an id")
    for column in ("chip", "model", "mode", "metric"):
        if not (raw.get(column) or "").strip():
            raise ClusterSimError(f"{_where(path, line, row_id, column, '')}: is empty")
    mode = raw["mode"].strip().lower()
    if mode not in MODES:
        raise ClusterSimError(f"{_where(path, line, row_id, 'mode', raw['mode'])}: must be one of {', '.join(MODES)}")
    metric = raw["metric"].strip().lower()
    if metric not in METRICS:
        raise ClusterSimError(f"{_where(path, line, row_id, 'metric', raw['metric'])}: must be one of {', '.join(METRICS)}")
    chips = _number(path, line, row_id, raw, "chips")
    assert chips is not None
    if chips != int(chips):
        raise ClusterSimError(f"{_where(path, line, row_id, 'chips', raw['chips'])}: must be a whole number of chips")
    load = _number(path, line, row_id, raw, "load", optional=mode not in NEEDS_LOAD)
    ttft = _number(path, line, row_id, raw, "ttft_p99_limit_ms", optional=mode != "server")
    tpot = _number(path, line, row_id, raw, "tpot_p99_limit_ms", optional=mode != "server")
    isl = _number(path, line, row_id, raw, "isl")
    osl = _number(path, line, row_id, raw, "osl")
    value = _number(path, line, row_id, raw, "value")
    assert isl is not None and osl is not None and value is not None
    return Row(
        line=line,
        id=row_id,
        chip=raw["chip"].strip(),
        num_chips=int(chips),
        model=raw["model"].strip(),
        precision=(raw.get("precision") or "").strip().lower(),
        isl=isl,
        osl=osl,
        mode=mode,
        load=load,
        ttft_limit_s=None if ttft is None else ttft / 1e3,
        tpot_limit_s=None if tpot is None else tpot / 1e3,
        parallelism=(raw.get("parallelism") or "").strip(),
        metric=metric,
        value=value,
        fields=tuple((k, raw.get(k) or "") for k in raw if k is not None),
    )


def read_rows(path: Path) -> list[Row]:
    """Every row of the measurements CSV at `path`, validated (ClusterSimError on the first bad one)."""
    if not path.is_file():
        raise ClusterSimError(f"{path}: measurements file not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c != "source" and c not in header]
        if missing:
            raise ClusterSimError(f"{path}: line 1: missing column(s) {', '.join(missing)}; the header must have {', '.join(COLUMNS)}")
        rows = []
        for raw in reader:
            line = reader.line_num
            if None in raw:
                raise ClusterSimError(f"{path}: line {line} (row id {raw.get('id') or '?'}): more fields than the header's {len(header)} columns")
            if not any((v or "").strip() for v in raw.values()):
                continue
            rows.append(parse_row(path, line, raw))
    seen: dict[str, int] = {}
    for row in rows:
        if row.id in seen:
            raise ClusterSimError(f"{path}: line {row.line}: column id={row.id!r}: duplicate of line {seen[row.id]}")
        seen[row.id] = row.line
    return rows
