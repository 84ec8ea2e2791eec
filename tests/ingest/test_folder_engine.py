"""Folder ingest with the events checked in DuckDB (``[data] engine = "duckdb"``): the same
report, messages, exit status, rejected rows and processed rows as the in-memory file path."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_ingest import BAD_ROWS, INSERT_AT, KEYS, company, run_cli, with_bad_row, write_raw

from insightos_utils.config import DataConfig
from insightos_utils.errors import InputError
from insightos_utils.ingest import ingest

NOW = pd.Timestamp("2026-12-01 12:00:00")
COMPARED = (
    "present",
    "source",
    "format",
    "rows_read",
    "duplicates",
    "rejected",
    "rejected_rows",
    "user_rejected_rows",
    "reject_share",
    "rows_written",
    "date_range",
    "implausible_timestamps",
    "user_rejected_cause",
    "columns",
    "extra_columns",
    "rejected_file",
)
CASES = [
    "bad_occurred_at",
    "orphan_event",
    "event_id_reused",
    "properties_not_object",
    "properties_broken",
    "empty_event_id",
    "event_in_2200",
    "unknown_status",  # a users rule: the events are checked against the users ingest keeps
    "duplicate_user",
]


def both_engines(
    tables: dict[str, pd.DataFrame], tmp_path: Path, fmt: str = "csv", share: float = 0.5
) -> dict[str, tuple[dict | str, Path]]:
    """Ingest the same raw folder with engine memory and engine duckdb: per engine the report
    (or the ``InputError`` message) and the output folder."""
    raw = write_raw(tmp_path / f"raw-{fmt}", tables, fmt)
    found: dict[str, tuple[dict | str, Path]] = {}
    for engine in ("memory", "duckdb"):
        out = tmp_path / f"out-{fmt}-{engine}"
        config = DataConfig(engine=engine, max_reject_share=share)
        try:
            found[engine] = (
                ingest(out, raw_dir=raw, config=config, show_progress=False, now=NOW),
                out,
            )
        except InputError as error:
            found[engine] = (str(error), out)
    return found


def assert_same_outputs(found: dict[str, tuple[dict | str, Path]], engine: str = "duckdb") -> None:
    (memory, memory_out), (duck, duck_out) = found["memory"], found[engine]
    assert type(memory) is type(duck), (memory, duck)
    if isinstance(memory, str):  # the messages name each run's own output folder
        assert duck.replace(str(duck_out), str(memory_out)) == memory
    memory_report = json.loads((memory_out / "ingest_report.json").read_text())
    duck_report = json.loads((duck_out / "ingest_report.json").read_text())
    assert duck_report["engine"]["name"] == engine
    if duck_report["error"]:
        duck_report["error"] = duck_report["error"].replace(str(duck_out), str(memory_out))
    for key in ("status", "error", "parquet_written", "latest_timestamp", "as_of_default"):
        assert duck_report[key] == memory_report[key], key
    for name, entry in memory_report["tables"].items():
        for key in COMPARED:
            assert duck_report["tables"][name].get(key) == entry.get(key), (name, key)
    for path in memory_out.glob("rejected_*.csv"):
        want = pd.read_csv(path, dtype=str, keep_default_na=False)
        got = pd.read_csv(duck_out / path.name, dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(got, want)
    assert sorted(p.name for p in duck_out.glob("*")) == sorted(
        p.name for p in memory_out.glob("*")
    )
    for path in memory_out.glob("*.parquet"):
        key = KEYS[path.stem]
        want = pd.read_parquet(path).sort_values(key, ignore_index=True)
        got = pd.read_parquet(duck_out / path.name).sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
        assert [str(t) for t in got.dtypes] == [str(t) for t in want.dtypes]


PARQUET_CASES = ("orphan_event", "bad_occurred_at", "event_id_reused")  # the rest: make test-slow


@pytest.mark.parametrize(
    ("name", "fmt"),
    [(name, "csv") for name in CASES]
    + [
        pytest.param(name, "parquet", marks=() if name in PARQUET_CASES else pytest.mark.extended)
        for name in CASES
    ],
)
def test_bad_rows_same_as_memory(name: str, fmt: str, tmp_path: Path) -> None:
    case = BAD_ROWS[name]
    found = both_engines(with_bad_row(case), tmp_path, fmt)
    assert_same_outputs(found)
    rejected = pd.read_csv(found["duckdb"][1] / f"rejected_{case.table}.csv", dtype=str)
    assert rejected["reason"].tolist()[:1] == [case.reason]


@pytest.mark.parametrize("name", ["orphan_event", "bad_occurred_at"])
def test_over_the_threshold_same_message_exit_2_and_previous_parquet_kept(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = both_engines(with_bad_row(BAD_ROWS[name]), tmp_path, share=0.01)
    assert isinstance(found["duckdb"][0], str) and f"line {INSERT_AT + 2}" in found["duckdb"][0]
    assert_same_outputs(found)

    config = tmp_path / "duckdb.toml"
    config.write_text('[data]\nengine = "duckdb"\n', encoding="utf-8")
    out = tmp_path / "cli"
    good = write_raw(tmp_path / "good", company())
    assert run_cli("--raw", good, "--out", out, "--config", config) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    assert run_cli("--raw", tmp_path / "raw-csv", "--out", out, "--config", config) == 2
    assert BAD_ROWS[name].reason in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before
    assert not list(out.glob(".*tmp")), "temporary files left behind"


def test_redelivered_events_and_a_rejected_users_cascade(tmp_path: Path) -> None:
    tables = company()
    events = tables["events"]
    tables["events"] = pd.concat([events, events.iloc[[3, 3, 7]]], ignore_index=True)
    tables["users"].loc[0, "created_at"] = "not a date"  # u01: its events go with it
    for fmt in ("csv", "parquet"):
        found = both_engines(tables, tmp_path, fmt)
        assert_same_outputs(found)
        report = found["duckdb"][0]
        assert isinstance(report, dict)
        assert report["tables"]["events"]["duplicates"] == 3
        assert "line 2 (bad_created_at)" in report["tables"]["events"]["user_rejected_cause"]


def test_csv_lines_count_values_spanning_lines_and_extra_columns(tmp_path: Path) -> None:
    tables = company()
    tables["events"]["channel"] = ["web", "", "app"] * 20  # an extra column, kept
    tables["events"].loc[1, "properties"] = '{"note":\n"two lines"}'
    tables["events"].loc[4, "occurred_at"] = "later"
    found = both_engines(tables, tmp_path)
    assert_same_outputs(found)
    rejected = pd.read_csv(found["duckdb"][1] / "rejected_events.csv")
    assert rejected["line"].tolist() == [7]


def test_typed_parquet_and_header_only_events(tmp_path: Path) -> None:
    tables = company()
    events = tables["events"].copy()
    events["occurred_at"] = pd.to_datetime(events["occurred_at"]).dt.tz_convert("Asia/Tokyo")
    events["event_name"] = events["event_name"].astype("category")  # a dictionary column
    users = tables["users"].assign(user_id=[float(i) for i in range(1, len(tables["users"]) + 1)])
    events["user_id"] = [1.0 + i % 20 for i in range(len(events))]  # ids a database gave as floats
    typed = {**tables, "users": users, "events": events}
    assert_same_outputs(both_engines(typed, tmp_path / "typed", "parquet"))
    empty = {**tables, "events": tables["events"].iloc[:0]}
    assert_same_outputs(both_engines(empty, tmp_path / "empty"))


@pytest.mark.parametrize("damage", ["ragged", "latin1", "missing_column"])
def test_refused_files_same_message(damage: str, tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "raw", company())
    path = raw / "events.csv"
    lines = path.read_text().splitlines()
    if damage == "ragged":
        lines[5] = "e004,u05,page_view"
        path.write_text("\n".join(lines) + "\n")
    elif damage == "latin1":
        lines[6] = lines[6].replace("page_view", "página")
        path.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    else:
        company()["events"].drop(columns=["event_name"]).to_csv(path, index=False)
    messages = []
    for engine in ("memory", "duckdb"):
        with pytest.raises(InputError) as refused:
            ingest(tmp_path / engine, raw_dir=raw, config=DataConfig(engine=engine), now=NOW)
        messages.append(str(refused.value))
        assert not (tmp_path / engine).exists() or not list((tmp_path / engine).glob("*.parquet"))
    # the same words naming the file, line and column; the reader's own error text differs
    assert messages[1].split(" (")[0] == messages[0].split(" (")[0]
    assert "events.csv" in messages[0] and len(messages[1]) < 2 * len(messages[0])


def test_the_memory_limit_reaches_ingest_and_the_later_engine(tmp_path: Path) -> None:
    from insightos_utils.engines import pipeline
    from insightos_utils.ingest import read_processed

    raw = write_raw(tmp_path / "raw", company(), "parquet")
    config = DataConfig(engine="duckdb", engine_memory_limit="300MB")
    report = ingest(tmp_path / "out", raw_dir=raw, config=config, show_progress=False, now=NOW)
    assert report["engine"]["memory_limit"] == "300MB"
    ref = pipeline.engine_of(read_processed(tmp_path / "out").events)
    assert ref is not None
    with pipeline.open_ref(ref) as tables:
        (limit,) = tables.backend.raw_sql("SELECT current_setting('memory_limit')").fetchone()
    assert limit.startswith("286") and "MiB" in limit  # 300 MB = 286.1 MiB


def test_a_folder_for_the_spark_engine_is_checked_out_of_core_too(tmp_path: Path) -> None:
    """Under engine spark the events of a local folder are checked and written by DuckDB as
    under duckdb (no Spark session is needed for ingest), with the same outputs as memory."""
    from insightos_utils.engines import pipeline
    from insightos_utils.ingest import read_processed

    raw = write_raw(tmp_path / "raw", with_bad_row(BAD_ROWS["orphan_event"]), "csv")
    found: dict[str, tuple[dict | str, Path]] = {}
    for engine in ("memory", "spark"):
        config = DataConfig(engine=engine, max_reject_share=0.5)
        out = tmp_path / engine
        found[engine] = (ingest(out, raw_dir=raw, config=config, show_progress=False, now=NOW), out)
    report = found["spark"][0]
    assert isinstance(report, dict) and report["tables"]["events"]["validated_in"] == "duckdb"
    assert_same_outputs(found, engine="spark")
    events = read_processed(tmp_path / "spark").events
    ref = pipeline.engine_of(events)
    assert len(events) == 0 and ref is not None and ref.engine == "spark"
