"""EDA statistics and feature decisions: Wilson intervals, VIF by hand, the leakage audit,
the data-driven drop for linear models, the charts, and the default synthetic company."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from statsmodels.stats.proportion import proportion_confint

from insightos_utils.leads import eda
from insightos_utils.leads.eda import FeatureDecisions, decide_feature_drops
from insightos_utils.leads.features import TARGET, FeatureSpec
from insightos_utils.plots import eda as eda_plots


def make_table(seed: int = 0, n: int = 2000) -> tuple[pd.DataFrame, FeatureSpec]:
    """A feature table with a known structure: x1 predicts, x2 is x1 plus a little noise,
    x3 is independent noise; ~20% labelled users converted, plus a few open leads."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = x1 + rng.normal(scale=0.25, size=n)
    x3 = rng.normal(size=n)
    y = (x1 + rng.normal(scale=1.5, size=n) > 1.2).astype(int)
    label_known = np.ones(n, dtype=bool)
    label_known[-50:] = False
    table = pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "x3": x3,
            "campaign": np.where(np.arange(n) % 4 == 0, "best", "rest"),
            "label_known": label_known,
            TARGET: pd.array(np.where(label_known, y, 0), dtype="Int8"),
        },
        index=pd.Index([f"u{i}" for i in range(n)], name="user_id"),
    )
    table.loc[~label_known, TARGET] = pd.NA
    spec = FeatureSpec(
        window_days=14,
        event_columns={},
        excluded_events=("invoice_paid",),
        categorical_columns=("campaign",),
        numeric_columns=("x1", "x2", "x3"),
    )
    return table, spec


def test_class_balance_counts_only_known_outcomes() -> None:
    table, _ = make_table()
    known = table[table["label_known"]]
    balance = eda.class_balance(table)
    assert balance["n"] == len(known) == len(table) - 50
    assert balance["converted"] == int(known[TARGET].sum())
    assert balance["rate"] == pytest.approx(balance["converted"] / balance["n"])


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval written out."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_conversion_by_gives_wilson_intervals() -> None:
    table, _ = make_table()
    by = eda.conversion_by(table, "campaign")
    assert list(by.columns) == ["n", "converted", "rate", "ci_low", "ci_high"]
    for campaign, row in by.iterrows():
        rows = table[table["label_known"] & (table["campaign"] == campaign)]
        assert row["n"] == len(rows) and row["converted"] == int(rows[TARGET].sum())
        low, high = proportion_confint(row["converted"], row["n"], alpha=0.05, method="wilson")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson(row["converted"], row["n"]))
    assert by["rate"].is_monotonic_decreasing
    wide = eda.conversion_by(table, "campaign", confidence=0.99)
    assert (wide["ci_high"] - wide["ci_low"] > by["ci_high"] - by["ci_low"]).all()


def test_vif_matches_one_over_one_minus_r_squared() -> None:
    table, _ = make_table()
    columns = ["x1", "x2", "x3"]
    vif = eda.vif_table(table, columns).set_index("feature")["vif"]
    known = table[table["label_known"]][columns].to_numpy(dtype=float)
    for i, column in enumerate(columns):
        others = np.column_stack([np.ones(len(known)), np.delete(known, i, axis=1)])
        coef, *_ = np.linalg.lstsq(others, known[:, i], rcond=None)
        residual = known[:, i] - others @ coef
        r2 = 1 - residual.var() / known[:, i].var()
        assert vif[column] == pytest.approx(1 / (1 - r2), rel=1e-6)
    assert vif["x1"] > 10 and vif["x3"] < 1.1


def test_vif_of_a_constant_column_is_nan_not_an_error() -> None:
    table, _ = make_table()
    table["flat"] = 3.0
    vif = eda.vif_table(table, ["x1", "x3", "flat"]).set_index("feature")["vif"]
    assert np.isnan(vif["flat"]) and vif["x1"] < 1.1


