"""Atomic file writes, the one JSON writer and the one clock.

Every output goes to a temporary name in its folder, then is renamed: a reader never sees a
half-written file, and a failed step never replaces a good output. ``atomic_write_json`` is the
only JSON writer (strict JSON: NaN and infinity become null). ``utc_now`` is the only clock.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def utc_stamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as ISO 8601 UTC with a Z, to the second."""
    moment = utc_now() if moment is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def temporary_name(path: Path) -> Path:
    """A unique hidden name next to ``path`` (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_many(writers: Mapping[Path, Callable[[Path], Any]]) -> list[Path]:
    """Write several files under temporary names, then rename them all: never a mixed set.

    If any writer fails, none of the final files is touched.
    """
    staged = {Path(path): temporary_name(Path(path)) for path in writers}
    try:
        for path, write in writers.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write(staged[Path(path)])
        for path, tmp in staged.items():
            os.replace(tmp, path)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    return list(staged)


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays unwrapped, timestamps as ISO text, NaN and
    infinity as null (strict JSON has no NaN, and a reader in another language chokes on it)."""
    import math

    import numpy as np
    import pandas as pd

    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(document: Any) -> str:
    """``document`` as indented, strict JSON text (see ``json_safe``), UTF-8 kept as is."""
    import json

    return json.dumps(json_safe(document), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def atomic_write_json(path: str | Path, document: Any) -> Path:
    """Write ``document`` as indented, strict JSON (see ``json_safe``), atomically."""
    return atomic_write_text(path, json_text(document))
