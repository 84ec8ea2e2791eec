"""Hand-built companies with a known funnel (no generator involved): every expected number in
the product tests is counted by hand from the rows below."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pytest

AS_OF = pd.Timestamp("2026-01-31")
SIGNUP = pd.Timestamp("2025-12-01")
WINDOW_DAYS = 14


@dataclass
class Company:
    """Users and events built row by row; ``user(i)`` is ``"u{i:03d}"``."""

    users: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def add_user(
        self,
        i: int,
        created: pd.Timestamp = SIGNUP,
        status: str = "lost",
        converted_at: pd.Timestamp | None = None,
        campaign: str = "alpha",
    ) -> None:
        self.users.append(
            {
                "user_id": f"u{i:03d}",
                "created_at": created,
                "status": status,
                "converted_at": converted_at,
                "marketing": "",
                "campaign": campaign,
            }
        )

    def add_event(self, i: int, name: str, at: pd.Timestamp) -> None:
        self.events.append(
            {
                "event_id": f"e{len(self.events):05d}",
                "user_id": f"u{i:03d}",
                "event_name": name,
                "occurred_at": at,
                "properties": "",
            }
        )

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        users = pd.DataFrame(self.users).astype(
            {"created_at": "datetime64[us]", "converted_at": "datetime64[us]"}
        )
        columns = ["event_id", "user_id", "event_name", "occurred_at", "properties"]
        events = pd.DataFrame(self.events, columns=columns).astype(
            {"occurred_at": "datetime64[us]"}
        )
        return users, events


def hours(n: float) -> pd.Timedelta:
    return pd.Timedelta(hours=n)


def known_company() -> Company:
    """200 mature signups (u000-u199) with a known three-step funnel, plus traps.

    - u000-u159 open_app at +1 h; u000-u099 make_thing at +5 h; u000-u039 share_thing at +10 h.
    - Converted at +20 days (after the window): u000-u029, u100-u109, u160-u164 (45 users).
    - u165 converts at +2 h (inside the window): open_app at +1 h counts, make_thing at +3 h
      (after converting) does not.
    - u166: status converted, but after as-of: not a conversion yet.
    - u150: make_thing one hour *before* signing up (not part of the journey).
    - Converters pay_invoice at conversion + 1 h (a post-conversion event).
    - Everyone: future_thing after as-of (does not exist yet).
    - u200 signed up 6 days before as-of (too young); u201 after as-of (does not exist).
    - Campaigns: alpha for u000-u099, beta for the rest.
    """
    company = Company()
    converted = set(range(30)) | set(range(100, 110)) | set(range(160, 165))
    for i in range(200):
        created = SIGNUP + pd.Timedelta(minutes=i)
        campaign = "alpha" if i < 100 else "beta"
        if i in converted:
            at = created + pd.Timedelta(days=20)
            company.add_user(i, created, "converted", at, campaign)
            company.add_event(i, "pay_invoice", at + hours(1))
        elif i == 165:
            company.add_user(i, created, "converted", created + hours(2), campaign)
        elif i == 166:
            company.add_user(i, created, "converted", AS_OF + pd.Timedelta(days=9), campaign)
        else:
            company.add_user(i, created, "lost", None, campaign)
        if i < 160 or i == 165:
            company.add_event(i, "open_app", created + hours(1))
        if i < 100:
            company.add_event(i, "make_thing", created + hours(5))
        if i < 40:
            company.add_event(i, "share_thing", created + hours(10))
        if i == 165:
            company.add_event(i, "make_thing", created + hours(3))
        if i == 150:
            company.add_event(i, "make_thing", created - hours(1))
        company.add_event(i, "future_thing", AS_OF + pd.Timedelta(days=3))
    company.add_user(200, AS_OF - pd.Timedelta(days=6), "trial")
    company.add_event(200, "open_app", AS_OF - pd.Timedelta(days=5))
    company.add_user(201, AS_OF + pd.Timedelta(days=1), "lead")
    company.add_event(201, "open_app", AS_OF + pd.Timedelta(days=1, hours=1))
    return company


@pytest.fixture
def known() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The users and events of ``known_company``."""
    return known_company().frames()
