"""What the materialization job remembers between runs: watermarks per source, modes, the marker.

Feast keeps one watermark per feature view (``most_recent_end_time``). A view read from two
sources (``auto``) needs one per source: a run where the DWH failed must leave the DWH's watermark
where it was while Xiva's moves. The job keeps them here:

- ``wm:<view>:<source>``: up to when ``source``'s changes are merged online for ``view``
  (``source`` is ``xiva`` or ``dwh``);
- ``mode:<view>``: the data-source mode the view was last materialized in (a switch reloads it);
- ``reread:<view>:<source>``: read ``source`` again from this moment (ISO 8601, or ``beginning``)
  although its watermark is later: what it served since was not *settled* (Xiva's rows written
  partially because the DWH was down, or not recorded in the snapshot table), so a later run
  reads it again, once the parts that settle it answer (:func:`xiva_source.jobs.plan.
  rereads_after`). Absent: settled.
- ``last_run``: the last run's result (JSON: outcome, exit status, rows per source, duration,
  fallbacks, pending retries, error), and ``run:<view>``: the last run that touched ``view``
  (outcome, rows, duration); written at the end of every run, failed ones included when the
  store is reachable (``xiva-source status`` reads them);
- the marker: written after every successful run, with the online expiry. A missing marker while
  Feast's registry has a watermark means the online store was wiped (Redis restarted empty,
  flushed, or every key expired): the run reloads everything.

Where: beside the lock, in the online store's Redis (``xiva_source:materialize:state:<project>``
hash, ``xiva_source:materialize:marker:<project>`` key). Not in the DWH, because the state must be
readable when the DWH is down (that is when it matters most); and in the online store itself, so
it disappears with the data it describes: a wiped store can never look loaded. When the online
store is not Redis (the demo's SQLite), a JSON file ``<project>.materialize-state.json`` beside
the registry holds the same, and a wiped store is not detected.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xiva_source.timeutil import parse_iso, to_iso, utc_now

if TYPE_CHECKING:
    from feast import FeatureStore

    from xiva_source.redis_client import RedisClient

__all__ = [
    "FileRunState",
    "RedisRunState",
    "RunState",
    "redis_state_names",
    "state_for_store",
]


LAST_RUN = "last_run"
"""The field of the last run's result."""

REREAD_BEGINNING = "beginning"
"""The value of a ``reread:<view>:<source>`` field meaning "read it again from the beginning"."""


def redis_state_names(project: str) -> tuple[str, str]:
    """The Redis keys of ``project``'s state: ``(hash, marker)`` (docs/operations.md)."""
    return (
        f"xiva_source:materialize:state:{project}",
        f"xiva_source:materialize:marker:{project}",
    )


