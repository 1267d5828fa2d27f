"""Trace parsers: bundled real samples, hand-made files of each format, and malformed rows."""

import csv
import io
import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustersim.errors import ScenarioError, TraceError
from clustersim.serving.request import RequestSpec
from clustersim.serving.traces import detect_format, iter_trace, load_trace, read_trace

TRACES = Path(__file__).resolve().parents[1] / "traces"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)


# ---------------------------------------------------------------- bundled samples


@pytest.mark.parametrize(
    ("name", "fmt", "num_rows"),
    [
        ("azure_llm_2023_code.csv", "azure", 8819),
        ("azure_llm_2023_conv.csv", "azure", 19366),
        ("mooncake_fast25_conversation_head2000.jsonl", "mooncake", 2000),
        ("mooncake_fast25_synthetic_head1000.jsonl", "mooncake", 1000),
    ],
)
def test_bundled_samples_parse_whole(name, fmt, num_rows):
    trace = load_trace(TRACES / name)
    reqs = trace.requests
    assert trace.stats.format == fmt == detect_format(TRACES / name)
    assert trace.stats.num_rows == trace.stats.num_requests == len(reqs) == num_rows
    assert [r.request_id for r in reqs] == list(range(num_rows))
    assert reqs[0].arrival_s == 0.0
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(reqs, reqs[1:]))
    assert all(r.num_prompt_tokens >= 1 and r.num_output_tokens >= 1 for r in reqs)


def test_azure_conv_means_match_the_data_readme():
    # shared/data/traces/README.md: conv input mean 1154.7, output mean 211.1 (1 decimal).
    reqs = read_trace(TRACES / "azure_llm_2023_conv.csv")
    assert abs(_mean([r.num_prompt_tokens for r in reqs]) - 1154.7) <= 0.05
    assert abs(_mean([r.num_output_tokens for r in reqs]) - 211.1) <= 0.05


def test_azure_code_means_match_the_data_readme():
    # README: code input mean 2047.8, output mean 27.9.
    reqs = read_trace(TRACES / "azure_llm_2023_code.csv")
    assert abs(_mean([r.num_prompt_tokens for r in reqs]) - 2047.8) <= 0.05
    assert abs(_mean([r.num_output_tokens for r in reqs]) - 27.9) <= 0.05


def test_azure_conv_span_from_first_and_last_timestamps():
    # 18:15:46.6805900 -> 19:14:08.4025270 = 58 min + 21.7219370 s = 3501.721937 s
    reqs = read_trace(TRACES / "azure_llm_2023_conv.csv")
    assert reqs[-1].arrival_s == pytest.approx(3501.721937, abs=1e-9)
    assert (reqs[-1].num_prompt_tokens, reqs[-1].num_output_tokens) == (197, 183)


def test_mooncake_head_last_timestamp_is_669_s():
    # last line of the head has "timestamp": 669000 (ms); the first has 0.
    reqs = read_trace(TRACES / "mooncake_fast25_conversation_head2000.jsonl")
    assert reqs[-1].arrival_s == 669.0
    assert (reqs[0].num_prompt_tokens, reqs[0].num_output_tokens) == (6758, 500)


def test_burstgpt_example_skips_the_failed_row():
    trace = load_trace(TRACES / "burstgpt_synthetic_example.csv")
    assert trace.stats.format == "burstgpt"
    assert trace.stats.num_rows == 6
    assert trace.stats.num_skipped_zero_output == 1
    assert [(r.arrival_s, r.num_prompt_tokens) for r in trace.requests] == [
        (0.0, 100), (1.0, 800), (3.0, 60), (7.0, 1200), (8.0, 30)
    ]
    assert [r.request_id for r in trace.requests] == [0, 1, 2, 3, 4]


def test_max_requests_stops_early_and_time_scale_multiplies_gaps():
    full = read_trace(TRACES / "azure_llm_2023_conv.csv", max_requests=50)
    half = read_trace(TRACES / "azure_llm_2023_conv.csv", max_requests=50, time_scale=0.5)
    assert len(full) == len(half) == 50
    assert [h.arrival_s for h in half] == pytest.approx([f.arrival_s / 2 for f in full])
    assert read_trace(TRACES / "azure_llm_2023_conv.csv", max_requests=0) == []


# ---------------------------------------------------------------- hand-made files


