"""The shared run state: what the online store holds, whichever tool loaded it.

Feast keeps one watermark per feature view (``most_recent_end_time``, in its registry). What is
online needs more: a view read from two sources (``auto``) has one watermark per source (a run
where the DWH failed leaves the DWH's where it was while Xiva's moves), and every tool that loads
the store (the cron job, ``feast materialize[-incremental]`` on the local or the Ray engine) must
leave behind what the next one needs to carry on. This module is that state's one schema, read
and written by the job (:mod:`xiva_source.jobs`) and by the plugin's Feast path
(:mod:`xiva_source.feast_plugin.feast_runs`), below both (the plugin cannot import the jobs).

Fields (one hash per project; docs/operations.md, "The shared state"):

=============================== ================================================ =================
field                           value                                            written by
=============================== ================================================ =================
``wm:<view>:<source>``          ISO 8601: ``source``'s changes up to it are      the job
                                merged online for ``view`` (``xiva``, ``dwh``)
``mode:<view>``                 ``xiva`` | ``dwh`` | ``auto``: the mode the view the job
                                was loaded in (a switch reloads it)
``reread:<view>:<source>``      ISO 8601, or ``beginning``: read ``source``      the job
                                again from it although its watermark is later:
                                its rows since were not *settled* (Xiva's rows
                                written partially while the DWH was down, or
                                not recorded in the snapshot table); absent:
                                settled (``jobs.plan.rereads_after``); never a
                                Feast pull's (the job's own runs settle rows)
``last_run``, ``run:<view>``    JSON objects: the last run's result, the last    the job
                                run that touched ``view`` (``xiva-source status``)
``feast:<view>:<pull>:<part>``  JSON (:class:`FeastPart`): a part of a pull      the offline store
                                Feast's materialization made (window, mode,      (Feast's path)
                                rows, the sources merged); the job carries on
                                from it once the registry confirms the pull
``feast_write_failed:<view>``   ISO 8601: when a write of Feast's engine to      the online store
                                ``view`` last failed (pulls begun before are
                                not carried on from)
``sweep:<join keys>``           JSON (:class:`ExpirySweep`): where the expiry    the job
                                sweep over the entity keys stands (a ``SCAN``
                                cursor spread over runs, ``jobs.expiry``);
                                one that does not parse starts a new cycle
``full:<view>``                ISO 8601: when the last read of ``view`` that    the job
                                wrote every row of its sources in full began
                                (``--full``, a reload, or a Feast pull from the
                                beginning the job carried on from); the expiry
                                sweep no longer extends a key none of the
                                views' last full reads wrote (``jobs.expiry``)
``dwhcounts:<view>``            JSON (:class:`LookbackCounts`): the DWH rows per the job
                                time bucket of the lookback when the view was
                                last read (``jobs.lookback``); one that does not
                                parse means the whole lookback is read again
=============================== ================================================ =================

The marker, a key beside the hash with the online expiry, means "this store holds what the state
says": every entity key loaded since it was set lives at least as long as it does. The job sets
it after extending every key's expiry (or after a run that rewrote every key), with the time the
extension began; Feast's path sets it only on a store nothing was ever loaded into (no registry
interval, no watermark), before its first write (:mod:`~xiva_source.feast_plugin.feast_runs`);
nothing else extends it. So a missing marker while Feast's registry has watermarks means the store
lost data (Redis restarted empty, flushed, or keys expired after ``ONLINE_TTL_SECONDS`` without a
successful run): the job reloads everything (``reload=wiped``).

Where: in the online store's Redis (``xiva_source:materialize:state:<project>`` hash,
``xiva_source:materialize:marker:<project>`` key), beside the job's lock. Not in the DWH: the
state must be readable when the DWH is down; and in the online store itself, so it disappears
with the data it describes: a wiped store can never look loaded. When the online store is not
Redis (the demo's SQLite), a JSON file ``<project>.materialize-state.json`` beside the registry
holds the same (one writer at a time).

Reading: :meth:`RunState.load` parses every known field once into a :class:`StateSnapshot`; a
field that does not parse (a watermark ``garbage-time``, bad JSON, an unknown mode) is kept aside
as a :class:`~xiva_source.feast_plugin.errors.CorruptedStateError` naming the field, the hash and
the command that repairs it, raised only when that field is used. Unknown field names are left
alone (a newer version's).

A re-read mark that does not parse is the one exception: it is read as ``beginning`` (never a
:class:`~xiva_source.feast_plugin.errors.CorruptedStateError`), because reading a source again
from further back costs calls, never data, while stopping the run would leave the rows it marks
unsettled for longer. The run's plan says so in a warning
(:meth:`StateSnapshot.unreadable_rereads`), and the run rewrites the field.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.errors import CorruptedStateError
from xiva_source.timeutil import parse_iso, to_iso, utc_now

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient

__all__ = [
    "LAST_RUN",
    "MODE_SOURCES",
    "REREAD_BEGINNING",
    "ExpirySweep",
    "FeastPart",
    "FileRunState",
    "LookbackCounts",
    "RedisRunState",
    "RunState",
    "StateSnapshot",
    "full_read_field",
    "lookback_field",
    "mode_field",
    "redis_state_names",
    "reread_field",
    "state_dir",
    "state_for_config",
    "sweep_field",
    "watermark_field",
]

MODE_SOURCES: dict[str, tuple[str, ...]] = {
    "xiva": ("xiva",),
    "dwh": ("dwh",),
    "auto": ("xiva", "dwh"),
}
"""The sources a view reads in each mode (each has its own watermark)."""

LAST_RUN = "last_run"
"""The field of the last run's result."""

