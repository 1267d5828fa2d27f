"""Tests of clustersim.records: atomic streaming Arrow writer, schemas and run summary."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clustersim.records.schemas as schemas_module
from clustersim.records import (
    REQUESTS,
    STATUS_VALUES,
    STEPS,
    ArrowWriter,
    WriteStats,
    littles_law,
    request_row,
    summarize,
    write_json_atomic,
)
from clustersim.serving.request import Request, RequestSpec, Status

SMALL = pa.schema([("x_s", pa.float64()), ("n", pa.int32()), ("name", pa.string())])
NAN = math.nan


def _read(path: os.PathLike[str]) -> tuple[pa.Table, list[int]]:
    """The file's table and the row count of each record batch in it."""
    with pa.OSFile(os.fspath(path), "rb") as f:
        reader = pa.ipc.open_file(f)
        sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
        return reader.read_all(), sizes


# -- writer -------------------------------------------------------------------------------


def test_exception_inside_with_leaves_no_target_and_no_temp(tmp_path):
    target = tmp_path / "requests.arrow"
    with pytest.raises(RuntimeError, match="boom"):
        with ArrowWriter(target, SMALL, batch_rows=2) as w:
            for i in range(5):  # two full batches already written to the temp file
                w.append(x_s=0.5 * i, n=i, name="a")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "t.arrow"
    with ArrowWriter(target, SMALL) as w:
        w.append(x_s=1.0, n=1, name="old")
    before = target.read_bytes()
    with pytest.raises(KeyError):
        with ArrowWriter(target, SMALL) as w:
            w.append(x_s=2.0, n=2, name="new")
            {}["missing"]
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.arrow"]


def test_round_trip_is_exact_and_carries_metadata(tmp_path):
    rows = [
        {"x_s": 0.1, "n": 1, "name": "a"},
        {"x_s": NAN, "n": -7, "name": ""},
        {"x_s": 1e300, "n": 2**31 - 1, "name": "ünïcode"},
    ]
    path = tmp_path / "r.arrow"
    with ArrowWriter(path, SMALL, metadata={"seed": "42", "version": "0.1.0"}) as w:
        assert not path.exists()  # written under a temporary name until close
        for row in rows:
            w.append(**row)
    table, sizes = _read(path)
    got = table.to_pylist()
    assert got[0] == rows[0] and got[2] == rows[2]
    assert math.isnan(got[1]["x_s"]) and got[1]["n"] == -7 and got[1]["name"] == ""
    assert table.schema.equals(SMALL)  # same fields and types
    assert table.schema.metadata == {b"seed": b"42", b"version": b"0.1.0"}
    assert sizes == [3]
    assert w.stats == WriteStats(num_rows=3, num_bytes=path.stat().st_size)
    assert w.close() == w.stats  # idempotent


def test_batches_are_flushed_every_batch_rows(tmp_path):
    path = tmp_path / "b.arrow"
    with ArrowWriter(path, SMALL, batch_rows=3) as w:
        for i in range(10):
            w.append(x_s=float(i), n=i, name=str(i))
            assert w.num_buffered_rows == (i + 1) % 3  # bounded memory: full batches leave at once
    table, sizes = _read(path)
    assert sizes == [3, 3, 3, 1]  # ceil(10 / 3) batches, only the last short
    assert table.column("n").to_pylist() == list(range(10))


def test_extend_with_numpy_arrays_keeps_order_and_batch_size(tmp_path):
    path = tmp_path / "e.arrow"
    with ArrowWriter(path, SMALL, batch_rows=4) as w:
        w.append(x_s=-1.0, n=-1, name="first")
        ns = np.arange(6)
        w.extend({"x_s": np.arange(6, dtype=np.float64), "n": ns, "name": ["k"] * 6})
        ns[:] = 0  # the caller reuses its buffer: the writer kept a copy
        w.extend({"x_s": np.array([]), "n": np.array([], dtype=np.int64), "name": []})
        w.append(x_s=99.0, n=99, name="last")
    table, sizes = _read(path)
    assert sizes == [4, 4]
    assert table.column("n").to_pylist() == [-1, 0, 1, 2, 3, 4, 5, 99]
    assert table.column("n").type == pa.int32()  # int64 numpy cast safely to the declared type