def test_azure_tiny_file_keeps_seven_fractional_digits(tmp_path):
    path = _write(tmp_path, "a.csv",
                  "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2023-11-16 23:59:59.9799600,374,44\n"
                  "2023-11-16 23:59:59.9799600,10,1\n"
                  "2023-11-17 00:00:01.0000001,396,109")  # no final newline, as upstream
    reqs = read_trace(path)
    # 23:59:59.97996 -> 00:00:01.0000001 next day = 0.02004 + 1.0000001 = 1.0200401 s
    assert reqs == [
        RequestSpec(0, 0.0, 374, 44),
        RequestSpec(1, 0.0, 10, 1),
        RequestSpec(2, pytest.approx(1.0200401, abs=1e-12), 396, 109),
    ]


def test_azure_2024_variant_with_utc_offset(tmp_path):
    path = _write(tmp_path, "a24.csv",
                  "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2024-05-10 00:00:00.009930+00:00,100,10\n"
                  "2024-05-10 02:00:00.509930+02:00,200,20\n")  # = 00:00:00.50993 UTC
    reqs = read_trace(path, "azure")
    assert [r.arrival_s for r in reqs] == pytest.approx([0.0, 0.5])


def test_burstgpt_tiny_file_with_extra_columns(tmp_path):
    path = _write(tmp_path, "b.csv",
                  "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type,"
                  "Session ID,Elapsed time\n"
                  "5,ChatGPT,10,2,12,Conversation log,7,1.5\n"
                  "9.25,GPT-4,20,0,20,API log,8,0.1\n"
                  "12,GPT-4,30,3,33,API log,8,0.3\n")
    trace = load_trace(path)
    assert trace.stats.format == "burstgpt"
    assert trace.requests == (RequestSpec(0, 0.0, 10, 2), RequestSpec(1, 7.0, 30, 3))
    assert trace.stats.num_skipped_zero_output == 1
    assert trace.stats.total_prompt_tokens == 40 and trace.stats.span_s == 7.0


def test_zero_output_policies(tmp_path):
    text = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n" \
           "0,ChatGPT,10,0,10,Conversation log\n1,ChatGPT,20,5,25,Conversation log\n"
    path = _write(tmp_path, "b.csv", text)
    clamped = load_trace(path, zero_output="clamp")
    assert clamped.requests == (RequestSpec(0, 0.0, 10, 1), RequestSpec(1, 1.0, 20, 5))
    assert clamped.stats.num_clamped_zero_output == 1
    with pytest.raises(TraceError, match=r"line 2: Response tokens=0"):
        read_trace(path, zero_output="error")
    # the skipped first row still sets time 0: the second request arrives at 1.0
    assert read_trace(path) == [RequestSpec(0, 1.0, 20, 5)]


def test_azure_zero_output_is_an_error_unless_asked(tmp_path):
    path = _write(tmp_path, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                     "2023-11-16 18:00:00.0000000,5,0\n")
    with pytest.raises(TraceError, match=r"a\.csv line 2: GeneratedTokens=0, must be an integer >= 1"):
        read_trace(path)
    assert read_trace(path, zero_output="clamp") == [RequestSpec(0, 0.0, 5, 1)]
    assert read_trace(path, zero_output="skip") == []


def test_mooncake_tiny_file(tmp_path):
    lines = [{"timestamp": 1000, "input_length": 600, "output_length": 7, "hash_ids": [0, 1]},
             {"timestamp": 1000, "input_length": 30, "output_length": 2, "hash_ids": [0]},
             {"timestamp": 3500, "input_length": 12, "output_length": 1}]
    path = _write(tmp_path, "m.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert read_trace(path) == [RequestSpec(0, 0.0, 600, 7), RequestSpec(1, 0.0, 30, 2),
                                RequestSpec(2, 2.5, 12, 1)]


def test_clustersim_csv_and_window(tmp_path):
    path = _write(tmp_path, "c.csv", "arrival_s,num_prompt_tokens,num_output_tokens\n"
                                     "10,1,1\n10.5,2,2\n11,3,3\n12,4,4\n13,5,5\n")
    assert [r.arrival_s for r in read_trace(path)] == [0.0, 0.5, 1.0, 2.0, 3.0]
    # window [1, 3) in trace seconds, measured from start_s, gaps halved
    trace = load_trace(path, start_s=1.0, end_s=3.0, time_scale=0.5)
    assert trace.requests == (RequestSpec(0, 0.0, 3, 3), RequestSpec(1, 0.5, 4, 4))
    assert trace.stats.num_before_window == 2


def test_gzip_trace(tmp_path):
    import gzip

    path = tmp_path / "c.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("arrival_s,num_prompt_tokens,num_output_tokens\n0,7,8\n")
    assert read_trace(path) == [RequestSpec(0, 0.0, 7, 8)]


