"""Ingest against the contract's bad-input rules: refused or quarantined, nothing good lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pandas as pd
import pytest

from insightos_utils.cli import main
from insightos_utils.config import DataConfig
from insightos_utils.ingest import events_per_week, ingest, read_processed, report_tables

N_USERS, N_EVENTS, N_TRANSACTIONS = 30, 60, 20
CAMPAIGN = '{"utm_campaign": "google_gestao_agil", "utm_source": "google", "utm_medium": "cpc"}'


def company() -> dict[str, pd.DataFrame]:
    """A small valid company as raw text. Users u21..u30 have no events or transactions."""
    stamp_forms = (
        "2024-01-{d:02d}T10:00:00Z",
        "2024-01-{d:02d} 08:30:00",
        "2024-01-{d:02d}T12:00:00+02:00",
    )
    statuses = ("lead", "trial", "converted", "lost")
    users = pd.DataFrame(
        {
            "user_id": [f"u{i:02d}" for i in range(1, N_USERS + 1)],
            "created_at": [stamp_forms[i % 3].format(d=1 + i % 20) for i in range(N_USERS)],
            "status": [statuses[i % 4] for i in range(N_USERS)],
            "converted_at": [
                f"2024-02-{1 + i % 20:02d}T09:00:00Z" if statuses[i % 4] == "converted" else ""
                for i in range(N_USERS)
            ],
            "marketing": [
                (CAMPAIGN, '{"utm_source": "newsletter", "utm_medium": "email"}', "")[i % 3]
                for i in range(N_USERS)
            ],
            "plan": [("free", "team", "")[i % 3] for i in range(N_USERS)],  # an extra column
        }
    )
    events = pd.DataFrame(
        {
            "event_id": [f"e{i:03d}" for i in range(N_EVENTS)],
            "user_id": [f"u{1 + i % 20:02d}" for i in range(N_EVENTS)],
            "event_name": [
                ("trial_signup", "project_created", "page_view")[i % 3] for i in range(N_EVENTS)
            ],
            "occurred_at": [
                f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:15:00Z" for i in range(N_EVENTS)
            ],
            "properties": [
                ('{"plan": "team"}', "", '{"a": {"b": [1, 2]}}')[i % 3] for i in range(N_EVENTS)
            ],
        }
    )
    transactions = pd.DataFrame(
        {
            "transaction_id": [f"t{i:03d}" for i in range(N_TRANSACTIONS)],
            "user_id": [f"u{1 + i % 10:02d}" for i in range(N_TRANSACTIONS)],
            "occurred_at": [f"2024-04-{1 + i:02d}T10:00:00Z" for i in range(N_TRANSACTIONS)],
            "amount": [f"{10 + i}.50" for i in range(N_TRANSACTIONS)],
        }
    )
    campaign_spend = pd.DataFrame(
        {
            "campaign": ["google_gestao_agil", "meta_trial", "(none)"],
            "spend": ["1200", "800.5", "0"],
        }
    )
    return {
        "users": users,
        "events": events,
        "transactions": transactions,
        "campaign_spend": campaign_spend,
    }


def write_raw(folder: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def run_cli(*args: str | Path) -> int:
    return main(["ingest", *map(str, args)])


# --- row-level violations: one case per contract rule -----------------------------------------


@dataclass
class BadRow:
    table: str
    row: dict[str, str]
    reason: str
    column: str  # the column the message must name


def _user(**changes: str) -> dict[str, str]:
    row = {
        "user_id": "u99",
        "created_at": "2024-01-05T10:00:00Z",
        "status": "lead",
        "converted_at": "",
        "marketing": "",
        "plan": "free",
    }
    return row | changes


def _event(**changes: str) -> dict[str, str]:
    row = {
        "event_id": "e999",
        "user_id": "u01",
        "event_name": "page_view",
        "occurred_at": "2024-03-05T10:00:00Z",
        "properties": "",
    }
    return row | changes


def _transaction(**changes: str) -> dict[str, str]:
    row = {"transaction_id": "t999", "user_id": "u01", "occurred_at": "2024-04-05", "amount": "9.9"}
    return row | changes


BAD_ROWS = {
    "bad_created_at": BadRow(
        "users", _user(created_at="yesterday"), "bad_created_at", "created_at"
    ),
    "empty_created_at": BadRow("users", _user(created_at=""), "empty_created_at", "created_at"),
    "unknown_status": BadRow("users", _user(status="customer"), "unknown_status", "status"),
    "converted_without_date": BadRow(
        "users", _user(status="converted"), "converted_without_converted_at", "converted_at"
    ),
    "converted_before_created": BadRow(
        "users",
        _user(status="converted", converted_at="2024-01-04T10:00:00Z"),
        "converted_before_created",
        "converted_at",
    ),
    "marketing_not_object": BadRow(
        "users", _user(marketing="[1, 2]"), "bad_marketing", "marketing"
    ),
    "marketing_not_json": BadRow(
        "users", _user(marketing="utm=google"), "bad_marketing", "marketing"
    ),
    "duplicate_user": BadRow(
        "users", _user(user_id="u01", plan="pro"), "duplicate_user_id", "user_id"
    ),
    "empty_user_id": BadRow("users", _user(user_id=" "), "empty_user_id", "user_id"),
    "bad_occurred_at": BadRow(
        "events", _event(occurred_at="03/05/2024"), "bad_occurred_at", "occurred_at"
    ),
    "orphan_event": BadRow("events", _event(user_id="ghost"), "orphan_user_id", "user_id"),
    "event_id_reused": BadRow(
        "events", _event(event_id="e000", event_name="other"), "duplicate_event_id", "event_id"
    ),
    "properties_not_object": BadRow(
        "events", _event(properties='"text"'), "bad_properties", "properties"
    ),
    "properties_broken": BadRow(
        "events", _event(properties='{"a": }'), "bad_properties", "properties"
    ),
    "empty_event_id": BadRow("events", _event(event_id=""), "empty_event_id", "event_id"),
    "amount_zero": BadRow(
        "transactions", _transaction(amount="0"), "non_positive_amount", "amount"
    ),
    "amount_negative": BadRow(
        "transactions", _transaction(amount="-5"), "non_positive_amount", "amount"
    ),
    "amount_text": BadRow("transactions", _transaction(amount="ten"), "bad_amount", "amount"),
    "orphan_transaction": BadRow(
        "transactions", _transaction(user_id="ghost"), "orphan_user_id", "user_id"
    ),
    "duplicate_transaction": BadRow(
        "transactions",
        _transaction(transaction_id="t000"),
        "duplicate_transaction_id",
        "transaction_id",
    ),
    "negative_spend": BadRow(
        "campaign_spend", {"campaign": "x", "spend": "-1"}, "negative_spend", "spend"
    ),
    "event_in_2200": BadRow(
        "events", _event(occurred_at="2200-06-01T00:00:00Z"), "implausible_timestamp", "occurred_at"
    ),
    "signup_in_1900": BadRow(
        "users", _user(created_at="1900-01-01T00:00:00Z"), "implausible_timestamp", "created_at"
    ),
    "purchase_next_week": BadRow(
        "transactions",
        _transaction(occurred_at=(pd.Timestamp.now("UTC") + pd.Timedelta(days=7)).isoformat()),
        "implausible_timestamp",
        "occurred_at",
    ),
    "closed_before_created": BadRow(
        "users",
        _user(status="lost", closed_at="2024-01-01T00:00:00Z"),
        "closed_before_created",
        "closed_at",
    ),
    "closed_at_not_a_time": BadRow(
        "users", _user(status="lost", closed_at="last week"), "bad_closed_at", "closed_at"
    ),
}
INSERT_AT = 2  # the bad row becomes the file's 3rd record: line 4 (header = line 1)


def with_bad_row(case: BadRow) -> dict[str, pd.DataFrame]:
    tables = company()
    frame = tables[case.table]
    bad = pd.DataFrame([case.row])
    tables[case.table] = pd.concat(
        [frame.iloc[:INSERT_AT], bad, frame.iloc[INSERT_AT:]], ignore_index=True
    )
    return tables


KEYS = {
    "users": "user_id",
    "events": "event_id",
    "transactions": "transaction_id",
    "campaign_spend": "campaign",
}


def assert_nothing_good_lost(out: Path, case: BadRow) -> None:
    """Every good raw row is in the Parquet; the bad row is in rejected_<table>.csv."""
    good = company()[case.table]
    written = pd.read_parquet(out / f"{case.table}.parquet")
    key = KEYS[case.table]
    assert sorted(written[key]) == sorted(good[key])
    merged = good.merge(written, on=key, suffixes=("_raw", ""))
    for column in ("plan", "event_name"):  # a reused id keeps its first row, not the later one
        if column in good:
            assert (merged[f"{column}_raw"] == merged[column]).all()
    rejected = pd.read_csv(out / f"rejected_{case.table}.csv", dtype=str, keep_default_na=False)
    assert len(rejected) == 1
    assert rejected.loc[0, "reason"] == case.reason
    assert rejected.loc[0, "line"] == str(INSERT_AT + 2)
    for column, value in case.row.items():
        assert rejected.loc[0, column] == value
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["tables"][case.table]["rejected"] == {case.reason: 1}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_bad_row_over_threshold_exits_2_then_quarantined_under_it(
    name: str, fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = BAD_ROWS[name]
    raw = write_raw(tmp_path / "raw", with_bad_row(case), fmt)
    out = tmp_path / "out"

    assert run_cli("--raw", raw, "--out", out) == 2
    message = capsys.readouterr().err
    assert f"{case.table}.{fmt}" in message
    assert f"line {INSERT_AT + 2}" in message
    assert case.column in message and case.reason in message
    assert not list(out.glob("*.parquet")), "a failed ingest must not write Parquet"
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["status"] == "failed" and not report["parquet_written"]
    assert (out / f"rejected_{case.table}.csv").exists()

    assert run_cli("--raw", raw, "--out", out, "--max-reject-share", "0.5") == 0
    assert_nothing_good_lost(out, case)


def test_clean_company_is_written_typed(tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "raw", company())
    report = ingest(tmp_path / "out", raw_dir=raw, show_progress=False)
    data = read_processed(tmp_path / "out")
    assert report["status"] == "ok"
    assert not list((tmp_path / "out").glob("rejected_*.csv"))
    users = data.users
    assert list(users.columns) == [
        "user_id",
        "created_at",
        "status",
        "converted_at",
        "marketing",
        "campaign",
        "source",
        "medium",
        "plan",
    ]
    assert (
        str(users["created_at"].dtype).startswith("datetime64")
        and users["created_at"].dt.tz is None
    )
    # 2024-01-03T12:00:00+02:00 (third form) is 10:00 UTC
    assert users.loc[users["user_id"] == "u03", "created_at"].item() == pd.Timestamp(
        "2024-01-03 10:00"
    )
    assert users.loc[users["user_id"] == "u02", "created_at"].item() == pd.Timestamp(
        "2024-01-02 08:30"
    )
    assert users["converted_at"].notna().sum() == (users["status"] == "converted").sum()
    assert users["campaign"].tolist()[:3] == ["google_gestao_agil", "(none)", "(none)"]
    assert users["source"].tolist()[:3] == ["google", "newsletter", "(none)"]
    assert users["marketing"].iloc[2] == ""
    assert data.events["properties"].tolist()[:3] == [
        '{"plan": "team"}',
        "",
        '{"a": {"b": [1, 2]}}',
    ]
    assert data.transactions["amount"].dtype == "float64"
    assert data.transactions["amount"].iloc[0] == 10.5
    assert data.campaign_spend["spend"].tolist() == [1200.0, 800.5, 0.0]
    for table in ("users", "events", "transactions", "campaign_spend"):
        entry = report["tables"][table]
        assert entry["rows_read"] == entry["rows_written"] and entry["rejected"] == {}
    assert report["tables"]["users"]["extra_columns"] == ["plan"]
    stamps = pd.to_datetime(company()["events"]["occurred_at"], utc=True).dt.tz_localize(None)
    assert report["tables"]["events"]["date_range"] == {
        "column": "occurred_at",
        "min": stamps.min().isoformat(),
        "max": stamps.max().isoformat(),
    }


def test_redelivered_events_are_kept_once_and_counted(tmp_path: Path) -> None:
    tables = company()
    events = tables["events"]
    tables["events"] = pd.concat([events, events.iloc[[3, 3, 7]]], ignore_index=True)
    raw = write_raw(tmp_path / "raw", tables)
    assert run_cli("--raw", raw, "--out", tmp_path / "out") == 0
    written = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert sorted(written["event_id"]) == sorted(events["event_id"])
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert report["tables"]["events"]["duplicates"] == 3
    assert report["tables"]["events"]["rejected"] == {}
    assert not (tmp_path / "out" / "rejected_events.csv").exists()


def test_rejected_user_takes_its_events_along(tmp_path: Path) -> None:
    tables = company()
    tables["users"].loc[0, "created_at"] = "not a date"  # u01 has events and transactions
    raw = write_raw(tmp_path / "raw", tables)
    report = ingest(
        tmp_path / "out", raw_dir=raw, config=DataConfig(max_reject_share=0.5), show_progress=False
    )
    assert report["tables"]["events"]["rejected"] == {"user_rejected": 3}
    assert report["tables"]["transactions"]["rejected"] == {"user_rejected": 2}
    events = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert "u01" not in set(events["user_id"])


def test_failed_ingest_keeps_the_previous_good_parquet(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("--raw", write_raw(tmp_path / "good", company()), "--out", out) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    bad = write_raw(tmp_path / "bad", with_bad_row(BAD_ROWS["orphan_event"]))
    assert run_cli("--raw", bad, "--out", out) == 2
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before
    assert json.loads((out / "ingest_report.json").read_text())["status"] == "failed"
    assert (out / "rejected_events.csv").exists()
    assert not list(out.glob(".*tmp")), "temporary files left behind"


def test_optional_tables_absent_write_no_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("--raw", write_raw(tmp_path / "full", company()), "--out", out) == 0
    tables = company()
    del tables["transactions"], tables["campaign_spend"]
    assert run_cli("--raw", write_raw(tmp_path / "lean", tables), "--out", out) == 0
    assert sorted(p.name for p in out.glob("*.parquet")) == ["events.parquet", "users.parquet"]
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["tables"]["transactions"]["present"] is False
    assert read_processed(out).transactions is None


def test_line_numbers_count_values_spanning_lines(tmp_path: Path) -> None:
    tables = company()
    tables["events"].loc[1, "properties"] = '{"note":\n"two lines"}'
    tables["events"].loc[4, "occurred_at"] = "later"
    raw = write_raw(tmp_path / "raw", tables)
    ingest(
        tmp_path / "out", raw_dir=raw, config=DataConfig(max_reject_share=0.5), show_progress=False
    )
    rejected = pd.read_csv(tmp_path / "out" / "rejected_events.csv")
    assert rejected["line"].tolist() == [7]  # record 5 is line 6, pushed down one by record 2
    assert raw.joinpath("events.csv").read_text().splitlines()[6].startswith("e004,")


def test_windows_csv_with_bom_and_crlf(tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "raw", company())
    for path in raw.glob("*.csv"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    ingest(tmp_path / "out", raw_dir=raw, show_progress=False)
    data = read_processed(tmp_path / "out")
    assert data.users["user_id"].tolist() == company()["users"]["user_id"].tolist()
    assert not data.events["properties"].str.contains("\r").any()


def test_typed_parquet_input(tmp_path: Path) -> None:
    """Native Parquet types: tz-aware timestamps, integer ids, float amounts."""
    tables = company()
    users = tables["users"].copy()
    users["user_id"] = range(1, N_USERS + 1)
    users["created_at"] = pd.to_datetime(users["created_at"], format="ISO8601", utc=True)
    users["converted_at"] = pd.to_datetime(users["converted_at"], format="ISO8601", utc=True)
    events = tables["events"].copy()
    events["user_id"] = [1 + i % 20 for i in range(N_EVENTS)]
    events["occurred_at"] = pd.to_datetime(events["occurred_at"]).dt.tz_convert("Asia/Tokyo")
    raw = write_raw(tmp_path / "raw", {"users": users, "events": events})
    ingest(tmp_path / "out", raw_dir=raw, show_progress=False)
    data = read_processed(tmp_path / "out")
    assert data.users["user_id"].tolist()[:3] == ["1", "2", "3"]
    assert data.events["occurred_at"].iloc[0] == pd.Timestamp("2024-03-01 00:15")
    assert data.events["occurred_at"].dt.tz is None


# --- refused inputs: one clear message, nothing written ----------------------------------------


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: Path) -> str:
    out = tmp_path / "out"
    assert run_cli("--raw", raw, "--out", out) == 2
    assert not out.exists() or not any(out.iterdir())
    return capsys.readouterr().err


def test_missing_required_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tables = company()
    del tables["events"]
    message = refused(tmp_path, capsys, write_raw(tmp_path / "raw", tables))
    assert "events.csv" in message and "required" in message


def test_missing_required_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tables = company()
    tables["users"] = tables["users"].drop(columns=["status"])
    message = refused(tmp_path, capsys, write_raw(tmp_path / "raw", tables))
    assert "users.csv" in message and "'status'" in message


def test_missing_required_column_in_parquet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = company()
    tables["transactions"] = tables["transactions"].drop(columns=["amount"])
    message = refused(tmp_path, capsys, write_raw(tmp_path / "raw", tables, "parquet"))
    assert "transactions.parquet" in message and "'amount'" in message


def test_csv_and_parquet_for_one_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_raw(tmp_path / "raw", company())
    company()["users"].to_parquet(raw / "users.parquet")
    message = refused(tmp_path, capsys, raw)
    assert "users.csv" in message and "users.parquet" in message


def test_ragged_csv_is_unparseable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_raw(tmp_path / "raw", company())
    lines = raw.joinpath("events.csv").read_text().splitlines()
    lines[5] = "e004,u05,page_view"  # line 6 has 3 fields instead of 5
    raw.joinpath("events.csv").write_text("\n".join(lines) + "\n")
    message = refused(tmp_path, capsys, raw)
    assert "events.csv" in message and "line 6" in message


def test_invalid_utf8_is_unparseable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_raw(tmp_path / "raw", company())
    data = raw.joinpath("users.csv").read_bytes().splitlines(keepends=True)
    data[3] = data[3].replace(b"u03", b"u\xff3")
    raw.joinpath("users.csv").write_bytes(b"".join(data))
    message = refused(tmp_path, capsys, raw)
    assert "users.csv" in message and "line 4" in message


def test_corrupt_parquet_is_unparseable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_raw(tmp_path / "raw", company(), "parquet")
    raw.joinpath("events.parquet").write_bytes(b"PAR1 this is not parquet")
    message = refused(tmp_path, capsys, raw)
    assert "events.parquet" in message


def test_empty_csv_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_raw(tmp_path / "raw", company())
    raw.joinpath("users.csv").write_text("")
    assert "users.csv" in refused(tmp_path, capsys, raw)


def test_missing_raw_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "nowhere" in refused(tmp_path, capsys, tmp_path / "nowhere")


# --- databases: the same Parquet as the equivalent files ---------------------------------------


def expected_from_files(tmp_path: Path) -> dict[str, pd.DataFrame]:
    out = tmp_path / "from_files"
    ingest(out, raw_dir=write_raw(tmp_path / "raw_files", company()), show_progress=False)
    return vars(read_processed(out))


def assert_same_processed(out: Path, expected: dict[str, pd.DataFrame]) -> None:
    for name, frame in vars(read_processed(out)).items():
        pd.testing.assert_frame_equal(frame, expected[name], check_dtype=True)


def test_sqlite_written_by_pandas_equals_files(tmp_path: Path) -> None:
    import sqlalchemy as sa

    db = tmp_path / "company.sqlite"
    engine = sa.create_engine(f"sqlite:///{db}")
    for name, frame in company().items():
        frame.to_sql(name, engine, index=False)
    engine.dispose()
    assert run_cli("--source", f"sqlite:///{db}", "--out", tmp_path / "out") == 0
    assert_same_processed(tmp_path / "out", expected_from_files(tmp_path))


def _typed_company() -> dict[str, pd.DataFrame]:
    """The company with native values: aware timestamps, NULL for empty, float amounts."""
    tables = company()
    for name, frame in tables.items():
        for column in ("created_at", "converted_at", "occurred_at"):
            if column in frame:
                stamps = pd.to_datetime(frame[column], format="ISO8601", utc=True)
                frame[column] = stamps.dt.tz_convert("America/Sao_Paulo").astype(object)
                frame[column] = frame[column].where(stamps.notna(), None)
        for column in ("amount", "spend"):
            if column in frame:
                frame[column] = frame[column].astype(float)
        tables[name] = frame
    return tables


def write_with_core(url: str, tables: dict[str, pd.DataFrame]) -> None:
    """Tables created the way the collector does: DateTime(timezone=True), Text, Float."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    kinds = {"created_at": sa.DateTime(timezone=True), "converted_at": sa.DateTime(timezone=True)}
    kinds |= {"occurred_at": sa.DateTime(timezone=True), "amount": sa.Float(), "spend": sa.Float()}
    for name, frame in tables.items():
        table = sa.Table(
            name, metadata, *(sa.Column(c, kinds.get(c, sa.Text())) for c in frame.columns)
        )
        metadata.create_all(engine, tables=[table])
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        with engine.begin() as connection:
            connection.execute(table.insert(), records)
    engine.dispose()