def test_extend_steps_schema_with_float64_utilization(tmp_path):
    k = 5
    cols = {name: np.zeros(k, dtype=np.int64) for name in STEPS.names}
    cols["start_s"] = np.arange(k) * 0.03
    cols["step_s"] = np.full(k, 0.03)
    cols["compute_util"] = np.full(k, 0.5)
    with ArrowWriter(tmp_path / "steps.arrow", STEPS) as w:
        w.extend(cols)
    table, _ = _read(tmp_path / "steps.arrow")
    assert table.num_rows == k and table.column("compute_util").type == pa.float32()
    assert table.column("compute_util").to_pylist() == [0.5] * k


def test_wrong_or_missing_column_raises_at_once(tmp_path):
    with ArrowWriter(tmp_path / "w.arrow", SMALL) as w:
        with pytest.raises(ValueError, match=r"unknown columns \['nn'\]"):
            w.append(x_s=1.0, nn=1, name="a")
        with pytest.raises(ValueError, match=r"missing columns \['name'\]"):
            w.append(x_s=1.0, n=1)
        with pytest.raises(ValueError, match="unknown columns"):
            w.extend({"x_s": [1.0], "n": [1], "name": ["a"], "extra": [0]})
        with pytest.raises(ValueError, match="differ in length"):
            w.extend({"x_s": [1.0, 2.0], "n": [1], "name": ["a"]})
        assert w.num_rows == 0


def test_unsafe_value_raises_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="'n'"):
        with ArrowWriter(tmp_path / "v.arrow", SMALL) as w:
            w.append(x_s=1.0, n=1.5, name="a")  # 1.5 would be truncated in an int column
    with pytest.raises(ValueError, match="'n'"):
        with ArrowWriter(tmp_path / "v.arrow", SMALL) as w:
            w.extend({"x_s": [1.0], "n": np.array([2**40]), "name": ["a"]})  # int32 overflow
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=40, deadline=None)
@given(
    batch_rows=st.integers(1, 7),
    chunks=st.lists(st.tuples(st.sampled_from(["extend", "append", "values"]), st.integers(0, 9)), max_size=8),
)
def test_any_mix_of_append_and_extend_round_trips(tmp_path_factory, batch_rows, chunks):
    path = tmp_path_factory.mktemp("h") / "h.arrow"
    expected: list[int] = []
    with ArrowWriter(path, SMALL, batch_rows=batch_rows) as w:
        for how, k in chunks:
            ids = list(range(len(expected), len(expected) + k))
            if how == "extend":
                names = [str(i) for i in ids]
                w.extend({"x_s": np.array(ids, dtype=float) / 2, "n": np.array(ids), "name": names})
            elif how == "append":
                for i in ids:
                    w.append(x_s=i / 2, n=i, name=str(i))
            else:
                for i in ids:
                    w.append_values((i / 2, i, str(i)))
            expected += ids
            assert w.num_buffered_rows == len(expected) % batch_rows
    table, sizes = _read(path)
    assert table.to_pylist() == [{"x_s": i / 2, "n": i, "name": str(i)} for i in expected]
    full, rest = divmod(len(expected), batch_rows)
    assert sizes == [batch_rows] * full + ([rest] if rest else [])
    assert w.stats.num_rows == len(expected)


def test_append_values_checks_the_count(tmp_path):
    with ArrowWriter(tmp_path / "v.arrow", SMALL) as w:
        with pytest.raises(ValueError, match="2 values, the schema has 3 columns"):
            w.append_values((1.0, 2))