class RunState(abc.ABC):
    """The job's memory between runs (read under the run's lock, written before it is released)."""

    @abc.abstractmethod
    def _read(self) -> dict[str, str]:
        """Every stored field (``wm:...``, ``mode:...``)."""

    @abc.abstractmethod
    def _write(self, fields: Mapping[str, str | None]) -> None:
        """Set (or, for ``None``, delete) fields."""

    @abc.abstractmethod
    def marker(self) -> str | None:
        """When the job last loaded this online store (ISO 8601), ``None`` if never / wiped."""

    @abc.abstractmethod
    def set_marker(self, ttl_seconds: int | None) -> None:
        """Mark the online store as loaded now; it vanishes with it (``ttl_seconds``: expiry)."""

    def load(self) -> dict[str, str]:
        """Every field, read once per run (see :meth:`watermark`)."""
        return self._read()

    @staticmethod
    def watermark(fields: Mapping[str, str], view: str, source: str) -> datetime | None:
        """``source``'s watermark for ``view`` in ``fields`` (:meth:`load`), ``None`` if none."""
        raw = fields.get(f"wm:{view}:{source}")
        return parse_iso(raw) if raw else None

    @staticmethod
    def mode(fields: Mapping[str, str], view: str) -> str | None:
        """The mode ``view`` was last materialized in, ``None`` if never."""
        return fields.get(f"mode:{view}") or None

    @staticmethod
    def rereads(fields: Mapping[str, str], view: str) -> dict[str, datetime | None]:
        """The sources of ``view`` to read again from a moment (``None``: the beginning).

        A source is in the result while what it served since that moment is not settled (the
        module docstring). An unreadable value reads as the beginning: re-reading costs calls,
        never data.
        """
        prefix = f"reread:{view}:"
        rereads: dict[str, datetime | None] = {}
        for key, value in fields.items():
            if not key.startswith(prefix) or not value:
                continue
            try:
                rereads[key[len(prefix) :]] = (
                    None if value == REREAD_BEGINNING else parse_iso(value)
                )
            except ValueError:
                rereads[key[len(prefix) :]] = None
        return rereads

    def save_view(
        self,
        view: str,
        marks: Mapping[str, datetime | None],
        mode: str,
        rereads: Mapping[str, datetime | None] | None = None,
    ) -> None:
        """Store ``view``'s watermarks per source (``None`` removes one) and its mode.

        Args:
            view: The feature view.
            marks: Each source's watermark (``None`` removes it).
            mode: The data-source mode of the view.
            rereads: When given, each source of ``marks`` is to be read again from its moment
                here (``None``: the beginning); a source of ``marks`` not in it is settled (its
                ``reread:`` field is removed). Not given: the ``reread:`` fields are untouched.
        """
        update: dict[str, str | None] = {
            f"wm:{view}:{source}": to_iso(mark) if mark is not None else None
            for source, mark in marks.items()
        }
        update[f"mode:{view}"] = mode
        if rereads is not None:
            for source in marks:
                again = source in rereads
                moment = rereads.get(source)
                update[f"reread:{view}:{source}"] = (
                    None if not again else REREAD_BEGINNING if moment is None else to_iso(moment)
                )
        self._write(update)

    def save_run(self, record: Mapping[str, Any], views: Mapping[str, Mapping[str, Any]]) -> None:
        """Store the run's result (``last_run``) and each view's (``run:<view>``), as JSON."""
        update: dict[str, str | None] = {LAST_RUN: json.dumps(record, sort_keys=True)}
        for view, result in views.items():
            update[f"run:{view}"] = json.dumps(result, sort_keys=True)
        self._write(update)

    @staticmethod
    def last_run(fields: Mapping[str, str], view: str | None = None) -> dict[str, Any] | None:
        """The last run's result (or ``view``'s last run) in ``fields``, ``None`` if none."""
        raw = fields.get(LAST_RUN if view is None else f"run:{view}")
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def watermarks(fields: Mapping[str, str]) -> dict[tuple[str, str], datetime]:
        """Every ``(view, source)`` watermark in ``fields``."""
        marks: dict[tuple[str, str], datetime] = {}
        for key, value in fields.items():
            if key.startswith("wm:") and value and key.count(":") >= 2:
                view, source = key[3:].rsplit(":", 1)
                marks[(view, source)] = parse_iso(value)
        return marks

    def forget_view(self, view: str, sources: tuple[str, ...] = ("xiva", "dwh")) -> None:
        """Drop ``view``'s watermarks (its next read starts at the beginning)."""
        self._write({f"wm:{view}:{source}": None for source in sources})


class RedisRunState(RunState):
    """The state in the online store's Redis (see the module docstring)."""

    def __init__(self, client: RedisClient, project: str) -> None:
        self._client = client
        self._hash, self._marker = redis_state_names(project)

    def _read(self) -> dict[str, str]:
        raw: dict[Any, Any] = self._client.hgetall(self._hash)  # type: ignore[assignment]
        return {_text(k): _text(v) for k, v in raw.items()}

    def _write(self, fields: Mapping[str, str | None]) -> None:
        gone = [k for k, v in fields.items() if v is None]
        kept = {k: v for k, v in fields.items() if v is not None}
        pipe = self._client.pipeline(transaction=True)
        if gone:
            pipe.hdel(self._hash, *gone)
        if kept:
            pipe.hset(self._hash, mapping=kept)  # type: ignore[arg-type]
        pipe.execute()

    def marker(self) -> str | None:
        value = self._client.get(self._marker)
        return _text(value) if value is not None else None

    def set_marker(self, ttl_seconds: int | None) -> None:
        self._client.set(self._marker, to_iso(utc_now()), ex=ttl_seconds or None)


class FileRunState(RunState):
    """The state in a JSON file (an online store other than Redis; one host, like its lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _document(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):  # unreadable: forget it, the run reloads (safe direction)
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a crash leaves the old file or the new one

    def _read(self) -> dict[str, str]:
        fields = self._document().get("fields", {})
        return {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}

    def _write(self, fields: Mapping[str, str | None]) -> None:
        data = self._document()
        stored = dict(self._read())
        for key, value in fields.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        data["fields"] = stored
        self._save(data)

    def marker(self) -> str | None:
        data = self._document()
        marker, expires = data.get("marker"), data.get("marker_expires")
        if not marker or (expires and parse_iso(expires) <= utc_now()):
            return None
        return str(marker)

    def set_marker(self, ttl_seconds: int | None) -> None:
        data = self._document()
        now = utc_now()
        data["marker"] = to_iso(now)
        data["marker_expires"] = (
            to_iso(now + timedelta(seconds=ttl_seconds)) if ttl_seconds else None
        )
        self._save(data)


def state_for_store(store: FeatureStore, client: RedisClient | None) -> RunState:
    """The state of ``store``'s runs: Redis when the online store is Redis, else a file.

    Args:
        store: The feature store.
        client: The online store's Redis client, ``None`` when it is not Redis.
    """
    if client is not None:
        return RedisRunState(client, store.project)
    from xiva_source.jobs.locks import registry_dir

    return FileRunState(registry_dir(store) / f"{store.project}.materialize-state.json")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
