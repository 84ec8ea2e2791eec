"""The corpus of company shapes (issue "any company's data"): every shape `insightos synth` knows
runs end to end through `insightos run` on a small company, and each run either publishes
complete outputs with every stage ``ok`` or ``skipped`` with its reason, or stops with a clear
exit 2. Shape-specific checks say what the pipeline must do with that shape's data.

The runs are made once per module, two at a time (the machine has two cores), on 1,200 users
(``tiny`` keeps its 200). The default suite runs the ``CORE`` shapes (no events, a CRM's leads, no
transactions on the other synthetic profile, the subscription business, the smallest company);
the other shapes are marked ``extended`` (``make test-slow`` runs the whole corpus).
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from insightos_utils.contract import OPEN_STATUSES
from insightos_utils.runner.run import REQUIRED_OUTPUTS
from insightos_utils.synth.shapes import SHAPES

REPO_ROOT = Path(__file__).resolve().parents[2]
USERS = 1_200
# a CRM's leads won only in the last four months: the time-based training part needs the size of
# the real CRM this shape stands for (6,700 leads) to hold any win; no events, so it stays cheap
USERS_BY_SHAPE = {"crm_leads": 6_000}
# the other synthetic profile (other event names and campaigns) for some shapes
PROFILE_BY_SHAPE = {"no_transactions": "crm", "one_campaign": "crm", "heavy_tail": "crm"}
SEED = 7

CORE = ("no_events", "crm_leads", "no_transactions", "subscription", "tiny")
# every stage a run records (the feature table is part of lead scoring's record)
RECORDED_STAGES = {"ingest", "lead_scoring", "backtest", "ltv", "product"}


def _shape_param(shape: str) -> object:
    return shape if shape in CORE else pytest.param(shape, marks=pytest.mark.extended)


SHAPE_PARAMS = [_shape_param(shape) for shape in SHAPES]

# What the data of each shape cannot support: these stages must be skipped, with a reason.
MUST_SKIP: dict[str, set[str]] = {
    "no_transactions": {"ltv"},
    "crm_leads": {"ltv", "product"},
    "no_events": {"product"},
    "conversion_1pct": {"lead_scoring"},  # 12 conversions among 1,200 users: below the minimum
    "recent_conversions_only": {"lead_scoring"},  # the training part holds no conversion
    "tiny": {"lead_scoring"},
    "single_purchase": {"ltv"},  # no repeat buyer: nothing identifies the purchase process
}
# ... and these must run.
MUST_RUN: dict[str, set[str]] = {
    "default": {"ingest", "lead_scoring", "ltv", "product"},
    "no_events": {"lead_scoring"},
    "crm_leads": {"lead_scoring"},
    "no_transactions": {"lead_scoring", "product"},
    "no_campaign_spend": {"lead_scoring", "ltv"},
    "subscription": {"lead_scoring", "ltv"},
    "heavy_tail": {"ltv"},
    "many_campaigns": {"lead_scoring", "ltv"},
    "conversion_50pct": {"lead_scoring", "backtest"},
}


@dataclass(frozen=True)
class CorpusRun:
    shape: str
    raw: Path
    reports: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def run_dir(self) -> Path:
        return self.reports / "latest"

    def stages(self) -> dict[str, dict]:
        return json.loads((self.run_dir / "run.json").read_text())["stages"]

    def frame(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.run_dir / name, keep_default_na=False, na_values=[""])


# the corpus checks what each shape's data supports, not the intervals' precision (tests/ltv
# does): few resamples keep the runs short
SMALL_INTERVALS = {
    "bootstrap_samples = 2000": "bootstrap_samples = 200",
    "refit_samples = 200": "refit_samples = 20",
}


def _corpus_config(root: Path) -> Path:
    text = (REPO_ROOT / "insightos.toml").read_text()
    for default, small in SMALL_INTERVALS.items():
        assert default in text, default
        text = text.replace(default, small)
    path = root / "insightos.toml"
    path.write_text(text)
    return path


def _run_shape(shape: str, root: Path) -> CorpusRun:
    raw, reports = root / shape / "raw", root / shape / "reports"
    python = [sys.executable, "-m", "insightos_utils"]
    synth = [*python, "synth", "--shape", shape, "--seed", str(SEED)]
    synth += ["--users", str(USERS_BY_SHAPE.get(shape, USERS))]
    synth += ["--profile", PROFILE_BY_SHAPE.get(shape, "projects")]
    subprocess.run([*synth, "--out", str(raw)], cwd=REPO_ROOT, check=True, capture_output=True)
    command = [
        *python, "run", "--raw", str(raw), "--config", str(root / "insightos.toml"),
        "--notebooks", str(REPO_ROOT / "notebooks"), "--reports-dir", str(reports),
        "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    return CorpusRun(shape, raw, reports, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, CorpusRun]:
    """Every shape a selected test of this module needs, run once, two at a time."""
    here = Path(__file__).name
    selected = [item for item in request.session.items if item.path.name == here]
    shapes = {item.callspec.params["shape"] for item in selected if hasattr(item, "callspec")}
    shapes |= {
        shape for item in selected for mark in item.iter_markers("shapes") for shape in mark.args
    }
    root = tmp_path_factory.mktemp("corpus")
    _corpus_config(root)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda shape: _run_shape(shape, root), sorted(shapes)))
    return {run.shape: run for run in runs}


def _open_leads(run: CorpusRun) -> set[str]:
    users = pd.read_csv(run.raw / "users.csv", dtype=str, keep_default_na=False)
    return set(users.loc[users["status"].str.strip().str.lower().isin(OPEN_STATUSES), "user_id"])


@pytest.mark.parametrize("shape", SHAPE_PARAMS)
def test_every_shape_publishes_complete_outputs(corpus: dict[str, CorpusRun], shape: str) -> None:
    run = corpus[shape]
    assert run.returncode == 0, f"{shape}: exit {run.returncode}\n{run.stderr[-3000:]}"
    for name in REQUIRED_OUTPUTS:
        assert (run.run_dir / name).is_file(), f"{shape}: {name} missing"
    stages = run.stages()
    assert set(stages) >= RECORDED_STAGES, (shape, stages)
    for name, record in stages.items():
        assert record["state"] in {"ok", "skipped"}, (shape, name, record)
        if record["state"] == "skipped":
            assert record["reason"], (shape, name, "a skipped stage says why")
    skipped = {name for name, record in stages.items() if record["state"] == "skipped"}
    ran = {name for name, record in stages.items() if record["state"] == "ok"}
    assert MUST_SKIP.get(shape, set()) <= skipped, (shape, stages)
    assert MUST_RUN.get(shape, set()) <= ran, (shape, stages)


@pytest.mark.parametrize("shape", SHAPE_PARAMS)
def test_every_open_lead_is_scored_or_the_reason_stated(
    corpus: dict[str, CorpusRun], shape: str
) -> None:
    run = corpus[shape]
    assert run.returncode == 0, run.stderr[-2000:]
    stage = run.stages()["lead_scoring"]
    scored = run.frame("scored_leads.csv")
    if stage["state"] == "skipped":
        assert scored.empty and stage["reason"]
        return
    assert set(scored["user_id"].astype(str)) == _open_leads(run), shape
    assert scored["score"].between(0, 1).all()
    assert sorted(scored["rank"]) == list(range(1, len(scored) + 1))


@pytest.mark.shapes("subscription")
def test_subscription_company_gets_lifetime_value_with_its_boundary_named(
    corpus: dict[str, CorpusRun],
) -> None:
    run = corpus["subscription"]
    params = json.loads((run.run_dir / "ltv_params.json").read_text())
    named = json.dumps(params.get("boundary") or params.get("subscription") or "")
    assert named not in {'""', "null", "[]", "{}"}, params.keys()
    ltv = run.frame("customer_ltv.csv")
    assert len(ltv) > 0 and ltv.select_dtypes("number").notna().all().all()


@pytest.mark.extended
@pytest.mark.shapes("mixed_offsets", "default")
def test_mixed_offsets_score_like_the_same_company_in_utc(corpus: dict[str, CorpusRun]) -> None:
    """The same company with timestamps written in five UTC offsets: the same instants, so the
    same scores (the shape rewrites only how the timestamps are written)."""
    mixed = corpus["mixed_offsets"].frame("scored_leads.csv").set_index("user_id")
    utc = corpus["default"].frame("scored_leads.csv").set_index("user_id")
    assert mixed.index.sort_values().equals(utc.index.sort_values())
    pd.testing.assert_series_equal(
        mixed["score"].sort_index(), utc["score"].sort_index(), rtol=1e-9, atol=1e-12
    )


@pytest.mark.extended
@pytest.mark.shapes("accented_campaigns")
def test_accented_campaign_names_survive_to_every_output(corpus: dict[str, CorpusRun]) -> None:
    run = corpus["accented_campaigns"]
    users = pd.read_csv(run.raw / "users.csv", dtype=str, keep_default_na=False)
    accented = {
        name for name in users["campaign"] if name != name.encode("ascii", "ignore").decode()
    }
    assert accented, "the shape writes accented names"
    assert accented <= set(run.frame("campaign_ltv.csv")["campaign"])
    assert accented & set(run.frame("scored_leads.csv")["campaign"])


@pytest.mark.extended
@pytest.mark.shapes("many_campaigns")
def test_many_campaigns_keep_every_campaign_in_the_value_table(
    corpus: dict[str, CorpusRun],
) -> None:
    run = corpus["many_campaigns"]
    users = pd.read_csv(run.raw / "users.csv", dtype=str, keep_default_na=False)
    campaigns = run.frame("campaign_ltv.csv")
    assert campaigns["campaign"].nunique() >= 0.5 * users["campaign"].nunique()


@pytest.mark.shapes("crm_leads")
def test_a_crm_company_is_scored_on_its_attributes_with_the_leaky_one_dropped(
    corpus: dict[str, CorpusRun],
) -> None:
    """No product events, no payments: the leads are scored on their own attributes, and the
    field sales fills in after the outcome (``lead_quality``) is caught and said so."""
    run = corpus["crm_leads"]
    card = json.loads((run.run_dir / "model_card.json").read_text())
    audit = {row["attribute"]: row for row in card["lead_attributes"]}
    assert audit["attr_lead_quality"]["decision"] == "dropped", audit
    assert audit["attr_lead_quality"]["reason"].startswith("leakage audit:")
    assert any(row["decision"] == "kept" for row in audit.values())
    assert len(run.frame("scored_leads.csv")) == len(_open_leads(run)) > 0
