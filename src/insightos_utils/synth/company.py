"""The seeded synthetic SaaS company: users, events, transactions and spend as DataFrames.

Why: every later stage (features, lead scoring, LTV, ingest) needs realistic data with known
properties. The company behaves like a real one, noisily: a latent purchase intent drives both
conversion and (imperfectly) pre-conversion product usage, so a sound lead model reaches a
holdout ROC AUC around 0.85, never 1.0. Post-conversion events (billing, seats) exist in the raw
log, as in real logs. Customers buy in a BG/NBD-like process with Gamma-Gamma-like amounts.

``Knobs`` bend the default company into other shapes (``synth.shapes`` names them): another
conversion share or timing, subscription-like, single or heavy-tailed purchases, no product
events, lead attributes on the users table. With the default knobs the random stream is exactly
the original one: same seed, same bytes.

Everything is vectorised numpy driven by one ``numpy.random.Generator(seed)``; nothing at or
after ``as_of`` exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from insightos_utils.contract import parse_timestamp
from insightos_utils.errors import InputError
from insightos_utils.synth.attributes import add_lead_attributes
from insightos_utils.synth.profiles import PROFILES, Profile, utm_json
from insightos_utils.synth.text import categories, fixed_width, id_chars, timestamps

DEFAULT_AS_OF = "2026-06-30T00:00:00Z"
HISTORY_DAYS = 730  # signups spread over the two years before as_of
OPEN_DAYS = 45  # an unconverted user younger than this is still an open lead
WINDOW_DAYS = 14  # the early-usage period in which pre-conversion behaviour happens
DUPLICATE_SHARE = 0.003  # events delivered twice by the collector
DAY = 86_400


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
PURCHASE_PROCESSES = ("bgnbd", "subscription", "single", "heavy_tail")
PLAN_PRICES = (29.0, 49.0, 99.0)  # subscription-like companies: one plan per customer
PLAN_WEIGHTS = (0.5, 0.35, 0.15)
MONTH_SECONDS = int(30.4375 * 86_400)
HEAVY_TAIL_SHARE = 0.003  # heavy-tailed companies: this share of orders is 1,000x the usual


@dataclass(frozen=True)
class Knobs:
    """How a company departs from its profile's default shape (all defaults: the original)."""

    converted_share: float | None = None  # share of all users converted (default: the profile's)
    conversions_since_days: int | None = None  # conversions only in the last N days before as-of
    no_conversions_days: int | None = None  # no conversion in the last N days before as-of
    purchases: str = "bgnbd"  # one of PURCHASE_PROCESSES
    events: bool = True  # False: the events table has a header and no rows (a CRM-only company)
    lead_attributes: bool = False  # extra users columns and marketing keys (see _lead_attributes)

    def check(self) -> None:
        if self.purchases not in PURCHASE_PROCESSES:
            raise InputError(
                f"unknown purchase process {self.purchases!r}; choose one of {PURCHASE_PROCESSES}"
            )
        if self.converted_share is not None and not 0 < self.converted_share < 1:
            raise InputError(f"converted_share must be in (0, 1), got {self.converted_share}")


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
    texts = [utm_json(c.source, c.medium, c.name) for c in spec.campaigns]
    return texts + [text for text, _ in spec.organic_marketing]


def _draw_users(
    rng: np.random.Generator, spec: Profile, n_users: int, as_of_s: int, knobs: Knobs
) -> _Users:
    """Signups (growing over two years), acquisition, latent intent and conversion.

    ``knobs`` may change the converted share and when conversions are allowed to happen.
    """
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
    days_before_as_of = age_days - delay_days  # how long before as_of the conversion falls
    if knobs.conversions_since_days is not None:
        eligible &= days_before_as_of <= knobs.conversions_since_days
    if knobs.no_conversions_days is not None:
        eligible &= days_before_as_of > knobs.no_conversions_days
    shifts = np.array(
        [c.conversion_logit for c in spec.campaigns] + [spec.organic_conversion_logit]
    )
    weights = np.where(eligible, np.exp(shifts[campaign] + INTENT_SLOPE * intent), 0.0)
    share = spec.converted_share if knobs.converted_share is None else knobs.converted_share
    k = min(int(round(share * n_users)), int(eligible.sum()))
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
    rng: np.random.Generator, spec: Profile, users: _Users, as_of_s: int, process: str = "bgnbd"
) -> _Purchases:
    """A first payment at conversion, then the repeat purchases of ``process``:

    - ``bgnbd``: BG/NBD repeat purchases with Gamma-Gamma amounts (the default);
    - ``heavy_tail``: the same, with ``HEAVY_TAIL_SHARE`` of the orders 1,000 times larger;
    - ``subscription``: one payment per month (a day either way), nobody stops, each customer
      pays their plan's price (``PLAN_PRICES``) within half a percent;
    - ``single``: the first payment only.
    """
    if process in ("subscription", "single"):
        return _regular_purchases(rng, users, as_of_s, repeat=process == "subscription")
    purchases = _bgnbd_purchases(rng, spec, users, as_of_s)
    if process == "heavy_tail":
        n_large = max(1, int(round(HEAVY_TAIL_SHARE * purchases.amount.size)))
        large = rng.choice(purchases.amount.size, n_large, replace=False)
        purchases.amount[large] = np.round(purchases.amount[large] * 1000.0, 2)
    return purchases


