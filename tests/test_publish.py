"""Publishing a run's results to SQLite and to a real PostgreSQL server (``publish_run``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from insightos_utils import publish
from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.publish import RUNS_TABLE, TABLES, publish_run

FILES = {table.name: table.file for table in TABLES}


def make_run(folder: Path, run_id: str, n_leads: int, seed: int, extra: bool = False) -> Path:
    """A run folder with every result file (random values), run.json and the stage records."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    leads = pd.DataFrame(
        {
            "user_id": [f"{i:06d}" for i in range(n_leads)],  # leading zeros must survive
            "score": rng.random(n_leads),
            "grade": rng.choice(list("ABCD"), n_leads),
            "rank": np.arange(1, n_leads + 1),
            "top_reasons": rng.choice(
                ["made a project; invited, a teammate", 'said "hi"', ""], n_leads
            ),
            "model_version": f"v2_xgboost@{run_id}",
            "scored_at": "2026-06-30T00:00:00Z",
            "campaign": rng.choice(["google_gestao_agil", "(none)"], n_leads),
            "expected_value": rng.gamma(2, 30, n_leads),
            "expected_value_low": rng.gamma(2, 10, n_leads),
            "expected_value_high": rng.gamma(2, 50, n_leads),
            "value_basis": rng.choice(["campaign's own fit (120 customers)", ""], n_leads),
            "trend": rng.choice(["new", "improving", "steady", "declining"], n_leads),
            "window_complete": rng.random(n_leads) < 0.9,
        }
    )
    if extra:  # columns the tables do not declare (a future extra)
        leads["landing_page"] = rng.choice(["/pricing", "/blog"], n_leads)
        leads["future_count"] = rng.integers(0, 5, n_leads)
    leads.to_csv(folder / "scored_leads.csv", index=False)
    campaigns = pd.DataFrame(
        {
            "campaign": ["google_gestao_agil", "facebook_produtividade", "(none)"],
            "customers": [120, 80, 300],
            "ltv_mean": rng.gamma(3, 20, 3),
            "ltv_ci_low": rng.gamma(3, 10, 3),
            "ltv_ci_high": rng.gamma(3, 30, 3),
            "spend": [3360.0, 3120.0, np.nan],
            "cac": [28.0, 39.0, np.nan],
            "ltv_to_cac": [2.5, 0.9, np.nan],
            "ltv_to_cac_ci_low": [2.0, 0.7, np.nan],
            "ltv_to_cac_ci_high": [3.1, 1.1, np.nan],
            "payback_months": [4.5, np.inf, np.nan],
        }
    )
    campaigns.to_csv(folder / "campaign_ltv.csv", index=False)
    n_customers = max(n_leads // 2, 1)
    pd.DataFrame(
        {
            "user_id": [f"c{i}" for i in range(n_customers)],
            "frequency": rng.integers(0, 9, n_customers).astype(float),
            "recency": rng.random(n_customers) * 50,
            "T": rng.random(n_customers) * 60,
            "monetary_value": rng.gamma(5, 4, n_customers),
            "prob_alive": rng.random(n_customers),
            "expected_purchases": rng.random(n_customers) * 3,
            "ltv": rng.gamma(2, 40, n_customers),
        }
    ).to_csv(folder / "customer_ltv.csv", index=False)
    pd.DataFrame(
        {
            "step": [0, 1, 2],
            "event_name": ["(signup)", "task_created", "project_created"],
            "users_reached": [9727, 7745, 4329],
            "share_of_signups": [1.0, 0.796, 0.445],
            "share_ci_low": [1.0, 0.788, 0.435],
            "share_ci_high": [1.0, 0.804, 0.455],
            "conversion_if_reached": [0.104, 0.124, 0.187],
            "median_hours_from_signup": [0.0, 13.0, 66.4],
        }
    ).to_csv(folder / "funnel.csv", index=False)
    (folder / "stages.json").write_text(json.dumps({"product": {"state": "ok"}}))
    (folder / "product_summary.json").write_text(
        json.dumps(
            {
                "funnel": [{"share_of_signups": 1.0}, {"share_of_signups": 0.445}],
                "top_friction": {"previous_step": "page_view", "event_name": "project_created"},
            }
        )
    )
    return folder


def run_meta(run_id: str, auc: float = 0.83) -> dict:
    return {
        "run_id": run_id,
        "kind": "full",
        "as_of": "2026-06-30T00:00:00",
        "started_at": "2026-07-01T02:00:00+00:00",
        "finished_at": "2026-07-01T02:05:00+00:00",
        "champion": "v2_xgboost",
        "holdout_roc_auc": auc,
        "open_leads": 779,
        "ltv_ratio": 2.3,
        "ltv_ratio_ci": [2.0, 2.6],
        "stages": {"ingest": {"state": "ok"}, "product": {"state": "ok"}},
    }


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'insightos.sqlite'}"
    return request.getfixturevalue("postgres_schema_url")


