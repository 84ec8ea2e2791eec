"""Feature-table benchmark: fit the spec and build the table for 1,000,000 users and 50,000,000
events (goal: under 30 s and under 8 GB peak on the project's machine).

The input is generated here with vectorised numpy (a synthetic company of the contract's shape:
20 event names of very different frequency, post-conversion billing events, campaigns) and
written to Parquet once; each measured child process reads it (not timed), then times what
02_eda does: ``encode_events`` + ``fit_feature_spec`` + ``build_feature_table``. Two inputs:
ids as categoricals (``categorical_ids``: encoding is free) and ids as plain strings
(``string_ids``: hashing 50M string ids is most of the time). Peak RSS covers the whole child,
input included.

Usage: ``.venv/bin/python benchmarks/bench_features.py [--users N] [--events M] [--repeats R]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHILD_PEAK_RSS, measure_in_subprocess, record  # noqa: E402

AS_OF = pd.Timestamp("2025-01-01")
NAMES = (
    ["page_view", "login", "feature_used", "report_viewed", "trial_signup", "user_verified"]
    + ["project_created", "teammate_invited", "integration_connected", "dashboard_shared"]
    + [f"rare_event_{i}" for i in range(8)]
)
POST_CONVERSION = ["billing_payment", "seat_added"]
CAMPAIGNS = [
    "google_gestao_agil",
    "google_brand",
    "facebook_ads",
    "linkedin",
    "newsletter",
    "(none)",
]


def make_company(n_users: int, n_events: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A synthetic company: users (about 10% converted) and events, ids as categoricals."""
    rng = np.random.default_rng(seed)
    user_ids = pd.Index([f"u{i:08d}" for i in range(n_users)])
    created = AS_OF - pd.to_timedelta(rng.uniform(0, 365, n_users), unit="D")
    campaign = rng.integers(0, len(CAMPAIGNS), n_users)
    propensity = rng.normal(0, 1, n_users) + np.where(campaign == 0, 0.8, 0.0)
    converts = rng.random(n_users) < 1 / (1 + np.exp(-(propensity * 1.2 - 2.9)))
    converted_at = created + pd.to_timedelta(rng.uniform(1, 30, n_users), unit="D")
    converted_at = converted_at.where(converts & (converted_at <= AS_OF))
    age = (AS_OF - created).days
    status = np.where(
        converted_at.notna(),
        "converted",
        np.where(age > 30, np.where(rng.random(n_users) < 0.8, "lost", "lead"), "trial"),
    )
    users = pd.DataFrame(
        {
            "user_id": user_ids,
            "created_at": created,
            "status": status,
            "converted_at": converted_at,
            "marketing": "",
            "campaign": np.asarray(CAMPAIGNS)[campaign],
            "source": np.where(campaign < 2, "google", "other"),
            "medium": np.where(campaign == 5, "(none)", "cpc"),
        }
    )

    activity = np.exp(0.6 * propensity)
    user = rng.choice(n_users, size=n_events, p=activity / activity.sum()).astype(np.int32)
    names = NAMES + POST_CONVERSION
    weights = np.array([30, 12, 10, 6, 3, 3, 3, 2, 1, 1] + [0.01] * 8 + [2, 1], dtype=float)
    name = rng.choice(len(names), size=n_events, p=weights / weights.sum()).astype(np.int16)
    offset = rng.exponential(8.0, n_events)
    occurred = created.to_numpy()[user] + (offset * 86_400e9).astype("timedelta64[ns]")
    post = name >= len(NAMES)
    conv = converted_at.to_numpy()[user]
    # billing events happen only after conversion; drop those of users who never converted
    occurred[post] = conv[post] + (offset[post] * 86_400e9).astype("timedelta64[ns]")
    keep = ~(post & np.isnat(conv))
    events = pd.DataFrame(
        {
            "event_id": pd.RangeIndex(int(keep.sum())),
            "user_id": pd.Categorical.from_codes(user[keep], categories=user_ids),
            "event_name": pd.Categorical.from_codes(name[keep], categories=names),
            "occurred_at": occurred[keep],
        }
    )
    return users, events


CHILD = (
    CHILD_PEAK_RSS
    + """
import time
import pandas as pd
from insightos_utils.leads.features import build_feature_table, encode_events, fit_feature_spec
users = pd.read_parquet(USERS)
events = pd.read_parquet(EVENTS, columns=["user_id", "event_name", "occurred_at"])
start = time.perf_counter()
events = encode_events(events)  # what 02_eda does first; free when the ids are categorical
encode_seconds = time.perf_counter() - start
spec = fit_feature_spec(users, events, None)
fit_seconds = time.perf_counter() - start - encode_seconds
table = build_feature_table(users, events, spec, None)
seconds = time.perf_counter() - start
_report(seconds, encode_s=round(encode_seconds, 3), fit_s=round(fit_seconds, 3),
        build_s=round(seconds - encode_seconds - fit_seconds, 3), rows=len(table),
        columns=table.shape[1], events=len(events))
"""
)


VARIANTS = {
    # ids as categoricals (Parquet written from categoricals reads back as categoricals)
    "categorical_ids": "events_categorical.parquet",
    # ids as plain strings, as ingest's str columns arrive
    "string_ids": "events_string.parquet",
}


def write_input(folder: Path, n_users: int, n_events: int) -> None:
    """Generate the company and write users + both event variants as Parquet into ``folder``."""
    users, events = make_company(n_users, n_events)
    users.to_parquet(folder / "users.parquet")
    events.to_parquet(folder / VARIANTS["categorical_ids"])
    events.astype({"user_id": "str", "event_name": "str"}).to_parquet(
        folder / VARIANTS["string_ids"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-input", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_input:
        write_input(Path(args.write_input), args.users, args.events)
        return

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        start = time.perf_counter()
        # generated in a child: a large parent would inflate the children's peak RSS, which
        # Linux carries over from the forking parent
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--users",
                str(args.users),
                "--events",
                str(args.events),
                "--write-input",
                str(folder),
            ],
            check=True,
        )
        n_events = pq.ParquetFile(folder / VARIANTS["string_ids"]).metadata.num_rows
        print(f"input generated in {time.perf_counter() - start:.1f} s", file=sys.stderr)

        figures = {"users": args.users, "events": n_events, "goal": "< 30 s, < 8 GB peak"}
        for variant, file_name in VARIANTS.items():
            paths = (
                f"USERS = {str(folder / 'users.parquet')!r}\nEVENTS = {str(folder / file_name)!r}\n"
            )
            figures[variant] = measure_in_subprocess(paths + CHILD, repeats=args.repeats)
        record("features", figures)


if __name__ == "__main__":
    main()