def _first_payments(
    rng: np.random.Generator, users: _Users, as_of_s: int
) -> tuple[np.ndarray, np.ndarray]:
    customers = np.flatnonzero(users.converted)
    first_paid = np.minimum(
        users.converted_at[customers] + rng.integers(0, 600, customers.size), as_of_s - 1
    )
    return customers, first_paid


def _regular_purchases(
    rng: np.random.Generator, users: _Users, as_of_s: int, repeat: bool
) -> _Purchases:
    """Monthly payments at the plan price until as-of (``repeat``), or the first one only."""
    customers, first_paid = _first_payments(rng, users, as_of_s)
    n = customers.size
    months = (
        np.maximum(as_of_s - 1 - first_paid, 0) // MONTH_SECONDS if repeat else np.zeros(n, int)
    )
    counts = months + 1
    owner = np.repeat(np.arange(n), counts)
    number = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    jitter = np.where(number > 0, rng.integers(-DAY, DAY + 1, owner.size), 0)
    time = np.minimum(first_paid[owner] + number * MONTH_SECONDS + jitter, as_of_s - 1)
    price = rng.choice(np.array(PLAN_PRICES), size=n, p=np.array(PLAN_WEIGHTS))
    amount = np.round(price[owner] * (1 + 0.005 * rng.standard_normal(owner.size)), 2)
    order = np.lexsort((owner, time))
    last = np.full(n, as_of_s, dtype=np.int64) if repeat else first_paid.astype(np.int64)
    return _Purchases(customers, owner[order], time[order], amount[order], last)


def _bgnbd_purchases(
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
    profile: str | Profile = "projects",
    knobs: Knobs | None = None,
) -> dict[str, pd.DataFrame]:
    """The synthetic company as DataFrames with the raw contract's columns.

    Timestamps are timezone-naive UTC ``datetime64[s]``; marketing and properties are JSON text
    (missing when empty); ``events.event_name`` and ``events.properties`` are categoricals (few
    distinct values). ``events`` includes the duplicate deliveries (same event_id twice).
    ``profile`` is a profile name or a ``Profile``; ``knobs`` bend the company's shape.
    """
    if n_users < 1:
        raise InputError(f"n_users must be at least 1, got {n_users}")
    spec = profile if isinstance(profile, Profile) else _profile(profile)
    knobs = knobs or Knobs()
    knobs.check()
    rng = np.random.default_rng(seed)
    as_of_s = _as_of_seconds(as_of)
    start_s = as_of_s - HISTORY_DAYS * DAY

    users = _draw_users(rng, spec, n_users, as_of_s, knobs)
    purchases = _draw_purchases(rng, spec, users, as_of_s, knobs.purchases)
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
    user_chars = id_chars("u", np.arange(1, n_users + 1), max(6, len(str(n_users))))
    marketing = pa.array([t or None for t in _marketing_texts(spec)], pa.large_string())
    users_table = pa.table(
        {
            "user_id": fixed_width(user_chars),
            "created_at": timestamps(users.created),
            "status": pa.array(status, pa.large_string()),
            "converted_at": timestamps(users.converted_at),
            "marketing": marketing.take(pa.array(users.marketing_code.astype(np.int32))),
        }
    )
    events_table = pa.table(
        {
            "event_id": fixed_width(id_chars("e", ev_number, max(8, len(str(ev_time.size))))),
            "user_id": fixed_width(np.take(user_chars, ev_user, axis=0)),
            "event_name": categories(ev_kind, log.names),
            "occurred_at": timestamps(ev_time),
            "properties": categories(ev_prop, log.property_texts),
        }
    )
    n_tx = purchases.time.size
    transactions_table = pa.table(
        {
            "transaction_id": fixed_width(
                id_chars("t", np.arange(1, n_tx + 1), max(7, len(str(n_tx))))
            ),
            "user_id": fixed_width(
                np.take(user_chars, purchases.customers[purchases.owner], axis=0)
            ),
            "occurred_at": timestamps(purchases.time),
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
    users_frame = users_table.to_pandas()
    if knobs.lead_attributes:
        users_frame = add_lead_attributes(users_frame, users, spec, status, seed)
    events_frame = events_table.to_pandas()
    if not knobs.events:
        events_frame = events_frame.iloc[:0]
    return {
        "users": users_frame,
        "events": events_frame,
        "transactions": transactions_table.to_pandas(),
        "campaign_spend": spend_table.to_pandas(),
    }
