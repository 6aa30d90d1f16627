"""``feast serve`` as a real subprocess on a free port (the tests and ``bench/serving.py``).

:class:`FeastServer` starts it, waits for ``/health`` and reads ``/get-online-features`` over one
kept-alive HTTP connection. Given ``now``, the server is started through this file run as a
script, which enters :func:`xiva_source.features.derived.derivation_clock` with that fixed moment
and then runs Feast's own command line: the on-demand view derives ``age`` and
``last_purchase_days_ago`` as of ``now`` (gunicorn forks its workers from that process, so they
inherit the clock)::

    python tests/feast_serve.py --now 2031-03-01T10:00:00Z -c <repo> serve --port 6566
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["FeastServer", "FeastUi", "free_port"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _ServerProcess:
    """A server started as a child process, its output in a temporary file: what
    :class:`FeastServer` and :class:`FeastUi` share (the log, the stop, ``with``)."""

    process: subprocess.Popen[bytes]
    _log: Any

    def log(self) -> str:
        """What the server wrote so far."""
        self._log.seek(0)
        return str(self._log.read().decode(errors="replace"))

    def close(self) -> None:
        """Stop the server (SIGTERM: gunicorn stops its workers), then wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FeastServer(_ServerProcess):
    """``feast -c <repo> serve`` on a free port, one worker, no access log.

    Args:
        repo: The applied repository.
        env: The server's environment (default: this process's).
        now: The moment the served on-demand views derive as of (default: the real clock).
        timeout: Seconds to wait for ``/health``.

    Raises:
        RuntimeError: The server exited or did not answer in time (its stderr in the message).
    """

    def __init__(
        self,
        repo: Path,
        env: Mapping[str, str] | None = None,
        *,
        now: datetime | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.port = free_port()
        feast = [str(Path(sys.executable).with_name("feast"))]
        if now is not None:
            # As a module from the repository root: run as a file, its folder (which holds a
            # ``xiva_source`` package of test helpers) would shadow the platform's.
            feast = [sys.executable, "-m", "tests.support.feast_serve", "--now", now.isoformat()]
        # Its log goes to a file (a pipe nobody reads would block a chatty server).
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [*feast, "-c", str(repo), "serve", "--port", str(self.port), "--workers", "1",
             "--no-access-log"],
            env={**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )  # fmt: skip
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                log = self.log()
                self.close()
                raise RuntimeError(f"feast serve exited: {log[-2000:]}")
            try:
                status, _ = self.request("GET", "/health")
                if status == 200:
                    break
            except OSError:
                self.conn.close()
            if time.monotonic() > deadline:
                log = self.log()
                self.close()
                raise RuntimeError(f"feast serve did not answer on port {self.port}: {log[-2000:]}")
            time.sleep(0.2)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on the kept-alive connection; the status and the decoded JSON (or text)."""
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        self.conn.request(method, path, payload, headers)
        response = self.conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")

    def online_features(
        self,
        entities: Mapping[str, Sequence[Any]],
        *,
        service: str | None = None,
        features: Sequence[str] | None = None,
        full_feature_names: bool = False,
    ) -> dict[str, list[Any]]:
        """``POST /get-online-features``, as ``{name: values}`` (the entity columns included).

        Raises:
            RuntimeError: The server did not answer 200.
        """
        body: dict[str, Any] = {"entities": dict(entities)}
        if service is not None:
            body["feature_service"] = service
        else:
            body["features"] = list(features or [])
        if full_feature_names:
            body["full_feature_names"] = True
        status, answer = self.request("POST", "/get-online-features", body)
        if status != 200:
            raise RuntimeError(f"feast serve answered {status}: {str(answer)[:500]}")
        names = answer["metadata"]["feature_names"]
        results = answer["results"]
        return {name: r["values"] for name, r in zip(names, results, strict=True)}

    def close(self) -> None:
        """Close the client connection, then stop the server."""
        self.conn.close()
        super().close()


class FeastUi(_ServerProcess):
    """``feast -c <repo> ui`` on a free loopback port, waited for until its page answers.

    Args:
        repo: The applied repository.
        timeout: Seconds to wait for the page.

    Raises:
        RuntimeError: The server exited or did not answer in time (its output in the message).
    """

    def __init__(self, repo: Path, *, timeout: float = 120.0) -> None:
        self.port = free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("feast")), "-c", str(repo), "ui",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                log = self.log()
                self.close()
                raise RuntimeError(f"feast ui exited: {log[-2000:]}")
            try:
                if self.get("/")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log = self.log()
                self.close()
                raise RuntimeError(f"feast ui did not answer on port {self.port}: {log[-2000:]}")
            time.sleep(0.2)

    def get(self, path: str) -> tuple[int, Any]:
        """``GET path``: the status and the decoded JSON (or the text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")


def _main(argv: list[str]) -> int:
    """The launcher: ``--now ISO`` then Feast's command line."""
    from feast.cli.cli import cli

    from xiva_source.features.derived import derivation_clock
    from xiva_source.timeutil import parse_iso

    if argv[:1] != ["--now"] or len(argv) < 2:
        print("usage: feast_serve.py --now ISO-8601 <feast arguments>", file=sys.stderr)
        return 2
    moment = parse_iso(argv[1])
    with derivation_clock(lambda: moment):
        cli.main(args=argv[2:], prog_name="feast")
    return 0


if __name__ == "__main__":
    # Run as a script, this folder is first on the path, where tests/xiva_source would shadow
    # the package: the platform is imported from the repository root instead.
    sys.path[0] = str(ROOT)
    sys.exit(_main(sys.argv[1:]))