REREAD_BEGINNING = "beginning"
"""The value of a ``reread:<view>:<source>`` field meaning "read it again from the beginning"."""

_WATERMARK, _MODE, _RUN, _FEAST, _REREAD = "wm:", "mode:", "run:", "feast:", "reread:"
_WRITE_FAILED = "feast_write_failed:"
_SWEEP = "sweep:"
_LOOKBACK = "dwhcounts:"
_FULL = "full:"


def redis_state_names(project: str) -> tuple[str, str]:
    """The Redis keys of ``project``'s state: ``(hash, marker)`` (docs/operations.md)."""
    return (
        f"xiva_source:materialize:state:{project}",
        f"xiva_source:materialize:marker:{project}",
    )


@dataclass(frozen=True)
class FeastPart:
    """One part of a pull that Feast's materialization made through the offline store.

    The local engine's pull is one part; Feast's Ray engine reads a DWH pull in several (one Ray
    task per customer range), each recording its own. The job carries on from a pull whose parts
    are all recorded and whose window the registry confirms (Feast records the interval only
    after its writes succeeded).

    Attributes:
        view: The feature view the pull was for.
        pull: An id shared by the parts of one pull.
        part: This part's index.
        parts: How many parts the pull has.
        start: The window start the pull read from (``None``: everything).
        end: The window end (Feast's ``end_date``, the end it records in the registry).
        began: When the pull began (a write failure after it voids the pull).
        mode: The mode the view was read in (``xiva``, ``dwh``, ``auto``).
        rows: Rows read per source by this part.
        merged: The sources whose changes were merged into the written rows (none after a
            fallback: Feast leaves partial rows out).
    """

    view: str
    pull: str
    part: int
    parts: int
    start: datetime | None
    end: datetime
    began: datetime
    mode: str
    rows: Mapping[str, int]
    merged: tuple[str, ...]

    @property
    def field(self) -> str:
        """Its field in the state."""
        return f"{_FEAST}{self.view}:{self.pull}:{self.part}"

    def to_json(self) -> str:
        """The field's value."""
        return json.dumps(
            {
                "parts": self.parts,
                "start": to_iso(self.start) if self.start is not None else None,
                "end": to_iso(self.end),
                "began": to_iso(self.began),
                "mode": self.mode,
                "rows": dict(self.rows),
                "merged": list(self.merged),
            },
            sort_keys=True,
        )

    @classmethod
    def parse(cls, name: str, text: str) -> FeastPart:
        """The part stored in field ``name`` as ``text``.

        Raises:
            ValueError: Either does not parse.
        """
        view, pull, part = name[len(_FEAST) :].rsplit(":", 2)
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("mode") not in MODE_SOURCES:
            raise ValueError("not a pull record")
        start = data["start"]
        rows = data.get("rows") or {}
        merged = data.get("merged") or []
        if not isinstance(rows, dict) or not isinstance(merged, list):
            raise ValueError("not a pull record")
        return cls(
            view=view,
            pull=pull,
            part=int(part),
            parts=int(data["parts"]),
            start=parse_iso(start) if start is not None else None,
            end=parse_iso(data["end"]),
            began=parse_iso(data["began"]),
            mode=str(data["mode"]),
            rows={str(k): int(v) for k, v in rows.items()},
            merged=tuple(str(s) for s in merged),
        )