def test_sqlite_written_with_timezone_aware_columns_equals_files(tmp_path: Path) -> None:
    db = tmp_path / "collector.sqlite"
    tables = _typed_company()
    for frame in tables.values():  # the collector stores UTC in SQLite (text without zone)
        for column in ("created_at", "converted_at", "occurred_at"):
            if column in frame:
                frame[column] = frame[column].map(
                    lambda v: v.astimezone(UTC) if v is not None else None
                )
    write_with_core(f"sqlite:///{db}", tables)
    assert run_cli("--source", f"sqlite:///{db}", "--out", tmp_path / "out") == 0
    assert_same_processed(tmp_path / "out", expected_from_files(tmp_path))


def test_sqlite_missing_table_and_missing_file(tmp_path: Path, capsys) -> None:
    import sqlalchemy as sa

    db = tmp_path / "partial.sqlite"
    engine = sa.create_engine(f"sqlite:///{db}")
    company()["users"].to_sql("users", engine, index=False)
    engine.dispose()
    assert run_cli("--source", f"sqlite:///{db}", "--out", tmp_path / "out") == 2
    assert "events" in capsys.readouterr().err
    assert run_cli("--source", f"sqlite:///{tmp_path}/absent.sqlite", "--out", tmp_path / "o") == 2
    assert "absent.sqlite" in capsys.readouterr().err
    assert not (tmp_path / "absent.sqlite").exists()