def test_write_json_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"a": 1})
    n = write_json_atomic(path, {"p50": NAN, "n": np.int64(3), "xs": (1.5, math.inf)})
    text = path.read_text()
    assert n == len(text.encode())
    assert json.loads(text) == {"p50": None, "n": 3, "xs": [1.5, None]}
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})  # fails before anything is replaced
    assert json.loads(path.read_text())["n"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


# -- schemas ------------------------------------------------------------------------------


def _request(
    rid: int,
    arrival_s: float,
    first_token_s: float,
    finish_s: float,
    prompt: int,
    generated: int,
    status: Status = Status.FINISHED,
    requested: int | None = None,
) -> Request:
    spec = RequestSpec(rid, arrival_s, prompt, generated if requested is None else requested)
    return Request(spec, replica=0, num_generated=generated, first_token_s=first_token_s,
                   finish_s=finish_s, status=status)


def test_request_row_hand_computed():
    # ttft = 2.5 - 2 = 0.5; tpot = (4.5 - 2.5) / (5 - 1) = 0.5; e2e = 4.5 - 2 = 2.5
    row = request_row(_request(3, 2.0, 2.5, 4.5, prompt=10, generated=5))
    assert (row["ttft_s"], row["tpot_s"], row["e2e_s"]) == (0.5, 0.5, 2.5)
    assert set(row) == set(REQUESTS.names)
    one = request_row(_request(4, 1.0, 1.25, 1.25, prompt=10, generated=1))
    assert math.isnan(one["tpot_s"]) and one["e2e_s"] == 0.25
    failed = request_row(
        _request(5, 1.0, 1.5, 3.0, prompt=10, generated=3, status=Status.FAILED, requested=9)
    )
    assert failed["status"] == "failed" and math.isnan(failed["finish_s"])
    assert math.isnan(failed["tpot_s"]) and math.isnan(failed["e2e_s"]) and failed["ttft_s"] == 0.5
    with pytest.raises(ValueError, match="status=None"):
        request_row(Request(RequestSpec(6, 0.0, 1, 1)))


def test_schemas_are_documented_with_units():
    doc = schemas_module.__doc__
    for schema in (REQUESTS, STEPS):
        for field in schema:
            assert f"\n{field.name} " in doc, field.name
            assert field.metadata[b"description"]
    assert set(STATUS_VALUES) == {"finished", "rejected", "failed", "unfinished"}


# -- summary ------------------------------------------------------------------------------


def _hand_table() -> pa.Table:
    reqs = [
        _request(0, 0.0, 0.1, 1.1, 100, 11),  # ttft .1, tpot 1.0/10 = .1, e2e 1.1
        _request(1, 1.0, 1.2, 2.2, 200, 6),  # ttft .2, tpot 1.0/5 = .2, e2e 1.2
        _request(2, 2.0, 2.3, 3.3, 300, 3),  # ttft .3, tpot 1.0/2 = .5, e2e 1.3
        _request(3, 3.0, 3.4, 3.4, 400, 1),  # ttft .4, tpot NaN, e2e .4
        _request(4, 4.0, 4.5, 10.0, 500, 12),  # ttft .5, tpot 5.5/11 = .5, e2e 6.0
        _request(5, 0.5, NAN, NAN, 10_000, 0, Status.REJECTED, requested=5),
        _request(6, 9.0, 9.5, NAN, 50, 3, Status.UNFINISHED, requested=10),
    ]
    return pa.Table.from_pylist([request_row(r) for r in reqs], schema=REQUESTS)


def test_summary_hand_computed_latency_throughput_and_slo():
    s = summarize(_hand_table(), num_chips=4, slo_ttft_s=0.35, slo_tpot_s=0.3)
    assert s["num_requests"] == {
        "total": 7, "finished": 5, "rejected": 1, "failed": 0, "unfinished": 1
    }
    # window: first arrival 0.0 to last finish 10.0
    assert s["window"]["start_s"] == 0.0 and s["window"]["duration_s"] == 10.0
    lat = s["latency"]
    # linear percentiles at rank q/100 * (n - 1) of the sorted finished values
    # ttft .1 .2 .3 .4 .5: p50 rank 2 -> .3; p90 rank 3.6 -> .46; p99 rank 3.96 -> .496
    assert lat["ttft_s"]["count"] == 5
    assert lat["ttft_s"]["mean"] == pytest.approx(0.3)
    assert lat["ttft_s"]["p50"] == pytest.approx(0.3)
    assert lat["ttft_s"]["p90"] == pytest.approx(0.46)
    assert lat["ttft_s"]["p99"] == pytest.approx(0.496)
    # tpot .1 .2 .5 .5 (NaN skipped): p50 rank 1.5 -> .35; p90 rank 2.7 -> .5
    assert lat["tpot_s"]["count"] == 4
    assert lat["tpot_s"]["mean"] == pytest.approx(1.3 / 4)
    assert lat["tpot_s"]["p50"] == pytest.approx(0.35)
    assert lat["tpot_s"]["p90"] == pytest.approx(0.5)
    # e2e .4 1.1 1.2 1.3 6.0: p50 1.2; p90 1.3 + .6 * 4.7 = 4.12; p99 1.3 + .96 * 4.7 = 5.812
    assert lat["e2e_s"]["mean"] == pytest.approx(2.0)
    assert lat["e2e_s"]["p50"] == pytest.approx(1.2)
    assert lat["e2e_s"]["p90"] == pytest.approx(4.12)
    assert lat["e2e_s"]["p99"] == pytest.approx(5.812)
    # throughput over 10 s: 5 requests, 1500 prompt tokens, 11+6+3+1+12 = 33 output tokens
    tp = s["throughput"]
    assert tp["requests_s"] == pytest.approx(0.5)
    assert tp["input_tokens_s"] == pytest.approx(150.0)
    assert tp["output_tokens_s"] == pytest.approx(3.3)
    assert tp["total_tokens_s"] == pytest.approx(153.3)
    assert tp["output_tokens_s_per_chip"] == pytest.approx(3.3 / 4)
    # SLO ttft <= .35 and tpot <= .3: requests 0 and 1 meet it (2 breaks tpot, 3 and 4 ttft)
    slo = s["slo"]
    assert slo["num_met"] == 2
    assert slo["attainment"] == pytest.approx(2 / 5)
    assert slo["attainment_all"] == pytest.approx(2 / 7)
    assert slo["goodput_requests_s"] == pytest.approx(0.2)
    assert slo["goodput_output_tokens_s"] == pytest.approx((11 + 6) / 10)
    assert slo["goodput_tokens_s"] == pytest.approx((100 + 200 + 11 + 6) / 10)
    json.dumps(s, allow_nan=False)


def test_slo_tpot_only_passes_single_token_requests_and_given_duration():
    s = summarize(_hand_table(), num_chips=1, duration_s=20.0, slo_tpot_s=0.3)
    assert s["slo"]["num_met"] == 3  # requests 0, 1 and the one-token request 3
    assert s["window"] == {
        "start_s": 0.0, "end_s": 20.0, "duration_s": 20.0, "duration_from": "given"
    }
    assert s["throughput"]["requests_s"] == pytest.approx(5 / 20)
    none = summarize(_hand_table(), num_chips=1)
    assert none["slo"]["attainment"] is None and none["slo"]["num_met"] is None


def _hand_steps() -> pa.Table:
    rows = [  # (start, replica, step, seqs, prefill, decode, compute util, hbm util)
        (0.0, 0, 1.0, 2, 100, 0, 0.5, 0.25),
        (1.0, 0, 2.0, 4, 0, 4, 0.25, 0.5),
        (9.0, 1, 2.0, 1, 0, 1, 1.0, 0.75),  # runs 1 s past the window end at 10 s
    ]
    cols = {name: [0] * len(rows) for name in STEPS.names}
    for j, name in enumerate(["start_s", "replica", "step_s", "num_seqs", "num_prefill_tokens",
                              "num_decode_tokens", "compute_util", "hbm_util"]):
        cols[name] = [r[j] for r in rows]
    return pa.table(cols, schema=STEPS)


def test_step_summary_hand_computed():
    st_ = summarize(_hand_table(), _hand_steps(), num_chips=4)["steps"]
    assert st_["num_steps"] == 3 and st_["busy_s"] == pytest.approx(5.0)
    # time-weighted (2*1 + 4*2 + 1*2) / 5; token-weighted (2*100 + 4*4 + 1*1) / 105
    assert st_["mean_num_seqs_time_weighted"] == pytest.approx(12 / 5)
    assert st_["mean_num_seqs_token_weighted"] == pytest.approx(217 / 105)
    assert st_["mean_num_tokens_per_step"] == pytest.approx(105 / 3)
    assert st_["compute_util_mean"] == pytest.approx((0.5 * 1 + 0.25 * 2 + 1.0 * 2) / 5)
    assert st_["hbm_util_mean"] == pytest.approx((0.25 * 1 + 0.5 * 2 + 0.75 * 2) / 5)
    # replica 0 busy 3 of 10 s; replica 1 busy 1 s inside the window
    assert st_["busy_fraction"] == pytest.approx({"0": 0.3, "1": 0.1})
    assert st_["busy_fraction_mean"] == pytest.approx(0.2)


def test_summary_from_files_equals_summary_from_tables(tmp_path):
    req, steps = _hand_table(), _hand_steps()
    with ArrowWriter(tmp_path / "requests.arrow", REQUESTS, batch_rows=2) as w:
        w.extend({name: req.column(name) for name in REQUESTS.names})
    with ArrowWriter(tmp_path / "steps.arrow", STEPS, batch_rows=2) as w:
        w.extend({name: steps.column(name).to_numpy() for name in STEPS.names})
    kwargs = {"num_chips": 4, "slo_ttft_s": 0.35, "slo_tpot_s": 0.3}
    from_files = summarize(tmp_path / "requests.arrow", tmp_path / "steps.arrow", **kwargs)
    assert from_files == summarize(req, steps, **kwargs)


def test_empty_run_gives_nulls():
    empty = REQUESTS.empty_table()
    s = summarize(empty, STEPS.empty_table(), num_chips=8, slo_ttft_s=1.0, slo_tpot_s=0.1)
    assert s["num_requests"]["total"] == 0 and s["num_requests"]["finished"] == 0
    nulls = {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None}
    assert s["latency"]["ttft_s"] == nulls
    assert s["throughput"]["requests_s"] is None and s["slo"]["attainment"] is None
    assert s["steps"]["num_steps"] == 0 and s["steps"]["busy_fraction"] == {}
    assert s["window"]["duration_s"] is None
    json.dumps(s, allow_nan=False)
    assert all(math.isnan(v) for v in littles_law(empty))


def test_summary_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_chips=0"):
        summarize(_hand_table(), num_chips=0)
    with pytest.raises(ValueError, match="duration_s=-1"):
        summarize(_hand_table(), num_chips=1, duration_s=-1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(STATUS_VALUES), st.floats(0, 100), st.floats(0, 10), st.integers(1, 50)
        ),
        max_size=30,
    )
)
def test_summary_counts_equal_rows_by_status(rows):
    reqs = []
    for i, (status, arrival, wait, n) in enumerate(rows):
        finished = status == "finished"
        reqs.append(_request(i, arrival, arrival + wait / 2, arrival + wait if finished else NAN,
                             prompt=n, generated=n if finished else 0, status=Status(status)))
    table = pa.Table.from_pylist([request_row(r) for r in reqs], schema=REQUESTS)
    s = summarize(table, num_chips=1, slo_ttft_s=1.0)
    for value in STATUS_VALUES:
        assert s["num_requests"][value] == sum(r[0] == value for r in rows)
    assert s["num_requests"]["total"] == len(rows)
    assert s["latency"]["e2e_s"]["count"] == s["num_requests"]["finished"]
    if s["slo"]["attainment"] is not None:
        assert 0.0 <= s["slo"]["attainment"] <= 1.0
    json.dumps(s, allow_nan=False)


