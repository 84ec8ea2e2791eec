"""Stakeholder reports: a summary page per run and the index of runs (the notebooks' own HTML
pages: ``notebook_html``).

Everything here is read by people who do not code: no code cells, prompts, tracebacks, warnings
or raw object dumps; charts embedded so a file stands alone; no script or CDN link (the pages work
offline and need no JavaScript). Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from insightos_utils.io_utils import atomic_write_text, utc_now
from insightos_utils.leads.value import calling_order
from insightos_utils.notebook_html import TEMPLATES

RUN_META = "run.json"
RUNS_FOLDER = "runs"
LATEST = "latest"
LATEST_SCORES = "latest_scores"
FAILED_SUFFIX = ".failed"
INTERRUPTED_SUFFIX = ".interrupted"
SCORE_SUFFIX = "-score"

SCORE_RUNS_SHOWN = 20


# --- files -------------------------------------------------------------------------------------


def read_json(path: str | Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing or unreadable."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


RUN_META_DEFAULTS: dict[str, Any] = {
    "run_id": "",
    "kind": "full",
    "status": "unknown",
    "started_at": None,
    "finished_at": None,
    "config": {},
    "notebooks": [],
    "stages": {},
    "ingest_warnings": [],
    "error": None,
}


def normalise_run_meta(document: dict[str, Any], folder_name: str = "") -> dict[str, Any]:
    """A run.json with every field a reader uses present and of its type (a killed or older run
    may lack some, or hold null): readers never have to guard."""
    meta = dict(document)
    for key, default in RUN_META_DEFAULTS.items():
        value = meta.get(key)
        if value is None or (default is not None and not isinstance(value, type(default))):
            meta[key] = default.copy() if isinstance(default, dict | list) else default
    if not meta["run_id"]:
        meta["run_id"] = folder_name
    if not isinstance(meta["started_at"], str):
        meta["started_at"] = None
    meta["notebooks"] = [nb for nb in meta["notebooks"] if isinstance(nb, dict)]
    meta["ingest_warnings"] = [w for w in meta["ingest_warnings"] if isinstance(w, dict)]
    meta["stages"] = {k: v for k, v in meta["stages"].items() if isinstance(v, dict)}
    if meta["error"] is not None and not isinstance(meta["error"], dict):
        meta["error"] = {"message": str(meta["error"])}
    return meta


def read_run_meta(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's ``run.json`` (normalised), or None when it is missing or unreadable."""
    document = read_json(Path(run_dir) / RUN_META)
    if document is None:
        return None
    return normalise_run_meta(document, Path(run_dir).resolve().name)


# --- numbers in words --------------------------------------------------------------------------


def _jinja():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _time_label(value: Any) -> str:
    if not value or not isinstance(value, str):
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _day_label(value: Any) -> str:
    return value[:10] if isinstance(value, str) else ""


def _window_label(window: Any) -> str:
    if not isinstance(window, dict) or not window.get("start"):
        return ""
    return f"{_day_label(window['start'])} to {_day_label(window.get('end'))}"


NUMBER_FORMATS = {
    "auc": "{:.3f}",
    "count": "{:,.0f}",
    "ratio": "{:.2f}×",
    "money": "{:,.2f}",
    "percent": "{:.0%}",
    "months": "{:.1f} months",
}


def _fmt(value: Any, kind: str) -> str:
    if isinstance(value, float) and math.isinf(value) and kind == "months":
        return "not within the horizon"
    if not _is_number(value):
        return "—" if value is None or isinstance(value, float) or value == "" else str(value)
    if kind == "percent" and value > 0.99:  # a model's 0.996 is not a certainty
        return ">99%"
    return NUMBER_FORMATS.get(kind, "{}").format(value)


