"""Engine tests: one small company full of edge cases, put where each engine reads it.

``edge_company()`` is typed as ingest writes it (tz-naive UTC ``datetime64[us]``, text ids);
``to_folder`` writes it as Parquet, ``to_postgres`` into a fresh schema, and the ``spark``
fixture is one local SparkSession per test session (skipped with the reason where no Java).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

AS_OF = pd.Timestamp("2024-03-31 12:00:00")
WINDOW_DAYS = 14
ODD_NAMES = [
    "sign'up",
    'quote"d',
    "back\\slash",
    "ünïcode ✓",
    "50% off_",
    "Page View",
    "page-view",
    "new\nline",
]


def _us(values: Any) -> pd.Series:
    return pd.Series(pd.to_datetime(values)).astype("datetime64[us]")


def edge_company(seed: int = 3, n_users: int = 120) -> dict[str, pd.DataFrame]:
    """Users, events and transactions with every boundary the counting rules have."""
    rng = np.random.default_rng(seed)
    created = AS_OF - pd.to_timedelta(rng.uniform(0, 60, n_users), unit="D")
    created = created.floor("s") + pd.to_timedelta(rng.integers(0, 10**6, n_users), unit="us")
    status = rng.choice(["lead", "trial", "converted", "lost"], n_users, p=[0.3, 0.2, 0.3, 0.2])
    converted_at = pd.Series(pd.NaT, index=range(n_users), dtype="datetime64[us]")
    is_converted = status == "converted"
    converted_at[is_converted] = (
        (
            created[is_converted]
            + pd.to_timedelta(rng.uniform(0.5, 20, is_converted.sum()), unit="D")
        )
        .to_numpy()
        .astype("datetime64[us]")
    )
    ids = [f"u{i:04d}" for i in range(n_users)]
    # u0000: converted after as-of (open at as-of: every event counts)
    converted_at[0] = AS_OF + pd.Timedelta(days=3)
    status[0] = "converted"
    # u0001: created after as-of (does not exist yet)
    created = created.to_numpy().copy()
    created[1] = (AS_OF + pd.Timedelta(hours=5)).to_datetime64()
    # u0002: converted exactly 2 days after signup (events at the conversion instant excluded)
    status[2] = "converted"
    converted_at[2] = pd.Timestamp(created[2]) + pd.Timedelta(days=2)
    users = pd.DataFrame(
        {
            "user_id": pd.array(ids, dtype="str"),
            "created_at": _us(created),
            "status": pd.array(status, dtype="str"),
            "converted_at": converted_at.astype("datetime64[us]"),
            "campaign": pd.array(rng.choice(["a", "b", "(none)"], n_users), dtype="str"),
            "source": pd.array(["google"] * n_users, dtype="str"),
            "medium": pd.array(["cpc"] * n_users, dtype="str"),
        }
    )

    names = ["page_view", "login", "project_created", "invite_sent", *ODD_NAMES]
    weights = np.array([30, 12, 8, 5] + [2] * len(ODD_NAMES), dtype=float)
    n_events = 4_000
    user = rng.integers(0, n_users, n_events)
    offset_us = (rng.exponential(6.0, n_events) * 86_400e6).astype(np.int64) - 86_400 * 10**6
    occurred = users["created_at"].to_numpy()[user] + offset_us.astype("timedelta64[us]")
    name = np.asarray(names, dtype=object)[
        rng.choice(len(names), n_events, p=weights / weights.sum())
    ]
    events = pd.DataFrame(
        {
            "user_id": np.asarray(ids, dtype=object)[user],
            "event_name": name,
            "occurred_at": occurred,
        }
    )

    def at(user_index: int, delta: pd.Timedelta, event_name: str) -> dict[str, Any]:
        return {
            "user_id": ids[user_index],
            "event_name": event_name,
            "occurred_at": pd.Timestamp(users["created_at"][user_index]) + delta,
        }

    edge_rows = [
        at(3, pd.Timedelta(0), "login"),  # exactly at signup: counted
        at(3, pd.Timedelta(days=WINDOW_DAYS), "login"),  # exactly at the window's end: not
        at(3, pd.Timedelta(days=WINDOW_DAYS) - pd.Timedelta(microseconds=1), "login"),  # counted
        at(3, pd.Timedelta(microseconds=-1), "login"),  # just before signup: not counted
        at(2, pd.Timedelta(days=2), "project_created"),  # at the conversion instant: not
        at(2, pd.Timedelta(days=2) - pd.Timedelta(microseconds=1), "project_created"),  # counted
        at(2, pd.Timedelta(days=3), "billing_paid"),  # after conversion only: excluded name
        at(0, pd.Timedelta(days=1), "billing_paid"),  # ...but u0000 converts after as-of
        at(1, pd.Timedelta(hours=1), "page_view"),  # user created after as-of
        {"user_id": "ghost", "event_name": "ghost_only", "occurred_at": AS_OF},  # unknown user
        {"user_id": ids[4], "event_name": "page_view", "occurred_at": AS_OF},  # at as-of: counted
        {
            "user_id": ids[4],
            "event_name": "page_view",
            "occurred_at": AS_OF + pd.Timedelta(microseconds=1),
        },
        {"user_id": ids[5], "event_name": None, "occurred_at": AS_OF - pd.Timedelta(hours=1)},
    ]
    # invoices only after a conversion: a post-conversion name
    for i in np.flatnonzero(is_converted)[:10]:
        edge_rows.append(at(int(i), pd.Timedelta(days=21), "invoice_paid"))
    events = pd.concat([events, pd.DataFrame(edge_rows)], ignore_index=True)
    events = pd.concat([events, events.iloc[[7, 7, 11]]], ignore_index=True)  # repeated rows
    events.insert(0, "event_id", pd.array([f"e{i:06d}" for i in range(len(events))], dtype="str"))
    events["user_id"] = pd.array(events["user_id"], dtype="str")
    events["event_name"] = pd.array(events["event_name"], dtype="str")
    events["occurred_at"] = events["occurred_at"].astype("datetime64[us]")

    day = pd.Timestamp("2024-02-01")
    buyers = rng.integers(10, n_users, 300)
    moments = (day + pd.to_timedelta(rng.uniform(-40, 50, 300), unit="D")).astype("datetime64[us]")
    transactions = pd.DataFrame(
        {
            "user_id": np.asarray(ids, dtype=object)[buyers],
            "occurred_at": moments,
            "amount": rng.gamma(2, 20, 300),
        }
    )
    calibration_end = pd.Timestamp("2024-02-29 23:59:59.999999")
    special = [
        (ids[6], calibration_end.normalize() + pd.Timedelta(hours=3), 12.5),  # first on cal. day
        (ids[7], day + pd.Timedelta(hours=1), 10.0),  # three on one day
        (ids[7], day + pd.Timedelta(hours=5), 20.0),
        (ids[7], day + pd.Timedelta(hours=23, minutes=59), 30.0),
        (ids[7], day + pd.Timedelta(days=1), 5.0),  # just after midnight: next day
        (ids[8], calibration_end, 7.0),  # exactly at the calibration end: calibration
        (ids[8], calibration_end + pd.Timedelta(microseconds=1), 8.0),  # first holdout instant
        (ids[9], pd.Timestamp("2024-03-10"), 9.0),  # holdout only: not a customer
    ]
    transactions = pd.concat(
        [transactions, pd.DataFrame(special, columns=["user_id", "occurred_at", "amount"])],
        ignore_index=True,
    )
    transactions.insert(
        0, "transaction_id", pd.array([f"t{i:05d}" for i in range(len(transactions))], dtype="str")
    )
    transactions["user_id"] = pd.array(transactions["user_id"], dtype="str")
    transactions["occurred_at"] = transactions["occurred_at"].astype("datetime64[us]")
    return {"users": users, "events": events, "transactions": transactions}


CALIBRATION_END = pd.Timestamp("2024-02-29 23:59:59.999999")
OBSERVATION_END = pd.Timestamp("2024-03-20 00:00:00")


def to_folder(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _copy_rows(table: Any, connection: Any, keys: list[str], rows: Any) -> None:
    """pandas ``to_sql`` method: PostgreSQL COPY (seconds instead of minutes for 10^5 rows)."""
    buffer = io.StringIO()
    pd.DataFrame(list(rows), columns=keys).to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    columns = ", ".join(f'"{k}"' for k in keys)
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv)') as copy,
    ):
        copy.write(buffer.read())


def to_postgres(tables: dict[str, pd.DataFrame], url: str, timezone_aware: bool = False) -> str:
    """The tables in the schema of ``url`` (timestamp columns: ``timestamp`` or, with
    ``timezone_aware``, ``timestamptz`` holding the same instants)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        for name, frame in tables.items():
            frame = frame.copy()
            if timezone_aware:
                for column in frame.columns:
                    if pd.api.types.is_datetime64_dtype(frame[column].dtype):
                        frame[column] = (
                            frame[column].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
                        )
            frame.to_sql(name, engine, index=False, method=_copy_rows, chunksize=200_000)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def spark() -> Any:
    """One local SparkSession (UTC) for the whole test session; skipped where Java is absent."""
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: PySpark needs one (apt-get install openjdk-17-jre-headless)")
    from insightos_utils.engines.choice import EngineSettings
    from insightos_utils.engines.sources import spark_session

    session = spark_session(EngineSettings(threads=2, memory_limit="1g"))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