@pytest.mark.postgres
def test_postgresql_equals_files(postgres_schema_url: str, tmp_path: Path) -> None:
    """timestamptz columns (SQLAlchemy DateTime(timezone=True)) in a non-UTC session zone."""
    url = postgres_schema_url
    write_with_core(url, _typed_company())
    url_in_tokyo = url.replace("options=", "options=-ctimezone%3DAsia/Tokyo%20")
    memory = _engine_config(tmp_path, "memory")  # every table copied out, checked in pandas
    assert run_cli("--source", url_in_tokyo, "--out", tmp_path / "out", "--config", memory) == 0
    expected = expected_from_files(tmp_path)
    assert_same_processed(tmp_path / "out", expected)
    # the default for a PostgreSQL URL: checked in the database, the events stay there
    assert run_cli("--source", url_in_tokyo, "--out", tmp_path / "pushed") == 0
    report = json.loads((tmp_path / "pushed" / "ingest_report.json").read_text())
    assert report["engine"]["name"] == "source" and report["validated_in"] == "database"
    assert not (tmp_path / "pushed" / "events.parquet").exists()
    data = read_processed(tmp_path / "pushed")
    assert data.events.empty and list(data.events.columns) == list(expected["events"].columns)
    for name in ("users", "transactions", "campaign_spend"):
        pd.testing.assert_frame_equal(getattr(data, name), expected[name], check_dtype=True)


