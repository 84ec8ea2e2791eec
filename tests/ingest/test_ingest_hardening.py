"""Ingest on data that looks valid but is not to be trusted (issue 10 situations 3, 5 and 7):
implausible time, rejects that are another file's fault, header-only tables, encodings, data
that is stale or shrank."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_ingest import company, run_cli, write_raw

from insightos_utils.config import DataConfig
from insightos_utils.ingest import events_per_week, ingest, read_processed, report_summary
from insightos_utils.plots.ingest import plot_events_per_week

NOW = pd.Timestamp("2024-05-01T00:00:00")


def cascade_company(n_users: int = 800, events_per_user: int = 20) -> dict[str, pd.DataFrame]:
    """Six users with a status outside the contract, each with 45 events: 0.75% of users,
    1.7% of events."""
    statuses = ["lead", "trial", "converted", "lost"]
    users = pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n_users)],
            "created_at": "2024-01-02T10:00:00Z",
            "status": [statuses[i % 4] for i in range(n_users)],
            "converted_at": ["2024-02-01T00:00:00Z" if i % 4 == 2 else "" for i in range(n_users)],
            "marketing": "",
        }
    )
    bad = [10, 20, 30, 40, 50, 60]
    users.loc[bad[:3], "status"] = "Converted "
    users.loc[bad[3:], "status"] = "LEAD"
    counts = [45 if i in bad else events_per_user for i in range(n_users)]
    owners = [f"u{i:04d}" for i, count in enumerate(counts) for _ in range(count)]
    events = pd.DataFrame(
        {
            "event_id": [f"e{n}" for n in range(len(owners))],
            "user_id": owners,
            "event_name": "page_view",
            "occurred_at": "2024-03-01T10:00:00Z",
            "properties": "",
        }
    )
    return {"users": users, "events": events}


def test_rejects_caused_by_users_are_counted_apart_and_name_users_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = write_raw(tmp_path / "raw", cascade_company())
    out = tmp_path / "out"
    assert run_cli("--raw", raw, "--out", out) == 0  # 0.75% of users: within 1%
    report = json.loads((out / "ingest_report.json").read_text())
    events = report["tables"]["events"]
    assert events["rejected"] == {"user_rejected": 270}
    assert events["user_rejected_rows"] == 270 and events["reject_share"] == 0.0
    assert report["tables"]["users"]["rejected"] == {"unknown_status": 6}
    cause = events["user_rejected_cause"]
    assert str(raw / "users.csv") in cause and "line 12 (unknown_status)" in cause
    err = capsys.readouterr().err
    assert "users.csv" in err and "line 12" in err
    rejected = pd.read_csv(out / "rejected_events.csv")
    assert len(rejected) == 270 and set(rejected["reason"]) == {"user_rejected"}

    # the users' own fault still stops ingest, and the message says where it is
    assert run_cli("--raw", raw, "--out", out, "--max-reject-share", "0.005") == 2
    err = capsys.readouterr().err
    assert "users.csv: 6 of 800 rows rejected" in err and "line 12" in err


def test_a_header_only_users_table_is_reported_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = company()
    tables["users"] = tables["users"].iloc[:0]
    raw = write_raw(tmp_path / "raw", tables)
    assert run_cli("--raw", raw, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "users.csv: the users table has a header and no rows" in err
    assert "orphan" not in err


def test_a_latin1_file_names_the_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = write_raw(tmp_path / "raw", company())
    users = (raw / "users.csv").read_text(encoding="utf-8").splitlines()
    fields = users[5].split(",")
    fields[-1] = "São Paulo"  # the extra column 'plan'
    users[5] = ",".join(fields)
    (raw / "users.csv").write_bytes("\n".join(users).encode("latin-1") + b"\n")
    assert run_cli("--raw", raw, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "line 6, column 'plan' is not UTF-8" in err


def test_an_events_file_with_a_header_and_no_rows_is_valid(tmp_path: Path) -> None:
    tables = company()
    tables["events"] = tables["events"].iloc[:0]
    raw = write_raw(tmp_path / "raw", tables)
    report = ingest(tmp_path / "out", raw_dir=raw, show_progress=False, now=NOW)
    assert report["status"] == "ok" and report["tables"]["events"]["rows_written"] == 0
    data = read_processed(tmp_path / "out")
    assert len(data.events) == 0 and str(data.events["occurred_at"].dtype).startswith("datetime")
    assert "CRM-only" in report_summary(report)
    weekly = events_per_week(data.events)
    assert weekly.empty
    assert "No events" in plot_events_per_week(weekly).axes[0].get_title()

    from insightos_utils.runner.meta import data_window

    window = data_window(tmp_path / "out")
    assert window is not None and window["end"].startswith("2024-04")  # from the other tables


def test_closed_at_is_typed_when_present_and_absent_otherwise(tmp_path: Path) -> None:
    tables = company()
    tables["users"]["closed_at"] = [
        "2024-02-10T00:00:00Z" if status == "lost" else "" for status in tables["users"]["status"]
    ]
    ingest(tmp_path / "with", raw_dir=write_raw(tmp_path / "a", tables), show_progress=False)
    users = read_processed(tmp_path / "with").users
    assert str(users["closed_at"].dtype) == "datetime64[us]"
    lost = users["status"] == "lost"
    assert users.loc[lost, "closed_at"].notna().all() and users.loc[~lost, "closed_at"].isna().all()
    ingest(tmp_path / "without", raw_dir=write_raw(tmp_path / "b", company()), show_progress=False)
    assert "closed_at" not in read_processed(tmp_path / "without").users.columns


def test_as_of_default_never_lies_in_the_future(tmp_path: Path) -> None:
    tables = company()
    soon = (NOW + pd.Timedelta(hours=2)).isoformat() + "Z"  # within the 24 h tolerance
    tables["events"].loc[0, "occurred_at"] = soon
    tables["events"].loc[1, "occurred_at"] = "2200-06-01T00:00:00Z"  # implausible: rejected
    report = ingest(
        tmp_path / "out",
        raw_dir=write_raw(tmp_path / "raw", tables),
        config=DataConfig(max_reject_share=0.05),
        show_progress=False,
        now=NOW,
    )
    assert report["tables"]["events"]["rejected"] == {"implausible_timestamp": 1}
    found = report["tables"]["events"]["implausible_timestamps"]["occurred_at"]
    assert found["min"].startswith("2200-06-01")
    assert report["latest_timestamp"] == (NOW + pd.Timedelta(hours=2)).isoformat()
    assert report["as_of_default"] == NOW.isoformat()
    rejected = pd.read_csv(tmp_path / "out" / "rejected_events.csv")
    assert rejected["occurred_at"].tolist() == ["2200-06-01T00:00:00Z"]


def test_stale_data_and_a_shrunken_table_are_warned_about(tmp_path: Path) -> None:
    raw = write_raw(tmp_path / "raw", company())
    out = tmp_path / "out"
    fresh = ingest(out, raw_dir=raw, show_progress=False, now=NOW)
    assert fresh["warnings"] == []
    later = NOW + pd.Timedelta(days=200)
    stale = ingest(out, raw_dir=raw, show_progress=False, now=later)
    (warning,) = stale["warnings"]
    assert warning["kind"] == "stale_data" and "2024-04-20" in warning["message"]

    smaller = company()
    smaller["events"] = smaller["events"].iloc[:20]  # 60 -> 20 rows: a third is left
    write_raw(raw, smaller)
    shrunk = ingest(out, raw_dir=raw, show_progress=False, now=NOW)
    (warning,) = shrunk["warnings"]
    assert warning["kind"] == "table_shrank" and warning["table"] == "events"
    assert "67% fewer" in warning["message"]
    assert "table_shrank" in report_summary(shrunk) or "fewer" in report_summary(shrunk)
    relaxed = DataConfig(shrink_warning_share=0.9)
    assert ingest(out, raw_dir=raw, config=relaxed, show_progress=False, now=NOW)["warnings"] == []


def test_a_source_password_travels_apart_from_its_url() -> None:
    from insightos_utils.ingest import connection_url, split_password
    from insightos_utils.ingest.sources import SOURCE_PASSWORD_VARIABLE

    url = "postgresql+psycopg://alice:S3cretPW@db.example:5432/crm?sslmode=require"
    public, password = split_password(url)
    assert password == "S3cretPW" and "S3cretPW" not in public and "alice@db.example" in public
    assert connection_url(public, {SOURCE_PASSWORD_VARIABLE: password}) == url
    assert connection_url(public, {}) == public  # no password given: the URL as it is
    assert split_password("sqlite:///data/raw/insightos.sqlite")[1] is None
