"""The cron-safe materialization job behind ``make materialize``.

One run moves every feature view of the repository from its sources into the online store,
incrementally, and sharing Feast's own watermark:

1. Per feature view, the window starts at the view's ``most_recent_end_time`` in the registry (the
   same value ``feast materialize-incremental`` uses) and ends now. A view that was never
   materialized starts at the beginning of time: the first run loads every customer, including
   those whose ``lastUpdate`` / ``updated_at`` is years old (stock Feast would start at
   ``now - ttl`` and silently skip them).
2. :func:`xiva_source.pipeline.pull.pull_batches` streams the window in chunks; each chunk is converted
   column-wise (:mod:`xiva_source.feast_plugin.online_rows`, cell for cell what Feast's batch engines build) and
   written with the online store's ``online_write_batch``, so memory stays flat however many rows
   there are.
3. Only after every chunk of a view was written is the interval recorded with
   ``registry.apply_materialization``: a failed run leaves the watermark where it was, and the next
   run repeats the window.
4. After a fully successful incremental run, the expiry of every entity key of the project is
   extended (see :func:`extend_online_expiry`): online expiry measures the time since the last
   *successful run*. A run that read every online view in full skips it: its writes reset the
   expiry of every customer still in a source, and the others should expire.

Two runs never overlap: the job holds a lock for its whole duration (a Redis lock when the online
store is Redis, an ``fcntl`` lock next to the registry otherwise). A second run started while one
is going prints one ``skipped: ...`` line and exits 0 without touching anything.

Every run ends with one summary line and an exit status: 0 success (also when ``auto`` mode fell
back to one source, which the line says), 1 failure (the message names the cause and the fix),
2 usage or configuration error.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import fcntl
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from xiva_source.errors import DataSourceError
from xiva_source.feast_plugin.online_rows import to_online_rows
from xiva_source.jobs.errors import (
    MaterializationConfigError,
    MaterializationError,
    MaterializationFailedError,
)
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.redaction import redact
from xiva_source.settings import Settings, load_settings
from xiva_source.xiva_api.errors import XivaError

if TYPE_CHECKING:
    import redis
    from feast import FeatureStore, FeatureView
    from feast.infra.online_stores.online_store import OnlineStore

    from xiva_source.pipeline.pull import PullReport

__all__ = [
    "EPOCH",
    "FileMaterializationLock",
    "LockHolder",
    "MaterializationConfigError",
    "MaterializationError",
    "MaterializationFailedError",
    "MaterializationLock",
    "RedisMaterializationLock",
    "RunSummary",
    "ViewRun",
    "cli",
    "extend_online_expiry",
    "lock_for_store",
    "run_materialization",
]

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Start recorded in the registry for a view's first run (it read everything up to then)."""

LOCK_TTL_SECONDS = 60.0
"""Seconds the Redis lock lives without renewal: a dead run's lock is gone this long after."""

EXPIRY_PIPELINE_SIZE = 5_000
"""EXPIRE commands sent to Redis per round trip when extending online expiry."""


# --------------------------------------------------------------------------------------------
# Errors


class _LockLostError(MaterializationError):
    """The run no longer holds the lock (it expired or was deleted); internal, see _explain."""

    def __init__(self) -> None:
        super().__init__(
            "the materialization lock was lost during the run (it expired or was taken)"
        )


# --------------------------------------------------------------------------------------------
# The summary


@dataclass
class ViewRun:
    """What one run did for one feature view."""

    name: str
    """Feature view name."""
    start: datetime | None
    """Window start (``None``: the view was never materialized, everything was read)."""
    end: datetime
    """Window end (the run's end date)."""
    rows: int = 0
    """Rows written to the online store."""


