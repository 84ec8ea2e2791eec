"""The corpus of company shapes (issue "any company's data"): every shape `insightos synth` knows
runs end to end through `insightos run` on a small company, and each run either publishes
complete outputs with every stage ``ok`` or ``skipped`` with its reason, or stops with a clear
exit 2. Shape-specific checks say what the pipeline must do with that shape's data.

The runs are made once per module, two at a time (the machine has two cores), on 1,200 users
(``tiny`` keeps its 200): small, so the corpus runs in the default suite.
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

from insightos_utils.runner.run import REQUIRED_OUTPUTS
from insightos_utils.stages import STAGES
from insightos_utils.synth.shapes import SHAPES

REPO_ROOT = Path(__file__).resolve().parents[2]
USERS = 1_200
SEED = 7

# What the data of each shape cannot support: these stages must be skipped, with a reason.
MUST_SKIP: dict[str, set[str]] = {
    "no_transactions": {"ltv"},
    "crm_leads": {"ltv", "product"},
    "no_events": {"product"},
    "conversion_1pct": {"lead_scoring"},  # 12 conversions among 1,200 users: below the minimum
    "tiny": {"lead_scoring"},
    "single_purchase": {"ltv"},  # no repeat buyer: nothing identifies the purchase process
}
# ... and these must run.
MUST_RUN: dict[str, set[str]] = {
    "default": {"ingest", "features", "lead_scoring", "backtest", "ltv", "product"},
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


def _run_shape(shape: str, root: Path) -> CorpusRun:
    raw, reports = root / shape / "raw", root / shape / "reports"
    python = [sys.executable, "-m", "insightos_utils"]
    synth = [*python, "synth", "--shape", shape, "--users", str(USERS), "--seed", str(SEED)]
    subprocess.run([*synth, "--out", str(raw)], cwd=REPO_ROOT, check=True, capture_output=True)
    command = [
        *python, "run", "--raw", str(raw), "--config", str(REPO_ROOT / "insightos.toml"),
        "--notebooks", str(REPO_ROOT / "notebooks"), "--reports-dir", str(reports),
        "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    return CorpusRun(shape, raw, reports, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusRun]:
    root = tmp_path_factory.mktemp("corpus")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda shape: _run_shape(shape, root), SHAPES))
    return {run.shape: run for run in runs}


def _open_leads(run: CorpusRun) -> set[str]:
    users = pd.read_csv(run.raw / "users.csv", dtype=str, keep_default_na=False)
    return set(users.loc[users["status"].str.strip().str.lower() == "open", "user_id"])


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_publishes_complete_outputs(corpus: dict[str, CorpusRun], shape: str) -> None:
    run = corpus[shape]
    assert run.returncode == 0, f"{shape}: exit {run.returncode}\n{run.stderr[-3000:]}"
    for name in REQUIRED_OUTPUTS:
        assert (run.run_dir / name).is_file(), f"{shape}: {name} missing"
    stages = run.stages()
    assert set(stages) >= set(STAGES), (shape, stages)
    for name, record in stages.items():
        assert record["state"] in {"ok", "skipped"}, (shape, name, record)
        if record["state"] == "skipped":
            assert record["reason"], (shape, name, "a skipped stage says why")
    skipped = {name for name, record in stages.items() if record["state"] == "skipped"}
    ran = {name for name, record in stages.items() if record["state"] == "ok"}
    assert MUST_SKIP.get(shape, set()) <= skipped, (shape, stages)
    assert MUST_RUN.get(shape, set()) <= ran, (shape, stages)


@pytest.mark.parametrize("shape", list(SHAPES))
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


def test_subscription_company_gets_lifetime_value_with_its_boundary_named(
    corpus: dict[str, CorpusRun],
) -> None:
    run = corpus["subscription"]
    params = json.loads((run.run_dir / "ltv_params.json").read_text())
    named = json.dumps(params.get("boundary") or params.get("subscription") or "")
    assert named not in {'""', "null", "[]", "{}"}, params.keys()
    ltv = run.frame("customer_ltv.csv")
    assert len(ltv) > 0 and ltv.select_dtypes("number").notna().all().all()


def test_mixed_offsets_score_like_the_same_company_in_utc(corpus: dict[str, CorpusRun]) -> None:
    """The same company with timestamps written in five UTC offsets: the same instants, so the
    same scores (the shape rewrites only how the timestamps are written)."""
    mixed = corpus["mixed_offsets"].frame("scored_leads.csv").set_index("user_id")
    utc = corpus["default"].frame("scored_leads.csv").set_index("user_id")
    assert mixed.index.sort_values().equals(utc.index.sort_values())
    pd.testing.assert_series_equal(
        mixed["score"].sort_index(), utc["score"].sort_index(), rtol=1e-9, atol=1e-12
    )


def test_accented_campaign_names_survive_to_every_output(corpus: dict[str, CorpusRun]) -> None:
    run = corpus["accented_campaigns"]
    users = pd.read_csv(run.raw / "users.csv", dtype=str, keep_default_na=False)
    accented = {
        name for name in users["campaign"] if name != name.encode("ascii", "ignore").decode()
    }
    assert accented, "the shape writes accented names"
    assert accented <= set(run.frame("campaign_ltv.csv")["campaign"])
    assert accented & set(run.frame("scored_leads.csv")["campaign"])


def test_many_campaigns_keep_every_campaign_in_the_value_table(
    corpus: dict[str, CorpusRun],
) -> None:
    run = corpus["many_campaigns"]
    users = pd.read_csv(run.raw / "users.csv", dtype=str, keep_default_na=False)
    campaigns = run.frame("campaign_ltv.csv")
    assert campaigns["campaign"].nunique() >= 0.5 * users["campaign"].nunique()
