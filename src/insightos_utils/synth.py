"""A seeded synthetic SaaS company in the raw contract (users, events, transactions, spend).

Why: every later stage (features, lead scoring, LTV, ingest) needs realistic data with known
properties. The company behaves like a real one, noisily: a latent purchase intent drives both
conversion and (imperfectly) pre-conversion product usage, so a sound lead model reaches a
holdout ROC AUC around 0.85, never 1.0. Post-conversion events (billing, seats) exist in the raw
log, as in real logs. Customers buy in a BG/NBD-like process with Gamma-Gamma-like amounts.

Two profiles share the machinery with their own vocabulary: ``projects`` (the original design's
project-management SaaS, campaign ``google_gestao_agil``) and ``crm`` (a CRM SaaS with different
event and campaign names), so the pipeline can be checked for hard-coded names.

Everything is vectorised numpy driven by one ``numpy.random.Generator(seed)``: the same seed
and arguments give byte-identical files. Nothing at or after ``as_of`` exists.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from tqdm import tqdm

from insightos_utils.contract import CAMPAIGN_SPEND, EVENTS, TRANSACTIONS, USERS, parse_timestamp
from insightos_utils.errors import InputError
from insightos_utils.io_utils import atomic_write

DEFAULT_AS_OF = "2026-06-30T00:00:00Z"
HISTORY_DAYS = 730  # signups spread over the two years before as_of
OPEN_DAYS = 45  # an unconverted user younger than this is still an open lead
WINDOW_DAYS = 14  # the early-usage period in which pre-conversion behaviour happens
DUPLICATE_SHARE = 0.003  # events delivered twice by the collector
FILE_FORMATS = ("csv", "parquet")
DAY = 86_400


# --- profiles ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    """A paid acquisition campaign and how its users behave."""

    name: str  # utm_campaign
    source: str
    medium: str
    share: float  # share of all signups
    conversion_logit: float  # log-scale shift of the conversion propensity
    purchase_rate: float  # multiplier of the repeat-purchase rate of its customers
    order_value: float  # mean order value ($) of its customers
    cac: float  # acquisition cost per customer that campaign_spend is built from


@dataclass(frozen=True)
class BehaviourEvent:
    """A product event whose early (pre-conversion) count depends noisily on intent."""

    name: str
    window_mean: float  # mean count in the first WINDOW_DAYS
    intent: float  # loading on the latent intent (log scale)
    usage_weight: float  # weight among later, ongoing product usage
    properties: tuple[str, ...] = ("",)


@dataclass(frozen=True)
class Profile:
    """A synthetic company: its campaigns, organic marketing variants and event vocabulary."""

    name: str
    converted_share: float
    campaigns: tuple[Campaign, ...]
    organic_share: float
    organic_marketing: tuple[tuple[str, float], ...]  # (marketing JSON or "", weight)
    organic_conversion_logit: float
    trial_event: str
    verify_event: str
    resend_event: str  # the verification sent again, for unverified trials
    behaviour: tuple[BehaviourEvent, ...]
    start_event: str  # at converted_at
    invoice_event: str  # one per transaction
    seat_event: str
    billing_event: str
    trial_properties: tuple[str, ...] = ("",)
    verify_properties: tuple[str, ...] = ("",)
    resend_properties: tuple[str, ...] = ("",)
    start_properties: tuple[str, ...] = ("",)
    invoice_properties: tuple[str, ...] = ("",)
    seat_properties: tuple[str, ...] = ("",)
    billing_properties: tuple[str, ...] = ("",)
    organic_order_value: float = 20.0
    organic_purchase_rate: float = 1.0

    @property
    def vocabulary(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Every event name with its property templates, in event-kind order."""
        return (
            (self.trial_event, self.trial_properties),
            (self.verify_event, self.verify_properties),
            (self.resend_event, self.resend_properties),
            *((b.name, b.properties) for b in self.behaviour),
            (self.start_event, self.start_properties),
            (self.invoice_event, self.invoice_properties),
            (self.seat_event, self.seat_properties),
            (self.billing_event, self.billing_properties),
        )

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.vocabulary)

    @property
    def post_conversion_events(self) -> tuple[str, ...]:
        """Event names that only ever happen at or after converted_at."""
        return (self.start_event, self.invoice_event, self.seat_event, self.billing_event)

    @property
    def reference_campaign(self) -> str:
        """The best campaign (the one LTV is compared against)."""
        return max(self.campaigns, key=lambda c: c.conversion_logit).name