@dataclass
class RunSummary:
    """The outcome of one run; :meth:`line` is the one line the job prints.

    Example:
        ``materialize ok mode=auto rows xiva=1234 dwh=2000 views=2 xiva_calls=1300 fallbacks=0
        failed_customers=0 duration=12.3s``
    """

    status: Literal["ok", "skipped", "failed"]
    """``ok``, ``skipped`` (another run holds the lock) or ``failed``."""
    mode: str
    """The data-source mode the run used (``xiva``, ``dwh`` or ``auto``)."""
    views: list[ViewRun] = field(default_factory=list)
    """Views materialized (for a failed run: the ones that finished)."""
    rows_by_source: dict[str, int] = field(default_factory=dict)
    """Rows read per source, summed over the views."""
    xiva_calls: int = 0
    """HTTP calls made to Xiva."""
    fallbacks: list[str] = field(default_factory=list)
    """One sentence per fallback in ``auto`` mode (e.g. ``xiva failed (...), served from dwh``)."""
    kept_views: list[str] = field(default_factory=list)
    """Views that read only a source that failed in ``auto`` mode: they kept their old values."""
    failed_customers: int = 0
    """Customers whose Xiva data could not be read (served from the other source, or skipped)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Per-source error messages the pull reported."""
    expiry_extended: int = 0
    """Entity keys whose online expiry was extended after the run."""
    duration: float = 0.0
    """Seconds the run took."""
    holder: LockHolder | None = None
    """For a skipped run: who holds the lock."""
    error: str | None = None
    """For a failed run: the cause and the fix."""

    @property
    def rows(self) -> int:
        """Rows written to the online store, over all views."""
        return sum(view.rows for view in self.views)

    @property
    def exit_code(self) -> int:
        """0 for ``ok`` and ``skipped``, 1 for ``failed``."""
        return 1 if self.status == "failed" else 0

    def line(self) -> str:
        """The run's summary line (no secrets: every message is redacted)."""
        if self.status == "skipped":
            held = f" ({self.holder.describe()})" if self.holder else ""
            return f"skipped: another materialization holds the lock{held}"
        sources = " ".join(f"{name}={n}" for name, n in sorted(self.rows_by_source.items()))
        text = (
            f"materialize {self.status} mode={self.mode} rows {sources or 'none=0'} "
            f"views={len(self.views)} xiva_calls={self.xiva_calls} "
            f"fallbacks={len(self.fallbacks)} failed_customers={self.failed_customers} "
            f"duration={self.duration:.1f}s"
        )
        for fallback in self.fallbacks:
            text += f"; fallback: {fallback}"
        if "expiry" in self.errors:
            text += f"; warning: online expiry not extended: {self.errors['expiry']}"
        if self.error:
            text += f"; error: {self.error}"
        return redact(text)


# --------------------------------------------------------------------------------------------
# The lock


