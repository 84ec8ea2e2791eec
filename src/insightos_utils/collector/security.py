"""Who may write: keys held as digests, wrong keys throttled per client, browser origins checked.

Browser write keys are public by nature (they sit in the page), so what they may do is narrow:
add events and identify users, never rewrite attribution. The server key alone changes
statuses and may correct a user. A client address that presents wrong keys too often is answered
429 with ``Retry-After`` until its window passes. The ``Origin`` of every browser-key request is
checked against the allow-list (CORS alone stops only preflighted requests: a ``text/plain`` POST
with ``?key=`` is a "simple" request a browser sends from any site).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_FAILURE_LIMIT = 20  # wrong keys per client address within the window
DEFAULT_FAILURE_WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 10_000  # addresses remembered at once (the oldest are forgotten)


class KeyRing:
    """Keys held only as SHA-256 digests; a presented key is compared against every one."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(key) for key in keys if key)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def matches(self, presented: str | None) -> bool:
        if not presented:
            return False
        digest = _digest(presented)
        found = False
        for known in self._digests:  # no early exit: the time does not depend on which matched
            found |= hmac.compare_digest(known, digest)
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class FailureThrottle:
    """Wrong-key attempts per client address in a sliding window; past ``limit``, refuse."""

    def __init__(
        self,
        limit: int = DEFAULT_FAILURE_LIMIT,
        window_s: float = DEFAULT_FAILURE_WINDOW_S,
    ) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds the client must wait, or None when it may try."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        """Record one wrong or missing key from ``client``."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.setdefault(client, deque())
            self._failures.move_to_end(client)
            failures.append(now)
            while len(failures) > self.limit:
                failures.popleft()
            while len(self._failures) > MAX_TRACKED_CLIENTS:
                self._failures.popitem(last=False)


class OriginPolicy:
    """Which browser origins may use a write key: the allow-list, and the collector's own."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = {origin.rstrip("/").lower() for origin in allowed if origin}
        self.any = "*" in self.allowed

    def allows(self, origin: str | None, host: str | None) -> bool:
        """True for no ``Origin`` (not a browser), the collector's own pages, or a listed one."""
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if self.any or origin in self.allowed:
            return True
        parts = urlsplit(origin)
        if not host:
            return False
        return parts.scheme in ("http", "https") and parts.netloc == host.lower()