# -- Little's law -------------------------------------------------------------------------


def test_littles_law_hand_computed():
    both = pa.Table.from_pylist(
        [request_row(_request(i, 1.0 * i, 1.0 + i, 2.0 + i, 5, 2)) for i in (0, 1)],
        schema=REQUESTS,
    )
    # window [0, 3]: L = (2 + 2) / 3; lambda = 2 / 3, W = 2 -> 4 / 3
    mean_in_system, lam_w = littles_law(both)
    assert mean_in_system == pytest.approx(4 / 3) and lam_w == pytest.approx(4 / 3)
    unfinished = request_row(_request(2, 2.0, 2.5, NAN, 5, 1, Status.UNFINISHED, requested=4))
    rejected = request_row(_request(3, 0.5, NAN, NAN, 5, 0, Status.REJECTED))
    more = pa.concat_tables([both, pa.Table.from_pylist([unfinished, rejected], schema=REQUESTS)])
    # the unfinished one is in system from 2 to the window end 3: L = 5 / 3; lambda = 3 / 3, W = 2
    mean_in_system, lam_w = littles_law(more)
    assert mean_in_system == pytest.approx(5 / 3) and lam_w == pytest.approx(2.0)
    # window [1, 3]: L = (1 + 2 + 1) / 2 = 2; arrivals at 1 and 2 -> lambda = 1, W = 2 (request 1)
    assert littles_law(more, start_s=1.0) == pytest.approx((2.0, 2.0))
