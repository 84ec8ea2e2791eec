"""The corpus of company shapes: the kinds of data real companies bring, as synthetic companies.

Each ``Shape`` bends the default company one way (issue "any company's data"): no product
events, no transactions, no campaign spend, one campaign, 500 campaigns, no conversion lately,
conversions only lately, 1% or 50% converting, 200 users, subscription-like purchases, single
purchases, heavy-tailed order values, mixed UTC offsets, accented campaign names, a CRM's leads
with attributes and no events. ``insightos synth --shape NAME`` writes one; the test suite runs
the whole pipeline on each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from insightos_utils.errors import InputError
from insightos_utils.synth.company import Knobs, _profile, generate_company
from insightos_utils.synth.profiles import Profile, accented_campaigns, many_campaigns, one_campaign


@dataclass(frozen=True)
class Shape:
    """One kind of company: how it differs from the default, and how it is made."""

    name: str
    description: str
    knobs: Knobs = field(default_factory=Knobs)
    profile: Callable[[Profile, int], Profile] | None = None  # (profile, seed) -> profile
    drop_tables: tuple[str, ...] = ()
    offsets: tuple[int, ...] = ()  # CSV timestamps written in these UTC offsets (minutes)
    n_users: int | None = None  # a fixed size, whatever the caller asks for


@dataclass
class ShapedCompany:
    """A generated company of some shape: its tables and how to write their timestamps."""

    shape: str
    tables: dict[str, pd.DataFrame]
    offsets: tuple[int, ...] = ()


SHAPES: dict[str, Shape] = {
    shape.name: shape
    for shape in (
        Shape("default", "the profile as it is"),
        Shape(
            "no_events",
            "an events table with a header and no rows (a CRM-only company)",
            Knobs(events=False),
        ),
        Shape(
            "no_transactions", "product events but no payments table", drop_tables=("transactions",)
        ),
        Shape(
            "no_campaign_spend", "no campaign_spend table (no CAC)", drop_tables=("campaign_spend",)
        ),
        Shape(
            "one_campaign",
            "a single paid campaign besides organic signups",
            profile=lambda p, _seed: one_campaign(p),
        ),
        Shape(
            "many_campaigns",
            "500 paid campaigns with a long tail of tiny ones",
            profile=lambda p, seed: many_campaigns(p, 500, seed),
        ),
        Shape(
            "no_recent_conversions",
            "no conversion in the last 60 days before as-of",
            Knobs(no_conversions_days=60),
        ),
        Shape(
            "recent_conversions_only",
            "every conversion in the last four months before as-of",
            Knobs(conversions_since_days=120),
        ),
        Shape("conversion_1pct", "1% of the users convert", Knobs(converted_share=0.01)),
        Shape("conversion_50pct", "half of the users convert", Knobs(converted_share=0.5)),
        Shape("tiny", "200 users", n_users=200),
        Shape(
            "subscription",
            "monthly payments at a plan price, nobody stops, similar amounts",
            Knobs(purchases="subscription"),
        ),
        Shape("single_purchase", "every customer buys exactly once", Knobs(purchases="single")),
        Shape(
            "heavy_tail",
            "heavy-tailed order values: a few orders 1,000 times the median",
            Knobs(purchases="heavy_tail"),
        ),
        Shape(
            "mixed_offsets",
            "CSV timestamps written in mixed UTC offsets (-05:00, -03:00, +00:00, +01:00, +05:30)",
            offsets=(-300, -180, 0, 60, 330),
        ),
        Shape(
            "accented_campaigns",
            "campaign names in accented Portuguese (promoção, gestão, ...)",
            profile=lambda p, _seed: accented_campaigns(p),
        ),
        Shape(
            "crm_leads",
            "a CRM's leads: no product events and no payments, lead attributes (one filled in "
            "after the outcome), wins only in the last four months",
            Knobs(
                events=False, lead_attributes=True, conversions_since_days=120, converted_share=0.08
            ),
            drop_tables=("transactions",),
        ),
    )
}


def shape_company(
    shape: str | None,
    n_users: int = 10_000,
    seed: int = 42,
    as_of: str | pd.Timestamp | None = None,
    profile: str = "projects",
) -> ShapedCompany:
    """Generate the company of ``shape`` (None or "default": the profile as it is)."""
    name = shape or "default"
    if name not in SHAPES:
        raise InputError(f"unknown synth shape {name!r}; choose one of {', '.join(SHAPES)}")
    spec = SHAPES[name]
    base = _profile(profile)
    company_profile = spec.profile(base, seed) if spec.profile is not None else base
    tables = generate_company(
        n_users=spec.n_users or n_users,
        seed=seed,
        as_of=as_of,
        profile=company_profile,
        knobs=spec.knobs,
    )
    for table in spec.drop_tables:
        tables.pop(table)
    return ShapedCompany(name, tables, spec.offsets)
