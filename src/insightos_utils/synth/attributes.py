"""What a CRM records about each lead besides its signup: the lead attributes of the corpus.

Used by ``Knobs(lead_attributes=True)``: some attributes carry real but partial signal (driven
by the latent intent), some are noise, one is id-like, and one is filled in after the outcome
(a leak the leakage audit must catch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.synth.profiles import Profile

COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
INDUSTRIES = (
    "software", "retail", "services", "education", "health", "finance", "industry",
    "agriculture", "logistics", "government",
)  # fmt: skip
INDUSTRY_WEIGHTS = (0.22, 0.16, 0.15, 0.11, 0.1, 0.09, 0.08, 0.05, 0.03, 0.01)
COUNTRIES = ("BR", "PT", "AR", "MX", "US", "CO")
COUNTRY_WEIGHTS = (0.7, 0.1, 0.06, 0.06, 0.05, 0.03)
SALES_REPS = 300  # an owner column with many levels: an id-like field, never a good feature


def add_lead_attributes(
    frame: pd.DataFrame, users: Any, spec: Profile, status: np.ndarray, seed: int
) -> pd.DataFrame:
    """Add what a CRM records about a lead, from its own random stream (seed-derived):

    - ``company_size`` (text, ordered bands) and ``employees`` (a number, 5% empty): driven by
      the latent intent plus noise, so they carry real but partial signal;
    - ``landing_page`` (text): where the lead landed, by campaign, ``/pricing`` more often for
      high intent; ``industry`` and ``country`` (text): noise, with rare levels;
    - ``sales_owner`` (text): one of 300 sales reps, at random (an id-like field);
    - ``lead_quality`` (text): filled in by sales *after* the outcome ("hot" for most converted
      leads, "cold" for most lost ones, empty while open): a leak the audit must catch;
    - marketing JSON gains ``utm_content`` and ``utm_term`` for paid leads.
    """
    rng = np.random.default_rng([seed, 3])
    n = users.size
    size_score = 0.8 * users.intent + rng.standard_normal(n)
    band = np.searchsorted(np.quantile(size_score, [0.35, 0.65, 0.85, 0.96]), size_score)
    employees = np.round(np.exp(2.0 + 0.9 * size_score + 0.4 * rng.standard_normal(n)))
    employees[rng.random(n) < 0.05] = np.nan
    n_campaigns = len(spec.campaigns)
    pages = np.array([f"/lp/{c.name}" for c in spec.campaigns] + ["/"], dtype=object)
    landing = pages[np.minimum(users.campaign, n_campaigns)]
    pricing = rng.random(n) < 1 / (1 + np.exp(-(users.intent - 1.0)))
    landing = np.where(pricing, "/pricing", landing)
    industry = rng.choice(np.array(INDUSTRIES), n, p=np.array(INDUSTRY_WEIGHTS))
    country = rng.choice(np.array(COUNTRIES), n, p=np.array(COUNTRY_WEIGHTS))
    owner = np.char.add("rep", rng.integers(1, SALES_REPS + 1, n).astype(str))
    quality = np.full(n, "", dtype=object)
    hot = rng.random(n) < 0.9
    quality[(status == "converted") & hot] = "hot"
    quality[(status == "converted") & ~hot] = "warm"
    cold = rng.random(n) < 0.8
    quality[(status == "lost") & cold] = "cold"
    quality[(status == "lost") & ~cold] = "warm"
    contents = np.array(["banner_a", "banner_b", "video", "carousel"], dtype=object)
    terms = np.array(["crm", "gestao", "vendas", "software"], dtype=object)
    marketing = frame["marketing"].astype(object).to_numpy()
    paid = (users.campaign < n_campaigns) & pd.notna(marketing)
    extra = (
        ', "utm_content": "' + contents[rng.integers(0, len(contents), n)]
        + '", "utm_term": "' + terms[rng.integers(0, len(terms), n)] + '"}'
    )  # fmt: skip
    marketing = np.where(
        paid, np.char.rstrip(marketing.astype(str), "}").astype(object) + extra, marketing
    )
    return frame.assign(
        marketing=pd.array(marketing, dtype=frame["marketing"].dtype),
        company_size=np.array(COMPANY_SIZES, dtype=object)[band],
        employees=employees,
        landing_page=landing,
        industry=industry,
        country=country,
        sales_owner=owner,
        lead_quality=quality,
    )