@dataclass(frozen=True)
class LockHolder:
    """Who holds the materialization lock (stored in the lock itself)."""

    pid: int
    """Process id of the holder."""
    host: str
    """Host name of the holder."""
    since: str
    """When it took the lock (ISO 8601, UTC)."""
    token: str = ""
    """Random token that proves ownership (compared before renewal and release)."""

    @classmethod
    def me(cls) -> LockHolder:
        """A holder record for this process."""
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            since=datetime.now(UTC).isoformat(timespec="seconds"),
            token=uuid.uuid4().hex,
        )

    def dumps(self) -> str:
        """The record as JSON (the lock's value)."""
        return json.dumps(
            {"pid": self.pid, "host": self.host, "since": self.since, "token": self.token}
        )

    @classmethod
    def loads(cls, raw: str | bytes | None) -> LockHolder | None:
        """Parse a record written by :meth:`dumps`; ``None`` if empty or unreadable."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(int(data["pid"]), str(data["host"]), str(data["since"]), "")
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        """``pid 123 on host, since 2026-01-01T00:00:00+00:00``."""
        return f"pid {self.pid} on {self.host}, since {self.since}"


class MaterializationLock(abc.ABC):
    """The job's mutual exclusion; use :func:`lock_for_store` to get the right kind.

    ``acquire()`` never waits: it returns ``None`` when the lock was taken, or the current holder.
    """

    @abc.abstractmethod
    def acquire(self) -> LockHolder | None:
        """Take the lock without waiting.

        Returns:
            ``None`` when this process now holds the lock, otherwise the holder (or an unknown
            holder record when it cannot be read).
        """

    @abc.abstractmethod
    def owned(self) -> bool:
        """Whether this process still holds the lock (checked before moving a watermark)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock up; a no-op when it is not held."""

    @contextlib.contextmanager
    def held(self) -> Iterator[LockHolder | None]:
        """``with lock.held() as holder:``; ``holder`` is ``None`` when this process got it."""
        holder = self.acquire()
        try:
            yield holder
        finally:
            if holder is None:
                self.release()


_UNKNOWN_HOLDER = LockHolder(pid=0, host="unknown", since="unknown")


class RedisMaterializationLock(MaterializationLock):
    """A Redis lock (``SET NX PX`` with a token) renewed by a background thread.

    redis-py's :class:`redis.lock.Lock` does the protocol: the token is compared in Lua before
    every renewal and before the delete, so a run never extends or releases a lock it lost. The
    key lives ``ttl`` seconds and is renewed every ``ttl / 3``: a run that dies (``kill -9``, lost
    host) leaves a lock that expires on its own within ``ttl``.

    Args:
        client: A Redis client.
        name: The lock's key.
        ttl: Seconds the lock lives without renewal.
    """

    def __init__(self, client: redis.Redis, name: str, ttl: float = LOCK_TTL_SECONDS) -> None:
        from redis.lock import Lock

        self.client = client
        self.name = name
        self.ttl = ttl
        self._lock = Lock(client, name, timeout=ttl, blocking=False, thread_local=False)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lost = False

    def acquire(self) -> LockHolder | None:
        me = LockHolder.me()
        if self._lock.acquire(blocking=False, token=me.dumps()):
            self._stop.clear()
            self._renewer = threading.Thread(
                target=self._renew, name="materialize-lock-renewal", daemon=True
            )
            self._renewer.start()
            return None
        raw: bytes | None = self.client.get(self.name)  # type: ignore[assignment]
        return LockHolder.loads(raw) or _UNKNOWN_HOLDER

    def _renew(self) -> None:
        from redis.exceptions import LockError, RedisError

        while not self._stop.wait(self.ttl / 3):
            try:
                self._lock.reacquire()
            except LockError:
                logger.error("lost the materialization lock %s: it expired or was taken", self.name)
                self._lost = True
                return
            except RedisError as e:  # transient: the next renewal may work, owned() will tell
                logger.warning("could not renew the materialization lock: %s", e)

    def owned(self) -> bool:
        return not self._lost and bool(self._lock.owned())

    def release(self) -> None:
        from redis.exceptions import LockError, RedisError

        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        try:
            self._lock.release()
        except LockError:  # not held (never taken, expired or taken over): nothing to give up
            pass
        except RedisError as e:  # unreachable: the key expires on its own within the ttl
            logger.warning("could not release the materialization lock %s: %s", self.name, e)


class FileMaterializationLock(MaterializationLock):
    """An exclusive ``fcntl.flock`` on a file next to the registry (one host only).

    The kernel drops the lock when the holding process dies, so a stale lock cannot outlive its
    run. The file stays in place (deleting it would race with the next run); it holds the current
    holder's record for the ``skipped`` message.

    Args:
        path: The lock file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> LockHolder | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                raw = os.pread(fd, 4096, 0)
            finally:
                os.close(fd)
            return LockHolder.loads(raw) or _UNKNOWN_HOLDER
        os.ftruncate(fd, 0)
        os.pwrite(fd, LockHolder.me().dumps().encode(), 0)
        self._fd = fd
        return None

    def owned(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def lock_for_store(
    store: FeatureStore, online_store: OnlineStore | None = None
) -> MaterializationLock:
    """The lock a run of ``store`` takes: Redis when the online store is Redis, else a file.

    The Redis lock's key is ``xiva_source:materialize:lock:<project>``, so runs of different
    projects do not block each other. The file lock is ``<project>.materialize.lock`` next to a
    local registry (in the repository when the registry is remote).

    Args:
        store: The feature store.
        online_store: The store's online store instance, to reuse its Redis connection.
    """
    client = _online_redis_client(store, online_store)
    if client is not None:
        return RedisMaterializationLock(client, f"xiva_source:materialize:lock:{store.project}")
    return FileMaterializationLock(_registry_dir(store) / f"{store.project}.materialize.lock")


def _registry_dir(store: FeatureStore) -> Path:
    registry = store.config.registry
    path = getattr(registry, "path", None) or ""
    if path and "://" not in path:
        registry_path = Path(path)
        if not registry_path.is_absolute():
            registry_path = Path(store.repo_path) / registry_path
        return registry_path.parent
    return Path(store.repo_path)


def _online_redis_client(
    store: FeatureStore, online_store: OnlineStore | None = None
) -> redis.Redis | None:
    """The online store's own Redis client when it is Redis; ``None`` for other stores.

    Feast's store builds the client from its ``connection_string`` (cluster and sentinel modes
    included), so the lock and the expiry step always talk to the Redis the features are in.
    """
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

    if not isinstance(store.config.online_store, RedisOnlineStoreConfig):
        return None
    online_store = online_store or _new_online_store(store)
    if not isinstance(online_store, RedisOnlineStore):
        return None
    client: redis.Redis = online_store._get_client(store.config.online_store)
    return client


def _new_online_store(store: FeatureStore) -> OnlineStore:
    from feast.infra.online_stores.helpers import get_online_store_from_config

    return get_online_store_from_config(store.config.online_store)


# --------------------------------------------------------------------------------------------
# Online expiry


def extend_online_expiry(
    client: redis.Redis,
    project: str,
    join_keys: Sequence[str],
    ttl_seconds: int,
) -> int:
    """Reset the expiry of every entity key of ``project`` to ``ttl_seconds``.

    Feast's Redis store expires a whole entity hash ``key_ttl_seconds`` after its last write. An
    incremental run rewrites only the customers that changed, so without this step an unchanged
    customer would vanish ``ttl`` after it last *changed*, although every run since confirmed its
    values. After a successful run, this sets the expiry of every key of the project, so online
    expiry measures the time since the last successful run: values disappear only when the job
    has been failing (or not running) for ``ttl``.

    Keys are found with ``SCAN`` on Feast's key layout (serialized entity key + project name) and
    checked exactly, so a project whose name ends with this one's is not touched.

    Args:
        client: The online store's Redis.
        project: The Feast project.
        join_keys: The entity's join keys (e.g. ``["customer_id"]``).
        ttl_seconds: The new expiry; ``0`` or less does nothing.

    Returns:
        How many keys got the new expiry.
    """
    from feast.infra.key_encoding_utils import serialize_entity_key_prefix

    if ttl_seconds <= 0:
        return 0
    prefix = serialize_entity_key_prefix(list(join_keys))
    suffix = project.encode("utf-8")
    expire = _batch_expirer(client, ttl_seconds)
    extended = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + b"*" + suffix, count=EXPIRY_PIPELINE_SIZE):
        if _is_entity_key_of(key, prefix, len(join_keys), suffix):
            batch.append(key)
            if len(batch) >= EXPIRY_PIPELINE_SIZE:
                extended += expire(batch)
                batch = []
    if batch:
        extended += expire(batch)
    return extended