def ltv_ratio(campaign_ltv: pd.DataFrame, reference_campaign: str) -> float | None:
    """Mean LTV of the reference campaign's customers over that of every other campaign's.

    The original study's headline (2.3× for ``google_gestao_agil``); the other campaigns are
    weighted by their number of customers. None when either side has no customers.
    """
    needed = {"campaign", "customers", "ltv_mean"}
    if campaign_ltv.empty or not needed <= set(campaign_ltv.columns):
        return None
    table = campaign_ltv.dropna(subset=["ltv_mean", "customers"])
    table = table[table["customers"] > 0]
    is_reference = table["campaign"].astype(str) == reference_campaign
    reference, others = table[is_reference], table[~is_reference]
    if reference.empty or others.empty:
        return None
    reference_mean = float(
        (reference["ltv_mean"] * reference["customers"]).sum() / reference["customers"].sum()
    )
    others_mean = float(
        (others["ltv_mean"] * others["customers"]).sum() / others["customers"].sum()
    )
    if others_mean <= 0:
        return None
    return reference_mean / others_mean


CHANGE_MEASURES = (
    ("holdout_roc_auc", "Holdout ROC AUC of the champion", "auc"),
    ("open_leads", "Open leads scored", "count"),
    ("ltv_ratio", "LTV ratio (reference campaign vs the rest)", "ratio"),
)


def describe_changes(
    current: dict[str, Any], previous: dict[str, Any] | None
) -> tuple[list[dict[str, str]], list[str]]:
    """Table rows and plain sentences comparing a run's headline numbers with the previous run's."""
    if not previous:
        return [], []
    rows, sentences = [], []
    for key, label, kind in CHANGE_MEASURES:
        now, before = current.get(key), previous.get(key)
        if not _is_number(now) and not _is_number(before):
            continue
        delta, direction = "—", ""
        if _is_number(now) and _is_number(before):
            change = float(now) - float(before)  # type: ignore[arg-type]  # both are numbers here
            direction = "up" if change > 0 else "down" if change < 0 else ""
            delta = "no change" if change == 0 else f"{'+' if change > 0 else '−'}"
            if change != 0:
                delta += _fmt(abs(change), kind).rstrip("×")
            verb = {"up": "rose", "down": "fell", "": "stayed"}[direction]
            sentences.append(
                f"{label} {verb} {'at' if not direction else 'to'} {_fmt(now, kind)}"
                + (f" (was {_fmt(before, kind)})." if direction else ".")
            )
        rows.append(
            {
                "label": label,
                "now": _fmt(now, kind),
                "before": _fmt(before, kind),
                "delta": delta,
                "direction": direction,
            }
        )
    champion, old_champion = current.get("champion"), previous.get("champion")
    if champion and old_champion and champion != old_champion:
        sentences.append(f"The champion model changed from {old_champion} to {champion}.")
    return rows, sentences


# --- run summary page --------------------------------------------------------------------------


def _read_csv(path: Path, dtype: dict[str, Any] | None = None) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype=dtype)
    except (OSError, ValueError):
        return None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def top_leads(
    scored_leads: pd.DataFrame, n: int = 10, by: str | None = None
) -> list[dict[str, Any]]:
    """The ``n`` first open leads in the file's ``rank`` order, or ``by`` ``value`` /
    ``probability`` (``leads.value.calling_order``), formatted for reading."""
    if by is not None:
        best = scored_leads.iloc[calling_order(scored_leads, by)[:n]]
    else:
        order = "rank" if "rank" in scored_leads.columns else "score"
        best = scored_leads.sort_values(order, ascending=order == "rank").head(n)
    rows = []
    for record in best.to_dict("records"):
        row = {key: None if _missing(value) else value for key, value in record.items()}
        low, high = row.get("expected_value_low"), row.get("expected_value_high")
        rows.append(
            {
                "rank": _fmt(row.get("rank"), "count"),
                "user_id": str(row.get("user_id", "")),
                "score": _fmt(row.get("score"), "percent"),
                "grade": str(row.get("grade", "")),
                "top_reasons": str(row.get("top_reasons") or ""),
                "campaign": str(row.get("campaign") or ""),
                "value": _fmt(row.get("expected_value"), "money"),
                "interval": f"{_fmt(low, 'money')} – {_fmt(high, 'money')}",
                "on_overall": str(row.get("value_basis") or "").startswith("overall"),
            }
        )
    return rows


