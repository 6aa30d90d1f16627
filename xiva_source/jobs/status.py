"""What ``xiva-source status`` shows: freshness per feature view and source, and the last run.

Read-only and cheap to run every minute from a health check: the job's state (watermarks per
source, the last run's result: :mod:`xiva_source.jobs.state`), Feast's registry (each view's
watermark), the pending-retry table (:mod:`xiva_source.dwh.pending`), the Xiva usage counters of
the current UTC hour (:mod:`xiva_source.xiva_api.usage`) and a count of the project's online keys
(a ``SCAN`` of its key pattern, :mod:`xiva_source.feast_plugin.redis_scan`; never ``DBSIZE``,
which counts every project). A part that cannot be read is shown as unknown with the reason; the
others are still shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.feast_runs import carry_on, view_mode
from xiva_source.feast_plugin.run_state import MODE_SOURCES, StateSnapshot
from xiva_source.jobs.state import state_for_store
from xiva_source.redaction import redact
from xiva_source.timeutil import as_utc, human_duration, to_iso

if TYPE_CHECKING:
    from feast import FeatureStore

    from xiva_source.feast_plugin.registry_reader import LightRepository
    from xiva_source.redis_client import RedisClient
    from xiva_source.settings import Settings

__all__ = [
    "HEALTH_EXIT_CODES",
    "HealthVerdict",
    "SourceFreshness",
    "StoreStatus",
    "ViewStatus",
    "collect_status",
    "online_store_down",
]

HEALTH_EXIT_CODES = {
    "healthy": 0,
    "stale": 1,
    "state corrupted": 4,
    "online store down": 5,
    "dwh down": 6,
}
"""``xiva-source status`` as a health check (``--max-age`` or ``--check``): one distinct exit
status per kind of trouble (2 stays a usage or configuration error; docs/operations.md)."""

logger = logging.getLogger(__name__)


@dataclass
class SourceFreshness:
    """One source's watermark for one view."""

    source: str
    watermark: datetime | None
    age_seconds: float | None
    carried: bool = False
    """The watermark is where a ``feast materialize`` left the source (the next run's start)."""


@dataclass
class ViewStatus:
    """One feature view: Feast's watermark, each source's, and the last run that touched it."""

    name: str
    watermark: datetime | None
    """Feast's (``most_recent_end_time``): every source is online up to it."""
    age_seconds: float | None
    sources: list[SourceFreshness] = field(default_factory=list)
    last_run: dict[str, Any] | None = None

    def older_than(self, max_age: timedelta) -> bool:
        """Never materialized, or its watermark is older than ``max_age``."""
        return self.age_seconds is None or self.age_seconds > max_age.total_seconds()


@dataclass(frozen=True)
class HealthVerdict:
    """What the health check concludes: the kind (a key of :data:`HEALTH_EXIT_CODES`), why, and
    what to do (both empty when healthy)."""

    kind: str
    problem: str = ""
    fix: str = ""

    @property
    def exit_code(self) -> int:
        """The command's exit status for this verdict."""
        return HEALTH_EXIT_CODES[self.kind]

    def line(self, label: str) -> str:
        """One line for stderr: ``<label>: <kind>: <problem>; fix: <fix>``."""
        return f"{label}: {self.kind}: {self.problem}; fix: {self.fix}"


def online_store_down(error: BaseException) -> HealthVerdict:
    """The verdict when the online store (where the run state lives) cannot be reached."""
    return HealthVerdict(
        "online store down",
        f"the online store (Redis, holding the run state) cannot be read: {_short(error)}",
        "start Redis or check REDIS_URL (REDIS_TYPE, the sentinels); the features cannot be "
        "served and no run can carry on meanwhile",
    )


