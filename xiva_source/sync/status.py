"""What the sync worker tells operators: its status record in Redis and its counters.

The active worker rewrites one JSON record, :func:`status_key` (``xiva_source:sync:<project>:
status``), after every batch and at least every few seconds, with a short expiry
(:data:`STATUS_TTL_SECONDS` beyond its interval): a record that is there means a worker ran
moments ago; ``xiva-source status`` reads it (:func:`read_status`) beside the lock's holder
(whether a worker runs and where) and prints :func:`status_lines`.

Lag, per source: how long ago the worker was last caught up with it (its last poll that reached
the end of Xiva's settled changes; its last complete DWH read). It grows while a source is down
and drops back once the worker has caught up.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from xiva_source.timeutil import parse_iso, to_iso

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = [
    "STATUS_TTL_SECONDS",
    "SyncCounters",
    "SyncStatus",
    "read_status",
    "status_json",
    "status_key",
    "status_lines",
    "sync_lock_key",
]

STATUS_TTL_SECONDS = 30.0
"""The status record expires this long after the worker's last rewrite (plus its interval)."""

SOURCES = ("xiva", "dwh")


def status_key(project: str) -> str:
    """The Redis key of ``project``'s worker status."""
    return f"xiva_source:sync:{project}:status"


def sync_lock_key(project: str) -> str:
    """The Redis key of ``project``'s worker lock (one active worker per project)."""
    return f"xiva_source:sync:{project}:lock"


@dataclass
class SyncCounters:
    """What the worker did since it started (the metrics' counters)."""

    customers: int = 0
    """Xiva changes followed to the online store (features written, segments updated)."""
    events: int = 0
    """Membership events published (real time and time-driven)."""
    skipped: int = 0
    """Changed customers that could not be read (gone, malformed) and were passed over."""
    dwh_rows: int = 0
    """DWH rows the follower wrote."""
    batches: int = 0
    day_refreshes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    """Failures per part (``xiva``, ``dwh``, ``redis``, ``segments``)."""

    def failed(self, part: str) -> None:
        """Count one failure of ``part``."""
        self.errors[part] = self.errors.get(part, 0) + 1


@dataclass
class SyncStatus:
    """The record the active worker publishes (see the module docstring)."""

    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    started: datetime | None = None
    updated: datetime | None = None
    mode: str = ""
    position: datetime | None = None
    """Xiva: the ``lastUpdate`` of the last change followed."""
    dwh_position: datetime | None = None
    caught_up: dict[str, datetime] = field(default_factory=dict)
    """Per source: when the worker was last caught up with it."""
    degraded: dict[str, str] = field(default_factory=dict)
    """Per part currently failing (``xiva``, ``dwh``, ``redis``): why."""
    last_error: str | None = None
    last_error_at: datetime | None = None
    counters: SyncCounters = field(default_factory=SyncCounters)

    def lag(self, source: str, now: datetime) -> float | None:
        """Seconds since the worker was last caught up with ``source`` (``None``: never)."""
        moment = self.caught_up.get(source)
        return None if moment is None else max(0.0, (now - moment).total_seconds())

    def error(self, part: str, message: str, now: datetime) -> None:
        """Record a failure of ``part`` (it stays degraded until :meth:`recovered`)."""
        self.degraded[part] = message
        self.last_error, self.last_error_at = f"{part}: {message}", now
        self.counters.failed(part)

    def recovered(self, part: str) -> bool:
        """``part`` works again; whether it was degraded."""
        return self.degraded.pop(part, None) is not None

    def dumps(self) -> str:
        """The JSON record."""
        data = asdict(self)
        for name in ("started", "updated", "position", "dwh_position", "last_error_at"):
            value = getattr(self, name)
            data[name] = to_iso(value) if value is not None else None
        data["caught_up"] = {k: to_iso(v) for k, v in self.caught_up.items()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def loads(cls, raw: str | bytes) -> SyncStatus:
        """Parse a record (fields it does not know are ignored)."""
        data: dict[str, Any] = json.loads(raw)
        times = ("started", "updated", "position", "dwh_position", "last_error_at")
        for name in times:
            data[name] = parse_iso(data[name]) if data.get(name) else None
        data["caught_up"] = {k: parse_iso(v) for k, v in (data.get("caught_up") or {}).items()}
        counters = data.get("counters") or {}
        known = SyncCounters.__dataclass_fields__
        data["counters"] = SyncCounters(**{k: v for k, v in counters.items() if k in known})
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def publish(self, client: RedisClient, project: str, ttl: float) -> None:
        """Write the record with an expiry of ``ttl`` seconds.

        Raises:
            redis.exceptions.RedisError: Redis cannot be reached.
        """
        client.set(status_key(project), self.dumps(), px=max(1, int(ttl * 1000)))


def read_status(client: RedisClient, project: str) -> tuple[SyncStatus | None, str | None]:
    """The worker's status record and the lock's holder (``None`` each: no worker runs).

    Raises:
        redis.exceptions.RedisError: Redis cannot be reached.
    """
    from xiva_source.locking import LockHolder

    with client.pipeline(transaction=False) as pipe:
        pipe.get(status_key(project))
        pipe.get(sync_lock_key(project))
        raw, lock = pipe.execute()
    status = None
    if raw is not None:
        try:
            status = SyncStatus.loads(raw)
        except (ValueError, TypeError, KeyError):
            status = None
    holder = LockHolder.loads(lock) if lock is not None else None
    return status, (holder.describe() if holder is not None else None)


def status_lines(status: SyncStatus | None, holder: str | None, now: datetime) -> list[str]:
    """The worker's part of ``xiva-source status``: whether it runs, lag per source, last error."""
    if status is None and holder is None:
        return ["sync worker: not running (no active `xiva-source sync` for this project)"]
    if status is None:
        return [f"sync worker: starting or stalled ({holder}); no status published"]
    age = (now - status.updated).total_seconds() if status.updated else 0.0
    if holder is None:
        state = f"not running (process {status.pid} on {status.host} stopped {age:.0f}s ago)"
    else:
        state = f"running ({holder}), mode {status.mode}, status {age:.0f}s old"
    lines = [f"sync worker: {state}"]
    for source in SOURCES:
        if source not in status.caught_up and source not in status.degraded:
            continue
        lag = status.lag(source, now)
        text = f"  {source}: lag {f'{lag:.1f}s' if lag is not None else 'unknown'}"
        if source in status.degraded:
            text += f"; degraded: {status.degraded[source]}"
        lines.append(text)
    if "redis" in status.degraded:
        lines.append(f"  redis: degraded: {status.degraded['redis']}")
    c = status.counters
    lines.append(
        f"  followed {c.customers} changes, {c.events} events, {c.dwh_rows} DWH rows, "
        f"{c.skipped} skipped, {c.day_refreshes} day refreshes"
    )
    if status.last_error:
        at = to_iso(status.last_error_at) if status.last_error_at else "?"
        lines.append(f"  last error at {at}: {status.last_error}")
    return lines


def status_json(status: SyncStatus | None, holder: str | None, now: datetime) -> dict[str, Any]:
    """The worker's part of ``xiva-source status --json``."""
    if status is None:
        return {"running": holder is not None, "holder": holder}
    data = json.loads(status.dumps())
    data["running"] = holder is not None
    data["holder"] = holder
    data["lag_seconds"] = {s: status.lag(s, now) for s in SOURCES if s in status.caught_up}
    return data