def _props(key: str, *values: str) -> tuple[str, ...]:
    return tuple(json.dumps({key: value}) for value in values)


def _utm(source: str, medium: str, campaign: str | None = None) -> str:
    marketing = {"utm_source": source, "utm_medium": medium}
    if campaign is not None:
        marketing["utm_campaign"] = campaign
    return json.dumps(marketing)


PROJECTS = Profile(
    name="projects",
    converted_share=0.101,
    campaigns=(
        Campaign("google_gestao_agil", "google", "cpc", 0.16, 1.70, 3.1, 33.0, 28.0),
        Campaign("facebook_produtividade", "facebook", "paid_social", 0.19, -0.20, 1.0, 15.6, 39.0),
        Campaign("linkedin_b2b_gestores", "linkedin", "paid_social", 0.11, 0.10, 1.0, 17.8, 36.0),
        Campaign("newsletter_times_ageis", "newsletter", "email", 0.08, 0.05, 1.0, 16.5, 24.0),
        Campaign("youtube_tutoriais", "youtube", "video", 0.09, -0.10, 1.0, 15.6, 24.0),
    ),
    organic_share=0.37,
    organic_marketing=(
        ("", 0.55),
        (_utm("google", "organic"), 0.25),
        (json.dumps({"referrer": "blog.gestaoagil.example"}), 0.10),
        (_utm("partner", "referral"), 0.10),
    ),
    organic_conversion_logit=0.0,
    trial_event="trial_signup",
    verify_event="user_verified",
    resend_event="verification_email_resent",
    behaviour=(
        BehaviourEvent(
            "page_view",
            4.0,
            0.25,
            3.0,
            _props("path", "/", "/pricing", "/features", "/templates", "/blog/gestao-agil"),
        ),
        BehaviourEvent(
            "project_created", 1.5, 1.00, 0.5, _props("template", "kanban", "scrum", "blank")
        ),
        BehaviourEvent("task_created", 3.5, 0.75, 4.0, ("",) + _props("source", "web", "mobile")),
        BehaviourEvent("teammate_invited", 0.8, 1.10, 0.3, _props("role", "member", "admin")),
        BehaviourEvent(
            "integration_connected",
            0.4,
            1.00,
            0.1,
            _props("integration", "slack", "google_drive", "github", "jira_import"),
        ),
        BehaviourEvent(
            "report_viewed", 0.9, 0.60, 1.0, _props("report", "burndown", "velocity", "workload")
        ),
        BehaviourEvent("comment_added", 1.0, 0.45, 2.0),
        BehaviourEvent(
            "help_article_viewed",
            0.7,
            -0.10,
            0.4,
            _props("article", "getting-started", "gantt", "permissions"),
        ),
    ),
    start_event="subscription_started",
    invoice_event="invoice_paid",
    seat_event="seat_added",
    billing_event="billing_updated",
    trial_properties=_props("plan", "team", "business"),
    verify_properties=_props("method", "email", "google_sso"),
    start_properties=_props("plan", "team", "business"),
    invoice_properties=_props("currency", "USD"),
    seat_properties=(json.dumps({"seats": 1}), json.dumps({"seats": 2})),
    billing_properties=_props("field", "card", "address", "tax_id"),
    organic_order_value=16.5,
)

