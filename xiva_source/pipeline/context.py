"""What one pull works with: the offline-store options and the :class:`PullContext`.

A pull needs the settings, the options, the feature types, the window, the chunk size and the
report at every step; :class:`PullContext` carries them together instead of nine arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from xiva_source.features.catalogue import DWH_ONLY_FEATURES, FeatureType
from xiva_source.pipeline.report import PullReport
from xiva_source.settings import MergeStrategy, Settings
from xiva_source.timeutil import Clock, utc_now

if TYPE_CHECKING:
    from xiva_source.dwh.reads import CustomerRange
    from xiva_source.pipeline.retries import PendingRetries

__all__ = ["PullContext", "PullOptions", "feature_arrow_types"]

_ARROW_TYPES: dict[FeatureType, pa.DataType] = {
    "string": pa.string(),
    "float": pa.float64(),
    "int": pa.int64(),
    "timestamp": pa.timestamp("us", tz="UTC"),  # a date fact: 00:00 UTC of the day
}


def feature_arrow_types() -> dict[str, pa.DataType]:
    """Arrow type of every known feature: Xiva's ``feature_schema()``, then the DWH-only ones.

    Custom features count, so this is read per pull (they may be added at any time).
    """
    from xiva_source.features.extractor import feature_schema

    types = {name: _ARROW_TYPES[kind] for name, kind in feature_schema().items()}
    types.update(DWH_ONLY_FEATURES)
    return types


def _default_snapshot_table() -> str:
    # Read lazily: importing the DWH package's tables here would make this module heavy.
    from xiva_source import dwh

    return str(dwh.SNAPSHOT_TABLE)


@dataclass(frozen=True)
class PullOptions:
    """Offline-store options a pull needs (from ``LoyaltyOfflineStoreConfig`` when given).

    Attributes:
        snapshot_table: Table every Xiva pull is appended to.
        snapshot_url: Database of the snapshot table; ``None`` means ``DWH_URL``.
        pull_overlap_seconds: How far before ``start_date`` an incremental Xiva pull re-reads;
            ``None`` means the ``XIVA_PULL_OVERLAP_SECONDS`` setting.
        max_failed_fraction: Above this fraction of failed 360 fetches the Xiva source fails.
        write_snapshots: Append Xiva pulls to the snapshot table.
    """

    snapshot_table: str = field(default_factory=_default_snapshot_table)
    snapshot_url: str | None = None
    pull_overlap_seconds: float | None = None
    max_failed_fraction: float = 0.05
    write_snapshots: bool = True

    @classmethod
    def from_repo_config(cls, repo_config: Any | None) -> PullOptions:
        """The options of a repository's offline store config (defaults for what it lacks).

        Args:
            repo_config: Anything with an ``offline_store`` attribute holding the option fields
                (Feast's ``RepoConfig`` with a ``LoyaltyOfflineStoreConfig``); ``None`` for the
                defaults.
        """
        if repo_config is None:
            return cls()
        store = repo_config.offline_store
        defaults = cls()
        return cls(
            **{f.name: getattr(store, f.name, getattr(defaults, f.name)) for f in fields(cls)}
        )

    def overlap_seconds(self, settings: Settings) -> float:
        """The Xiva re-read overlap: this option when set, else ``XIVA_PULL_OVERLAP_SECONDS``."""
        if self.pull_overlap_seconds is not None:
            return self.pull_overlap_seconds
        return settings.xiva_pull_overlap_seconds

    def snapshot_database(self, settings: Settings) -> str:
        """The snapshot table's database URL: ``snapshot_url``, else ``DWH_URL``."""
        return self.snapshot_url or settings.dwh_url


@dataclass(frozen=True)
class PullContext:
    """Everything one pull of one source needs, passed down as one object.

    Attributes:
        settings: The settings (loaded once by the entry point).
        options: The offline-store options.
        feature_types: Arrow type per feature (:func:`feature_arrow_types`).
        feature_names: The features to return, in order.
        start: Inclusive lower bound (UTC); ``None`` reads everything.
        end: Inclusive upper bound (UTC).
        chunk_size: Most rows per yielded table.
        report: Filled in as the pull runs.
        clock: The current time (tests move it): future ``lastUpdate`` checks, retry stamps,
            the Xiva client's usage buckets.
        retries: The pending-retry store of this pull (set by ``pull_batches`` for sources
            that read Xiva, which commits it once every chunk was taken); ``None``: the Xiva
            pull opens and commits its own.
        source_starts: Per-source lower bounds (the job's watermarks per source); a source not
            in it starts at ``start``.
        customer_range: Only the customers ``lower <= customer_id < upper`` of a DWH read (a
            part of a read split over workers; ``pull.customer_ranges``); ``None``: all.
        rereads: Sources to read again from an earlier moment (``None``: the beginning) once
            the parts that settle them answer: the job's re-read marks
            (:func:`xiva_source.jobs.plan.rereads_after`).
        dwh_lookback: The parts ``(lo, hi]`` before its start an incremental DWH read takes
            again instead of the whole ``DWH_LOOKBACK_SECONDS`` (where the job's counts found
            late rows: :mod:`xiva_source.jobs.lookback`); ``None``: the whole lookback.
        dwh_written_since: ``(lo, (xmax, xip))``: also the rows stamped from ``lo`` written by
            transactions the last run's snapshot could not see (a PostgreSQL table's ``xmin``; with
            ``dwh_lookback`` empty).
    """

    settings: Settings
    options: PullOptions
    feature_types: dict[str, pa.DataType]
    feature_names: tuple[str, ...]
    start: datetime | None
    end: datetime
    chunk_size: int
    report: PullReport
    clock: Clock = utc_now
    retries: PendingRetries | None = None
    source_starts: Mapping[str, datetime | None] = field(default_factory=dict)
    customer_range: CustomerRange | None = None
    rereads: Mapping[str, datetime | None] = field(default_factory=dict)
    dwh_lookback: tuple[tuple[datetime, datetime], ...] | None = None
    dwh_written_since: tuple[datetime, tuple[int, tuple[int, ...]]] | None = None

    def start_for(self, source: str) -> datetime | None:
        """``source``'s lower bound (``xiva``, ``dwh``): its own when given, else ``start``."""
        return self.source_starts.get(source, self.start)

    @property
    def strategy(self) -> MergeStrategy:
        """Which source wins in ``auto`` mode (``FEATURE_STORE_MERGE_STRATEGY``)."""
        return self.settings.feature_store_merge_strategy