def test_iter_trace_streams(tmp_path):
    path = _write(tmp_path, "c.csv", "arrival_s,num_prompt_tokens,num_output_tokens\n"
                                     "0,1,1\n1,2,2\n0.5,3,3\n")
    stream = iter_trace(path)
    assert next(stream) == RequestSpec(0, 0.0, 1, 1)
    assert next(stream) == RequestSpec(1, 1.0, 2, 2)
    with pytest.raises(TraceError, match=r"line 4: arrival_s='0.5' is earlier than line 3"):
        next(stream)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"empty file"),
        ("\n  \n", r"empty file"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n", r"no data rows"),
        ("a,b,c\n1,2,3\n", r"line 1: header 'a,b,c' matches no format"),
        ("\n\na,b,c\n1,2,3\n", r"line 3: header 'a,b,c' matches no format"),
        ("arrival_s,num_prompt_tokens,num_output_tokens\n0,1234567890123456789012,1\n",
         r"line 2: num_prompt_tokens='1234567890123456789012', must be an integer >= 1"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:01,1,1\n"
         "2023-11-16 18:00:00,1,1\n", r"line 3: TIMESTAMP='2023-11-16 18:00:00' is earlier"),
        ('{"timestamp": 5, "input_length": 1, "output_length": 1}\n'
         '{"timestamp": 4, "input_length": 1, "output_length": 1}\n', r"line 2: timestamp=4"),
        ('{"timestamp": 5, "input_length": 1\n', r"line 1: not valid JSON"),
        ("[1, 2]\n", r"line 1: .*not a JSON object"),
    ],
)
def test_file_level_errors(tmp_path, text, pattern):
    with pytest.raises(TraceError, match=pattern):
        read_trace(_write(tmp_path, "t.jsonl" if "JSON" in pattern else "t.csv", text))


def test_missing_file_and_forced_wrong_format(tmp_path):
    with pytest.raises(TraceError, match="cannot open"):
        read_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match=r"lacks column\(s\) Timestamp, Request tokens"):
        read_trace(TRACES / "azure_llm_2023_code.csv", "burstgpt")


def test_bad_options_are_scenario_errors():
    for kwargs, name in [({"time_scale": 0.0}, "time_scale"), ({"max_requests": -1}, "max_requests"),
                         ({"zero_output": "drop"}, "zero_output"), ({"end_s": 0.0}, "end_s"),
                         ({"format": "sharegpt"}, "format")]:
        with pytest.raises(ScenarioError, match=name):
            read_trace(TRACES / "burstgpt_synthetic_example.csv", **kwargs)


# ---------------------------------------------------------------- malformed rows (hypothesis)