def test_high_correlation_pairs() -> None:
    table, _ = make_table()
    corr = eda.correlation_matrix(table, ["x1", "x2", "x3"])
    pairs = eda.high_correlation_pairs(corr, threshold=0.9)
    assert pairs[["feature_a", "feature_b"]].values.tolist() == [["x1", "x2"]]
    assert pairs["r"].iloc[0] == pytest.approx(
        np.corrcoef(table["x1"][:-50], table["x2"][:-50])[0, 1]
    )
    assert eda.high_correlation_pairs(corr, threshold=0.99).empty


def test_single_feature_auc_counts_a_reversed_feature() -> None:
    table, _ = make_table()
    table["minus_x1"] = -table["x1"]
    auc = eda.single_feature_auc(table, ["x1", "minus_x1", "x3"]).set_index("feature")
    assert auc.loc["x1", "auc"] == pytest.approx(1 - auc.loc["minus_x1", "auc"])
    assert auc.loc["x1", "abs_auc"] == pytest.approx(auc.loc["minus_x1", "abs_auc"])
    assert 0.4 < auc.loc["x3", "auc"] < 0.6


def test_an_injected_leaky_feature_is_caught_and_kept_out_of_both_models() -> None:
    table, spec = make_table()
    rng = np.random.default_rng(5)
    target = table[TARGET].fillna(0).to_numpy(dtype=float)
    table["leak"] = target + rng.normal(scale=0.1, size=len(table))
    spec = FeatureSpec(**{**spec.__dict__, "numeric_columns": (*spec.numeric_columns, "leak")})
    decisions = decide_feature_drops(table, spec)
    assert list(decisions.leaky_features) == ["leak"]
    assert "AUC" in decisions.leaky_features["leak"]
    assert "leak" not in decisions.features_for("tree", spec)
    assert "leak" not in decisions.features_for("linear", spec)
    assert decisions.excluded_events == {"invoice_paid": eda.POST_CONVERSION_REASON}
    # without the leak nothing is flagged as leaky
    clean, clean_spec = make_table()
    assert decide_feature_drops(clean, clean_spec).leaky_features == {}


def test_the_weaker_member_of_a_correlated_pair_is_dropped_for_linear_only() -> None:
    table, spec = make_table()
    decisions = decide_feature_drops(table, spec, corr_threshold=0.9, vif_threshold=10)
    auc = eda.single_feature_auc(table, ["x1", "x2"]).set_index("feature")["abs_auc"]
    weaker = "x1" if auc["x1"] < auc["x2"] else "x2"
    assert list(decisions.dropped_for_linear) == [weaker]
    assert decisions.dropped_for_linear[weaker].startswith("r=0.9")
    assert [p["dropped_for_linear"] for p in decisions.flagged_pairs] == [weaker]
    assert decisions.high_vif == {}  # the drop cured the pair's VIF
    assert decisions.vif_before["x1"] > 10
    assert weaker not in decisions.features_for("linear", spec)
    assert decisions.features_for("tree", spec) == ["x1", "x2", "x3", "campaign"]


def test_an_exact_tie_drops_the_later_column() -> None:
    table, spec = make_table()
    table["x2"] = table["x1"] * 2 + 1  # same ranking, same AUC, r = 1
    decisions = decide_feature_drops(table, spec)
    assert list(decisions.dropped_for_linear) == ["x2"]


def test_decisions_round_trip_through_json(tmp_path) -> None:
    table, spec = make_table()
    table["flat"] = 0.0
    spec = FeatureSpec(**{**spec.__dict__, "numeric_columns": (*spec.numeric_columns, "flat")})
    decisions = decide_feature_drops(table, spec)
    assert "flat" in decisions.dropped_for_linear
    path = decisions.to_json(tmp_path / "feature_decisions.json")
    document = json.loads(path.read_text())
    assert document["dropped_for_linear"] == decisions.dropped_for_linear
    restored = FeatureDecisions.from_json(path)
    assert restored.features_for("linear", spec) == decisions.features_for("linear", spec)
    assert restored.flagged_pairs == decisions.flagged_pairs
    assert not list(tmp_path.glob("*.tmp"))