CRM = Profile(
    name="crm",
    converted_share=0.11,
    campaigns=(
        Campaign("google_crm_vendas", "google", "cpc", 0.15, 1.75, 3.0, 40.0, 36.0),
        Campaign("meta_leads_pme", "meta", "paid_social", 0.21, -0.25, 1.0, 21.0, 52.0),
        Campaign("linkedin_revops", "linkedin", "paid_social", 0.12, 0.15, 1.0, 24.0, 45.0),
        Campaign("podcast_vendas_b2b", "podcast", "audio", 0.07, 0.0, 1.0, 22.0, 30.0),
    ),
    organic_share=0.45,
    organic_marketing=(
        ("", 0.5),
        (_utm("bing", "organic"), 0.2),
        (json.dumps({"referrer": "g2.example"}), 0.3),
    ),
    organic_conversion_logit=0.0,
    trial_event="workspace_created",
    verify_event="email_confirmed",
    resend_event="confirmation_link_resent",
    behaviour=(
        BehaviourEvent("page_view", 3.5, 0.25, 3.0, _props("path", "/", "/pricing", "/crm")),
        BehaviourEvent("contact_imported", 2.0, 0.80, 1.0, _props("source", "csv", "gmail")),
        BehaviourEvent("deal_created", 2.5, 1.00, 2.5),
        BehaviourEvent("pipeline_stage_moved", 3.0, 0.70, 3.0),
        BehaviourEvent("inbox_connected", 0.5, 1.00, 0.1, _props("provider", "gmail", "outlook")),
        BehaviourEvent("sales_rep_added", 0.7, 1.10, 0.3),
        BehaviourEvent("forecast_opened", 0.8, 0.60, 1.0),
        BehaviourEvent("support_doc_read", 0.8, -0.10, 0.4),
    ),
    start_event="plan_activated",
    invoice_event="payment_succeeded",
    seat_event="license_added",
    billing_event="payment_method_changed",
    trial_properties=_props("edition", "starter", "growth"),
    verify_properties=_props("via", "link"),
    start_properties=_props("edition", "starter", "growth"),
    invoice_properties=_props("currency", "USD"),
    billing_properties=_props("method", "card", "boleto"),
    organic_order_value=22.0,
)

PROFILES: dict[str, Profile] = {PROJECTS.name: PROJECTS, CRM.name: CRM}

# Behaviour model (shared by the profiles): converters are drawn with weight
# exp(campaign shift + INTENT_SLOPE * intent), so conversion rises with intent and campaign.
INTENT_SLOPE = 2.6
ACTIVITY_SD = 0.45  # a user-level activity level unrelated to intent (heavy vs light users)
EVENT_NOISE_SD = 0.45  # per user and event kind
TRIAL_SHARE = 0.93  # users who start at least one trial workspace
VERIFY_PROBABILITY = 0.915  # each trial signup is followed by a verification
RESEND_PROBABILITY = 0.7  # an unverified trial gets its verification resent
# BG/NBD-like repeat purchases (days) and Gamma-Gamma-like amounts
PURCHASE_SHAPE = 1.5  # r
PURCHASES_PER_MONTH = 0.25  # mean repeat-purchase rate of a baseline customer
DROPOUT_A, DROPOUT_B = 1.0, 5.0  # p ~ Beta(a, b): dropout after each repeat purchase
SPEND_P, SPEND_Q = 6.0, 6.0  # order value ~ Gamma(p, nu), nu ~ Gamma(q, gamma)


# --- generation --------------------------------------------------------------------------------