CSV_HEADERS = {
    "azure": ["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
    "burstgpt": ["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens",
                 "Log Type"],
    "clustersim": ["arrival_s", "num_prompt_tokens", "num_output_tokens"],
}
CHECKED = {  # columns the parser reads and validates
    "azure": ["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
    "burstgpt": ["Timestamp", "Request tokens", "Response tokens"],
    "clustersim": ["arrival_s", "num_prompt_tokens", "num_output_tokens"],
}


def _valid_row(fmt: str, i: int) -> list[str]:
    if fmt == "azure":
        return [f"2023-11-16 18:{i // 60:02d}:{i % 60:02d}.1234567", str(100 + i), str(1 + i)]
    if fmt == "burstgpt":
        return [str(2 * i), "ChatGPT", str(100 + i), str(1 + i), str(101 + 2 * i), "API log"]
    return [str(0.5 * i), str(100 + i), str(1 + i)]


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# No digits, no line breaks: never a valid count or time, and one CSV line per row.
NON_NUMERIC = st.one_of(
    st.sampled_from(["", " ", "abc", "-", "nan", "inf", "-inf", "NaN", "x1"]),
    st.text(alphabet=string.ascii_letters + " .,;:'\"-+_/#", max_size=12),
)
BAD_NUMBER = st.sampled_from(["-1", "-0.5", "1_0", "0x10", "1e", "١٢", "12abc", "1.5e"])
BAD_COUNT = st.one_of(NON_NUMERIC, BAD_NUMBER, st.sampled_from(["1.5", "2.0", "1e3", " -3 "]))
BAD_AZURE_TIME = st.one_of(NON_NUMERIC, st.sampled_from([
    "2023-13-01 00:00:00", "2023-11-31 00:00:00", "2023-11-16 24:00:00", "2023/11/16 18:00:00",
    "2023-11-16", "18:00:00", "2023-11-16 18:00:00.1234567890", "1700000000",
    "2023-11-16 18:00:00+25:00",
]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(sorted(CSV_HEADERS)),
    num_rows=st.integers(1, 6),
    data=st.data(),
)
def test_malformed_csv_cell_names_line_and_column(tmp_path, fmt, num_rows, data):
    rows = [_valid_row(fmt, i) for i in range(num_rows)]
    bad_row = data.draw(st.integers(0, num_rows - 1), label="bad_row")
    column = data.draw(st.sampled_from(CHECKED[fmt]), label="column")
    if column in ("TIMESTAMP",):
        value = data.draw(BAD_AZURE_TIME, label="value")
    elif column in ("Timestamp", "arrival_s"):
        value = data.draw(st.one_of(NON_NUMERIC, BAD_NUMBER), label="value")
    else:
        value = data.draw(BAD_COUNT, label="value")
    rows[bad_row][CSV_HEADERS[fmt].index(column)] = value
    path = _write(tmp_path, f"h_{fmt}.csv", _csv_text(CSV_HEADERS[fmt], rows))
    with pytest.raises(TraceError) as info:
        read_trace(path)
    message = str(info.value)
    assert f"line {bad_row + 2}:" in message and column in message and str(path) in message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(sorted(CSV_HEADERS)), num_rows=st.integers(1, 5), data=st.data())
def test_missing_or_extra_fields_name_line_and_column(tmp_path, fmt, num_rows, data):
    header = CSV_HEADERS[fmt]
    rows = [_valid_row(fmt, i) for i in range(num_rows)]
    bad_row = data.draw(st.integers(0, num_rows - 1))
    keep = data.draw(st.integers(1, len(header) + 2).filter(lambda k: k != len(header)))
    rows[bad_row] = (rows[bad_row] + ["x", "y"])[:keep]
    path = _write(tmp_path, f"m_{fmt}.csv", _csv_text(header, rows))
    with pytest.raises(TraceError) as info:
        read_trace(path)
    named = header[keep] if keep < len(header) else header[-1]
    assert f"line {bad_row + 2}:" in str(info.value) and named in str(info.value)


JSON_BAD = st.one_of(
    st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
    st.integers(max_value=-1), st.sampled_from([float("nan"), float("inf"), -float("inf"), -1.5]),
)
JSON_BAD_COUNT = st.one_of(JSON_BAD, st.floats(min_value=1, max_value=1e6))  # 2.0 is no int


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num_rows=st.integers(1, 6), data=st.data())
def test_malformed_mooncake_value_names_line_and_key(tmp_path, num_rows, data):
    objs = [{"timestamp": 1000 * i, "input_length": 10 + i, "output_length": 1 + i,
             "hash_ids": [i]} for i in range(num_rows)]
    bad_row = data.draw(st.integers(0, num_rows - 1))
    key = data.draw(st.sampled_from(["timestamp", "input_length", "output_length", "hash_ids",
                                     "missing"]))
    if key == "missing":
        key = data.draw(st.sampled_from(["timestamp", "input_length", "output_length"]))
        del objs[bad_row][key]
    elif key == "hash_ids":
        objs[bad_row][key] = data.draw(st.one_of(st.none(), st.integers(), st.just([-1]),
                                                 st.just(["a"]), st.just([1.5])))
    elif key == "timestamp":
        objs[bad_row][key] = data.draw(JSON_BAD)
    else:
        objs[bad_row][key] = data.draw(st.one_of(JSON_BAD_COUNT, st.just(0)))  # 0: see policy
    path = _write(tmp_path, "m.jsonl", "\n".join(json.dumps(o) for o in objs))
    with pytest.raises(TraceError) as info:
        read_trace(path)
    assert f"line {bad_row + 1}:" in str(info.value) and key in str(info.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
       prefix=st.sampled_from([b"", b"TIMESTAMP,ContextTokens,GeneratedTokens\n",
                               b"arrival_s,num_prompt_tokens,num_output_tokens\n0,1,1\n",
                               b'{"timestamp": 0, "input_length": 1, "output_length": 1}\n']))
def test_arbitrary_bytes_give_requests_or_trace_error(tmp_path, blob, prefix):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(prefix + blob)
    try:
        reqs = read_trace(path)
    except TraceError:
        return
    assert all(r.num_prompt_tokens >= 1 and r.num_output_tokens >= 1 for r in reqs)
