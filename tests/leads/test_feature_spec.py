"""FeatureSpec, the vocabulary saved with every bundle: it survives JSON, an older document
without the later keys still loads (bundles written before horizons and lead attributes), and
the event columns are the ``events_*`` numeric ones in order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from insightos_utils.leads import features
from insightos_utils.leads.feature_spec import FeatureSpec, read_feature_table, write_feature_table

SPEC = FeatureSpec(
    window_days=14,
    event_columns={"events_project_created": "project_created", "events_other": ""},
    excluded_events=("invoice_paid",),
    categorical_columns=("campaign",),
    numeric_columns=("events_project_created", "days_active", "events_other"),
    key_events={"hours_to_first_project_created": "project_created"},
    as_of="2025-06-30T00:00:00",
    horizon_days=90,
)


def test_round_trip_and_event_columns(tmp_path: Path) -> None:
    assert FeatureSpec.from_json(SPEC.to_json(tmp_path / "spec.json")) == SPEC
    assert SPEC.event_feature_columns == ("events_project_created", "events_other")
    assert features.FeatureSpec is FeatureSpec  # the name callers use


def test_an_older_document_loads_with_the_old_label() -> None:
    document = SPEC.to_dict()
    for later in ("key_events", "as_of", "min_event_users", "horizon_days", "attributes"):
        document.pop(later)
    old = FeatureSpec.from_dict(document)
    assert old.horizon_days is None and old.key_events == {} and old.min_event_users == 50
    assert old.attributes == {} and old.attribute_plan.features == ()


def test_feature_table_keeps_index_and_dtypes(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {"days_active": pd.Series([1, 3], dtype="int16"), "campaign": ["a", "b"]},
        index=pd.Index(["u1", "u2"], name="user_id"),
    )
    back = read_feature_table(write_feature_table(table, tmp_path / "ft.parquet"))
    pd.testing.assert_frame_equal(back, table)
