"""Streaming, all-or-nothing record files: Arrow IPC files and small JSON documents.

`ArrowWriter` buffers rows (appended ones as tuples, extended ones as arrays) and writes one
record batch every `batch_rows` rows, so memory stays bounded however long the run. It writes to a hidden temporary sibling
and moves it onto the target with `os.replace` only on a clean close: a crashed run leaves no
half-written `requests.arrow` that a reader could mistake for a whole one, and never
clobbers a previous good file. `write_json_atomic` does the same for `manifest.json` and
`summary.json`.

The schema is declared by the caller, never inferred from the data; provenance (scenario
hash, seed, version) rides in the schema metadata of the file.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa

_temp_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class WriteStats:
    """What a finished file holds: rows written and its size on disk."""

    num_rows: int
    num_bytes: int


def _temp_sibling(path: Path) -> Path:
    """A hidden name next to `path` (same filesystem, so `os.replace` is atomic), unique per
    process and per writer: `.requests.arrow.tmp-<pid>-<n>`."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{next(_temp_counter)}")


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _to_arrow(values: Any, field: pa.Field) -> pa.Array:
    """Convert one column to the field's type with a *safe* cast: 1.5 into an int column or
    2**40 into int32 raises instead of truncating."""
    try:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if isinstance(values, pa.Array):
            return values.cast(field.type, safe=True)
        if isinstance(values, np.ndarray):
            return pa.array(values, type=field.type)
        return pa.array(values).cast(field.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ValueError(
            f"column {field.name!r}: cannot store values as {field.type}: {exc}"
        ) from exc


class _Rows:
    """Rows appended one at a time, each a tuple in schema order; transposed once, at flush."""

    __slots__ = ("values", "_columns")

    def __init__(self) -> None:
        self.values: list[Sequence[Any]] = []
        self._columns: list[tuple[Any, ...]] | None = None

    def column(self, index: int) -> tuple[Any, ...]:
        if self._columns is None:
            self._columns = list(zip(*self.values))
        return self._columns[index]


class _RowsColumn:
    """One column's view of a `_Rows` piece (each column's piece list holds one)."""

    __slots__ = ("rows", "index")

    def __init__(self, rows: _Rows, index: int) -> None:
        self.rows = rows
        self.index = index

    def values(self) -> tuple[Any, ...]:
        return self.rows.column(self.index)


class ArrowWriter:
    """Write rows of a declared schema to an Arrow IPC file, atomically and in bounded memory.

    Use as a context manager; `close()` (or a clean exit from `with`) flushes the last
    partial batch and moves the file into place, an exception inside `with` discards it::

        with ArrowWriter(run_dir / "requests.arrow", REQUESTS, metadata={"seed": "1"}) as w:
            w.append(request_id=0, ...)              # one row, every column by name
            w.extend({"start_s": starts, ...})       # many rows as arrays
        stats = w.stats

    Every batch in the file holds exactly `batch_rows` rows except the last. Column names
    are checked on each call (a misspelt or missing column raises `ValueError` at once);
    values are converted with a safe cast when a batch is built.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: pa.Schema,
        batch_rows: int = 65536,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if batch_rows < 1:
            raise ValueError(f"ArrowWriter({path}): batch_rows={batch_rows}, must be >= 1")
        if len(schema) == 0:
            raise ValueError(f"ArrowWriter({path}): the schema has no columns")
        if metadata is not None:
            bad = {
                k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))
            }
            if bad:
                raise ValueError(f"ArrowWriter({path}): metadata must map str to str, got {bad!r}")
            schema = schema.with_metadata({**(schema.metadata or {}), **metadata})
        self.path = Path(path)
        self.schema = schema
        self.batch_rows = batch_rows
        self._names = tuple(schema.names)
        self._name_set = frozenset(self._names)
        # Per column, buffered values in row order as pieces: lists filled by append(),
        # arrays given to extend(), Arrow arrays left over from the last flush. They are
        # converted once per flush, so a small extend() costs a few list appends.
        self._pieces: dict[str, list[Any]] = {name: [] for name in self._names}
        self._open_rows: _Rows | None = None  # the rows piece append() fills, shared by every column
        self._num_buffered = 0
        self._num_written = 0
        self._stats: WriteStats | None = None
        self._temp = _temp_sibling(self.path)
        self._sink = open(self._temp, "xb")  # noqa: SIM115 - closed in close()/abort()
        try:
            self._writer = pa.ipc.new_file(self._sink, schema)
        except BaseException:
            self._sink.close()
            self._temp.unlink(missing_ok=True)
            raise

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> ArrowWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- writing ---------------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        """Rows accepted so far (written or still buffered)."""
        return self._num_written + self._num_buffered

    @property
    def num_buffered_rows(self) -> int:
        """Rows held in memory, not yet written; always below `batch_rows` between calls."""
        return self._num_buffered

    @property
    def stats(self) -> WriteStats:
        """Row and byte counts of the finished file (after `close()`)."""
        if self._stats is None:
            raise RuntimeError(f"ArrowWriter({self.path}): stats are known only after close()")
        return self._stats

    def _check_open(self) -> None:
        if self._sink.closed:
            raise RuntimeError(f"ArrowWriter({self.path}) is closed")

    def _check_names(self, given: Mapping[str, Any], where: str) -> None:
        given_set = set(given)
        if given_set == self._name_set:
            return
        unknown = sorted(given_set - self._name_set)
        missing = [n for n in self._names if n not in given_set]
        raise ValueError(
            f"ArrowWriter({self.path.name}).{where}: unknown columns {unknown}, missing columns "
            f"{missing}; the schema has {list(self._names)}"
        )

    def append(self, **row: Any) -> None:
        """Buffer one row given as `column=value` for every column of the schema."""
        self._check_open()
        self._check_names(row, "append")
        self._append(tuple(row[name] for name in self._names))

    def append_values(self, values: Sequence[Any]) -> None:
        """Buffer one row given as its values in schema order (the per-request hot path:
        no name lookups); values are checked when the batch is built, as with append."""
        self._check_open()
        if len(values) != len(self._names):
            raise ValueError(
                f"ArrowWriter({self.path.name}).append_values: {len(values)} values, the schema has "
                f"{len(self._names)} columns {list(self._names)}"
            )
        self._append(values)

    def _append(self, values: Sequence[Any]) -> None:
        rows = self._open_rows
        if rows is None:
            rows = self._open_rows = _Rows()
            for index, name in enumerate(self._names):
                self._pieces[name].append(_RowsColumn(rows, index))
        rows.values.append(values)
        self._num_buffered += 1
        if self._num_buffered >= self.batch_rows:
            self._flush()

    def extend(self, columns: Mapping[str, Sequence[Any] | np.ndarray | pa.Array]) -> None:
        """Buffer many rows at once, one equally long array or sequence per column (copied).
        Names and lengths are checked now, values when the batch is built."""
        self._check_open()
        self._check_names(columns, "extend")
        lengths = {name: len(columns[name]) for name in self._names}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"ArrowWriter({self.path.name}).extend: columns differ in length: {lengths}"
            )
        num = lengths[self._names[0]]
        if num == 0:
            return
        self._open_rows = None  # later appends start a new piece, keeping row order
        for name in self._names:
            values = columns[name]
            if isinstance(values, pa.ChunkedArray):
                values = values.combine_chunks()
            if isinstance(values, np.ndarray):
                values = values.copy()  # the caller may reuse its buffer
            elif not isinstance(values, pa.Array):
                values = list(values)
            self._pieces[name].append(values)
        self._num_buffered += num
        if self._num_buffered >= self.batch_rows:
            self._flush()

    def _column(self, field: pa.Field) -> pa.Array:
        """All buffered values of one column as one Arrow array of the field's type: runs of
        numpy pieces are concatenated and runs of lists chained before a single conversion."""
        arrays = []
        for kind, run in itertools.groupby(self._pieces[field.name], key=type):
            run = list(run)
            if kind is np.ndarray:
                arrays.append(_to_arrow(np.concatenate(run) if len(run) > 1 else run[0], field))
            elif kind is list:
                arrays.append(_to_arrow(list(itertools.chain.from_iterable(run)), field))
            elif kind is _RowsColumn:
                arrays.append(_to_arrow(list(itertools.chain.from_iterable(c.values() for c in run)), field))
            else:
                arrays.extend(_to_arrow(a, field) for a in run)
        return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)

    def _flush(self, *, final: bool = False) -> None:
        """Write every full `batch_rows` batch buffered; with `final`, the remainder too."""
        if self._num_buffered == 0:
            return
        arrays = [self._column(field) for field in self.schema]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        self._open_rows = None
        start = 0
        while batch.num_rows - start >= self.batch_rows or (final and start < batch.num_rows):
            self._write(batch.slice(start, self.batch_rows))
            start += self.batch_rows
        rest = batch.slice(start) if start < batch.num_rows else None
        self._pieces = {name: [] if rest is None else [rest.column(name)] for name in self._names}
        self._num_buffered = 0 if rest is None else rest.num_rows

    def _write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self._num_written += batch.num_rows

    # -- finishing -------------------------------------------------------------------------
    def close(self) -> WriteStats:
        """Flush what is buffered, make the file durable and move it onto `path`.
        Idempotent; if finishing fails the temporary file is removed and the error raised."""
        if self._stats is not None:
            return self._stats
        self._check_open()
        try:
            self._flush(final=True)
            self._writer.close()
            self._sink.flush()
            os.fsync(self._sink.fileno())
            self._sink.close()
            num_bytes = self._temp.stat().st_size
            os.replace(self._temp, self.path)
        except BaseException:
            self.abort()
            raise
        _fsync_dir(self.path.parent)
        self._stats = WriteStats(num_rows=self._num_written, num_bytes=num_bytes)
        return self._stats

    def abort(self) -> None:
        """Discard everything: close and delete the temporary file; `path` is left untouched."""
        if self._stats is not None:
            return
        try:
            if not self._sink.closed:
                try:
                    self._writer.close()
                except Exception:  # noqa: BLE001 - the file is being thrown away anyway
                    pass
                self._sink.close()
        finally:
            self._temp.unlink(missing_ok=True)
            self._pieces = {name: [] for name in self._names}
            self._open_rows = None
            self._num_buffered = 0


def to_jsonable(obj: Any) -> Any:
    """Recursively turn `obj` into strict JSON values: NaN and +-inf become None (null),
    numpy scalars and arrays become Python numbers and lists, tuples become lists.

    >>> to_jsonable({"p50": float("nan"), "n": np.int64(3), "xs": (1.5, float("inf"))})
    {'p50': None, 'n': 3, 'xs': [1.5, None]}
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> int:
    """Write `obj` as indented strict JSON (see `to_jsonable`) to `path` all at once: a
    temporary sibling is written, fsynced and moved into place with `os.replace`, so a
    reader sees the old file or the new one, never a torn one. Returns the bytes written."""
    path = Path(path)
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    data = text.encode("utf-8")
    temp = _temp_sibling(path)
    try:
        with open(temp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return len(data)
