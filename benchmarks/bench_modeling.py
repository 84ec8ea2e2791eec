"""Benchmark: train both lead models on 100,000 users (goal < 60 s on 2 cores) and score
1,000,000 leads with explanations (goal < 10 s).

Inputs are generated here: synth's company (``generate_company``, default profile) with the
acquisition columns ingest adds (``ingest.fastpath.marketing_fields``), then the real feature table
(``features``) and EDA decisions (``eda``). Training is timed exactly as the notebook runs it
(``leads.train.train_lead_models``: time split, time-ordered tuning of both grids, champion,
calibration). Scoring is ``leads.scoring.score_leads`` (probabilities, grades, ranks and the readable
top reasons) on the feature table of a second, 1,000,000-user company built with the trained
bundle's spec, every user treated as a lead; it is timed for the champion and for each model's
own bundle. Each timed run is a fresh interpreter (``measure_in_subprocess``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CHILD_PEAK_RSS, measure_in_subprocess, record

import insightos_utils._openmp  # noqa: F401  (before scikit-learn and xgboost load)
from insightos_utils import contract, synth
from insightos_utils.ingest import fastpath
from insightos_utils.leads import eda, features
from insightos_utils.leads.pipelines import MODEL_NAMES

GOAL_TRAIN_SECONDS = 60.0
GOAL_SCORE_SECONDS = 10.0


def feature_table(n_users: int, seed: int, spec: features.FeatureSpec | None = None):
    """(users, events, spec, feature table) of a synthetic company of ``n_users``."""
    company = synth.generate_company(n_users=n_users, seed=seed)
    users = company["users"]
    fields = fastpath.marketing_fields(users["marketing"])
    for name in contract.MARKETING_FIELDS:
        users[name] = fields[name].to_numpy()
    events = features.encode_events(company["events"].drop_duplicates("event_id"))
    as_of = features.resolve_as_of(users, events, None)
    spec = spec or features.fit_feature_spec(users, events, as_of)
    return users, events, spec, features.build_feature_table(users, events, spec, as_of)


def train_code(table: Path, spec: Path, decisions: Path, models: Path) -> str:
    """The timed training child: one ``train_lead_models`` call, then the bundles are saved."""
    return CHILD_PEAK_RSS + (
        "import time\n"
        "import insightos_utils._openmp\n"
        "import pandas as pd\n"
        "from insightos_utils.leads import bundle, card, eda, features, train\n"
        f"table = pd.read_parquet({str(table)!r})\n"
        f"spec = features.FeatureSpec.from_json({str(spec)!r})\n"
        f"decisions = eda.FeatureDecisions.from_json({str(decisions)!r})\n"
        "rows = features.training_rows(table)\n"
        "start = time.perf_counter()\n"
        "result = train.train_lead_models(rows, train.model_features(decisions, spec))\n"
        "seconds = time.perf_counter() - start\n"
        "bundle.save_models(result, "
        f"{str(models)!r}, feature_spec=spec.to_dict(), decisions=card.as_plain_dict(decisions),\n"
        "    data_hash='0' * 64, as_of=pd.Timestamp(spec.as_of), window_days=spec.window_days)\n"
        "_report(seconds, training_rows=len(rows), champion=result.champion,\n"
        "        holdout_roc_auc={n: m['holdout_roc_auc'] for n, m in result.metrics.items()},\n"
        "        best_params={n: m['best_params'] for n, m in result.metrics.items()},\n"
        "        fit_seconds={n: m['fit_seconds'] for n, m in result.metrics.items()},\n"
        "        calibrated=result.calibration['applied'])\n"
    )


def score_code(bundle: Path, table: Path) -> str:
    """The timed scoring child: ``score_leads`` on every row of the 1,000,000-user table."""
    return CHILD_PEAK_RSS + (
        "import time\n"
        "import insightos_utils._openmp\n"
        "import pandas as pd\n"
        "from insightos_utils.leads import scoring\n"
        "from insightos_utils.leads.bundle import load_bundle\n"
        f"bundle = load_bundle({str(bundle)!r})\n"
        f"leads = pd.read_parquet({str(table)!r})\n"
        "start = time.perf_counter()\n"
        "scored = scoring.score_leads(bundle, leads)\n"
        "seconds = time.perf_counter() - start\n"
        "start = time.perf_counter()\n"
        f"scoring.write_scored_leads(scored, {str(table.with_suffix('.csv'))!r})\n"
        "write_seconds = time.perf_counter() - start\n"
        "_report(seconds, leads=len(scored), model=bundle.model_name,\n"
        "        write_csv_s=round(write_seconds, 2),\n"
        "        reasons_example=scored['top_reasons'].iloc[0])\n"
    )


def prepare_inputs(out: Path, train_users: int, score_users: int) -> dict[str, float]:
    """Write the training table, spec, decisions and the scoring table into ``out``."""
    start = time.perf_counter()
    _, _, spec, train_table = feature_table(train_users, seed=42)
    decisions = eda.decide_feature_drops(train_table, spec)
    train_table.to_parquet(out / "train.parquet")
    spec.to_json(out / "spec.json")
    decisions.to_json(out / "decisions.json")
    train_input_s = time.perf_counter() - start
    start = time.perf_counter()
    _, _, _, score_table = feature_table(score_users, seed=7, spec=spec)
    score_table.to_parquet(out / "leads.parquet")
    return {
        "train_input_s": round(train_input_s, 1),
        "score_input_s": round(time.perf_counter() - start, 1),
        "train_users": len(train_table),
        "features": len(spec.numeric_columns) + len(spec.categorical_columns),
        "distinct_numeric_rows": int((~score_table[list(spec.numeric_columns)].duplicated()).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-users", type=int, default=100_000)
    parser.add_argument("--score-users", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # child: build inputs
    args = parser.parse_args()
    if args.prepare:
        info = prepare_inputs(args.prepare, args.train_users, args.score_users)
        (args.prepare / "inputs.json").write_text(json.dumps(info))
        return
    with tempfile.TemporaryDirectory(prefix="bench_modeling_") as tmp:
        tmp_dir = Path(tmp)
        # inputs are built in a child so this process stays small: Linux carries a parent's
        # peak RSS into the children it starts, which would inflate their measured peaks
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--prepare",
                str(tmp_dir),
                "--train-users",
                str(args.train_users),
                "--score-users",
                str(args.score_users),
            ],
            check=True,
        )
        info = json.loads((tmp_dir / "inputs.json").read_text())
        training = measure_in_subprocess(
            train_code(
                tmp_dir / "train.parquet",
                tmp_dir / "spec.json",
                tmp_dir / "decisions.json",
                tmp_dir,
            ),
            repeats=args.repeats,
        )
        scoring_figures = {
            name: measure_in_subprocess(
                score_code(tmp_dir / f"{name}.joblib", tmp_dir / "leads.parquet"),
                repeats=args.repeats,
            )
            for name in ("champion", *MODEL_NAMES)
        }
    champion_s = scoring_figures["champion"]["median_s"]
    figures = {
        "training": {
            **training,
            "input": {"users": info["train_users"], "features": info["features"]},
            "input_generation_s": info["train_input_s"],
            "goal_seconds": GOAL_TRAIN_SECONDS,
            "meets_goal": training["median_s"] < GOAL_TRAIN_SECONDS,
        },
        "scoring": {
            **scoring_figures,
            "input": {
                "leads": args.score_users,
                "distinct_numeric_rows": info["distinct_numeric_rows"],
            },
            "input_generation_s": info["score_input_s"],
            "goal_seconds": GOAL_SCORE_SECONDS,
            "meets_goal": champion_s < GOAL_SCORE_SECONDS,
            "all_models_meet_goal": all(
                f["median_s"] < GOAL_SCORE_SECONDS for f in scoring_figures.values()
            ),
        },
    }
    record("modeling", json.loads(json.dumps(figures, default=str)))


if __name__ == "__main__":
    main()