_EXPIRE_ALL = (
    "local n = 0 for i = 1, #KEYS do n = n + redis.call('EXPIRE', KEYS[i], ARGV[1]) end return n"
)


def _batch_expirer(client: redis.Redis, ttl_seconds: int) -> Callable[[list[bytes]], int]:
    """``EXPIRE`` a batch of keys: one Lua call (3x a pipeline), or a pipeline on a cluster."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):  # a script's keys must share a slot there

        def pipelined(keys: list[bytes]) -> int:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.expire(key, ttl_seconds)
            return sum(bool(r) for r in pipe.execute())

        return pipelined
    script = client.register_script(_EXPIRE_ALL)
    return lambda keys: int(script(keys=keys, args=[ttl_seconds]))


def _is_entity_key_of(key: bytes, prefix: bytes, n_values: int, suffix: bytes) -> bool:
    """True when ``key`` is exactly prefix + ``n_values`` encoded values + suffix."""
    if not key.endswith(suffix):
        return False
    pos, end = len(prefix), len(key) - len(suffix)
    for _ in range(n_values):
        if pos + 8 > end:
            return False
        (length,) = struct.unpack_from("<I", key, pos + 4)
        pos += 8 + length
    return pos == end


# --------------------------------------------------------------------------------------------
# The run


def run_materialization(
    repo_path: str | os.PathLike[str] = "feature_repo",
    *,
    end_date: datetime | None = None,
    views: Iterable[str] | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
    full: bool = False,
) -> RunSummary:
    """Materialize every (or the named) feature views incrementally up to ``end_date``.

    Args:
        repo_path: The Feast repository (its ``feature_store.yaml``).
        end_date: Window end; default now (UTC). Naive datetimes are taken as UTC.
        views: Feature view names; default all views of the project.
        settings: The project's settings; default :func:`~xiva_source.settings.load_settings`.
        progress: Show a progress bar on stderr; ``None`` shows it only when stderr is a terminal.
        full: Ignore the watermark and read everything (a full reload); the interval is recorded
            as usual.

    Returns:
        The summary; ``status`` is ``"ok"``, or ``"skipped"`` when another run holds the lock (then
        nothing was read or written).

    Raises:
        MaterializationConfigError: The settings, the repository or a view name is wrong.
        MaterializationFailedError: A source or the online store failed. Views finished before
            the failure keep their new watermark; the failing view and those after it keep their
            old one, so the next run repeats them.

    Example:
        >>> summary = run_materialization("feature_repo")  # doctest: +SKIP
        >>> print(summary.line())  # doctest: +SKIP
        materialize ok mode=auto rows dwh=2000 xiva=1234 views=2 xiva_calls=1300 ...
    """
    started = time.monotonic()
    settings = settings if settings is not None else _load_settings()
    store = _load_store(repo_path)
    feature_views = _select_views(store, views)
    end = _as_utc(end_date) if end_date is not None else datetime.now(UTC)
    mode = settings.feature_store_data_source.value
    show_progress = sys.stderr.isatty() if progress is None else progress

    online_store = _new_online_store(store)
    lock = lock_for_store(store, online_store)
    try:
        holder = lock.acquire()
    except Exception as e:  # e.g. Redis unreachable: nothing was read or written
        summary = RunSummary(status="failed", mode=mode, duration=time.monotonic() - started)
        cause, fix = _explain(e, "the lock")
        summary.error = f"{cause} Fix: {fix}"
        raise MaterializationFailedError(summary, cause, fix) from e
    if holder is not None:
        logger.info("another run holds the lock: %s", holder.describe())
        return RunSummary(
            status="skipped", mode=mode, holder=holder, duration=time.monotonic() - started
        )
    try:
        summary = RunSummary(status="ok", mode=mode)
        last_error: DataSourceError | None = None
        for selected in feature_views:
            try:
                # Read again under the lock: a run that just finished may have moved it.
                fv = store.registry.get_feature_view(selected.name, store.project)
                view_run = _materialize_view(
                    store, online_store, fv, end, settings, summary, show_progress, full
                )
                if not lock.owned():
                    raise _LockLostError()
                # The watermark moves only now, after every chunk of the view is online.
                store.registry.apply_materialization(
                    fv, store.project, view_run.start or EPOCH, view_run.end, commit=True
                )
            except DataSourceError as e:
                if mode != "auto" or isinstance(e, AllSourcesFailedError):
                    raise _failed(summary, e, f"view {selected.name}", started) from e
                # auto mode, one source down: this view reads only that source, so it keeps its
                # previous values and watermark while the others are served from the other source.
                summary.kept_views.append(selected.name)
                summary.fallbacks.append(
                    redact(f"{e.source} failed, {selected.name} kept its previous values")
                )
                logger.warning("%s: %s", summary.fallbacks[-1], redact(str(e)))
                last_error = e
                continue
            except Exception as e:  # the job's contract: any failure -> summary line + exit 1
                raise _failed(summary, e, f"view {selected.name}", started) from e
            summary.views.append(view_run)
        if last_error is not None and not summary.views:  # nothing could be served at all
            raise _failed(summary, last_error, "every view", started) from last_error
        try:
            if _rewrote_everything(store, summary.views):
                # Every customer still in a source was just written (which resets its expiry);
                # a key not rewritten belongs to a customer gone from every source: let it expire.
                logger.info("full run: online expiry reset by the writes themselves")
            else:
                summary.expiry_extended = _extend_expiry(store, online_store, feature_views)
        except Exception as e:  # the values are online and current; only their expiry is old
            summary.errors["expiry"] = redact(str(e))
            logger.warning("online expiry not extended: %s", summary.errors["expiry"])
    finally:
        lock.release()
    summary.duration = time.monotonic() - started
    logger.info("%s", summary.line())
    return summary


def _materialize_view(
    store: FeatureStore,
    online_store: OnlineStore,
    fv: FeatureView,
    end: datetime,
    settings: Settings,
    summary: RunSummary,
    show_progress: bool,
    full: bool,
) -> ViewRun:
    """Stream one view's window into the online store; returns what was written."""
    from tqdm import tqdm

    from xiva_source.pipeline.pull import PullReport, pull_batches

    last_end = None if full else fv.most_recent_end_time
    start = _as_utc(last_end) if last_end else None
    logger.info("materializing %s from %s to %s", fv.name, start or "the beginning", end)
    view_run = ViewRun(name=fv.name, start=start, end=end)
    report = PullReport(mode=summary.mode)
    join_keys = {column.name: column.dtype.to_value_type() for column in fv.entity_columns}
    feature_names = [f.name for f in fv.features]
    chunk_size = store.config.materialization_config.online_write_batch_size or 10_000
    assert fv.batch_source is not None  # _select_views keeps only views with a batch source
    with tqdm(
        desc=fv.name, unit="rows", file=sys.stderr, disable=not show_progress, leave=False
    ) as bar:
        try:
            for table in pull_batches(
                fv.batch_source,
                feature_names=feature_names,
                start_date=start,
                end_date=end,
                repo_config=store.config,
                settings=settings,
                chunk_size=chunk_size,
                report=report,
            ):
                for rows in to_online_rows(fv, table, join_keys):
                    online_store.online_write_batch(store.config, fv, rows, None)
                view_run.rows += table.num_rows
                bar.update(table.num_rows)
        finally:
            _merge_report(summary, report)
    return view_run


