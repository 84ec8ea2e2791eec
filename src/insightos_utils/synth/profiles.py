"""The synthetic companies' vocabularies: campaigns, organic marketing, product events.

Two profiles share the generator (``synth.company``) with their own names: ``projects`` (the
original design's project-management SaaS, campaign ``google_gestao_agil``) and ``crm`` (a CRM
SaaS with different event and campaign names), so the pipeline can be checked for hard-coded
names. ``many_campaigns`` and ``accented_campaigns`` derive campaign lists for the corpus of
company shapes (``synth.shapes``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np


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


def props(key: str, *values: str) -> tuple[str, ...]:
    return tuple(json.dumps({key: value}) for value in values)


def utm_json(source: str, medium: str, campaign: str | None = None) -> str:
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
        (utm_json("google", "organic"), 0.25),
        (json.dumps({"referrer": "blog.gestaoagil.example"}), 0.10),
        (utm_json("partner", "referral"), 0.10),
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
            props("path", "/", "/pricing", "/features", "/templates", "/blog/gestao-agil"),
        ),
        BehaviourEvent(
            "project_created", 1.5, 1.00, 0.5, props("template", "kanban", "scrum", "blank")
        ),
        BehaviourEvent("task_created", 3.5, 0.75, 4.0, ("",) + props("source", "web", "mobile")),
        BehaviourEvent("teammate_invited", 0.8, 1.10, 0.3, props("role", "member", "admin")),
        BehaviourEvent(
            "integration_connected",
            0.4,
            1.00,
            0.1,
            props("integration", "slack", "google_drive", "github", "jira_import"),
        ),
        BehaviourEvent(
            "report_viewed", 0.9, 0.60, 1.0, props("report", "burndown", "velocity", "workload")
        ),
        BehaviourEvent("comment_added", 1.0, 0.45, 2.0),
        BehaviourEvent(
            "help_article_viewed",
            0.7,
            -0.10,
            0.4,
            props("article", "getting-started", "gantt", "permissions"),
        ),
    ),
    start_event="subscription_started",
    invoice_event="invoice_paid",
    seat_event="seat_added",
    billing_event="billing_updated",
    trial_properties=props("plan", "team", "business"),
    verify_properties=props("method", "email", "google_sso"),
    start_properties=props("plan", "team", "business"),
    invoice_properties=props("currency", "USD"),
    seat_properties=(json.dumps({"seats": 1}), json.dumps({"seats": 2})),
    billing_properties=props("field", "card", "address", "tax_id"),
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
        (utm_json("bing", "organic"), 0.2),
        (json.dumps({"referrer": "g2.example"}), 0.3),
    ),
    organic_conversion_logit=0.0,
    trial_event="workspace_created",
    verify_event="email_confirmed",
    resend_event="confirmation_link_resent",
    behaviour=(
        BehaviourEvent("page_view", 3.5, 0.25, 3.0, props("path", "/", "/pricing", "/crm")),
        BehaviourEvent("contact_imported", 2.0, 0.80, 1.0, props("source", "csv", "gmail")),
        BehaviourEvent("deal_created", 2.5, 1.00, 2.5),
        BehaviourEvent("pipeline_stage_moved", 3.0, 0.70, 3.0),
        BehaviourEvent("inbox_connected", 0.5, 1.00, 0.1, props("provider", "gmail", "outlook")),
        BehaviourEvent("sales_rep_added", 0.7, 1.10, 0.3),
        BehaviourEvent("forecast_opened", 0.8, 0.60, 1.0),
        BehaviourEvent("support_doc_read", 0.8, -0.10, 0.4),
    ),
    start_event="plan_activated",
    invoice_event="payment_succeeded",
    seat_event="license_added",
    billing_event="payment_method_changed",
    trial_properties=props("edition", "starter", "growth"),
    verify_properties=props("via", "link"),
    start_properties=props("edition", "starter", "growth"),
    invoice_properties=props("currency", "USD"),
    billing_properties=props("method", "card", "boleto"),
    organic_order_value=22.0,
)

PROFILES: dict[str, Profile] = {PROJECTS.name: PROJECTS, CRM.name: CRM}


# --- campaign lists for the corpus of company shapes -------------------------------------------

ACCENTED_NAMES = (
    "google_gestão_ágil",
    "facebook_promoção_verão",
    "linkedin_decisões_b2b",
    "newsletter_edição_março",
    "youtube_vídeos_açaí",
    "indicação_são_paulo",
)


def accented_campaigns(profile: Profile) -> Profile:
    """The profile with its campaigns renamed in accented Portuguese (UTF-8 round trip)."""
    campaigns = tuple(
        replace(c, name=ACCENTED_NAMES[i % len(ACCENTED_NAMES)] + ("" if i < 6 else f"_{i}"))
        for i, c in enumerate(profile.campaigns)
    )
    return replace(profile, campaigns=campaigns)


def one_campaign(profile: Profile) -> Profile:
    """The profile with a single paid campaign (its best), keeping the paid share of signups."""
    best = max(profile.campaigns, key=lambda c: c.conversion_logit)
    paid_share = sum(c.share for c in profile.campaigns)
    return replace(profile, campaigns=(replace(best, share=paid_share),))


def many_campaigns(profile: Profile, n_campaigns: int, seed: int) -> Profile:
    """The profile with ``n_campaigns`` paid campaigns: Zipf-like shares (a few big, a long
    tail), random conversion shifts, order values and acquisition costs (seeded)."""
    rng = np.random.default_rng([seed, 11])
    paid_share = sum(c.share for c in profile.campaigns)
    weights = 1.0 / np.arange(1, n_campaigns + 1) ** 0.8
    shares = paid_share * weights / weights.sum()
    sources = ("google", "meta", "linkedin", "tiktok", "bing", "partner")
    campaigns = tuple(
        Campaign(
            name=f"campaign_{i:03d}",
            source=sources[i % len(sources)],
            medium="cpc",
            share=float(shares[i]),
            conversion_logit=float(rng.normal(0.0, 0.6)),
            purchase_rate=float(rng.uniform(0.7, 1.5)),
            order_value=float(rng.uniform(12.0, 40.0)),
            cac=float(rng.uniform(15.0, 60.0)),
        )
        for i in range(n_campaigns)
    )
    return replace(profile, campaigns=campaigns)