def call_first(
    scored: pd.DataFrame,
    run: dict[str, Any],
    n: int = 10,
    horizon_days: Any = None,
    horizon_months: Any = None,
) -> dict[str, Any] | None:
    """ "Who to call first": the top ``n`` by expected value and by chance to convert, the one
    ``rank`` follows first, why, and how many leads both lists share. The horizons are said
    only when given (the model card's ``horizon_days``, LTV's ``horizon_months``)."""
    if scored.empty:
        return None
    ranking: dict[str, Any] = run["ranking"] if isinstance(run.get("ranking"), dict) else {}
    has_value = "expected_value" in scored.columns and bool(scored["expected_value"].notna().any())
    by_probability = top_leads(scored, n, "probability")
    by_value = top_leads(scored, n, "value") if has_value else []
    rank_by = "value" if has_value and ranking.get("rank_by") == "value" else "probability"
    shared = {lead["user_id"] for lead in by_value} & {lead["user_id"] for lead in by_probability}
    lists = [{"by": "value", "leads": by_value}, {"by": "probability", "leads": by_probability}]
    lists = [item for item in lists if item["leads"]]
    lists.sort(key=lambda item: item["by"] != rank_by)
    return {
        "lists": lists,
        "rank_by": rank_by,
        "reason": str(ranking.get("reason") or ranking.get("values_missing") or ""),
        "shared": len(shared) if by_value else None,
        "n": len(by_probability),
        "horizon_days": horizon_days,
        "horizon_months": horizon_months,
        "show_value": has_value,
    }