def _as_of_seconds(as_of: str | pd.Timestamp | None) -> int:
    try:
        stamp = parse_timestamp(DEFAULT_AS_OF if as_of is None else as_of)
    except (ValueError, TypeError) as error:
        raise InputError(f"as_of {as_of!r} is not an ISO 8601 timestamp ({error})") from None
    if pd.isna(stamp):
        raise InputError(f"as_of {as_of!r} is not an ISO 8601 timestamp")
    return int((stamp - pd.Timestamp(0)) // pd.Timedelta(seconds=1))


def _profile(profile: str) -> Profile:
    if profile not in PROFILES:
        raise InputError(f"unknown synth profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile]


def _weighted_pick(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """A mask of k rows drawn without replacement with probability growing with ``weights``
    (Efraimidis-Spirakis keys): the converted share comes out exactly as published."""
    keys = np.log(rng.random(weights.size)) / np.maximum(weights, 1e-300)
    chosen = np.zeros(weights.size, dtype=bool)
    if k > 0:
        chosen[np.argpartition(-keys, k - 1)[:k]] = True
    return chosen


def _conversion_delays(rng: np.random.Generator, n: int) -> np.ndarray:
    """Days from signup to purchase: a few buy early, most when the trial ends, some later."""
    kind = rng.choice(3, size=n, p=[0.2, 0.65, 0.15])
    early = 1.0 + rng.gamma(2.0, 2.5, n)
    trial_end = WINDOW_DAYS - 2.0 + rng.gamma(4.0, 1.0, n)
    late = WINDOW_DAYS + 1.0 + rng.gamma(2.0, 7.0, n)
    delays = np.choose(kind, [early, trial_end, late])
    return np.clip(delays, 1.0, OPEN_DAYS - 1.0)


@dataclass
class _Users:
    """Per-user arrays (index = user number - 1, in signup order); times in epoch seconds."""

    created: np.ndarray
    campaign: np.ndarray  # index into spec.campaigns; len(spec.campaigns) = organic
    marketing_code: np.ndarray  # index into _marketing_texts(spec)
    intent: np.ndarray
    activity: np.ndarray
    converted: np.ndarray  # bool, converted before as_of
    converted_at: np.ndarray  # -1 when not converted

    @property
    def size(self) -> int:
        return int(self.created.size)


def _marketing_texts(spec: Profile) -> list[str]:
    texts = [_utm(c.source, c.medium, c.name) for c in spec.campaigns]
    return texts + [text for text, _ in spec.organic_marketing]


def _draw_users(rng: np.random.Generator, spec: Profile, n_users: int, as_of_s: int) -> _Users:
    """Signups (growing over two years), acquisition, latent intent and conversion."""
    growth = np.log(2.0) / HISTORY_DAYS  # the signup rate doubles over the history
    u = rng.random(n_users)
    offset_days = np.log1p(u * np.expm1(growth * HISTORY_DAYS)) / growth
    created = np.sort(as_of_s - HISTORY_DAYS * DAY + (offset_days * DAY).astype(np.int64))
    created = np.minimum(created, as_of_s - 1)
    age_days = (as_of_s - created) / DAY

    n_campaigns = len(spec.campaigns)
    shares = np.array([c.share for c in spec.campaigns] + [spec.organic_share])
    campaign = rng.choice(n_campaigns + 1, size=n_users, p=shares / shares.sum())
    organic_weights = np.array([w for _, w in spec.organic_marketing])
    organic_variant = rng.choice(
        organic_weights.size, size=n_users, p=organic_weights / organic_weights.sum()
    )
    marketing_code = np.where(campaign < n_campaigns, campaign, n_campaigns + organic_variant)

    # Latent intent drives conversion; activity is a nuisance level shared by all events.
    intent = rng.standard_normal(n_users)
    activity = ACTIVITY_SD * rng.standard_normal(n_users)
    delay_days = _conversion_delays(rng, n_users)
    eligible = delay_days < age_days  # would have converted before as_of
    shifts = np.array(
        [c.conversion_logit for c in spec.campaigns] + [spec.organic_conversion_logit]
    )
    weights = np.where(eligible, np.exp(shifts[campaign] + INTENT_SLOPE * intent), 0.0)
    k = min(int(round(spec.converted_share * n_users)), int(eligible.sum()))
    converted = _weighted_pick(rng, weights, k)
    converted_at = np.where(converted, created + (delay_days * DAY).astype(np.int64), -1)
    return _Users(created, campaign, marketing_code, intent, activity, converted, converted_at)


@dataclass
class _Purchases:
    """Transactions of the converted users (time-ordered) and each customer's active span."""

    customers: np.ndarray  # user index of each customer
    owner: np.ndarray  # customer position of each transaction
    time: np.ndarray
    amount: np.ndarray
    active_until: np.ndarray  # per customer: the purchase after which they left, else as_of


def _draw_purchases(
    rng: np.random.Generator, spec: Profile, users: _Users, as_of_s: int
) -> _Purchases:
    """A first payment at conversion, then BG/NBD repeat purchases with Gamma-Gamma amounts."""
    customers = np.flatnonzero(users.converted)
    n = customers.size
    campaign = users.campaign[customers]
    rate_mult = np.array([c.purchase_rate for c in spec.campaigns] + [spec.organic_purchase_rate])
    order_value = np.array([c.order_value for c in spec.campaigns] + [spec.organic_order_value])
    first_paid = np.minimum(users.converted_at[customers] + rng.integers(0, 600, n), as_of_s - 1)
    span = np.maximum(as_of_s - first_paid, 0)

    # lambda ~ Gamma(r, alpha) per day; after each repeat purchase they leave with probability p
    lam = rng.gamma(
        PURCHASE_SHAPE, PURCHASES_PER_MONTH / 30.0 * rate_mult[campaign] / PURCHASE_SHAPE
    )
    last_purchase = rng.geometric(rng.beta(DROPOUT_A, DROPOUT_B, n))
    arrivals = rng.poisson(lam * span / DAY)
    repeats = np.minimum(arrivals, last_purchase)
    # the repeat times: the first `repeats` of `arrivals` uniform points in the observed span
    owner = np.repeat(np.arange(n), arrivals)
    points = rng.random(owner.size)
    order = np.lexsort((points, owner))
    rank = np.arange(owner.size) - np.repeat(np.cumsum(arrivals) - arrivals, arrivals)
    keep = rank < repeats[owner]
    repeat_owner = owner[keep]
    repeat_time = first_paid[repeat_owner] + (points[order][keep] * span[repeat_owner]).astype(
        np.int64
    )
    last_seen = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_seen, repeat_owner, repeat_time)
    active_until = np.where(arrivals >= last_purchase, last_seen, as_of_s)

    tx_owner = np.concatenate([np.arange(n), repeat_owner])
    tx_time = np.concatenate([first_paid, repeat_time])
    # order value ~ Gamma(p, nu) with nu ~ Gamma(q, gamma): mean p * gamma / (q - 1)
    gamma_scale = order_value[campaign] * (SPEND_Q - 1) / SPEND_P
    nu = rng.gamma(SPEND_Q, 1.0, n) / gamma_scale
    amount = np.maximum(np.round(rng.gamma(SPEND_P, 1.0, tx_owner.size) / nu[tx_owner], 2), 1.0)
    order = np.lexsort((tx_owner, tx_time))
    return _Purchases(customers, tx_owner[order], tx_time[order], amount[order], active_until)


class _EventLog:
    """Events collected kind by kind, then one time-ordered log with duplicate deliveries."""

    def __init__(self, rng: np.random.Generator, spec: Profile) -> None:
        self.rng = rng
        self.names = list(spec.event_names)
        self.kind = {name: k for k, name in enumerate(self.names)}
        texts: list[str] = []
        for _, templates in spec.vocabulary:
            texts += [t for t in templates if t and t not in texts]
        self.property_texts = texts
        widest = max(len(templates) for _, templates in spec.vocabulary)
        self._templates = np.full((len(self.names), widest), -1, dtype=np.int32)
        self._template_count = np.zeros(len(self.names), dtype=np.int32)
        for k, (_, templates) in enumerate(spec.vocabulary):
            codes = [texts.index(t) if t else -1 for t in templates]
            self._templates[k, : len(codes)] = codes
            self._template_count[k] = len(codes)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, users: np.ndarray, times: np.ndarray, kind: int | np.ndarray) -> None:
        kinds = np.broadcast_to(np.asarray(kind, dtype=np.int16), users.shape)
        self._parts.append(
            (users.astype(np.int32), times.astype(np.int64), np.array(kinds, dtype=np.int16))
        )

    def collect(
        self, start_s: int, as_of_s: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(user, time, kind, property code, event number): before as_of, time-ordered, with
        DUPLICATE_SHARE of the events delivered twice (identical rows, same number)."""
        user = np.concatenate([p[0] for p in self._parts])
        time = np.concatenate([p[1] for p in self._parts])
        kind = np.concatenate([p[2] for p in self._parts])
        self._parts = []
        choice = (self.rng.random(kind.size) * self._template_count[kind]).astype(np.int32)
        prop = self._templates[kind, choice]
        present = np.flatnonzero(time < as_of_s)
        # unique sort keys (time, then generation order): the order never depends on the sort
        keys = np.sort(((time[present] - start_s) << 35) | present)
        rows = keys & ((1 << 35) - 1)
        number = np.arange(1, rows.size + 1)
        n_dupes = int(round(DUPLICATE_SHARE * rows.size))
        if n_dupes:
            again = np.sort(self.rng.choice(rows.size, n_dupes, replace=False))
            positions = np.sort(np.concatenate([np.arange(rows.size), again]))
            rows, number = rows[positions], number[positions]
        return user[rows], time[rows], kind[rows], prop[rows], number


def _front_loaded(rng: np.random.Generator, start: np.ndarray, power: float) -> np.ndarray:
    """Times in [start, start + window): most early usage happens in the first days."""
    return start + (WINDOW_DAYS * DAY * rng.random(start.size) ** power).astype(np.int64)


def _poisson_times(
    rng: np.random.Generator, per_day: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts ``per_day * (end - start)`` per row; times uniform in [start, end)."""
    span = np.maximum(end - start, 0)
    counts = rng.poisson(per_day * span / DAY)
    rows = np.repeat(np.arange(per_day.size), counts)
    return rows, start[rows] + (rng.random(rows.size) * span[rows]).astype(np.int64)


def _early_events(
    rng: np.random.Generator, spec: Profile, users: _Users, log: _EventLog
) -> np.ndarray:
    """Trials, verifications and early product usage; returns each user's first trial time."""
    n = users.size
    # 1..several trial workspaces, each usually verified: the collinear pair of counts
    trial_mean = 1.1 * np.exp(0.40 * users.intent + users.activity + 0.35 * rng.standard_normal(n))
    n_trials = np.where(rng.random(n) < TRIAL_SHARE, 1 + rng.poisson(trial_mean), 0)
    trial_users = np.repeat(np.arange(n), n_trials)
    trial_times = _front_loaded(rng, users.created[trial_users], 2.0)
    log.add(trial_users, trial_times, log.kind[spec.trial_event])
    verified = rng.random(trial_users.size) < VERIFY_PROBABILITY
    delay = rng.exponential(3 * 3600, int(verified.sum())).astype(np.int64)
    log.add(trial_users[verified], trial_times[verified] + delay, log.kind[spec.verify_event])
    # an unverified workspace usually gets its verification e-mail resent
    resent = ~verified & (rng.random(trial_users.size) < RESEND_PROBABILITY)
    resend_delay = rng.integers(6 * 3600, 3 * DAY, int(resent.sum()))
    log.add(trial_users[resent], trial_times[resent] + resend_delay, log.kind[spec.resend_event])

    norm_base = ACTIVITY_SD**2 + EVENT_NOISE_SD**2
    for event in spec.behaviour:
        noise = EVENT_NOISE_SD * rng.standard_normal(n)
        log_rate = event.intent * users.intent + users.activity + noise
        counts = rng.poisson(
            event.window_mean * np.exp(log_rate - 0.5 * (event.intent**2 + norm_base))
        )
        event_users = np.repeat(np.arange(n), counts)
        log.add(
            event_users, _front_loaded(rng, users.created[event_users], 2.0), log.kind[event.name]
        )

    first_trial = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_trial, trial_users, trial_times)
    return first_trial


def _later_events(
    rng: np.random.Generator,
    spec: Profile,
    users: _Users,
    purchases: _Purchases,
    log: _EventLog,
    as_of_s: int,
) -> None:
    """Usage after the first weeks, and the post-conversion-only events of customers."""
    usage_kinds = np.array([log.kind[b.name] for b in spec.behaviour], dtype=np.int16)
    weights = np.array([b.usage_weight for b in spec.behaviour])

    def usage(rows_users: np.ndarray, times: np.ndarray) -> None:
        kinds = usage_kinds[
            rng.choice(usage_kinds.size, size=rows_users.size, p=weights / weights.sum())
        ]
        log.add(rows_users, times, kinds)

    # unconverted users fade out within a few months
    window_end = users.created + WINDOW_DAYS * DAY
    tail_rate = np.where(users.converted, 0.0, 0.02 * np.exp(users.activity))
    rows, times = _poisson_times(rng, tail_rate, window_end, users.created + 120 * DAY)
    usage(rows, times)

    customers = purchases.customers
    since = users.converted_at[customers]
    log.add(customers, since, log.kind[spec.start_event])
    log.add(customers[purchases.owner], purchases.time, log.kind[spec.invoice_event])
    for name, per_week in ((spec.seat_event, 0.05), (spec.billing_event, 0.015)):
        rows, times = _poisson_times(
            rng, np.full(customers.size, per_week / 7), since, purchases.active_until
        )
        log.add(customers[rows], times, log.kind[name])
    rows, times = _poisson_times(
        rng, 0.08 * np.exp(users.activity[customers]), since, purchases.active_until
    )
    usage(customers[rows], times)


def generate_company(
    n_users: int = 10_000,
    seed: int = 42,
    as_of: str | pd.Timestamp | None = None,
    profile: str = "projects",
) -> dict[str, pd.DataFrame]:
    """The synthetic company as DataFrames with the raw contract's columns.

    Timestamps are timezone-naive UTC ``datetime64[s]``; marketing and properties are JSON text
    (missing when empty); ``events.event_name`` and ``events.properties`` are categoricals (few
    distinct values). ``events`` includes the duplicate deliveries (same event_id twice).
    """
    if n_users < 1:
        raise InputError(f"n_users must be at least 1, got {n_users}")
    spec = _profile(profile)
    rng = np.random.default_rng(seed)
    as_of_s = _as_of_seconds(as_of)
    start_s = as_of_s - HISTORY_DAYS * DAY

    users = _draw_users(rng, spec, n_users, as_of_s)
    purchases = _draw_purchases(rng, spec, users, as_of_s)
    log = _EventLog(rng, spec)
    first_trial = _early_events(rng, spec, users, log)
    _later_events(rng, spec, users, purchases, log, as_of_s)
    ev_user, ev_time, ev_kind, ev_prop, ev_number = log.collect(start_s, as_of_s)

    age_days = (as_of_s - users.created) / DAY
    status = np.where(
        users.converted,
        "converted",
        np.where(age_days >= OPEN_DAYS, "lost", np.where(first_trial < as_of_s, "trial", "lead")),
    )
    user_chars = _id_chars("u", np.arange(1, n_users + 1), max(6, len(str(n_users))))
    marketing = pa.array([t or None for t in _marketing_texts(spec)], pa.large_string())
    users_table = pa.table(
        {
            "user_id": _fixed_width(user_chars),
            "created_at": _timestamps(users.created),
            "status": pa.array(status, pa.large_string()),
            "converted_at": _timestamps(users.converted_at),
            "marketing": marketing.take(pa.array(users.marketing_code.astype(np.int32))),
        }
    )
    events_table = pa.table(
        {
            "event_id": _fixed_width(_id_chars("e", ev_number, max(8, len(str(ev_time.size))))),
            "user_id": _fixed_width(np.take(user_chars, ev_user, axis=0)),
            "event_name": _categories(ev_kind, log.names),
            "occurred_at": _timestamps(ev_time),
            "properties": _categories(ev_prop, log.property_texts),
        }
    )
    n_tx = purchases.time.size
    transactions_table = pa.table(
        {
            "transaction_id": _fixed_width(
                _id_chars("t", np.arange(1, n_tx + 1), max(7, len(str(n_tx))))
            ),
            "user_id": _fixed_width(
                np.take(user_chars, purchases.customers[purchases.owner], axis=0)
            ),
            "occurred_at": _timestamps(purchases.time),
            "amount": pa.array(purchases.amount, pa.float64()),
        }
    )
    acquired = np.bincount(users.campaign[purchases.customers], minlength=len(spec.campaigns) + 1)
    spend_noise = rng.uniform(0.95, 1.05, len(spec.campaigns))
    spend = [
        round(c.cac * max(int(k), 1) * s, 2)
        for c, k, s in zip(spec.campaigns, acquired, spend_noise, strict=False)
    ]
    spend_table = pa.table(
        {
            "campaign": pa.array([c.name for c in spec.campaigns], pa.large_string()),
            "spend": pa.array(spend, pa.float64()),
        }
    )
    return {
        "users": users_table.to_pandas(),
        "events": events_table.to_pandas(),
        "transactions": transactions_table.to_pandas(),
        "campaign_spend": spend_table.to_pandas(),
    }


# --- fast text building (fixed-width byte matrices → Arrow strings) ----------------------------


def _digit_table(width: int) -> np.ndarray:
    """All zero-padded numbers of ``width`` digits as a (10**width, width) byte matrix."""
    numbers = np.arange(10**width)
    return np.stack([48 + numbers // 10**i % 10 for i in range(width - 1, -1, -1)], axis=1).astype(
        np.uint8
    )


_DIGITS_4 = _digit_table(4)


def _fixed_width(chars: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix as an Arrow large_string array of n strings of w bytes."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    data = np.ascontiguousarray(chars)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _id_chars(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + zero-padded ``numbers`` (e.g. u000042) as an (n, w) byte matrix."""
    chars = np.empty((numbers.size, len(prefix) + width), dtype=np.uint8)
    chars[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    values = numbers.astype(np.int64)
    end = chars.shape[1]
    while end - len(prefix) > 0:  # four digits at a time, from the right
        values, group = np.divmod(values, 10_000)
        digits = min(4, end - len(prefix))
        chars[:, end - digits : end] = np.take(_DIGITS_4, group, axis=0)[:, 4 - digits :]
        end -= digits
    return chars


@functools.cache
def _clock_table() -> np.ndarray:
    """ "HH:MM:SS" for every second of a day, as an (86400, 8) byte matrix."""
    seconds = np.arange(DAY)
    chars = np.full((DAY, 8), ord(":"), dtype=np.uint8)
    for start, values in ((0, seconds // 3600), (3, seconds // 60 % 60), (6, seconds % 60)):
        chars[:, start : start + 2] = np.take(_DIGITS_4, values, axis=0)[:, 2:]
    return chars


def _iso_chars(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` bytes: one lookup for the date, one for the
    time of day (the data spans a few hundred days, so the date table is small)."""
    days, clock = np.divmod(seconds.astype(np.int64), DAY)
    chars = np.empty((seconds.size, 20), dtype=np.uint8)
    if seconds.size == 0:
        return chars
    first = int(days.min())
    calendar = np.arange(first, int(days.max()) + 1).astype("datetime64[D]")
    dates = np.array(np.datetime_as_string(calendar), dtype="S10")
    chars[:, :10] = np.take(dates.view(np.uint8).reshape(-1, 10), days - first, axis=0)
    chars[:, 10] = ord("T")
    chars[:, 11:19] = np.take(_clock_table(), clock, axis=0)
    chars[:, 19] = ord("Z")
    return chars


def _timestamps(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds (-1 = missing) as an Arrow timestamp[s] array (naive UTC)."""
    return pa.array(seconds.astype(np.int64), pa.int64(), mask=seconds < 0).cast(pa.timestamp("s"))


def _categories(codes: np.ndarray, texts: list[str]) -> pa.Array:
    """Codes (-1 = missing) into ``texts`` as an Arrow dictionary (pandas categorical)."""
    indices = pa.array(codes.astype(np.int32), pa.int32(), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(texts, pa.large_string()))


# --- writing -----------------------------------------------------------------------------------


def _file_table(frame: pd.DataFrame, columns: list[str], file_format: str) -> pa.Table:
    """The frame as an Arrow table for the file: ISO 8601 'Z' text timestamps for CSV; typed
    UTC timestamps and plain strings for Parquet."""
    table = pa.Table.from_pandas(frame[columns], preserve_index=False).replace_schema_metadata()
    for i, field in enumerate(table.schema):
        column = table.column(i).combine_chunks()
        if pa.types.is_timestamp(field.type):
            if file_format == "csv":
                seconds = column.cast(pa.timestamp("s"), safe=False).cast(pa.int64())
                seconds = seconds.fill_null(0).to_numpy()
                text = _fixed_width(_iso_chars(seconds))
                if column.null_count:
                    text = pc.if_else(column.is_null(), pa.scalar(None, text.type), text)
                column = text
            else:
                column = column.cast(pa.timestamp("us", tz="UTC"))
        elif file_format == "parquet" and not pa.types.is_floating(field.type):
            column = column.cast(pa.string())
        table = table.set_column(i, field.name, column)
    return table


def _write_table(frame: pd.DataFrame, path: Path, columns: list[str], file_format: str) -> None:
    """Write one raw table as CSV (ISO 8601 UTC text) or Parquet, atomically."""
    table = _file_table(frame, columns, file_format)
    if file_format == "csv":
        textual = all(
            pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type) for f in table.schema
        )
        # all-text tables: quoting every valid value gives the same bytes, without scanning
        quoting = "all_valid" if textual else "needed"
        options = pa_csv.WriteOptions(quoting_style=quoting)
        atomic_write(path, lambda temp: pa_csv.write_csv(table, temp, options))
    else:
        atomic_write(path, lambda temp: pq.write_table(table, temp, compression="zstd"))


def write_company(
    out_dir: str | Path,
    n_users: int = 10_000,
    seed: int = 42,
    as_of: str | pd.Timestamp | None = None,
    profile: str = "projects",
    file_format: str = "csv",
    show_progress: bool = True,
) -> dict[str, Path]:
    """Generate the company and write users, events, transactions, campaign_spend to ``out_dir``.

    Same seed and arguments give byte-identical files. Returns table name → written path.
    """
    if file_format not in FILE_FORMATS:
        raise InputError(f"unknown synth format {file_format!r}; choose one of {FILE_FORMATS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = (USERS, EVENTS, TRANSACTIONS, CAMPAIGN_SPEND)
    with tqdm(
        total=1 + len(specs), desc="synth", unit="step", disable=not show_progress, file=sys.stderr
    ) as progress:
        progress.set_postfix_str(f"generating {n_users:,} users")
        tables = generate_company(n_users=n_users, seed=seed, as_of=as_of, profile=profile)
        progress.update()
        written: dict[str, Path] = {}
        for spec in specs:
            progress.set_postfix_str(f"writing {spec.name}")
            path = out_dir / f"{spec.name}.{file_format}"
            _write_table(
                tables[spec.name],
                path,
                [c for c in spec.column_names if c in tables[spec.name].columns],
                file_format,
            )
            written[spec.name] = path
            progress.update()
    return written
