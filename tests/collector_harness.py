"""``insightos serve`` in a child process, for tests, the load benchmark and demos."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class CollectorProcess:
    """``insightos serve`` in a child process on loopback, to start, kill and restart at will.

    For tests, the load benchmark and demos. The keys reach the child through its environment,
    exactly as an operator sets them; output goes to ``log_path``.
    """

    def __init__(
        self,
        db_url: str,
        log_path: Path,
        write_keys: Iterable[str],
        server_key: str | None = None,
        cors_origins: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.db_url, self.log_path, self.host = db_url, Path(log_path), host
        self.port = port or free_port(host)
        self.base_url = f"http://{host}:{self.port}"
        self._env = {
            "INSIGHTOS_WRITE_KEYS": ",".join(write_keys),
            "INSIGHTOS_SERVER_KEY": server_key or "",
            "INSIGHTOS_CORS_ORIGINS": ",".join(cors_origins),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> float:
        """Start the child; seconds until ``/healthz`` answered 200."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "insightos_utils", "serve", "--host", self.host]
                + ["--port", str(self.port), "--db", self.db_url],
                env={**os.environ, **self._env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        while time.monotonic() - started < timeout_s and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.monotonic() - started
            except OSError:  # not listening yet
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"collector did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait for a graceful shutdown (SIGKILL after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