def read_table(db_url: str, name: str) -> pd.DataFrame:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            return pd.read_sql_table(name, connection)
    finally:
        engine.dispose()


def assert_same_rows(db_url: str, run: Path, name: str, run_id: str) -> None:
    """The table holds exactly the file's rows (same values, every column), plus run keys."""
    stored = read_table(db_url, name)
    assert set(stored["run_id"]) <= {run_id}
    expected = pd.read_csv(run / FILES[name], dtype={"user_id": str})
    stored = stored[list(expected.columns)]
    for column in expected.columns:
        if column == "scored_at":
            expected[column] = pd.to_datetime(expected[column]).dt.tz_localize(None)
            stored[column] = pd.to_datetime(stored[column])
        if expected[column].dtype == object:
            expected[column] = expected[column].where(expected[column].notna(), None)
    key = list(expected.columns[:1])
    pd.testing.assert_frame_equal(
        stored.sort_values(key).reset_index(drop=True),
        expected.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )


def test_tables_hold_exactly_the_csv_rows(db_url: str, tmp_path: Path) -> None:
    run = make_run(tmp_path / "run-a", "run-a", 500, seed=1)
    report = publish_run(run, db_url, run_meta("run-a"))
    assert report.rows == {
        "insightos_scored_leads": 500,
        "insightos_campaign_ltv": 3,
        "insightos_customer_ltv": 250,
        "insightos_funnel": 3,
    }
    for name in FILES:
        assert_same_rows(db_url, run, name, "run-a")
    leads = read_table(db_url, "insightos_scored_leads")
    assert (pd.to_datetime(leads["as_of"]) == pd.Timestamp("2026-06-30")).all()
    assert leads["user_id"].str.len().eq(6).all()  # "000042", not 42
    runs = read_table(db_url, RUNS_TABLE)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert (row["run_id"], row["champion"], row["open_leads"]) == ("run-a", "v2_xgboost", 779)
    assert row["holdout_auc"] == pytest.approx(0.83) and row["ltv_ratio"] == pytest.approx(2.3)
    assert row["top_friction_step"] == "page_view → project_created"
    assert row["funnel_completed_share"] == pytest.approx(0.445)
    assert json.loads(row["stages"])["product"] == {"state": "ok"}


def test_a_second_run_replaces_current_rows_and_runs_accumulate(
    db_url: str, tmp_path: Path
) -> None:
    first = make_run(tmp_path / "run-a", "run-a", 300, seed=1)
    second = make_run(tmp_path / "run-b", "run-b", 120, seed=2)
    publish_run(first, db_url, run_meta("run-a", auc=0.81))
    publish_run(second, db_url, run_meta("run-b", auc=0.84))
    for name in FILES:
        assert_same_rows(db_url, second, name, "run-b")
    assert len(read_table(db_url, "insightos_scored_leads")) == 120
    runs = read_table(db_url, RUNS_TABLE).sort_values("run_id")
    assert list(runs["run_id"]) == ["run-a", "run-b"]
    assert list(runs["holdout_auc"]) == pytest.approx([0.81, 0.84])
    publish_run(second, db_url, run_meta("run-b", auc=0.85))  # again: its row is replaced
    runs = read_table(db_url, RUNS_TABLE).sort_values("run_id")
    assert list(runs["holdout_auc"]) == pytest.approx([0.81, 0.85])


