"""Synthetic inputs shared by the expected-value and trend benchmarks (what the runner sees).

``scored_leads``: scored leads in scoring's order (score, then user id) with text ids, reasons,
model version, scoring time and each lead's campaign, as ``scored_leads.csv`` holds them; a
user id → campaign look-up over every user (1.2 times the leads, shuffled: the leads are a
subset of the users), for files without a campaign column; ``customer_values``: a
``new_customer_value.csv`` table of 12 campaigns, half of them borrowing the ``(all)`` value,
plus leads whose campaign has no customer yet; ``previous_run``: the previous run's scores, 90%
of today's leads plus a tenth as many that are no longer open, in another order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CAMPAIGNS = np.array([f"campaign_{i:02d}" for i in range(12)] + ["brand_new"])


def scored_leads(n_leads: int, seed: int = 7) -> tuple[pd.DataFrame, pd.Series]:
    """The scored leads (with ``campaign``) and the user id → campaign look-up."""
    rng = np.random.default_rng(seed)
    n_users = int(n_leads * 1.2)
    user_ids = pd.Series(np.char.add("u", rng.permutation(n_users).astype(str)), dtype="str")
    lookup = pd.Series(CAMPAIGNS[rng.integers(0, len(CAMPAIGNS), n_users)], index=user_ids)
    score = np.round(rng.beta(1.2, 6, n_leads), 6)
    reasons = np.array(["created 3 projects; invited a teammate", "no events yet in the window"])
    scored = pd.DataFrame(
        {
            "user_id": user_ids.iloc[:n_leads].to_numpy(),
            "score": score,
            "grade": np.where(score > 0.3, "A", "C"),
            "top_reasons": reasons[rng.integers(0, 2, n_leads)],
            "model_version": "v2_xgboost@bench",
            "scored_at": "2026-06-30T00:00:00Z",
            "window_complete": rng.random(n_leads) < 0.9,
            "campaign": pd.array(lookup.to_numpy()[:n_leads], dtype="str"),
        }
    ).sort_values(["score", "user_id"], ascending=[False, True], ignore_index=True)
    scored.insert(3, "rank", np.arange(1, n_leads + 1))
    return scored, lookup


def customer_values(seed: int = 7) -> pd.DataFrame:
    """``new_customer_value.csv``: (all) and 12 campaigns, the last 6 borrowing (all)."""
    value = np.random.default_rng(seed).gamma(3, 30, 13)
    return pd.DataFrame(
        {
            "campaign": ["(all)", *CAMPAIGNS[:12]],
            "customers": 100,
            "value": value,
            "value_low": value * 0.8,
            "value_high": value * 1.3,
            "fallback": [False] * 7 + [True] * 6,
            "basis": "overall value: few customers",
        }
    )


def previous_run(scored: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The previous run's scored leads: 90% of today's (scores moved a little) and a tenth as
    many that are no longer open, shuffled (another ranking)."""
    rng = np.random.default_rng(seed)
    n = len(scored)
    kept = rng.random(n) < 0.9
    before = np.clip(scored["score"].to_numpy() + rng.normal(0, 0.05, n), 0, 1)
    gone = np.char.add("gone", np.arange(n // 10).astype(str))
    return pd.DataFrame(
        {
            "user_id": np.concatenate([scored["user_id"].to_numpy(object)[kept], gone]),
            "score": np.concatenate([before[kept], rng.random(n // 10)]).round(6),
            "grade": "B",
        }
    ).sample(frac=1.0, random_state=seed)