def campaign_rows(campaign_ltv: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    """Campaigns by value returned per unit of acquisition cost, best first, and one sentence."""
    table = campaign_ltv.copy()
    if "ltv_to_cac" not in table.columns:
        table["ltv_to_cac"] = float("nan")
    table = table.sort_values(["ltv_to_cac", "ltv_mean"], ascending=False, na_position="last")
    rows = []
    for row in table.to_dict("records"):
        low, high = row.get("ltv_ci_low"), row.get("ltv_ci_high")
        rows.append(
            {
                "campaign": str(row.get("campaign", "")),
                "customers": _fmt(row.get("customers"), "count"),
                "ltv_mean": _fmt(row.get("ltv_mean"), "money"),
                "interval": f"{_fmt(low, 'money')} – {_fmt(high, 'money')}"
                if _is_number(low) and _is_number(high)
                else "—",
                "cac": _fmt(row.get("cac"), "money"),
                "ltv_to_cac": _fmt(row.get("ltv_to_cac"), "ratio"),
                "payback": _fmt(row.get("payback_months"), "months"),
                "has_ratio": _is_number(row.get("ltv_to_cac")),
            }
        )
    if rows and rows[0]["has_ratio"]:
        best = rows[0]
        sentence = (
            f"{best['campaign']} returns the most per unit spent: each customer is worth "
            f"{best['ltv_to_cac']} what it cost to acquire (average lifetime value "
            f"{best['ltv_mean']}, cost per customer {best['cac']})."
        )
    else:
        sentence = "No campaign spend was recorded, so value per cost cannot be compared."
    return rows, sentence


def _run_view(run: dict[str, Any]) -> dict[str, Any]:
    view = dict(run)
    view["started_label"] = _time_label(run.get("started_at"))
    view["data_window_label"] = _window_label(run.get("data_window"))
    view["as_of_label"] = _day_label(run.get("as_of"))
    return view


def write_run_summary(
    run_dir: str | Path, run: dict[str, Any], previous: dict[str, Any] | None = None
) -> Path:
    """Write ``run_dir/index.html``: what changed, who to call first, where to spend, links.

    For a failed run the page says why it failed and shows none of its partial results.
    """
    run_dir = Path(run_dir)
    run = normalise_run_meta(run, run_dir.name)
    changes: list[dict[str, str]] = []
    change_sentences: list[str] = []
    leads: dict[str, Any] | None = None
    campaigns: list[dict[str, Any]] = []
    spend_sentence = ""
    campaign_ltv = None
    if run.get("status") == "ok":  # a failed run's partial outputs are never shown as results
        changes, change_sentences = describe_changes(run, previous)
        scored = _read_csv(run_dir / "scored_leads.csv", {"user_id": str})
        if scored is not None and not scored.empty:
            card = read_json(run_dir / "model_card.json") or {}
            ltv_months = (run["config"] or {}).get("horizon_months")
            leads = call_first(scored, run, 10, card.get("horizon_days"), ltv_months)
        campaign_ltv = _read_csv(run_dir / "campaign_ltv.csv")
        if campaign_ltv is not None and not campaign_ltv.empty:
            campaigns, spend_sentence = campaign_rows(campaign_ltv)
            # 04_ltv's recommendation, when it wrote one, is the one voice on where to spend
            ltv_params = read_json(run_dir / "ltv_params.json") or {}
            spend_sentence = ltv_params.get("recommendation") or spend_sentence
    notebooks = [
        {
            "html": str(nb["html"]),
            "title": str(nb.get("title") or nb.get("name") or nb["html"]),
            "seconds": f"{nb.get('seconds') or 0:.0f} s",
        }
        for nb in run["notebooks"]
        if nb.get("html")
    ]
    not_computed = skipped_stages(run)
    product = product_section(run_dir) if run.get("status") == "ok" else None
    warnings = [str(w.get("message", "")) for w in run["ingest_warnings"] if w.get("message")]
    if run.get("signal_warning"):  # the lead model is no better than chance (model_card signal)
        warnings.insert(0, str(run["signal_warning"]))
    files = [
        name
        for name in (
            "scored_leads.csv",
            "model_card.json",
            "customer_ltv.csv",
            "campaign_ltv.csv",
            "ltv_params.json",
            "funnel.csv",
            RUN_META,
            "run.log",
        )
        if (run_dir / name).exists()
    ]
    html = (
        _jinja()
        .get_template("run_summary.html.j2")
        .render(
            run=_run_view(run),
            previous_id=(previous or {}).get("run_id"),
            changes=changes,
            change_sentences=change_sentences,
            call_first=leads,
            open_leads_label=_fmt(run.get("open_leads"), "count"),
            campaigns=campaigns,
            show_payback=campaign_ltv is not None and "payback_months" in campaign_ltv.columns,
            spend_sentence=spend_sentence,
            notebooks=notebooks,
            files=files,
            not_computed=not_computed,
            warnings=warnings,
            product=product,
        )
    )
    return atomic_write_text(run_dir / "index.html", html)


def _share(value: Any) -> str:
    """A measured share (not a model's probability): 100% means everyone."""
    return f"{value:.1%}" if _is_number(value) else "—"


def product_section(run_dir: Path) -> dict[str, Any] | None:
    """ "Where users get stuck" from 05_product's ``product_summary.json``: the funnel and the
    top friction point in words (None when the run has no product summary or skipped it: the
    "not computed" section says why)."""
    summary = read_json(run_dir / "product_summary.json")
    if not summary or summary.get("state") != "ok":
        return None
    steps = [
        {
            "event_name": str(step.get("event_name", "")),
            "reached": _fmt(step.get("users_reached"), "count"),
            "share": _share(step.get("share_of_signups")),
            "conversion": _share(step.get("conversion_if_reached")),
        }
        for step in summary.get("funnel", [])
    ]
    return {
        "funnel_in_words": str(summary.get("funnel_in_words") or ""),
        "friction_in_words": str(summary.get("top_friction_in_words") or ""),
        "caution": str(summary.get("caution") or ""),
        "steps": steps,
    }


def skipped_stages(run: dict[str, Any]) -> list[dict[str, str]]:
    """The stages a run skipped: what was not computed, why, and what data would fix it."""
    return [
        {
            "stage": name.replace("_", " "),
            "reason": str(record.get("reason") or "no reason was recorded"),
            "fix": str(record.get("fix") or ""),
        }
        for name, record in (run.get("stages") or {}).items()
        if isinstance(record, dict) and record.get("state") == "skipped"
    ]


# --- the index portal --------------------------------------------------------------------------


def list_runs(reports_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every finished run folder under ``reports_dir/runs`` with its metadata, newest first.

    Staging folders (``.<id>.partial``) are in progress and left out.
    """
    runs_dir = Path(reports_dir) / RUNS_FOLDER
    found = []
    for folder in runs_dir.iterdir() if runs_dir.is_dir() else []:
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        meta = read_run_meta(folder)
        if meta is not None:
            found.append((folder, meta))
    # a killed run may have no start time: its folder name (the run id) still sorts it
    found.sort(key=lambda item: (item[1]["started_at"] or "", item[0].name), reverse=True)
    return found


def _link(folder: Path, meta: dict[str, Any]) -> tuple[str, str]:
    base = f"{RUNS_FOLDER}/{folder.name}"
    if not (folder / "index.html").exists():
        return f"{base}/run.log", "run.log"
    if meta.get("status") == "ok":
        return f"{base}/index.html", "report"
    if meta.get("status") == "interrupted":
        return f"{base}/index.html", "interrupted"
    return f"{base}/index.html", "why it failed"


def _published(reports_dir: Path, name: str) -> dict[str, Any] | None:
    link = reports_dir / name
    return read_run_meta(link) if link.exists() else None


def write_index(reports_dir: str | Path, reference_campaign: str = "") -> Path:
    """Write ``reports/index.html`` (every run, newest first) and ``reports/runs/index.html``.

    The second one only redirects to the first, so a run page's ``../index.html`` link reaches the
    index both from ``runs/<id>/`` and through the ``latest`` link.
    """
    reports_dir = Path(reports_dir)
    runs, score_runs = [], []
    for folder, meta in list_runs(reports_dir):
        view = _run_view(meta)
        view["href"], view["link_text"] = _link(folder, meta)
        view["open_leads"] = _fmt(meta.get("open_leads"), "count")
        if meta.get("kind") == "score":
            score_runs.append(view)
            continue
        view["auc"] = _fmt(meta.get("holdout_roc_auc"), "auc")
        view["ltv_ratio"] = _fmt(meta.get("ltv_ratio"), "ratio")
        view["champion"] = meta.get("champion") or "—"
        runs.append(view)
    latest = _published(reports_dir, LATEST)
    latest_scores = _published(reports_dir, LATEST_SCORES)
    if not reference_campaign and latest:
        reference_campaign = str(latest["config"].get("reference_campaign") or "")
    html = (
        _jinja()
        .get_template("index.html.j2")
        .render(
            updated_label=_time_label(utc_now().isoformat()),
            latest=_run_view(latest) if latest else None,
            latest_scores=(
                {
                    **_run_view(latest_scores),
                    "open_leads": _fmt(latest_scores.get("open_leads"), "count"),
                }
                if latest_scores
                else None
            ),
            runs=runs,
            score_runs=score_runs[:SCORE_RUNS_SHOWN],
            reference_campaign=reference_campaign or "reference",
        )
    )
    redirect = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="0; url=../index.html"><link rel="icon" href="data:,">'
        "<title>InsightOS reports</title></head>"
        '<body><p><a href="../index.html">All InsightOS runs</a></p></body></html>\n'
    )
    atomic_write_text(reports_dir / RUNS_FOLDER / "index.html", redirect)
    return atomic_write_text(reports_dir / "index.html", html)
