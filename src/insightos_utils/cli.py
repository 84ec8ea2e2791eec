"""The ``insightos`` command line (contract section 2): the only module that knows every stage.

Exit status: 0 done; 2 bad input (message on stderr); 1 any other failure. Stage modules are
imported inside each command so that ``insightos --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from insightos_utils import __version__
from insightos_utils.errors import InputError, InsightOSError


def _add_source(parser: argparse.ArgumentParser, required: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--raw", type=Path, help="raw folder (CSV or Parquet per table)")
    source.add_argument("--source", help="SQLAlchemy URL of a database holding the raw tables")


# --- synth -------------------------------------------------------------------------------------


def _synth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a seeded synthetic company in the raw contract")
    p.add_argument("--out", type=Path, help="folder to write the raw tables into (required)")
    p.add_argument("--users", type=int, default=10_000, help="number of users (default 10000)")
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same bytes)")
    p.add_argument("--as-of", help="the company's 'now' (ISO date); default 2026-06-30")
    p.add_argument(
        "--profile",
        default="projects",
        help="which company: projects (project-management SaaS, default) or crm (a CRM SaaS)",
    )
    p.add_argument(
        "--format",
        dest="file_format",
        default="csv",
        help="file format of the raw tables: csv (default) or parquet",
    )
    p.add_argument(
        "--shape",
        help="a shape of company from the corpus (e.g. no_events, subscription, many_campaigns; "
        "--list-shapes shows them all); default: the profile as it is",
    )
    p.add_argument("--list-shapes", action="store_true", help="list the shapes and exit")
    p.set_defaults(handler=_synth)


def _synth(args: argparse.Namespace) -> int:
    from insightos_utils.synth import SHAPES, write_company

    if args.list_shapes:
        for name, shape in SHAPES.items():
            print(f"{name:<24} {shape.description}")
        return 0
    if args.out is None:
        raise InputError("insightos synth needs --out DIR (the folder to write the tables into)")
    write_company(
        args.out,
        n_users=args.users,
        seed=args.seed,
        as_of=args.as_of,
        profile=args.profile,
        file_format=args.file_format,
        shape=args.shape,
    )
    return 0


# --- ingest ------------------------------------------------------------------------------------


def _ingest_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="validate, deduplicate and type raw data into Parquet")
    _add_source(p, required=True)
    p.add_argument("--out", type=Path, required=True, help="processed folder to write")
    p.add_argument(
        "--max-reject-share",
        type=float,
        default=None,
        help="stop (exit 2) when a table has more than this share of rejected rows "
        "(default [data] max_reject_share, 0.01)",
    )
    p.add_argument("--config", type=Path, help="configuration file (default ./insightos.toml)")
    p.set_defaults(handler=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    from insightos_utils.config import find_config, load_config
    from insightos_utils.ingest import ingest

    config = load_config(find_config(args.config)).with_overrides(
        source="command line", max_reject_share=args.max_reject_share
    )
    report = ingest(args.out, raw_dir=args.raw, source_url=args.source, config=config.data)
    for name, entry in report["tables"].items():
        if not entry["present"]:
            print(f"insightos ingest: {name}: absent (optional)", file=sys.stderr)
            continue
        rejected = f", {entry['rejected_rows']} rejected" if entry["rejected_rows"] else ""
        print(
            f"insightos ingest: {name}: {entry['rows_written']} rows written "
            f"({entry['rows_read']} read, {entry['duplicates']} duplicates{rejected})",
            file=sys.stderr,
        )
        if entry.get("user_rejected_cause"):
            print(f"insightos ingest: {name}: {entry['user_rejected_cause']}", file=sys.stderr)
    for warning in report.get("warnings") or []:
        print(f"insightos ingest: warning: {warning['message']}", file=sys.stderr)
    print(
        f"insightos ingest: Parquet and {args.out / 'ingest_report.json'} written", file=sys.stderr
    )
    return 0


# --- run ---------------------------------------------------------------------------------------


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the whole pipeline: notebooks, models, scores, reports")
    _add_source(p, required=False)
    p.add_argument("--out", type=Path, help="run folder (default reports/runs/<run-id>/)")
    p.add_argument("--as-of", help="the pipeline's 'now' (ISO timestamp); default: latest in data")
    p.add_argument("--config", type=Path, help="configuration file (default ./insightos.toml)")
    p.add_argument("--feature-window-days", type=int, help="override [features] window")
    p.add_argument("--horizon-months", type=int, help="override [ltv] horizon")
    p.add_argument("--discount-rate", type=float, help="override [ltv] monthly discount rate")
    p.add_argument("--margin", type=float, help="override [ltv] gross margin")
    p.add_argument("--score-only", action="store_true", help="score open leads, no retraining")
    p.add_argument(
        "--db",
        help="after a successful run, write every result table to this database (SQLAlchemy URL; "
        "default [run] publish_url)",
    )
    p.add_argument("--reports-dir", type=Path, help="override [run] reports_dir (default reports)")
    p.add_argument("--notebooks", type=Path, help="notebooks folder (default ./notebooks)")
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=None,
        help="seconds to wait for a run already in progress before giving up (default 900)",
    )
    p.add_argument(
        "--block-on-leakage",
        action="store_true",
        default=None,
        help="fail the run (publish nothing) when the model card suspects leakage",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars (cron, CI)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from insightos_utils.config import find_config, load_config
    from insightos_utils.runner import DEFAULT_LOCK_TIMEOUT, run_pipeline

    config = load_config(find_config(args.config)).with_overrides(
        source="command line",
        raw_dir=str(args.raw) if args.raw else None,
        source_url=args.source,
        as_of=args.as_of,
        feature_window_days=args.feature_window_days,
        horizon_months=args.horizon_months,
        monthly_discount_rate=args.discount_rate,
        gross_margin=args.margin,
        reports_dir=str(args.reports_dir) if args.reports_dir else None,
        block_on_leakage=args.block_on_leakage,
    )
    if args.raw:  # an explicit folder wins over a configured database
        config = config.with_overrides(source="command line", source_url="")
    run_dir = run_pipeline(
        config,
        out_dir=args.out,
        score_only=args.score_only,
        notebooks_dir=args.notebooks,
        lock_timeout=DEFAULT_LOCK_TIMEOUT if args.lock_timeout is None else args.lock_timeout,
        show_progress=not args.no_progress,
        db_url=args.db,
    )
    print(run_dir)
    return 0


# --- score -------------------------------------------------------------------------------------


def _score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score the open leads with a saved model (no retraining)")
    _add_source(p, required=True)
    p.add_argument("--model", type=Path, required=True, help="saved champion model file")
    p.add_argument("--out", type=Path, required=True, help="scored-leads CSV to write")
    p.add_argument("--as-of", help="the scoring 'now' (ISO timestamp); default: latest in data")
    p.add_argument("--db", help="also upsert the scores into this database (SQLAlchemy URL)")
    p.add_argument(
        "--previous",
        type=Path,
        help="the previous scoring run's folder or scored_leads.csv: each lead's trend "
        "(improving / steady / declining / new) is measured against it; default: every lead new",
    )
    p.set_defaults(handler=_score)


def _score(args: argparse.Namespace) -> int:
    from insightos_utils.config import find_config, load_config
    from insightos_utils.leads.scoring import score_command, scoring_summary

    scored = score_command(
        model_path=args.model,
        out_path=args.out,
        raw_dir=args.raw,
        source_url=args.source,
        as_of=args.as_of,
        db_url=args.db,
        previous_run_dir=args.previous,
        trend_threshold=load_config(find_config()).scoring.trend_threshold,
    )
    print(f"insightos score: {scoring_summary(scored, args.out, args.db)}", file=sys.stderr)
    return 0


# --- ltv ---------------------------------------------------------------------------------------


def _ltv_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ltv",
        help="RFM summary, BG/NBD + Gamma-Gamma fit, per-customer LTV",
        description=(
            "Settings come from the [ltv] section of the configuration (./insightos.toml, or "
            "--config FILE); the flags below override it."
        ),
    )
    p.add_argument("--transactions", type=Path, required=True, help="transactions CSV/Parquet")
    p.add_argument("--calibration-end", required=True, help="end of the calibration period")
    p.add_argument("--observation-end", help="end of the holdout period (default: latest data)")
    p.add_argument("--out", type=Path, required=True, help="folder for ltv_params.json etc.")
    p.add_argument("--config", type=Path, help="configuration file (default ./insightos.toml)")
    p.add_argument("--time-unit", choices=["D", "W", "M"], help="override [ltv] time_unit")
    p.add_argument("--horizon-months", type=int, help="override [ltv] horizon_months")
    p.add_argument("--discount-rate", type=float, help="override [ltv] monthly_discount_rate")
    p.add_argument("--margin", type=float, help="override [ltv] gross_margin")
    p.add_argument("--penalizer", type=float, help="override [ltv] penalizer (L2, both fits)")
    p.add_argument(
        "--model",
        choices=["auto", "bgnbd", "paretonbd"],
        help="override [ltv] model: the purchase model (auto = chosen on the holdout)",
    )
    p.add_argument(
        "--refit",
        action="store_true",
        help="after the holdout check, refit on everything up to --observation-end for the LTV",
    )
    p.add_argument("--users", type=Path, help="users file: also write campaign_ltv.csv")
    p.add_argument("--campaign-spend", type=Path, help="campaign_spend file (CAC, LTV/CAC)")
    p.add_argument("--bootstrap-samples", type=int, help="override [ltv] bootstrap_samples")
    p.add_argument(
        "--interval-method",
        choices=["refit", "sampling"],
        help="override [ltv] interval_method: refit = customers resampled and both models "
        "refitted each time (sampling + parameters), sampling = point values resampled",
    )
    p.add_argument("--refit-samples", type=int, help="override [ltv] refit_samples")
    p.add_argument("--seed", type=int, help="bootstrap seed: override [scoring] random_seed")
    p.add_argument("--reference-campaign", help="override [ltv] reference_campaign")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (cron, CI)")
    p.set_defaults(handler=_ltv)


def _ltv(args: argparse.Namespace) -> int:
    from insightos_utils.config import find_config, load_config
    from insightos_utils.ltv.command import ltv_command

    config = load_config(find_config(args.config)).with_overrides(
        source="command line",
        time_unit=args.time_unit,
        horizon_months=args.horizon_months,
        monthly_discount_rate=args.discount_rate,
        gross_margin=args.margin,
        penalizer=args.penalizer,
        model=args.model,
        bootstrap_samples=args.bootstrap_samples,
        interval_method=args.interval_method,
        refit_samples=args.refit_samples,
        random_seed=args.seed,
        reference_campaign=args.reference_campaign,
    )
    ltv_command(
        args.transactions,
        args.calibration_end,
        args.observation_end,
        args.out,
        config,
        refit=args.refit,
        users_path=args.users,
        campaign_spend_path=args.campaign_spend,
        show_progress=not args.no_progress,
    )
    return 0


# --- retention -----------------------------------------------------------------------------------


def _retention_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retention",
        help="shifted-beta-geometric retention by cohort from a survival table",
        description=(
            "Fit the sBG (Fader and Hardie 2007) to each cohort of a survival table (columns "
            "cohort, period, surviving; period 0 = the cohort's start; surviving a count or a "
            "share) and write retention_params.json. Margin and discount default to the [ltv] "
            "section (gross_margin, monthly_discount_rate: periods are then months)."
        ),
    )
    p.add_argument("--survival", type=Path, required=True, help="survival table CSV/Parquet")
    p.add_argument("--out", type=Path, required=True, help="folder for retention_params.json")
    p.add_argument("--config", type=Path, help="configuration file (default ./insightos.toml)")
    p.add_argument("--price", type=float, default=1.0, help="payment per period (default 1)")
    p.add_argument("--margin", type=float, help="override [ltv] gross_margin")
    p.add_argument("--discount-rate", type=float, help="discount rate per period")
    p.add_argument("--project", type=int, default=5, help="periods projected past the data")
    p.set_defaults(handler=_retention)


def _retention(args: argparse.Namespace) -> int:
    from insightos_utils.config import find_config, load_config
    from insightos_utils.ltv.retention import RETENTION_PARAMS_FILE, retention_command

    settings = load_config(find_config(args.config)).ltv
    if args.price <= 0 or (args.margin is not None and not 0 < args.margin <= 1):
        raise InputError("--price must be > 0 and --margin in (0, 1]")
    if args.project < 0:
        raise InputError("--project must be >= 0")
    result = retention_command(
        args.survival,
        args.out,
        price=args.price,
        margin=settings.gross_margin if args.margin is None else args.margin,
        discount_rate=(
            settings.monthly_discount_rate if args.discount_rate is None else args.discount_rate
        ),
        project=args.project,
        penalizer=settings.penalizer,
    )
    fitted = sum(1 for c in result["cohorts"].values() if c["state"] == "ok")
    print(
        f"insightos retention: {fitted} of {len(result['cohorts'])} cohort(s) fitted, "
        f"{args.out / RETENTION_PARAMS_FILE}",
        file=sys.stderr,
    )
    return 0


# --- serve -------------------------------------------------------------------------------------


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the event collector (FastAPI)",
        description=(
            "Run the event collector. Keys come from the environment: INSIGHTOS_WRITE_KEYS "
            "(comma-separated browser write keys, required), INSIGHTOS_SERVER_KEY (the back "
            "end's key for status changes) and optionally INSIGHTOS_CORS_ORIGINS "
            "(comma-separated origins allowed to post from a browser)."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--db",
        default="sqlite:///data/raw/insightos.sqlite",
        help="SQLAlchemy URL (default sqlite:///data/raw/insightos.sqlite)",
    )
    p.set_defaults(handler=_serve)


def _comma_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _serve(args: argparse.Namespace) -> int:
    import os

    from insightos_utils.collector import serve

    write_keys = _comma_list(os.environ.get("INSIGHTOS_WRITE_KEYS"))
    server_key = os.environ.get("INSIGHTOS_SERVER_KEY", "").strip() or None
    if not write_keys:
        raise InputError(
            "INSIGHTOS_WRITE_KEYS is not set: give the browser write keys, comma-separated "
            "(and INSIGHTOS_SERVER_KEY for the back end's status changes)"
        )
    if server_key is not None and server_key in write_keys:
        raise InputError("INSIGHTOS_SERVER_KEY must differ from every INSIGHTOS_WRITE_KEYS key")
    serve(
        host=args.host,
        port=args.port,
        db_url=args.db,
        write_keys=write_keys,
        server_key=server_key,
        cors_origins=_comma_list(os.environ.get("INSIGHTOS_CORS_ORIGINS")),
    )
    return 0


# --- main --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="insightos",
        description="InsightOS: lead scoring and lifetime value from a SaaS company's raw data.",
    )
    parser.add_argument("--version", action="version", version=f"insightos {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _synth_parser,
        _ingest_parser,
        _run_parser,
        _score_parser,
        _ltv_parser,
        _retention_parser,
        _serve_parser,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except InputError as error:
        print(f"insightos {args.command}: {error}", file=sys.stderr)
        return 2
    except InsightOSError as error:
        print(f"insightos {args.command}: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print(f"insightos {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # an unexpected failure: show where, exit 1
        traceback.print_exc()
        print(f"insightos {args.command}: failed (see the traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