def _merge_report(summary: RunSummary, report: PullReport) -> None:
    for source, rows in report.rows_by_source.items():
        summary.rows_by_source[source] = summary.rows_by_source.get(source, 0) + rows
    summary.xiva_calls += report.xiva_calls
    summary.fallbacks.extend(f for f in report.fallbacks if f not in summary.fallbacks)
    summary.failed_customers += report.failed_customers
    summary.errors.update(report.errors)


def _failed(
    summary: RunSummary, error: BaseException, where: str, started: float
) -> MaterializationFailedError:
    """Mark ``summary`` failed and build the error the run raises (exit 1)."""
    summary.status = "failed"
    summary.duration = time.monotonic() - started
    cause, fix = _explain(error, where)
    summary.error = f"{cause} Fix: {fix}"
    logger.error("materialization of %s failed: %s", where, redact(str(error)))
    return MaterializationFailedError(summary, cause, fix)


def _rewrote_everything(store: FeatureStore, views: Sequence[ViewRun]) -> bool:
    """True when this run read every online view of the project in full (no window start)."""
    full = {v.name for v in views if v.start is None}
    online = {fv.name for fv in store.list_feature_views() if fv.online}
    return bool(online) and online <= full


def _extend_expiry(
    store: FeatureStore,
    online_store: OnlineStore,
    views: Sequence[FeatureView],
) -> int:
    """After a successful run: extend the online expiry of every entity key of the project."""
    client = _online_redis_client(store, online_store)
    ttl = getattr(store.config.online_store, "key_ttl_seconds", None)
    if client is None or not ttl:
        return 0
    extended = 0
    for join_keys in {tuple(sorted(fv.join_keys)) for fv in views}:
        extended += extend_online_expiry(client, store.project, join_keys, int(ttl))
    logger.info("extended the online expiry of %d entity keys to %ss", extended, ttl)
    return extended


