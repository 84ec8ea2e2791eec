"""Shared helpers of the lead-scoring tests (the fixtures live in tests/conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from insightos_utils.io_utils import json_safe
from insightos_utils.leads.card import model_card
from insightos_utils.leads.train import TrainingResult

TOY_FEATURES = ["events_project_created", "events_page_view", "hours_to_first_event", "campaign"]


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose outcome is known at as-of."""
    return table[table["label_known"]]


def bundle_arguments() -> dict[str, Any]:
    """What ``make_bundle`` / ``save_models`` / ``model_card`` need besides the training result."""
    return {
        "feature_spec": {"window_days": 14},
        "decisions": {
            "leaky_features": {},
            "dropped_for_linear": {"events_page_view": "r=0.95 with events_project_created"},
            "excluded_events": {"subscription_started": "seen only after conversion"},
        },
        "data_hash": "0123456789abcdef" * 4,
        "as_of": pd.Timestamp("2026-01-01"),
        "window_days": 14,
    }


def card_of(result: TrainingResult) -> dict[str, Any]:
    """The model card of ``result`` as it reads back from JSON."""
    card = model_card(result, **bundle_arguments())
    return json.loads(json.dumps(json_safe(card), allow_nan=False))