@dataclass
class StoreStatus:
    """Everything ``xiva-source status`` prints; ``None`` values are unknown (see ``problems``)."""

    project: str
    now: datetime
    views: list[ViewStatus] = field(default_factory=list)
    last_run: dict[str, Any] | None = None
    pending_retries: dict[str, int] | None = None
    xiva_usage_hour: str | None = None
    xiva_usage: dict[str, int] | None = None
    online_keys: int | None = None
    problems: dict[str, str] = field(default_factory=dict)
    """What could not be read (``state``, ``pending``, ``usage``, ``online_keys``): why."""
    state_error: BaseException | None = None
    """Why the run state could not be read at all (the online store down), if so."""
    state_corrupted: bool = False
    """A field of the run state (or all of it) does not parse: ``problems["state"]`` repairs it."""
    dwh_error: BaseException | None = None
    """Why the snapshot database (the DWH unless ``snapshot_url``) could not be read, if so."""

    def stale(self, max_age: timedelta) -> list[str]:
        """The views older than ``max_age`` (or never materialized)."""
        return [view.name for view in self.views if view.older_than(max_age)]

    def verdict(self, max_age: timedelta | None) -> HealthVerdict:
        """The health check's conclusion, the gravest first: the online store down (nothing
        else can be trusted), the run state corrupted, the DWH down, then views older than
        ``max_age`` (``None``: no freshness limit)."""
        if self.state_error is not None:
            return online_store_down(self.state_error)
        if self.state_corrupted:
            return HealthVerdict(
                "state corrupted",
                f"the run state is corrupted: {self.problems.get('state', '')}".rstrip(": "),
                "run the repair the problem names (the next materialize run refuses to start "
                "until then, exit 4)",
            )
        if self.dwh_error is not None:
            return HealthVerdict(
                "dwh down",
                f"the DWH (the snapshot and pending-retry tables) cannot be read: "
                f"{_short(self.dwh_error)}",
                "start the warehouse or check DWH_URL (snapshot_url in feature_store.yaml if "
                "set); runs in auto mode fall back to Xiva meanwhile (exit 3), dwh mode fails",
            )
        stale = self.stale(max_age) if max_age is not None else []
        if stale and max_age is not None:
            return HealthVerdict(
                "stale",
                f"{', '.join(stale)} older than {human_duration(max_age)} (or never materialized)",
                "check the last run above and the materialization cron job",
            )
        return HealthVerdict("healthy")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times ISO 8601 UTC, ages in seconds)."""
        return {
            "project": self.project,
            "now": to_iso(self.now),
            "views": [
                {
                    "name": view.name,
                    "watermark": _iso(view.watermark),
                    "age_seconds": _round(view.age_seconds),
                    "sources": {
                        s.source: {
                            "watermark": _iso(s.watermark),
                            "age_seconds": _round(s.age_seconds),
                            "carried_from_feast": s.carried,
                        }
                        for s in view.sources
                    },
                    "last_run": view.last_run,
                }
                for view in self.views
            ],
            "last_run": self.last_run,
            "pending_retries": self.pending_retries,
            "xiva_usage": (
                None
                if self.xiva_usage is None
                else {"hour": self.xiva_usage_hour, **self.xiva_usage}
            ),
            "online_keys": self.online_keys,
            "problems": self.problems,
        }

    def lines(self) -> list[str]:
        """The human-readable report, one fact per line."""
        out = [f"project {self.project} at {to_iso(self.now)}"]
        for view in self.views:
            run = view.last_run or {}
            ran = (
                f"last run {run.get('outcome')} rows={run.get('rows')} "
                f"duration={run.get('duration_seconds', 0):.1f}s at {run.get('finished_at')}"
                if run
                else "no run recorded"
            )
            out.append(
                f"view {view.name}: watermark {_iso(view.watermark) or 'none'} "
                f"(age {_age(view.age_seconds)}); {ran}"
            )
            for s in view.sources:
                out.append(
                    f"  source {s.source}: watermark {_iso(s.watermark) or 'none'} "
                    f"(age {_age(s.age_seconds)})"
                    + (" carried on from feast materialize" if s.carried else "")
                )
        last = self.last_run
        if last:
            rows = " ".join(f"{k}={v}" for k, v in sorted(last.get("rows_by_source", {}).items()))
            text = (
                f"last run: {last.get('outcome')} (exit {last.get('exit_code')}) at "
                f"{last.get('finished_at')} mode={last.get('mode')} rows {rows or 'none=0'} "
                f"duration={last.get('duration_seconds', 0):.1f}s"
            )
            if last.get("degraded"):
                text += f"; degraded: {', '.join(last['degraded'])}"
            if last.get("error"):
                text += f"; error: {last['error']}"
            out.append(text)
        else:
            out.append("last run: none recorded")
        if self.pending_retries is not None:
            per = " ".join(f"{k}={v}" for k, v in sorted(self.pending_retries.items()))
            total = sum(self.pending_retries.values())
            out.append(f"pending retries: {total}" + (f" ({per})" if per else ""))
        if self.xiva_usage is not None:
            counts = " ".join(f"{k}={v}" for k, v in self.xiva_usage.items())
            out.append(f"xiva usage this hour ({self.xiva_usage_hour}): {counts}")
        if self.online_keys is not None:
            out.append(f"online keys: {self.online_keys}")
        for part, problem in sorted(self.problems.items()):
            out.append(f"unknown {part}: {problem}")
        return out


def collect_status(
    store: FeatureStore | LightRepository,
    settings: Settings,
    client: RedisClient | None,
    *,
    now: datetime,
) -> StoreStatus:
    """Gather the status of ``store``'s project (each part best-effort; see ``problems``).

    Args:
        store: The feature store (its registry and online store), or the registry read
            without Feast's SDK (:func:`~xiva_source.cli.xiva.open_registry`).
        settings: The settings the command loaded.
        client: The online store's Redis (``None``: not Redis; the state is then a file).
        now: The moment ages are measured from.
    """
    status = StoreStatus(project=store.project, now=now)
    state = StateSnapshot.empty()
    try:
        state = state_for_store(store, client).load()
    except Exception as e:
        status.problems["state"] = _short(e)
        status.state_error = e
    corrupted = state.corruptions()
    if corrupted:  # each with its repair; the readable fields are still shown
        status.problems["state"] = " ".join(str(e) for e in corrupted)
        status.state_corrupted = True
    marks = state.watermarks()
    status.last_run = state.last_run()
    views: list[Any] = store.list_feature_views()  # Feast's views, or LightView
    for fv in sorted(views, key=lambda v: v.name):
        if fv.batch_source is None:  # customer_segments: segmentation writes it, never materialized
            continue
        end = as_utc(fv.most_recent_end_time) if fv.most_recent_end_time else None
        view = ViewStatus(
            name=fv.name,
            watermark=end,
            age_seconds=(now - end).total_seconds() if end else None,
            last_run=state.last_run(fv.name),
        )
        # Where the next run starts: the job's watermarks, moved by Feast's confirmed pulls.
        mode = view_mode(fv.batch_source, settings.feature_store_data_source.value)
        stored = {s: marks.get((fv.name, s)) for s in MODE_SOURCES.get(mode, ())}
        intervals = fv.materialization_intervals or []
        carried = carry_on(state, fv.name, mode, stored, intervals, now)
        shown = dict(stored if carried.other_mode else carried.marks)
        shown.update({s: m for (name, s), m in marks.items() if name == fv.name and s not in shown})
        for source, mark in sorted(shown.items()):
            if mark is not None:
                age = (now - mark).total_seconds()
                moved = source in carried.carried and carried.other_mode is None
                view.sources.append(SourceFreshness(source, mark, age, moved))
        status.views.append(view)
    _pending(status, store, settings)
    _usage(status, settings, now)
    _online_keys(status, store, client)
    return status


def _pending(
    status: StoreStatus, store: FeatureStore | LightRepository, settings: Settings
) -> None:
    from xiva_source.dwh.pending import list_pending, pending_table_name
    from xiva_source.pipeline.context import PullOptions

    try:
        options = PullOptions.from_repo_config(store.config)
        counts, _ = list_pending(
            options.snapshot_database(settings),
            pending_table_name(options.snapshot_table),
            limit=0,
        )
        status.pending_retries = counts
    except Exception as e:
        status.problems["pending"] = _short(e)
        status.dwh_error = e


def _usage(status: StoreStatus, settings: Settings, now: datetime) -> None:
    if not settings.redis_url:
        status.problems["usage"] = "no REDIS_URL: usage counters are kept per process"
        return
    from xiva_source.redis_client import redis_for_settings
    from xiva_source.xiva_api.usage import RedisUsageStore, usage_prefix_for

    try:
        client = redis_for_settings(settings)
    except Exception as e:  # a cluster's nodes unreachable: this part is unknown, not the rest
        status.problems["usage"] = _short(e)
        return
    try:
        report = RedisUsageStore(client, usage_prefix_for(settings)).report(1, now=now)
        status.xiva_usage_hour = report.hours[-1] if report.hours else None
        status.xiva_usage = {k: int(v) for k, v in report.totals.model_dump().items()}
    except Exception as e:
        status.problems["usage"] = _short(e)
    finally:
        client.close()


def _online_keys(
    status: StoreStatus, store: FeatureStore | LightRepository, client: RedisClient | None
) -> None:
    if client is None:
        status.problems["online_keys"] = "the online store is not Redis"
        return
    from xiva_source.feast_plugin.redis_format import RedisLayout
    from xiva_source.feast_plugin.redis_scan import scan_entity_keys

    try:
        total = 0
        for join_keys in {tuple(sorted(fv.join_keys)) for fv in store.list_feature_views()}:
            layout = RedisLayout.of(store.config, join_keys)
            total += sum(1 for _ in scan_entity_keys(client, layout, unique=False))
        status.online_keys = total
    except Exception as e:
        status.problems["online_keys"] = _short(e)


def _short(error: BaseException) -> str:
    text = " ".join(redact(str(error)).split())
    return f"{type(error).__name__}: {text[:300]}"


def _iso(value: datetime | None) -> str | None:
    return to_iso(value) if value is not None else None


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