def test_charts_state_their_finding_and_label_their_axes() -> None:
    table, _ = make_table()
    columns = ["x1", "x2", "x3"]
    figures = [
        eda_plots.plot_class_balance(eda.class_balance(table)),
        eda_plots.plot_conversion_by(eda.conversion_by(table, "campaign"), "campaign"),
        eda_plots.plot_correlation_heatmap(eda.correlation_matrix(table, columns)),
        eda_plots.plot_vif(eda.vif_table(table, columns)),
        eda_plots.plot_single_feature_auc(eda.single_feature_auc(table, columns)),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        ax = figure.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "x1 / x2" in figures[2].axes[0].get_title()
    assert "best" in figures[1].axes[0].get_title() or "rest" in figures[1].axes[0].get_title()


# ---------------------------------------------------------------- the default synthetic company


@pytest.fixture(scope="module")
def synthetic_or_skip(request: pytest.FixtureRequest):
    """The default company's processed folder (a missing module is a failure, not a skip)."""
    return request.getfixturevalue("synthetic_processed")


@pytest.fixture(scope="module")
def default_features(synthetic_or_skip):
    from insightos_utils.ingest import read_processed
    from insightos_utils.leads.features import build_feature_table, encode_events, fit_feature_spec

    data = read_processed(synthetic_or_skip)
    events = encode_events(data.events)
    spec = fit_feature_spec(data.users, events, None)
    return build_feature_table(data.users, events, spec, None), spec


@pytest.mark.slow
def test_default_company_reproduces_the_original_findings(default_features) -> None:
    table, spec = default_features
    assert eda.class_balance(table)["rate"] == pytest.approx(0.101, abs=0.01)
    decisions = decide_feature_drops(table, spec)
    pair = {"events_trial_signup", "events_user_verified"}
    flagged = [p for p in decisions.flagged_pairs if {p["feature_a"], p["feature_b"]} == pair]
    assert flagged, decisions.flagged_pairs
    assert flagged[0]["r"] == pytest.approx(0.96, abs=0.03)
    assert len(pair & set(decisions.dropped_for_linear)) == 1
    assert decisions.leaky_features == {}


@pytest.mark.notebook
@pytest.mark.slow
def test_02_eda_runs_headlessly_and_writes_its_outputs(synthetic_or_skip, run_notebook, tmp_path):
    run_dir = tmp_path / "run"
    run_notebook("02_eda", run_dir, processed_dir=str(synthetic_or_skip), run_dir=str(run_dir))
    decisions = json.loads((run_dir / "feature_decisions.json").read_text())
    spec = FeatureSpec.from_json(run_dir / "feature_spec.json")
    table = pd.read_parquet(run_dir / "feature_table.parquet")
    assert list(table.columns[: len(spec.numeric_columns)]) == list(spec.numeric_columns)
    assert {"events_trial_signup", "events_user_verified"} & set(decisions["dropped_for_linear"])


def test_a_company_with_other_event_names_gets_the_same_treatment() -> None:
    """The second synthetic profile (other seed, event names and campaigns): its own
    post-conversion events are found and its own verification pair is dropped for linear."""
    from insightos_utils import synth
    from insightos_utils.ingest.fastpath import marketing_fields
    from insightos_utils.leads.features import build_feature_table, fit_feature_spec

    company = synth.generate_company(n_users=4000, seed=7, profile="crm")
    users = company["users"].join(marketing_fields(company["users"]["marketing"]))
    events = company["events"].drop_duplicates("event_id")
    spec = fit_feature_spec(users, events, None)
    assert spec.excluded_events == tuple(sorted(synth.CRM.post_conversion_events))
    table = build_feature_table(users, events, spec, None)
    decisions = decide_feature_drops(table, spec)
    pair = {f"events_{synth.CRM.trial_event}", f"events_{synth.CRM.verify_event}"}
    assert any({p["feature_a"], p["feature_b"]} == pair for p in decisions.flagged_pairs)
    assert len(pair & set(decisions.dropped_for_linear)) == 1
    assert decisions.leaky_features == {}
    best = eda.conversion_by(table, "campaign").index[0]
    assert best == synth.CRM.reference_campaign