def _engine_config(folder: Path, engine: str) -> Path:
    path = folder / f"engine-{engine}.toml"
    path.write_text(f'[data]\nengine = "{engine}"\n', encoding="utf-8")
    return path


@pytest.mark.postgres
def test_postgresql_text_tables_with_bad_rows(postgres_schema_url: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_schema_url)
    for name, frame in with_bad_row(BAD_ROWS["orphan_event"]).items():
        frame.to_sql(name, engine, index=False)
    engine.dispose()
    out, pushed = tmp_path / "out", tmp_path / "pushed"
    memory = _engine_config(tmp_path, "memory")
    assert run_cli("--source", postgres_schema_url, "--out", out, "--config", memory) == 2
    assert (
        run_cli(
            "--source", postgres_schema_url, "--out", out, "--max-reject-share", "0.5",
            "--config", memory,
        )
        == 0
    )  # fmt: skip
    assert_nothing_good_lost(out, BAD_ROWS["orphan_event"])
    # checked in the database: the same exit codes, rejected rows and counts
    assert run_cli("--source", postgres_schema_url, "--out", pushed) == 2
    assert (
        run_cli("--source", postgres_schema_url, "--out", pushed, "--max-reject-share", "0.5") == 0
    )
    for name in ("rejected_events.csv",):
        got = pd.read_csv(pushed / name, dtype=str, keep_default_na=False)
        want = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        assert got[["reason", "line", "event_id"]].equals(want[["reason", "line", "event_id"]])
    got_report = json.loads((pushed / "ingest_report.json").read_text())["tables"]["events"]
    want_report = json.loads((out / "ingest_report.json").read_text())["tables"]["events"]
    for field in ("rejected", "rejected_rows", "rows_written", "reject_share"):
        assert got_report[field] == want_report[field]