# --------------------------------------------------------------------------------------------
# Helpers


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _load_settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as e:
        raise MaterializationConfigError(
            f"The settings are invalid: {redact(str(e))}",
            "correct the variable named above in the environment or .env (see .env.example).",
        ) from e


def _load_store(repo_path: str | os.PathLike[str]) -> FeatureStore:
    from feast import FeatureStore

    path = Path(repo_path)
    if not (path / "feature_store.yaml").is_file():
        raise MaterializationConfigError(
            f"No feature_store.yaml in {str(path)!r}.",
            "pass --repo with the Feast repository directory (default: feature_repo), "
            "run from the project root, then `make apply`.",
        )
    try:
        return FeatureStore(repo_path=str(path))
    except Exception as e:  # Feast raises many types for a bad yaml
        raise MaterializationConfigError(
            f"{path / 'feature_store.yaml'} cannot be loaded: {redact(str(e))}",
            "correct feature_store.yaml (see feature_repo/feature_store.yaml).",
        ) from e


def _select_views(store: FeatureStore, names: Iterable[str] | None) -> list[FeatureView]:
    try:
        all_views = {fv.name: fv for fv in store.list_feature_views(allow_cache=False)}
    except Exception as e:
        raise MaterializationConfigError(
            f"The registry of project {store.project!r} cannot be read: {redact(str(e))}",
            "run `make apply` (feast apply) first.",
        ) from e
    if not all_views:
        raise MaterializationConfigError(
            f"Project {store.project!r} has no feature views in its registry.",
            "run `make apply` (feast apply) first.",
        )
    wanted = list(names) if names is not None else sorted(all_views)
    unknown = [name for name in wanted if name not in all_views]
    if unknown:
        raise MaterializationConfigError(
            f"Unknown feature view(s): {', '.join(unknown)}.",
            f"use one of: {', '.join(sorted(all_views))}.",
        )
    selected = [all_views[name] for name in wanted]
    missing_source = [fv.name for fv in selected if fv.batch_source is None]
    if missing_source:
        raise MaterializationConfigError(
            f"Feature view(s) without a batch source: {', '.join(missing_source)}.",
            "give them a batch source or leave them out with --view.",
        )
    return selected