@dataclass(frozen=True)
class ExpirySweep:
    """Where the job's expiry sweep over one set of entity keys stands (``jobs.expiry``).

    A cycle walks every key of the layout with ``SCAN`` (on a cluster every primary in turn),
    a slice per run, resetting each key's expiry. When a cycle completes, every key that existed
    throughout it was reset at or after ``cycle_began``: that moment becomes ``covered_since``,
    from which the online marker's expiry counts.
    """

    node: int = 0
    """The primary being walked (its index among the cluster's primaries; 0 on one server)."""
    nodes: int = 1
    """How many primaries the cycle walks (another count restarts the cycle)."""
    cursor: int = 0
    """The ``SCAN`` cursor on ``node`` (``0`` with ``node`` 0: a new cycle begins)."""
    cycle_began: datetime | None = None
    """When the current cycle began (``None``: none is under way)."""
    covered_since: datetime | None = None
    """Every entity key's expiry was reset at or after this moment (``None``: not known)."""
    swept_at: datetime | None = None
    """When the sweep last ran (the interval between runs sizes the next slice)."""

    @property
    def fresh(self) -> bool:
        """No cycle is under way (the next slice starts one)."""
        return self.cycle_began is None

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(
            {
                "node": self.node,
                "nodes": self.nodes,
                "cursor": self.cursor,
                "cycle_began": to_iso(self.cycle_began) if self.cycle_began else None,
                "covered_since": to_iso(self.covered_since) if self.covered_since else None,
                "swept_at": to_iso(self.swept_at) if self.swept_at else None,
            },
            sort_keys=True,
        )

    @classmethod
    def parse(cls, text: str) -> ExpirySweep:
        """The stored form read back.

        Raises:
            ValueError, KeyError, TypeError: It does not parse.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")

        def moment(name: str) -> datetime | None:
            value = data.get(name)
            return parse_iso(value) if value is not None else None

        return cls(
            node=int(data["node"]),
            nodes=int(data["nodes"]),
            cursor=int(data["cursor"]),
            cycle_began=moment("cycle_began"),
            covered_since=moment("covered_since"),
            swept_at=moment("swept_at"),
        )


@dataclass(frozen=True)
class LookbackCounts:
    """A view's DWH rows per time bucket, counted before its last read (``jobs.lookback``).

    ``counts`` maps a bucket's start (seconds since the epoch, a multiple of ``bucket``) to the
    rows stamped in ``(start, start + bucket]``, the last bucket cut at ``until`` (the read's end).
    """

    until: datetime
    """The end of the read the counts were taken for."""
    bucket: int
    """Bucket width in seconds."""
    counts: dict[int, int]
    """Rows per bucket start."""
    xid: tuple[int, tuple[int, ...]] | None = None
    """PostgreSQL tables: ``(xmax, xip)`` of a snapshot taken before the read, the transactions
    it could not see (the next run reads the rows they wrote instead of comparing counts)."""

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(
            {
                "until": to_iso(self.until),
                "bucket": self.bucket,
                "counts": {str(k): v for k, v in sorted(self.counts.items())},
                "xid": [self.xid[0], list(self.xid[1])] if self.xid is not None else None,
            },
            sort_keys=True,
        )

    @classmethod
    def parse(cls, text: str) -> LookbackCounts:
        """The stored form read back.

        Raises:
            ValueError, KeyError, TypeError: It does not parse.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data["counts"], dict):
            raise ValueError("not a JSON object with counts")
        counts = {int(k): int(v) for k, v in data["counts"].items()}
        xid = data.get("xid")
        return cls(
            until=parse_iso(data["until"]),
            bucket=int(data["bucket"]),
            counts=counts,
            xid=(int(xid[0]), tuple(int(x) for x in xid[1])) if xid is not None else None,
        )


