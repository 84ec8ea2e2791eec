"""The product findings in words: units, ties, and nothing claimed when there is nothing."""

from __future__ import annotations

import pandas as pd

from insightos_utils.product.drivers import CAUTION
from insightos_utils.product.narrative import (
    drivers_in_words,
    friction_in_words,
    hours_in_words,
)


def test_hours_are_said_in_the_unit_a_reader_expects() -> None:
    assert hours_in_words(0.5) == "30 minutes"
    assert hours_in_words(13.04) == "13.0 hours"
    assert hours_in_words(156.0) == "6.5 days"
    assert hours_in_words(float("nan")) == "n/a"


def _top(runner_up: dict | None) -> dict:
    return {
        "event_name": "invite",
        "previous_step": "create",
        "from_signup": False,
        "users_entered": 4109,
        "users_lost": 1948,
        "share_lost": 0.474,
        "conversion_went_on": 0.224,
        "conversion_stopped": 0.053,
        "conversion_gap": 0.172,
        "gap_ci_low": 0.151,
        "gap_ci_high": 0.192,
        "conversions_left": 334.2,
        "conversions_left_low": 294.8,
        "conversions_left_high": 373.6,
        "runner_up": runner_up,
    }


def test_friction_names_the_step_the_interval_and_an_uncertain_order() -> None:
    alone = friction_in_words(_top(None), 14)
    assert "from create to invite" in alone and "1,948 of the 4,109" in alone
    assert "15.1 to 19.2" in alone and "upper bound" in alone
    assert "closely followed" not in alone
    close = {
        "event_name": "create",
        "previous_step": "view",
        "conversions_left": 328.0,
        "conversions_left_low": 295.0,
        "conversions_left_high": 362.0,
    }
    tied = friction_in_words(_top(close), 14)
    assert "closely followed by the step from view to create" in tied and "not certain" in tied


def test_no_friction_and_no_drivers_are_said_plainly() -> None:
    assert "No friction point" in friction_in_words(None, 14)
    empty = pd.DataFrame(columns=["evidence"])
    text = drivers_in_words(empty)
    assert text.startswith("No early behaviour") and CAUTION in text
