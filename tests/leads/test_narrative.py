"""The notebook's words about which ordering its top-leads table shows."""

from __future__ import annotations

from insightos_utils.leads.narrative import call_first_markdown


def test_the_top_leads_note_says_which_ordering_and_why() -> None:
    by_value = call_first_markdown("value", 20, 90)
    assert "20 open leads most likely to convert within 90 days" in by_value
    assert "expected value" in by_value and "04_ltv" in by_value and "re-ranks" in by_value
    by_probability = call_first_markdown("probability", 5, None)
    assert "5 open leads most likely to convert," in by_probability
    assert "04_ltv" not in by_probability and 'rank_by = "probability"' in by_probability
