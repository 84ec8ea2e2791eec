"""Fast text for the synthetic files: ids and ISO 8601 timestamps built as fixed-width byte
matrices and handed to Arrow as strings (millions of rows in a fraction of a second)."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

DAY = 86_400


def digit_table(width: int) -> np.ndarray:
    """All zero-padded numbers of ``width`` digits as a (10**width, width) byte matrix."""
    numbers = np.arange(10**width)
    return np.stack([48 + numbers // 10**i % 10 for i in range(width - 1, -1, -1)], axis=1).astype(
        np.uint8
    )


DIGITS_4 = digit_table(4)


def fixed_width(chars: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix as an Arrow large_string array of n strings of w bytes."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    data = np.ascontiguousarray(chars)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def id_chars(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + zero-padded ``numbers`` (e.g. u000042) as an (n, w) byte matrix."""
    chars = np.empty((numbers.size, len(prefix) + width), dtype=np.uint8)
    chars[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    values = numbers.astype(np.int64)
    end = chars.shape[1]
    while end - len(prefix) > 0:  # four digits at a time, from the right
        values, group = np.divmod(values, 10_000)
        digits = min(4, end - len(prefix))
        chars[:, end - digits : end] = np.take(DIGITS_4, group, axis=0)[:, 4 - digits :]
        end -= digits
    return chars


@functools.cache
def clock_table() -> np.ndarray:
    """ "HH:MM:SS" for every second of a day, as an (86400, 8) byte matrix."""
    seconds = np.arange(DAY)
    chars = np.full((DAY, 8), ord(":"), dtype=np.uint8)
    for start, values in ((0, seconds // 3600), (3, seconds // 60 % 60), (6, seconds % 60)):
        chars[:, start : start + 2] = np.take(DIGITS_4, values, axis=0)[:, 2:]
    return chars


def iso_chars(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` bytes: one lookup for the date, one for the
    time of day (the data spans a few hundred days, so the date table is small)."""
    days, clock = np.divmod(seconds.astype(np.int64), DAY)
    chars = np.empty((seconds.size, 20), dtype=np.uint8)
    if seconds.size == 0:
        return chars
    first = int(days.min())
    calendar = np.arange(first, int(days.max()) + 1).astype("datetime64[D]")
    dates = np.array(np.datetime_as_string(calendar), dtype="S10")
    chars[:, :10] = np.take(dates.view(np.uint8).reshape(-1, 10), days - first, axis=0)
    chars[:, 10] = ord("T")
    chars[:, 11:19] = np.take(clock_table(), clock, axis=0)
    chars[:, 19] = ord("Z")
    return chars


def timestamps(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds (-1 = missing) as an Arrow timestamp[s] array (naive UTC)."""
    return pa.array(seconds.astype(np.int64), pa.int64(), mask=seconds < 0).cast(pa.timestamp("s"))


def categories(codes: np.ndarray, texts: list[str]) -> pa.Array:
    """Codes (-1 = missing) into ``texts`` as an Arrow dictionary (pandas categorical)."""
    indices = pa.array(codes.astype(np.int32), pa.int32(), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(texts, pa.large_string()))


def iso_chars_with_offsets(seconds: np.ndarray, offset_minutes: np.ndarray) -> np.ndarray:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SS+HH:MM`` bytes, each row written in its own UTC
    offset (the same instant: local clock time = UTC + offset)."""
    offset_minutes = np.asarray(offset_minutes, dtype=np.int64)
    chars = np.empty((seconds.size, 25), dtype=np.uint8)
    if seconds.size == 0:
        return chars
    chars[:, :19] = iso_chars(seconds.astype(np.int64) + offset_minutes * 60)[:, :19]
    chars[:, 19] = np.where(offset_minutes < 0, ord("-"), ord("+"))
    hours, minutes = np.divmod(np.abs(offset_minutes), 60)
    chars[:, 20:22] = np.take(DIGITS_4, hours, axis=0)[:, 2:]
    chars[:, 22] = ord(":")
    chars[:, 23:25] = np.take(DIGITS_4, minutes, axis=0)[:, 2:]
    return chars