def _explain(error: BaseException, where: str) -> tuple[str, str]:
    """The cause and the fix of a failure at ``where`` (e.g. ``view x``), for the summary line."""
    from redis.exceptions import RedisError

    text = redact(str(error))
    rerun = "The watermark did not move: the next run repeats the window."
    if isinstance(error, _LockLostError):
        return (
            f"{where}: {text}",
            f"Check that Redis is reachable and that nothing deletes the lock key. {rerun}",
        )
    if isinstance(error, DataSourceError):
        cause = f"{where}: Data source {error.source!r} failed: {redact(error.cause)}"
        return cause, f"{error.hint or 'Check the source named above.'} {rerun}"
    if isinstance(error, XivaError):
        return (
            f"{where}: {text}",
            f"Check XIVA_API_BASE_URL and the Xiva credentials. {rerun}",
        )
    if isinstance(error, RedisError):
        return (
            f"{where}: the online store (Redis) failed: {text}",
            f"Check REDIS_URL and that Redis is running. {rerun}",
        )
    return (
        f"{where}: {type(error).__name__}: {text}",
        f"See the log above (--log-level INFO for details). {rerun}",
    )


# --------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m xiva_source materialize",
        description="Cron-safe incremental materialization into the online store. Exit status: "
        "0 success or skipped (another run holds the lock), 1 failure, 2 usage/config error.",
    )
    parser.add_argument("--repo", default="feature_repo", help="Feast repository directory.")
    parser.add_argument(
        "--view",
        action="append",
        dest="views",
        metavar="NAME",
        help="Materialize only this feature view (repeatable); default all.",
    )
    parser.add_argument(
        "--end-date",
        type=_parse_end_date,
        default=None,
        help="Window end, ISO 8601 (default now, UTC).",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="Ignore the watermark and read everything (a full reload).",
    )
    parser.add_argument("--no-progress", action="store_true", help="Never show the progress bar.")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Log level of the messages on stderr (default WARNING).",
    )
    return parser


def _parse_end_date(text: str) -> datetime:
    try:
        return _as_utc(datetime.fromisoformat(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date-time; use e.g. 2026-01-31T00:00:00Z"
        ) from e


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m xiva_source materialize [--repo DIR] [--view NAME] [--end-date ISO]``.

    Prints one summary line (stdout; a failure's line goes to stderr) and returns the exit status:
    0 success or skipped, 1 failure, 2 usage or configuration error.
    """
    try:
        args = _parser().parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        summary = run_materialization(
            args.repo,
            end_date=args.end_date,
            views=args.views,
            progress=False if args.no_progress else None,
            full=args.full,
        )
    except MaterializationConfigError as e:
        print(f"materialize error: {e}", file=sys.stderr)
        return 2
    except MaterializationFailedError as e:
        print(e.summary.line(), file=sys.stderr)
        return 1
    print(summary.line())
    return summary.exit_code
