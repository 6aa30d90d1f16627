"""The sync worker's position, saved in Redis after each batch: where it resumes after a crash.

The position in Xiva's change feed is ``(since, seen)``: the ``lastUpdate`` of the last customer
the worker finished, and the ids it finished at exactly that second (``lastUpdate`` has
one-second resolution, so several customers share one; the next poll asks
``lastUpdate.gte=since`` and skips only those ids). It moves only after a customer's features
are written and its segments updated, and is saved once per batch: a worker killed mid-batch
resumes at the last saved position and does the rest of the batch again (the writes are
newer-wins, equal rows rewritten; the segment update compares with the stored memberships, so
no event is published twice).

Beside it: where the DWH follower is (``dwh_since``, the end of its last read) and the last UTC
day whose time-driven transitions were published (``day``).

The record is one JSON string at :func:`checkpoint_key` (``xiva_source:sync:<project>:checkpoint``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from xiva_source.sync.errors import SyncCheckpointError
from xiva_source.timeutil import parse_iso, to_iso

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = ["Checkpoint", "CheckpointStore", "checkpoint_key"]


def checkpoint_key(project: str) -> str:
    """The Redis key of ``project``'s sync checkpoint."""
    return f"xiva_source:sync:{project}:checkpoint"


@dataclass
class Checkpoint:
    """Where the worker is (see the module docstring).

    Attributes:
        since: ``lastUpdate`` of the last Xiva customer finished (``None``: nothing yet).
        seen: The ids finished whose ``lastUpdate`` is exactly ``since``.
        dwh_since: The end of the DWH follower's last complete read (``None``: never read).
        day: The last UTC day whose time-driven transitions were published.
    """

    since: datetime | None = None
    seen: set[str] = field(default_factory=set)
    dwh_since: datetime | None = None
    day: date | None = None

    def done(self, customer_id: str, last_update: datetime) -> None:
        """Record ``customer_id`` (changed at ``last_update``) as finished."""
        if self.since is None or last_update > self.since:
            self.since, self.seen = last_update, {customer_id}
        elif last_update == self.since:
            self.seen.add(customer_id)

    def is_done(self, customer_id: str, last_update: datetime) -> bool:
        """Whether this change of ``customer_id`` was finished already (skip it)."""
        return self.since is not None and (
            last_update < self.since or (last_update == self.since and customer_id in self.seen)
        )

    def dumps(self) -> str:
        """The JSON record."""
        return json.dumps(
            {
                "since": to_iso(self.since) if self.since else None,
                "seen": sorted(self.seen),
                "dwh_since": to_iso(self.dwh_since) if self.dwh_since else None,
                "day": self.day.isoformat() if self.day else None,
            }
        )

    @classmethod
    def loads(cls, raw: str | bytes) -> Checkpoint:
        """Parse a record.

        Raises:
            ValueError: It is not a checkpoint.
        """
        data: Any = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls(
            since=parse_iso(data["since"]) if data.get("since") else None,
            seen={str(i) for i in data.get("seen") or ()},
            dwh_since=parse_iso(data["dwh_since"]) if data.get("dwh_since") else None,
            day=date.fromisoformat(data["day"]) if data.get("day") else None,
        )


class CheckpointStore:
    """Loads and saves a project's :class:`Checkpoint` in Redis.

    Args:
        client: The online store's Redis client.
        project: The Feast project.
    """

    def __init__(self, client: RedisClient, project: str) -> None:
        self.client = client
        self.key = checkpoint_key(project)

    def load(self) -> Checkpoint | None:
        """The saved checkpoint; ``None`` when there is none.

        Raises:
            redis.exceptions.RedisError: Redis cannot be reached.
            SyncCheckpointError: The record is corrupted (the fix: delete the key).
        """
        raw: Any = self.client.get(self.key)
        if raw is None:
            return None
        try:
            return Checkpoint.loads(raw)
        except (ValueError, KeyError, TypeError) as e:
            raise SyncCheckpointError(
                f"The sync checkpoint {self.key} is corrupted ({e}).",
                f"delete it (redis-cli DEL {self.key}): the worker then resumes from the job's "
                "Xiva watermark (changes since then are read again, events are not repeated).",
            ) from e

    def save(self, checkpoint: Checkpoint) -> None:
        """Save ``checkpoint`` (one ``SET``).

        Raises:
            redis.exceptions.RedisError: Redis cannot be reached.
        """
        self.client.set(self.key, checkpoint.dumps())
