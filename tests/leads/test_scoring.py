"""Scoring: contract columns, ranks and grades, atomic CSV, database upsert, charts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from insightos_utils.cli import main
from insightos_utils.leads import explain, scoring
from insightos_utils.leads.backtest import BacktestResult
from insightos_utils.leads.bundle import ModelBundle, load_bundle, make_bundle, save_models
from insightos_utils.leads.card import as_plain_dict
from insightos_utils.leads.train import TrainingResult
from insightos_utils.plots import scoring as scoring_plots

CONTRACT_COLUMNS = [
    "user_id",
    "score",
    "grade",
    "rank",
    "top_reasons",
    "model_version",
    "scored_at",
]


@pytest.fixture(scope="module")
def toy_bundle(toy_training: TrainingResult) -> ModelBundle:
    return make_bundle(
        toy_training,
        toy_training.champion,
        champion=True,
        feature_spec={"window_days": 14},
        decisions={},
        data_hash="feedbeef" * 8,
        as_of=pd.Timestamp("2026-01-01"),
        window_days=14,
        top_reasons=3,
    )


@pytest.fixture(scope="module")
def scored(toy_bundle: ModelBundle, toy_feature_table: pd.DataFrame) -> pd.DataFrame:
    leads = toy_feature_table[~toy_feature_table["label_known"]]
    return scoring.score_leads(toy_bundle, leads, scored_at="2026-01-01T12:00:00Z")


def test_scored_leads_follow_the_contract(
    scored: pd.DataFrame, toy_feature_table: pd.DataFrame
) -> None:
    leads = toy_feature_table[~toy_feature_table["label_known"]]
    assert list(scored.columns) == CONTRACT_COLUMNS + ["window_complete", "campaign"]
    assert len(scored) == len(leads)
    assert set(scored["user_id"]) == set(leads.index)
    assert scored["score"].between(0, 1).all()
    assert set(scored["grade"]) <= {"A", "B", "C", "D"}
    assert (scored["model_version"] == "v1_logreg@feedbeef").all() or (
        scored["model_version"] == "v2_xgboost@feedbeef"
    ).all()
    assert (scored["scored_at"] == "2026-01-01T12:00:00Z").all()
    assert scored["top_reasons"].str.contains(r"\((?:raises|lowers)\)").all()
    complete = leads["window_complete"].reindex(scored["user_id"]).to_numpy()
    assert (scored["window_complete"].to_numpy() == complete).all()
    campaign = leads["campaign"].reindex(scored["user_id"]).to_numpy()
    assert (scored["campaign"].to_numpy() == campaign).all()  # carried for the expected value


def test_rank_one_is_the_highest_score_and_grades_are_monotone(scored: pd.DataFrame) -> None:
    assert sorted(scored["rank"]) == list(range(1, len(scored) + 1))
    best = scored.loc[scored["rank"] == 1, "score"].item()
    assert best == scored["score"].max()
    by_rank = scored.sort_values("rank")
    assert by_rank["score"].is_monotonic_decreasing
    assert list(by_rank["grade"]) == sorted(by_rank["grade"])  # A before B before C before D


def test_equal_scores_are_ranked_by_user_id(
    toy_bundle: ModelBundle, toy_feature_table: pd.DataFrame
) -> None:
    """Ties (identical leads) rank by user id, whatever order the leads come in, so a rerun on
    the same data gives every lead the same rank."""
    template = toy_feature_table[~toy_feature_table["label_known"]]
    distinct = template.iloc[:3]
    ids = [f"tie{k:02d}" for k in range(12)]
    leads = pd.concat([distinct.iloc[[k % 3]] for k in range(12)])  # four leads per score
    leads.index = pd.Index(ids, name="user_id")
    for seed in (0, 1, 2):
        shuffled = leads.sample(frac=1.0, random_state=seed)
        scored = scoring.score_leads(toy_bundle, shuffled, scored_at="2026-01-01T12:00:00Z")
        assert scored["score"].nunique() == 3
        for _, group in scored.groupby("score"):
            assert group["user_id"].tolist() == sorted(group["user_id"])
            assert group["rank"].tolist() == sorted(group["rank"])
        expected = scored.sort_values(["score", "user_id"], ascending=[False, True])
        assert scored["user_id"].tolist() == expected["user_id"].tolist()


def test_explanations_come_back_from_scoring(
    toy_bundle: ModelBundle, toy_feature_table: pd.DataFrame
) -> None:
    leads = toy_feature_table[~toy_feature_table["label_known"]]
    scored, explained = scoring.score_leads(toy_bundle, leads, top_n=2, with_explanations=True)
    again = explain.explain_leads(
        toy_bundle.pipeline,
        leads,
        toy_bundle.features,
        window_days=toy_bundle.window_days,
        top_n=2,
        reference=toy_bundle.explain_reference,
    )
    pd.testing.assert_frame_equal(explained.contributions, again.contributions)
    assert explained.text.reindex(scored["user_id"]).tolist() == scored["top_reasons"].tolist()
    none_scored, none_explained = scoring.score_leads(
        toy_bundle, leads.iloc[:0], with_explanations=True
    )
    assert len(none_scored) == 0 and len(none_explained.text) == 0
    assert list(none_explained.contributions.columns) == toy_bundle.features


def test_scores_are_the_bundle_probabilities(
    scored: pd.DataFrame, toy_bundle: ModelBundle, toy_feature_table: pd.DataFrame
) -> None:
    leads = toy_feature_table.loc[scored["user_id"]]
    assert np.allclose(scored["score"], toy_bundle.predict(leads), atol=1e-6)


def test_missing_feature_column_is_a_clear_error(
    toy_bundle: ModelBundle, toy_feature_table: pd.DataFrame
) -> None:
    leads = toy_feature_table.drop(columns=["events_page_view"])
    with pytest.raises(scoring.InsightOSError, match="events_page_view"):
        scoring.score_leads(toy_bundle, leads)


def test_write_is_atomic_and_keeps_the_old_file_on_failure(
    scored: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "scored_leads.csv"
    scoring.write_scored_leads(scored, path)
    written = pd.read_csv(path)
    assert list(written.columns) == CONTRACT_COLUMNS + ["window_complete", "campaign"]
    assert len(written) == len(scored)
    with pytest.raises(ValueError, match="contract columns"):
        scoring.write_scored_leads(scored.drop(columns=["grade"]), path)
    assert len(pd.read_csv(path)) == len(scored)
    assert [p.name for p in tmp_path.iterdir()] == ["scored_leads.csv"]


def _query(db_url: str, *queries: str) -> list:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as connection:
        answers = [connection.execute(text(query)).scalar_one() for query in queries]
    engine.dispose()
    return answers


def _count(db_url: str) -> tuple[int, int]:
    """Rows, and distinct (user_id, scored_at) keys, in table scored_leads."""
    rows, keys = _query(
        db_url,
        "SELECT COUNT(*) FROM scored_leads",
        "SELECT COUNT(*) FROM (SELECT DISTINCT user_id, scored_at FROM scored_leads) k",
    )
    return rows, keys


def _upsert_twice(scored: pd.DataFrame, db_url: str) -> None:
    scoring.upsert_scored_leads(scored, db_url)
    changed = scored.copy()
    changed["score"] = 0.5
    scoring.upsert_scored_leads(changed, db_url)
    rows, keys = _count(db_url)
    assert rows == keys == len(scored)  # the second write updated, it did not duplicate
    assert _query(
        db_url, "SELECT MIN(score) FROM scored_leads", "SELECT MAX(score) FROM scored_leads"
    ) == [0.5, 0.5]
    later = scored.assign(scored_at="2026-01-02T12:00:00Z")  # a new run adds its own rows
    scoring.upsert_scored_leads(later, db_url)
    assert _count(db_url) == (2 * len(scored), 2 * len(scored))


def test_upsert_into_sqlite_twice_gives_no_duplicates(scored: pd.DataFrame, tmp_path: Path) -> None:
    _upsert_twice(scored, f"sqlite:///{tmp_path / 'crm.sqlite'}")


@pytest.mark.postgres
def test_upsert_into_postgresql_twice_gives_no_duplicates(
    scored: pd.DataFrame, postgres_schema_url: str
) -> None:
    _upsert_twice(scored, postgres_schema_url)


def test_score_command_refuses_a_missing_model(tmp_path: Path, capsys) -> None:
    status = main(
        ["score", "--raw", str(tmp_path), "--model", str(tmp_path / "nope.joblib"), "--out", "x"]
    )
    assert status == 1
    assert "model file not found" in capsys.readouterr().err


# --- charts --------------------------------------------------------------------------------------


def test_every_chart_is_a_titled_figure(
    toy_training: TrainingResult, toy_bundle: ModelBundle, toy_feature_table
) -> None:
    leads = toy_feature_table[~toy_feature_table["label_known"]]
    explained = explain.explain_leads(
        toy_bundle.pipeline,
        leads,
        toy_bundle.features,
        window_days=14,
        reference=toy_bundle.explain_reference,
    )
    by_grade = pd.DataFrame(
        {"grade": list("ABCD"), "leads": [10, 20, 30, 0], "converted": [5, 4, 3, 0]}
    ).assign(conversion_rate=[0.5, 0.2, 0.1, np.nan])
    backtest = BacktestResult(
        trained_as_of=pd.Timestamp("2026-01-01"),
        outcome_as_of=pd.Timestamp("2026-03-01"),
        champion="v1_logreg",
        holdout_roc_auc=0.8,
        leads=pd.DataFrame(),
        by_grade=by_grade,
        top_decile_rate=0.5,
        rest_rate=0.1,
    )
    figures = [
        scoring_plots.roc_pr_curves(toy_training),
        scoring_plots.gains_chart(toy_training),
        scoring_plots.calibration_chart(toy_training),
        scoring_plots.backtest_chart(backtest),
        scoring_plots.reasons_chart(explain.reason_frequency(explained), len(leads)),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        assert figure.get_suptitle()
    assert "champion" in figures[0].get_suptitle()
    assert "50.0%" in figures[3].get_suptitle()


def test_score_command_end_to_end_from_a_raw_folder(
    synthetic_lead_models, synthetic_raw: Path, tmp_path: Path, capsys
) -> None:
    from insightos_utils.leads import features

    result = synthetic_lead_models["result"]
    inputs = synthetic_lead_models["inputs"]
    paths = save_models(
        result,
        tmp_path / "models",
        feature_spec=inputs.spec.to_dict(),
        decisions=as_plain_dict(inputs.decisions),
        data_hash="abcdef12" * 8,
        as_of=synthetic_lead_models["as_of"],
        window_days=inputs.spec.window_days,
    )
    out = tmp_path / "scored.csv"
    db_url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    arguments = ["score", "--raw", str(synthetic_raw), "--model", str(paths["champion"])]
    for _ in range(2):
        assert main([*arguments, "--out", str(out), "--db", db_url]) == 0
    scored = pd.read_csv(out)
    assert f"{len(scored):,} open leads scored (A " in capsys.readouterr().err
    open_leads = features.open_leads(inputs.feature_table)
    assert list(scored.columns) == CONTRACT_COLUMNS + ["trend", "window_complete", "campaign"]
    assert set(scored["trend"]) == {"new"}  # no --previous: every lead is new
    assert set(scored["user_id"]) == set(open_leads.index)
    assert (scored["model_version"] == f"{result.champion}@abcdef12").all()
    again = tmp_path / "again.csv"
    assert main([*arguments, "--out", str(again), "--previous", str(out)]) == 0
    assert set(pd.read_csv(again)["trend"]) == {"steady"}  # same scores as the previous run
    # same data, same model, same as-of: the scores are the ones training produced
    bundle = load_bundle(paths["champion"])
    expected = bundle.predict(open_leads.loc[scored["user_id"]])
    assert np.allclose(scored["score"], expected, atol=1e-6)
    rows, keys = _count(db_url)
    users, n_runs = _query(
        db_url,
        "SELECT COUNT(DISTINCT user_id) FROM scored_leads",
        "SELECT COUNT(DISTINCT scored_at) FROM scored_leads",
    )
    assert users == len(scored)
    assert rows == keys == users * n_runs  # one row per lead and run, never a duplicate
    # an earlier as-of scores the leads that were open then
    earlier = tmp_path / "earlier.csv"
    assert main([*arguments, "--out", str(earlier), "--as-of", "2026-03-01"]) == 0
    assert len(pd.read_csv(earlier)) != len(scored)


def test_grades_are_withheld_when_the_model_is_no_better_than_chance(
    toy_bundle: ModelBundle, toy_feature_table: pd.DataFrame
) -> None:
    leads = toy_feature_table[~toy_feature_table["label_known"]]
    withheld = dataclasses.replace(toy_bundle, grades_withheld="NO USABLE SIGNAL: ...")
    scored = scoring.score_leads(withheld, leads)
    assert (scored["grade"] == "").all()
    assert scored["rank"].tolist() == list(range(1, len(scored) + 1))  # still ordered
    graded = scoring.score_leads(toy_bundle, leads)
    assert set(graded["grade"]) <= {"A", "B", "C", "D"} and (graded["grade"] != "").all()