# --- the report, the notebook and the command ---------------------------------------------------


def test_report_tables_and_weekly_counts(tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "raw", with_bad_row(BAD_ROWS["orphan_event"]))
    report = ingest(
        tmp_path / "out", raw_dir=raw, config=DataConfig(max_reject_share=0.5), show_progress=False
    )
    tables = report_tables(report)
    assert tables["rows"].loc["events", "rejected"] == 1
    assert tables["rejects"]["reason"].tolist() == ["orphan_user_id"]
    assert set(tables["date_ranges"]["table"]) == {"users", "events", "transactions"}
    weekly = events_per_week(read_processed(tmp_path / "out").events)
    assert weekly.sum() == N_EVENTS and weekly.index.min() == pd.Timestamp("2024-02-26")


@pytest.mark.notebook
def test_01_ingest_notebook_runs(tmp_path: Path, run_notebook) -> None:
    raw = write_raw(tmp_path / "raw", company())
    processed = tmp_path / "processed"
    executed = run_notebook(
        "01_ingest",
        tmp_path / "run",
        raw_dir=str(raw),
        source_url="",
        processed_dir=str(processed),
        max_reject_share=0.01,
        run_dir=str(tmp_path / "run"),
    )
    assert (processed / "events.parquet").exists()
    outputs = json.dumps(
        [cell.get("outputs", []) for cell in json.loads(executed.read_text())["cells"]]
    )
    assert "Ingest **ok**" in outputs  # the conclusion, with the numbers
    assert f"{N_EVENTS} events" in outputs


def test_synthetic_company_ingests_without_rejects(request: pytest.FixtureRequest) -> None:
    processed: Path = request.getfixturevalue("synthetic_processed")
    report = json.loads((processed / "ingest_report.json").read_text())
    assert report["status"] == "ok"
    for name, entry in report["tables"].items():
        assert entry["present"], name
        assert entry["rejected"] == {}, name
        assert entry["rows_written"] > 0, name


def test_insightos_command_on_synthetic_data(
    request: pytest.FixtureRequest, repo_root: Path, tmp_path: Path
) -> None:
    raw: Path = request.getfixturevalue("synthetic_raw")
    command = shutil.which("insightos", path=str(Path(sys.executable).parent))
    assert command is not None, "the insightos console script is installed beside the interpreter"
    completed = subprocess.run(
        [command, "ingest", "--raw", str(raw), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert "events:" in completed.stderr
    assert read_processed(tmp_path / "out").users["campaign"].nunique() > 1
