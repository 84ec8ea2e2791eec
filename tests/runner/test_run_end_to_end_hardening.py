"""`insightos run` with the real notebooks on a password-bearing PostgreSQL URL and a log with a
timestamp in 2200 (issue 10 situations 2 and 3, end to end): no file of the run holds the
password, files are not world-readable, the year-2200 row is rejected as implausible and the
published LTV stands at a plausible as-of."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

PASSWORD = "S3cretPW-4d1b"
N_USERS = 2_000


def _load_company(raw: Path, url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for path in sorted(raw.glob("*.csv")):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame.to_sql(path.stem, connection, index=False)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.notebook
@pytest.mark.slow
def test_a_run_on_a_password_url_with_a_year_2200_purchase(
    postgres_schema_url: str, repo_root: Path, tmp_path: Path
) -> None:
    from sqlalchemy.engine import make_url

    from insightos_utils.synth import write_company

    raw = tmp_path / "raw"
    write_company(raw, n_users=N_USERS, seed=7)
    transactions = pd.read_csv(raw / "transactions.csv", dtype=str, keep_default_na=False)
    transactions.loc[len(transactions) // 2, "occurred_at"] = "2200-06-01T00:00:00Z"
    transactions.to_csv(raw / "transactions.csv", index=False)
    _load_company(raw, postgres_schema_url)
    url = make_url(postgres_schema_url).set(password=PASSWORD).render_as_string(False)
    assert PASSWORD in url
    config = tmp_path / "small.toml"
    config.write_text("[ltv]\nbootstrap_samples = 100\n")
    reports = tmp_path / "reports"
    completed = subprocess.run(
        [sys.executable, "-m", "insightos_utils", "run", "--source", url, "--config", str(config),
         "--notebooks", str(repo_root / "notebooks"), "--reports-dir", str(reports),
         "--no-progress"],
        cwd=repo_root, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert PASSWORD not in completed.stdout + completed.stderr
    run_dir = Path(completed.stdout.strip().splitlines()[-1])

    leaked = [p for p in reports.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leaked == []
    private = [p for p in run_dir.rglob("*") if p.stat().st_mode & 0o007]
    assert private == []  # 0640 files, 0750 folders under [run] umask 0027

    rejected = pd.read_csv(run_dir / "processed" / "rejected_transactions.csv")
    assert rejected["reason"].tolist() == ["implausible_timestamp"]
    meta = json.loads((run_dir / "run.json").read_text())
    now = pd.Timestamp(meta["finished_at"]).tz_convert("UTC").tz_localize(None)
    assert pd.Timestamp(meta["as_of"]) <= now
    assert meta["data_window"]["end"] < "2027"
    assert meta["stages"]["ingest"]["state"] == "ok"
    assert PASSWORD not in json.dumps(meta) and "***" in meta["config"]["source_url"]
    customers = pd.read_csv(run_dir / "customer_ltv.csv")
    assert customers["T"].max() < 520  # weeks: not the 9,155 weeks a 2200 as-of gave
    assert customers["ltv"].median() > 1  # not 1e-20
