"""Helpers of the sync worker's tests (tests/xiva_source/sync/): the worker as a real process,
the segments it follows, reading what it published.

- :data:`RECENT`: a segment every changed customer joins (the simulator's change sets the last
  payment to the change's moment) and leaves when 8 days passed (time-driven);
- :class:`SyncProcess`: ``python -m xiva_source sync --repo REPO`` as a child process;
- :func:`events_of`: the membership events published for one customer;
- :func:`wait_for`: poll a condition (a generous deadline, never a timing assertion).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from segmentation.events import MembershipEvent, read_events
from segmentation.memberships import membership_prefix

__all__ = [
    "RECENT",
    "RECENT_YAML",
    "SyncProcess",
    "events_of",
    "online_value",
    "wait_for",
    "write_segments",
]

RECENT_YAML = """\
name: recent
description: Paid in the last 7 days.
rules:
  - name: recent
    rule: {"<=": [{"var": "last_purchase_days_ago"}, 7]}
"""
RECENT = "recent"


def write_segments(directory: Path) -> Path:
    """A ``SEGMENTS_DIR`` holding :data:`RECENT` only."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "recent.yaml").write_text(RECENT_YAML)
    return directory


def events_of(redis_url: str, project: str, customer_id: str) -> list[MembershipEvent]:
    """The membership events of ``project`` for ``customer_id``, oldest first."""
    client = redis.Redis.from_url(redis_url)
    try:
        key = f"{membership_prefix(project)}:events"
        return read_events(client, key, customer_id=customer_id)
    finally:
        client.close()


def online_value(repo: Path, customer_id: str, feature: str) -> Any:
    """One feature of ``customer_features`` as Feast serves it now."""
    from feast import FeatureStore

    rows = (
        FeatureStore(repo_path=str(repo))
        .get_online_features(
            features=[f"customer_features:{feature}"], entity_rows=[{"customer_id": customer_id}]
        )
        .to_dict()
    )
    return rows[feature][0]


def wait_for(
    what: str,
    predicate: Callable[[], bool],
    timeout: float = 60,
    process: SyncProcess | None = None,
) -> None:
    """Poll ``predicate`` until true; fail when ``timeout`` passed or ``process`` ended."""
    deadline = time.monotonic() + timeout
    while not predicate():
        child = process.process if process is not None else None
        if process is not None and child is not None and child.poll() is not None:
            raise AssertionError(f"the worker ended before {what}: {process.output()}")
        if time.monotonic() > deadline:
            extra = f": {process.output()}" if process is not None else ""
            raise AssertionError(f"no {what} within {timeout} s{extra}")
        time.sleep(0.05)


@dataclass
class SyncProcess:
    """``python -m xiva_source sync --repo REPO ARGS`` as a child process (output in a file)."""

    repo: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ("--interval", "0.2", "--dwh-interval", "1")
    process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> SyncProcess:
        env = {**os.environ, **self.env}
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xiva_source",
                "sync",
                "--repo",
                str(self.repo),
                "--log-level",
                "INFO",
                *self.args,
                *extra,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the worker did not end within {timeout} s") from None

    def kill(self) -> None:
        """``SIGKILL`` (a crash) and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