class StateSnapshot:
    """The state as read once (:meth:`RunState.load`): every known field parsed.

    A field that does not parse is kept aside (:meth:`corruptions`) and raised only when it is
    used (:meth:`watermark`, :meth:`mode`, :meth:`check`); the others stay usable.

    Args:
        fields: The stored fields.
        state: The store they come from (for the repair commands); ``None`` for a bare snapshot.
        unreadable: The whole state could not be read (a file that is not JSON).
    """

    def __init__(
        self,
        fields: Mapping[str, str],
        state: RunState | None = None,
        *,
        unreadable: CorruptedStateError | None = None,
    ) -> None:
        self.fields: dict[str, str] = dict(fields)
        self.unreadable = unreadable
        self._state = state
        self._errors: dict[str, CorruptedStateError] = {}
        self._marks: dict[tuple[str, str], datetime] = {}
        self._modes: dict[str, str] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self._parts: dict[str, list[FeastPart]] = {}
        self._failures: dict[str, datetime] = {}
        self._rereads: dict[tuple[str, str], datetime | None] = {}
        self._bad_rereads: dict[tuple[str, str], str] = {}
        self._sweeps: dict[str, ExpirySweep] = {}
        self._lookbacks: dict[str, LookbackCounts] = {}
        self._full_reads: dict[str, datetime] = {}
        for name, value in self.fields.items():
            try:
                self._parse(name, value)
            except (ValueError, KeyError, TypeError) as e:
                self._errors[name] = self._corrupted(name, value, e)

    @classmethod
    def empty(cls) -> StateSnapshot:
        """No state (a wiped store: everything is read again)."""
        return cls({})

    def _parse(self, name: str, value: str) -> None:
        if name.startswith(_WATERMARK) and name.count(":") >= 2:
            view, source = name[len(_WATERMARK) :].rsplit(":", 1)
            self._marks[(view, source)] = parse_iso(value)
        elif name.startswith(_MODE):
            if value not in MODE_SOURCES:
                raise ValueError(f"unknown mode {value!r}")
            self._modes[name[len(_MODE) :]] = value
        elif name == LAST_RUN or name.startswith(_RUN):
            data = json.loads(value)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            self._runs[name] = data
        elif name.startswith(_FEAST):
            part = FeastPart.parse(name, value)
            self._parts.setdefault(part.view, []).append(part)
        elif name.startswith(_WRITE_FAILED):
            self._failures[name[len(_WRITE_FAILED) :]] = parse_iso(value)
        elif name.startswith(_SWEEP):
            self._sweeps[name[len(_SWEEP) :]] = ExpirySweep.parse(value)
        elif name.startswith(_LOOKBACK):
            self._lookbacks[name[len(_LOOKBACK) :]] = LookbackCounts.parse(value)
        elif name.startswith(_FULL):
            self._full_reads[name[len(_FULL) :]] = parse_iso(value)
        elif name.startswith(_REREAD) and name.count(":") >= 2:
            view, source = name[len(_REREAD) :].rsplit(":", 1)
            try:
                moment = None if value == REREAD_BEGINNING else parse_iso(value)
            except ValueError:  # read as the beginning (the module docstring), never an error
                moment = None
                self._bad_rereads[(view, source)] = value
            self._rereads[(view, source)] = moment

    def _corrupted(self, name: str, value: str, cause: Exception) -> CorruptedStateError:
        state = self._state
        where = state.where if state is not None else "run state"
        delete = state.delete_command(name) if state is not None else f"delete the field {name}"
        if name.startswith(_WATERMARK):
            view, source = name[len(_WATERMARK) :].rsplit(":", 1)
            expected = "an ISO 8601 time"
            repair = (
                f"delete the field: `{delete}` (the next run reads {source} for {view} from the "
                f"beginning, changing nothing else), or reload the view: "
                f"`xiva-source materialize --full --view {view}`."
            )
        elif name.startswith(_MODE):
            view = name[len(_MODE) :]
            expected = f"one of {', '.join(MODE_SOURCES)}"
            repair = (
                f"reload the view in the current mode (it rewrites the field): "
                f"`xiva-source materialize --full --view {view}`."
            )
        else:
            if name == LAST_RUN or name.startswith(_RUN):
                expected = "a JSON object"
            elif name.startswith(_FEAST):
                expected = "a pull record"
            elif name.startswith(_SWEEP):
                expected = "an expiry sweep record"
            elif name.startswith(_LOOKBACK):
                expected = "a DWH lookback count record"
            else:
                expected = "an ISO 8601 time"
            repair = (
                f"delete the field: `{delete}` (a record only: runs carry on without it and "
                "write it again)."
            )
        error = CorruptedStateError(where, name, value, expected, repair)
        error.__cause__ = cause
        return error

    def readable(self) -> StateSnapshot:
        """The same state without its corrupted fields (for a run that rewrites them)."""
        fields = {k: v for k, v in self.fields.items() if k not in self._errors}
        return StateSnapshot(fields, self._state)

    # -- reading ---------------------------------------------------------------------------

    def corruptions(self) -> list[CorruptedStateError]:
        """Every field that does not parse (the whole state first, when it is unreadable)."""
        found = [self._errors[name] for name in sorted(self._errors)]
        return [self.unreadable, *found] if self.unreadable is not None else found

    def check(self, fields: Iterable[str]) -> None:
        """Raise when the state is unreadable or one of ``fields`` is corrupted.

        Raises:
            CorruptedStateError: The first of them (its fix repairs it).
        """
        if self.unreadable is not None:
            raise self.unreadable
        for name in fields:
            if name in self._errors:
                raise self._errors[name]

    def watermark(self, view: str, source: str) -> datetime | None:
        """``source``'s watermark for ``view``, ``None`` if none.

        Raises:
            CorruptedStateError: The field does not parse.
        """
        self.check([watermark_field(view, source)])
        return self._marks.get((view, source))

    def mode(self, view: str) -> str | None:
        """The mode ``view`` was last materialized in by the job, ``None`` if never.

        Raises:
            CorruptedStateError: The field is not a known mode.
        """
        self.check([mode_field(view)])
        return self._modes.get(view)

    def watermarks(self) -> dict[tuple[str, str], datetime]:
        """Every readable ``(view, source)`` watermark."""
        return dict(self._marks)

    def last_run(self, view: str | None = None) -> dict[str, Any] | None:
        """The last run's result (or ``view``'s last run); ``None`` if none or unreadable."""
        return self._runs.get(LAST_RUN if view is None else f"{_RUN}{view}")

    def feast_parts(self, view: str) -> list[FeastPart]:
        """The readable records of Feast's pulls of ``view``."""
        return list(self._parts.get(view, []))

    def feast_fields(self, view: str) -> list[str]:
        """Every field recording a Feast pull of ``view`` (corrupted ones included)."""
        prefix = f"{_FEAST}{view}:"
        return sorted(name for name in self.fields if name.startswith(prefix))

    def write_failure(self, view: str) -> datetime | None:
        """When a write of Feast's engine to ``view`` last failed, if one was recorded."""
        return self._failures.get(view)

    def rereads(self, view: str) -> dict[str, datetime | None]:
        """The sources of ``view`` to read again from a moment (``None``: the beginning).

        A source is in the result while its rows since that moment are not settled (the
        module docstring). A value that does not parse reads as the beginning
        (:meth:`unreadable_rereads` names it): re-reading costs calls, never data.
        """
        return {source: at for (name, source), at in self._rereads.items() if name == view}

    def unreadable_rereads(self, view: str) -> dict[str, str]:
        """``view``'s re-read marks that did not parse (read as the beginning), per source."""
        return {source: raw for (name, source), raw in self._bad_rereads.items() if name == view}

    def lookback(self, view: str) -> LookbackCounts | None:
        """``view``'s DWH lookback counts; ``None`` if none (or unreadable: the whole lookback
        is read again, which costs rows, never data)."""
        return self._lookbacks.get(view)

    def full_read(self, view: str) -> datetime | None:
        """When the last read of ``view`` that wrote every row of its sources began; ``None``
        if none is recorded (or unreadable: the sweep then extends every key, as before)."""
        return self._full_reads.get(view)

    def sweep(self, join_keys: Iterable[str]) -> ExpirySweep | None:
        """Where the expiry sweep over the keys of ``join_keys`` stands; ``None`` if never run.

        One that does not parse reads as ``None`` (a new cycle: it costs a walk, never data).
        """
        return self._sweeps.get(sweep_field(join_keys)[len(_SWEEP) :])