def test_a_failure_half_way_leaves_the_previous_rows(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_run(tmp_path / "run-a", "run-a", 200, seed=1)
    second = make_run(tmp_path / "run-b", "run-b", 90, seed=2, extra=True)
    publish_run(first, db_url, run_meta("run-a"))
    real_insert = publish._insert_rows
    written: list[str] = []

    def failing_insert(connection, name, frame, kinds):
        if len(written) == 2:  # two tables replaced, then the connection "drops"
            raise sa.exc.OperationalError("COPY", {}, Exception("server closed the connection"))
        written.append(name)
        real_insert(connection, name, frame, kinds)

    monkeypatch.setattr(publish, "_insert_rows", failing_insert)
    with pytest.raises(InsightOSError, match="nothing was written"):
        publish_run(second, db_url, run_meta("run-b"))
    assert len(written) == 2
    for name in FILES:
        assert_same_rows(db_url, first, name, "run-a")
    assert list(read_table(db_url, RUNS_TABLE)["run_id"]) == ["run-a"]
    # the columns run-b would have added were rolled back with everything else
    assert "landing_page" not in read_table(db_url, "insightos_scored_leads").columns


def test_unknown_columns_are_added_and_later_left_empty(db_url: str, tmp_path: Path) -> None:
    with_extra = make_run(tmp_path / "run-a", "run-a", 100, seed=1, extra=True)
    report = publish_run(with_extra, db_url, run_meta("run-a"))
    assert report.added_columns == {"insightos_scored_leads": ["landing_page", "future_count"]}
    assert_same_rows(db_url, with_extra, "insightos_scored_leads", "run-a")
    publish_run(make_run(tmp_path / "run-b", "run-b", 50, seed=2), db_url, run_meta("run-b"))
    leads = read_table(db_url, "insightos_scored_leads")
    assert len(leads) == 50 and leads["landing_page"].isna().all()
    assert leads["future_count"].isna().all()


def test_header_only_files_empty_a_table_and_absent_files_leave_it(
    db_url: str, tmp_path: Path
) -> None:
    publish_run(make_run(tmp_path / "run-a", "run-a", 100, seed=1), db_url, run_meta("run-a"))
    second = make_run(tmp_path / "run-b", "run-b", 60, seed=2)
    funnel = pd.read_csv(second / "funnel.csv")
    funnel.iloc[:0].to_csv(second / "funnel.csv", index=False)  # product stage skipped
    (second / "customer_ltv.csv").unlink()  # a score-only run writes no LTV files
    (second / "campaign_ltv.csv").unlink()
    report = publish_run(second, db_url, run_meta("run-b"))
    assert report.rows == {"insightos_scored_leads": 60, "insightos_funnel": 0}
    assert read_table(db_url, "insightos_funnel").empty
    assert set(read_table(db_url, "insightos_customer_ltv")["run_id"]) == {"run-a"}
    assert set(read_table(db_url, "insightos_scored_leads")["run_id"]) == {"run-b"}


def test_a_bad_value_is_an_input_error_naming_file_column_and_line(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    publish_run(make_run(tmp_path / "run-a", "run-a", 30, seed=1), db_url, run_meta("run-a"))
    second = make_run(tmp_path / "run-b", "run-b", 30, seed=2)
    leads = pd.read_csv(second / "scored_leads.csv", dtype=str)
    leads.loc[4, "rank"] = "fifth"
    leads.to_csv(second / "scored_leads.csv", index=False)
    with pytest.raises(InputError, match=r"scored_leads.csv, column rank.*line\(s\) \[6\]"):
        publish_run(second, db_url, run_meta("run-b"))
    assert set(read_table(db_url, "insightos_scored_leads")["run_id"]) == {"run-a"}


@pytest.mark.postgres
def test_the_password_is_never_in_a_message_or_the_log(
    postgres_schema_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run(tmp_path / "run-a", "run-a", 20, seed=1)
    secret = "Sup3rSecretPw"
    caplog.set_level(logging.DEBUG)
    # trust authentication accepts any password: the publish succeeds and is logged
    with_password = postgres_schema_url.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in with_password
    report = publish_run(run, with_password, run_meta("run-a"))
    assert secret not in report.database
    # nothing listens on port 1: the error names the database, never the password
    unreachable = f"postgresql+psycopg://postgres:{secret}@127.0.0.1:1/test"
    with pytest.raises(InsightOSError) as raised:
        publish_run(run, unreachable, run_meta("run-a"))
    assert "127.0.0.1" in str(raised.value) and secret not in str(raised.value)
    assert "published run run-a" in caplog.text
    assert secret not in caplog.text


def test_an_unsupported_database_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run-a", "run-a", 5, seed=1)
    with pytest.raises(InputError, match="SQLite and PostgreSQL"):
        publish_run(run, "mysql+pymysql://user:pw@localhost/db", run_meta("run-a"))


def readme_queries(repo_root: Path) -> list[str]:
    """The SQL blocks of the README's "Your results in a BI tool" section."""
    text = (repo_root / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your results in a BI tool", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```sql\n")[1:]]


def test_the_readme_dashboard_queries_run(db_url: str, tmp_path: Path, repo_root: Path) -> None:
    queries = readme_queries(repo_root)
    assert len(queries) == 4
    publish_run(make_run(tmp_path / "run-a", "run-a", 40, seed=1), db_url, run_meta("run-a"))
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            who, campaigns, funnel, history = (
                pd.read_sql_query(sa.text(query), connection) for query in queries
            )
    finally:
        engine.dispose()
    assert list(who["rank"]) == list(range(1, 26))
    assert list(campaigns["campaign"]) == ["google_gestao_agil", "facebook_produtividade"]
    assert list(funnel["lost_before_next_step"].iloc[:2]) == [9727 - 7745, 7745 - 4329]
    assert list(history["run_id"]) == ["run-a"]
