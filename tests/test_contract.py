"""The contract as data: its tables, one timestamp's reading, reject reasons in words."""

from __future__ import annotations

import pandas as pd

from insightos_utils import contract


def test_tables_describe_the_contract() -> None:
    assert [t.name for t in contract.TABLES] == [
        "users",
        "events",
        "transactions",
        "campaign_spend",
    ]
    assert contract.USERS.required and contract.EVENTS.required
    assert not contract.TRANSACTIONS.required and not contract.CAMPAIGN_SPEND.required
    assert {"lead", "trial", "converted", "lost"} == contract.STATUSES


def test_parse_timestamp_single_value_is_naive_utc() -> None:
    assert contract.parse_timestamp("2024-03-01T12:00:00+02:00") == pd.Timestamp("2024-03-01 10:00")
    assert contract.parse_timestamp("2024-03-01") == pd.Timestamp("2024-03-01")


def test_describe_reason_names_the_column() -> None:
    assert "occurred_at" in contract.describe_reason("bad_occurred_at", contract.EVENTS)
    assert "ISO 8601" in contract.describe_reason("bad_occurred_at", contract.EVENTS)
    assert "JSON object" in contract.describe_reason("bad_marketing", contract.USERS)
    assert "event_id" in contract.describe_reason("duplicate_event_id")
    assert "status" in contract.describe_reason("unknown_status")