def watermark_field(view: str, source: str) -> str:
    """The field of ``source``'s watermark for ``view``."""
    return f"{_WATERMARK}{view}:{source}"


def mode_field(view: str) -> str:
    """The field of ``view``'s mode."""
    return f"{_MODE}{view}"


def lookback_field(view: str) -> str:
    """The field of ``view``'s DWH lookback counts."""
    return f"{_LOOKBACK}{view}"


def full_read_field(view: str) -> str:
    """The field of the start of ``view``'s last full read."""
    return f"{_FULL}{view}"


def sweep_field(join_keys: Iterable[str]) -> str:
    """The field of the expiry sweep over the entity keys of ``join_keys``."""
    return f"{_SWEEP}{','.join(sorted(join_keys))}"


def reread_field(view: str, source: str) -> str:
    """The field of ``source``'s re-read mark for ``view``."""
    return f"{_REREAD}{view}:{source}"


class RunState(abc.ABC):
    """The shared run state of one project (see the module docstring)."""

    where: str = "run state"
    """Where it lives, for messages (``Redis hash ...``, ``file ...``)."""

    @abc.abstractmethod
    def _read(self) -> dict[str, str]:
        """Every stored field.

        Raises:
            CorruptedStateError: The whole state cannot be read.
        """

    @abc.abstractmethod
    def _write(self, fields: Mapping[str, str | None]) -> None:
        """Set (or, for ``None``, delete) fields."""

    @abc.abstractmethod
    def marker(self) -> str | None:
        """When the store was marked loaded (ISO 8601), ``None`` if never / wiped / expired."""

    @abc.abstractmethod
    def set_marker(
        self, ttl_seconds: int | None, *, at: datetime | None = None, only_if_missing: bool = False
    ) -> bool:
        """Mark the online store loaded; the mark expires ``ttl_seconds`` after ``at``.

        Args:
            ttl_seconds: The online expiry (``None``: never expires).
            at: From when the expiry counts (default now): the moment every entity key's
                expiry was last reset, so the mark never outlives a key.
            only_if_missing: Leave an existing mark alone (Feast's path).

        Returns:
            Whether the mark was written.
        """

    @abc.abstractmethod
    def delete_command(self, field: str) -> str:
        """The shell command that deletes ``field`` (the fix of a corrupted one)."""

    def load(self) -> StateSnapshot:
        """Every field, parsed (read once per run)."""
        try:
            return StateSnapshot(self._read(), self)
        except CorruptedStateError as e:
            return StateSnapshot({}, self, unreadable=e)

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
            watermark_field(view, source): to_iso(mark) if mark is not None else None
            for source, mark in marks.items()
        }
        update[mode_field(view)] = mode
        if rereads is not None:
            for source in marks:
                moment = rereads.get(source)
                update[reread_field(view, source)] = (
                    None
                    if source not in rereads
                    else REREAD_BEGINNING
                    if moment is None
                    else to_iso(moment)
                )
        self._write(update)

    def save_run(self, record: Mapping[str, Any], views: Mapping[str, Mapping[str, Any]]) -> None:
        """Store the run's result (``last_run``) and each view's (``run:<view>``), as JSON."""
        update: dict[str, str | None] = {LAST_RUN: json.dumps(record, sort_keys=True)}
        for view, result in views.items():
            update[f"{_RUN}{view}"] = json.dumps(result, sort_keys=True)
        self._write(update)

    def forget_view(self, view: str, sources: tuple[str, ...] = ("xiva", "dwh")) -> None:
        """Drop ``view``'s watermarks (its next read starts at the beginning)."""
        self.forget(watermark_field(view, source) for source in sources)

    def forget(self, fields: Iterable[str]) -> None:
        """Delete ``fields`` (records consumed, corrupted fields a reload rewrites)."""
        gone = dict.fromkeys(fields)
        if gone:
            self._write(gone)

    def record_feast_part(self, part: FeastPart) -> None:
        """Store one part of a Feast pull (:mod:`~xiva_source.feast_plugin.feast_runs`)."""
        self._write({part.field: part.to_json()})

    def note_write_failure(self, view: str, at: datetime) -> None:
        """Remember that a write of Feast's engine to ``view`` failed at ``at``."""
        self._write({f"{_WRITE_FAILED}{view}": to_iso(at)})

    def save_lookback(self, view: str, counts: LookbackCounts | None) -> None:
        """Store ``view``'s DWH lookback counts (``None`` removes them)."""
        self._write({lookback_field(view): counts.to_json() if counts is not None else None})

    def save_full_reads(self, views: Iterable[str], at: datetime) -> None:
        """Store that a read of each of ``views`` that wrote every row of its sources began at
        ``at`` (call it only after the writes succeeded)."""
        update: dict[str, str | None] = {full_read_field(view): to_iso(at) for view in views}
        if update:
            self._write(update)

    def save_sweep(self, join_keys: Iterable[str], sweep: ExpirySweep) -> None:
        """Store where the expiry sweep over the keys of ``join_keys`` stands."""
        self._write({sweep_field(join_keys): sweep.to_json()})


