"""Stakeholder HTML: notebooks rendered without code or errors, run summaries and the index."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from insightos_utils import reports
from insightos_utils.notebook_html import external_references


# A 1x1 PNG: enough for nbconvert to embed an image output.
def test_ltv_ratio_weights_other_campaigns_by_customers() -> None:
    table = pd.DataFrame(
        {
            "campaign": ["google_gestao_agil", "facebook", "(none)"],
            "customers": [10, 30, 10],
            "ltv_mean": [70.0, 30.0, 50.0],
        }
    )
    # others: (30*30 + 10*50) / 40 = 35
    assert reports.ltv_ratio(table, "google_gestao_agil") == pytest.approx(2.0)
    assert reports.ltv_ratio(table, "not_a_campaign") is None
    assert reports.ltv_ratio(table.iloc[:1], "google_gestao_agil") is None


def test_describe_changes_compares_with_the_previous_run() -> None:
    current = {"holdout_roc_auc": 0.74, "open_leads": 1200, "ltv_ratio": 2.3, "champion": "b"}
    previous = {"holdout_roc_auc": 0.70, "open_leads": 1250, "ltv_ratio": 2.3, "champion": "a"}
    rows, sentences = reports.describe_changes(current, previous)
    by_label = {row["label"]: row for row in rows}
    auc = by_label["Holdout ROC AUC of the champion"]
    assert (auc["now"], auc["before"], auc["delta"], auc["direction"]) == (
        "0.740",
        "0.700",
        "+0.040",
        "up",
    )
    assert by_label["Open leads scored"]["delta"] == "−50"
    assert by_label["Open leads scored"]["direction"] == "down"
    assert by_label["LTV ratio (reference campaign vs the rest)"]["delta"] == "no change"
    assert "The champion model changed from a to b." in sentences
    assert reports.describe_changes(current, None) == ([], [])


def write_outputs(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(15)],
            "score": [i / 15 for i in range(15)],
            "grade": ["A"] * 5 + ["B"] * 10,
            "rank": list(range(15, 0, -1)),
            "top_reasons": ["came back on day 2"] * 15,
            "model_version": "v2_xgboost@1",
            "scored_at": "2026-06-30",
        }
    ).to_csv(run_dir / "scored_leads.csv", index=False)
    pd.DataFrame(
        {
            "campaign": ["facebook", "google_gestao_agil", "(none)"],
            "customers": [40, 20, 30],
            "ltv_mean": [32.0, 73.6, 30.0],
            "ltv_ci_low": [28.0, 60.0, 25.0],
            "ltv_ci_high": [36.0, 80.0, 35.0],
            "cac": [16.0, 20.0, float("nan")],
            "ltv_to_cac": [2.0, 3.68, float("nan")],
        }
    ).to_csv(run_dir / "campaign_ltv.csv", index=False)


def run_meta(run_id: str, started_at: str, **extra) -> dict:
    return {
        "run_id": run_id,
        "kind": "full",
        "status": "ok",
        "started_at": started_at,
        "data_window": {"start": "2024-01-01T00:00:00", "end": "2026-06-30T00:00:00"},
        "as_of": "2026-06-30T00:00:00",
        "champion": "v2_xgboost",
        "holdout_roc_auc": 0.731,
        "open_leads": 15,
        "ltv_ratio": 2.3,
        "config": {"reference_campaign": "google_gestao_agil"},
        "notebooks": [{"name": "03_lead_scoring.ipynb", "title": "Lead scoring", "seconds": 12.3,
                       "html": "03_lead_scoring.html"}],
        **extra,
    }  # fmt: skip


def test_run_summary_says_who_to_call_and_where_to_spend(tmp_path: Path) -> None:
    write_outputs(tmp_path)
    previous = run_meta("20260101T000000Z-aaaa", "2026-01-01T00:00:00+00:00", open_leads=20)
    page = reports.write_run_summary(
        tmp_path, run_meta("20260102T000000Z-bbbb", "2026-01-02T00:00:00+00:00"), previous
    ).read_text()
    call_first = page[page.index('id="call-first"') : page.index('id="spend"')]
    ranks = [int(cell.split("<")[0]) for cell in call_first.split('<td class="num">')[1::2]]
    assert ranks == list(range(1, 11))  # the ten best, in rank order
    assert "u14" in call_first and "u4" not in call_first.replace("u14", "")
    spend = page[page.index('id="spend"') : page.index('id="reports"')]
    assert spend.index("google_gestao_agil") < spend.index("facebook") < spend.index("(none)")
    assert "3.68×" in spend
    assert "Open leads scored fell to 15 (was 20)." in page
    assert "google_gestao_agil returns the most per unit spent" in spend
    (tmp_path / "ltv_params.json").write_text(json.dumps({"recommendation": "Put it in X."}))
    page = reports.write_run_summary(tmp_path, run_meta("b", "2026-01-02T00:00:00")).read_text()
    assert "Put it in X." in page and "returns the most per unit spent" not in page
    assert 'href="03_lead_scoring.html"' in page and 'href="scored_leads.csv"' in page
    assert external_references(page) == [] and "<script" not in page


def test_run_summary_of_a_failed_run_shows_no_partial_results(tmp_path: Path) -> None:
    write_outputs(tmp_path)
    failed = run_meta(
        "20260102T000000Z-cccc",
        "2026-01-02T00:00:00+00:00",
        status="failed",
        error={"message": "02_eda.ipynb: cell 4 raised KeyError: 'x'"},
    )
    page = reports.write_run_summary(tmp_path, failed).read_text()
    assert "02_eda.ipynb: cell 4 raised KeyError" in page
    assert 'id="call-first"' not in page and 'id="spend"' not in page


def test_index_lists_runs_newest_first_with_their_numbers(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    metas = [
        run_meta("20260101T000000Z-aaaa", "2026-01-01T00:00:00+00:00", holdout_roc_auc=0.701),
        run_meta(
            "20260103T000000Z-cccc",
            "2026-01-03T00:00:00+00:00",
            status="failed",
            error={"message": "bad input"},
        ),
        run_meta("20260102T000000Z-bbbb", "2026-01-02T00:00:00+00:00", holdout_roc_auc=0.712),
        {**run_meta("20260104T000000Z-dddd-score", "2026-01-04T00:00:00+00:00"), "kind": "score",
         "model_run": "20260102T000000Z-bbbb", "open_leads": 1234},
    ]  # fmt: skip
    for meta in metas:
        folder = runs / (meta["run_id"] + (".failed" if meta["status"] == "failed" else ""))
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps(meta))
        reports.write_run_summary(folder, meta)
    (runs / ".20260105T000000Z-eeee.partial").mkdir()  # in progress: not listed
    (tmp_path / "latest").symlink_to("runs/20260102T000000Z-bbbb")
    (tmp_path / "latest_scores").symlink_to("runs/20260104T000000Z-dddd-score")

    page = reports.write_index(tmp_path).read_text()
    table = page[page.index('id="runs"') : page.index('id="scores"')]
    assert table.index("2026-01-03") < table.index("2026-01-02") < table.index("2026-01-01")
    assert "0.712" in table and "0.701" in table and "2.30×" in table
    assert 'href="runs/20260103T000000Z-cccc.failed/index.html"' in table
    assert "20260105" not in page
    scores = page[page.index('id="scores"') :]
    assert "1,234" in scores and "20260102T000000Z-bbbb" in scores
    assert 'href="latest/index.html"' in page and 'href="latest_scores/scored_leads.csv"' in page
    redirect = (runs / "index.html").read_text()
    assert 'url=../index.html"' in redirect
    assert external_references(page) == []


def test_numbers_read_as_words_not_as_nan_or_false_certainty() -> None:
    table = pd.DataFrame(
        {
            "campaign": ["a", "(none)"],
            "customers": [10, 5],
            "ltv_mean": [50.0, 30.0],
            "cac": [20.0, float("nan")],
            "ltv_to_cac": [2.5, float("nan")],
            "payback_months": [float("inf"), float("nan")],
        }
    )
    rows, _ = reports.campaign_rows(table)
    assert [row["payback"] for row in rows] == ["not within the horizon", "—"]
    assert rows[1]["cac"] == "—" and rows[1]["ltv_to_cac"] == "—"
    leads = pd.DataFrame({"user_id": ["u1", "u2"], "score": [0.998, 0.5], "rank": [1, 2]})
    assert [lead["score"] for lead in reports.top_leads(leads)] == [">99%", "50%"]


def test_run_summary_says_where_users_get_stuck_from_the_product_summary(tmp_path: Path) -> None:
    write_outputs(tmp_path)
    summary = {
        "state": "ok",
        "funnel_in_words": "Of 9,727 signups, 80.0% created a task.",
        "top_friction_in_words": "The biggest loss is project created → teammate invited.",
        "caution": "Association is not causation.",
        "funnel": [
            {"event_name": "(signup)", "users_reached": 9727, "share_of_signups": 1.0,
             "conversion_if_reached": 0.104},
            {"event_name": "task_created", "users_reached": 7781, "share_of_signups": 0.8,
             "conversion_if_reached": 0.123},
        ],
    }  # fmt: skip
    (tmp_path / "product_summary.json").write_text(json.dumps(summary))
    page = reports.write_run_summary(tmp_path, run_meta("r", "2026-01-02T00:00:00")).read_text()
    stuck = page[page.index('id="stuck"') : page.index('id="reports"')]
    assert "project created → teammate invited" in stuck and "Association is not causation" in stuck
    assert "100.0%" in stuck and "80.0%" in stuck and "9,727" in stuck and "12.3%" in stuck
    (tmp_path / "product_summary.json").write_text(json.dumps({"state": "skipped", "reason": "x"}))
    page = reports.write_run_summary(tmp_path, run_meta("r", "2026-01-02T00:00:00")).read_text()
    assert 'id="stuck"' not in page  # the "not computed" section says why instead


def test_who_to_call_first_shows_both_orderings_and_names_the_one_rank_uses(
    tmp_path: Path,
) -> None:
    write_outputs(tmp_path)
    leads = pd.DataFrame(
        {
            "user_id": ["p1", "p2", "v1", "v2"],
            "score": [0.9, 0.8, 0.3, 0.2],
            "grade": ["A", "A", "C", "D"],
            "rank": [3, 4, 1, 2],
            "top_reasons": "came back",
            "campaign": ["facebook", "(none)", "google", "google"],
            "expected_value": [27.0, 20.0, 60.0, 40.0],
            "expected_value_low": [20.0, 15.0, 50.0, 30.0],
            "expected_value_high": [30.0, 25.0, 70.0, 50.0],
            "value_basis": ["overall value: 3 customer(s)", "campaign's own fit (9 customers)",
                            "campaign's own fit (50 customers)", "campaign's own fit (50 customers)"],
        }
    )  # fmt: skip
    leads.to_csv(tmp_path / "scored_leads.csv", index=False)
    (tmp_path / "model_card.json").write_text(json.dumps({"horizon_days": 90}))
    by_value = {"rank_by": "value", "requested": "value", "reason": None}
    meta = run_meta("r", "2026-01-02T00:00:00", ranking=by_value, open_leads=4)
    page = reports.write_run_summary(tmp_path, meta).read_text()
    section = page[page.index('id="call-first"') : page.index('id="spend"')]
    value_list = section[section.index('id="call-first-by-value"') :]
    value_list = value_list[: value_list.index("</table>")]
    probability_list = section[section.index('id="call-first-by-probability"') :]
    assert section.index("by-value") < section.index("by-probability")  # rank's order first
    assert "(the order <code>rank</code> uses)" in value_list
    assert "rank</code> uses" not in probability_list
    assert value_list.index("v1") < value_list.index("v2") < value_list.index("p1")
    assert (
        probability_list.index("p1") < probability_list.index("p2") < probability_list.index("v1")
    )
    assert "within 90 days" in section and "60.00" in value_list and "50.00 – 70.00" in value_list
    assert "facebook*" in value_list  # valued at the overall value, marked
    assert "4 of the 4 leads with the highest expected value" in section
    assert reports.call_first(leads, meta, n=2)["shared"] == 0  # v1, v2 against p1, p2

    by_probability = {"rank_by": "probability", "reason": "[scoring] rank_by = probability"}
    meta = run_meta("r", "2026-01-02T00:00:00", ranking=by_probability)
    section = reports.write_run_summary(tmp_path, meta).read_text()
    assert section.index("by-probability") < section.index("by-value")
    assert "by <strong>chance to convert</strong>" in section

    leads[["expected_value", "expected_value_low", "expected_value_high"]] = float("nan")
    leads.to_csv(tmp_path / "scored_leads.csv", index=False)
    skipped = {"rank_by": "probability", "reason": "no expected value: the LTV stage was skipped"}
    page = reports.write_run_summary(tmp_path, run_meta("r", "2026", ranking=skipped)).read_text()
    assert 'id="call-first-by-probability"' in page and 'id="call-first-by-value"' not in page
    assert "the LTV stage was skipped" in page