class RedisRunState(RunState):
    """The state in the online store's Redis (see the module docstring)."""

    def __init__(self, client: RedisClient, project: str) -> None:
        self._client = client
        self._hash, self._marker = redis_state_names(project)
        self.where = f"Redis hash {self._hash}"

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

    def set_marker(
        self, ttl_seconds: int | None, *, at: datetime | None = None, only_if_missing: bool = False
    ) -> bool:
        at = at or utc_now()
        expires = (
            int((at + timedelta(seconds=ttl_seconds)).timestamp() * 1000) if ttl_seconds else None
        )
        # PXAT: the mark expires when the keys extended at `at` do, however long this took.
        done = self._client.set(self._marker, to_iso(at), pxat=expires, nx=only_if_missing)
        return bool(done)

    def delete_command(self, field: str) -> str:
        from redis.cluster import RedisCluster

        cluster = " -c" if isinstance(self._client, RedisCluster) else ""
        return f'redis-cli{cluster} -u "$REDIS_URL" HDEL {self._hash} {field}'


class FileRunState(RunState):
    """The state in a JSON file (an online store other than Redis; one host, like its lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"state file {path}"

    def _document(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("fields", {}), dict):
                raise ValueError("not a state document")
        except ValueError as e:
            raise CorruptedStateError(
                f"state file {self.path}",
                "(the whole file)",
                text,
                "a JSON state document",
                f"move it aside: `mv {self.path} {self.path}.corrupted` (the next run reads "
                "everything again), or run `xiva-source materialize --full`, which does so.",
            ) from e
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a crash leaves the old file or the new one

    def _read(self) -> dict[str, str]:
        fields = self._document().get("fields", {})
        return {str(k): str(v) for k, v in fields.items()}

    def _write(self, fields: Mapping[str, str | None]) -> None:
        data = self._document()  # an unreadable file raises: it is never overwritten blindly
        stored = {str(k): str(v) for k, v in data.get("fields", {}).items()}
        for key, value in fields.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        data["fields"] = stored
        self._save(data)

    def marker(self) -> str | None:
        try:
            data = self._document()
        except CorruptedStateError:
            return None
        marker, expires = data.get("marker"), data.get("marker_expires")
        try:
            if not marker or (expires and parse_iso(expires) <= utc_now()):
                return None
        except ValueError:
            return None  # an unreadable expiry: not loaded (the safe direction: a reload)
        return str(marker)

    def set_marker(
        self, ttl_seconds: int | None, *, at: datetime | None = None, only_if_missing: bool = False
    ) -> bool:
        if only_if_missing and self.marker() is not None:
            return False
        data = self._document()
        at = at or utc_now()
        data["marker"] = to_iso(at)
        expires = at + timedelta(seconds=ttl_seconds) if ttl_seconds else None
        data["marker_expires"] = to_iso(expires) if expires is not None else None
        self._save(data)
        return True

    def delete_command(self, field: str) -> str:
        return (
            f'python -c "import json,sys; p=sys.argv[1]; d=json.load(open(p)); '
            f"d['fields'].pop(sys.argv[2]); json.dump(d, open(p, 'w'))\" {self.path} {field}"
        )

    def move_aside(self) -> Path:
        """Rename an unreadable file to ``<name>.corrupted`` (a ``--full`` run starts anew)."""
        target = self.path.with_name(self.path.name + ".corrupted")
        os.replace(self.path, target)
        return target


def state_dir(config: Any) -> Path:
    """The directory of a local registry (the repository for a remote one): state file, locks.

    Args:
        config: The Feast ``RepoConfig`` (``store.config``).
    """
    registry = config.registry
    path = getattr(registry, "path", None) or ""
    if path and "://" not in path:
        registry_path = Path(path)
        if not registry_path.is_absolute():
            registry_path = Path(config.repo_path) / registry_path
        return registry_path.parent
    return Path(config.repo_path)


def state_for_config(config: Any, client: RedisClient | None) -> RunState:
    """The state of the repository's project: Redis when the online store is Redis, else a file.

    Args:
        config: The Feast ``RepoConfig``.
        client: The online store's Redis client
            (:func:`~xiva_source.feast_plugin.online_store.online_redis_client`), ``None`` when
            it is not Redis.
    """
    if client is not None:
        return RedisRunState(client, config.project)
    return FileRunState(state_dir(config) / f"{config.project}.materialize-state.json")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
