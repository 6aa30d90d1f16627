"""The streaming pull API shared by the offline store and the materialization job.

:func:`pull_batches` reads one source over ``[start_date, end_date]`` and yields Arrow tables with
``customer_id``, the requested features and ``event_timestamp`` (UTC):

- :class:`~xiva_source.feast_plugin.sources.DwhSource`: streamed from the DWH (server-side cursor), so memory
  stays flat however many rows the table has.
- :class:`~xiva_source.feast_plugin.sources.XivaSource`: customers changed since ``start_date`` minus an
  overlap (the boundary is re-read inclusively), de-duplicated per customer, their 360 views
  fetched concurrently within the shared rate and run through the extractor; every pull is also
  appended to the snapshot table (history for training).
- :class:`~xiva_source.feast_plugin.sources.CustomerSource`: Xiva, the DWH, or both merged per customer and
  feature (``auto``), per ``FEATURE_STORE_DATA_SOURCE`` / ``FEATURE_STORE_MERGE_STRATEGY``.

In ``auto`` mode a failing source is skipped (WARNING log + :class:`PullReport` fallback); when
the only source, or both, fail the pull raises, so Feast's materialization fails, the online store
keeps its values and the watermark does not move.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from xiva_source import dwh
from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.pipeline.merge import PullReport, merge_tables, record_fallback
from xiva_source.settings import DataSourceMode, MergeStrategy, Settings, load_settings
from xiva_source.xiva_api.errors import XivaError

if TYPE_CHECKING:
    from feast.data_source import DataSource
    from feast.repo_config import RepoConfig

    from xiva_source.feast_plugin.sources import CustomerSource, DwhSource, XivaSource

__all__ = ["PullOptions", "PullReport", "pull_batches", "pull_xiva"]

logger = logging.getLogger(__name__)

ENTITY = "customer_id"
EVENT_TIMESTAMP = "event_timestamp"
_FAILED_IDS_KEPT = 5


@dataclass(frozen=True)
class PullOptions:
    """Offline-store options a pull needs (from ``LoyaltyOfflineStoreConfig`` when given).

    Attributes:
        snapshot_table: Table every Xiva pull is appended to.
        snapshot_url: Database of the snapshot table; ``None`` means ``DWH_URL``.
        pull_overlap_seconds: How far before ``start_date`` an incremental Xiva pull re-reads.
        max_failed_fraction: Above this fraction of failed 360 fetches the Xiva source fails.
        write_snapshots: Append Xiva pulls to the snapshot table.
    """

    snapshot_table: str = dwh.SNAPSHOT_TABLE
    snapshot_url: str | None = None
    pull_overlap_seconds: float = 300.0
    max_failed_fraction: float = 0.05
    write_snapshots: bool = True

    @classmethod
    def from_repo_config(cls, repo_config: RepoConfig | None) -> PullOptions:
        """Read the options off the repository's offline store config (defaults otherwise)."""
        if repo_config is None:
            return cls()
        store = repo_config.offline_store
        defaults = cls()
        return cls(
            **{
                name: getattr(store, name, getattr(defaults, name))
                for name in cls.__dataclass_fields__
            }
        )


def pull_batches(
    source: DataSource,
    *,
    feature_names: list[str],
    start_date: datetime | None,
    end_date: datetime,
    repo_config: RepoConfig | None = None,
    settings: Settings | None = None,
    chunk_size: int = 10_000,
    report: PullReport | None = None,
) -> Iterator[pa.Table]:
    """Stream one source's rows over ``[start_date, end_date]``.

    Args:
        source: A :class:`XivaSource`, :class:`DwhSource` or :class:`CustomerSource`.
        feature_names: Features to return (empty: every feature the source knows).
        start_date: Inclusive lower bound; ``None`` reads everything (first run).
        end_date: Inclusive upper bound.
        repo_config: The Feast repository config (offline store options); optional.
        settings: Settings (default :func:`load_settings`).
        chunk_size: Most rows per yielded table.
        report: Filled in as the pull runs (mode, rows per source, Xiva calls, fallbacks).

    Yields:
        Tables with ``customer_id``, ``feature_names`` and ``event_timestamp`` (UTC). Xiva and
        merged pulls have one row per customer; DWH pulls return the source's rows as they are.

    Raises:
        DataSourceError: The source failed (``DwhError`` for the DWH).
        AllSourcesFailedError: ``auto`` mode and both sources failed.
        TypeError: ``source`` is not one of this project's sources.

    Example:
        >>> report = PullReport()
        >>> for table in pull_batches(fv.batch_source, feature_names=["city"],  # doctest: +SKIP
        ...                           start_date=None, end_date=now, report=report):
        ...     write(table)
    """
    from xiva_source.feast_plugin.sources import (
        CustomerSource,
        DwhSource,
        XivaSource,
        feature_arrow_types,
    )

    settings = settings or load_settings()
    report = report if report is not None else PullReport()
    options = PullOptions.from_repo_config(repo_config)
    types = feature_arrow_types()
    end = _as_utc(end_date)
    start = _as_utc(start_date) if start_date is not None else None
    if isinstance(source, CustomerSource):
        mode = settings.feature_store_data_source
        feats = feature_names or _known_features(types, dwh_only=False)
        report.mode = mode.value
        if mode == DataSourceMode.XIVA:
            table = pull_xiva(source.xiva, start, end, settings, options, report)
            yield from _chunks(_select(table, feats, types), chunk_size)
        elif mode == DataSourceMode.DWH:
            yield from _pull_dwh(source.dwh, feats, start, end, settings, types, chunk_size, report)
        else:
            yield from _pull_auto(
                source, feats, start, end, settings, options, types, chunk_size, report
            )
    elif isinstance(source, XivaSource):
        report.mode = report.mode or DataSourceMode.XIVA.value
        table = pull_xiva(source, start, end, settings, options, report)
        feats = feature_names or _known_features(types, dwh_only=False)
        yield from _chunks(_select(table, feats, types), chunk_size)
    elif isinstance(source, DwhSource):
        report.mode = report.mode or DataSourceMode.DWH.value
        feats = feature_names or _known_features(types, dwh_only=True)
        yield from _pull_dwh(source, feats, start, end, settings, types, chunk_size, report)
    else:
        raise TypeError(
            f"source {source.name!r} is a {type(source).__name__}; the Loyalty offline store reads "
            "only XivaSource, DwhSource and CustomerSource (xiva_source.feast_plugin.sources)"
        )


# --------------------------------------------------------------------------------------------
# Xiva


def pull_xiva(
    source: XivaSource,
    start_date: datetime | None,
    end_date: datetime,
    settings: Settings,
    options: PullOptions,
    report: PullReport,
) -> pa.Table:
    """Every customer changed in ``[start_date - overlap, end_date]``: one row each, all features.

    The pull is appended to the snapshot table (a snapshot failure is logged and reported, it
    does not fail the pull).

    Raises:
        DataSourceError: Xiva failed (listing failed, or more than ``max_failed_fraction`` of the
            360 fetches failed).
    """
    from xiva_source.feast_plugin.sources import feature_arrow_types
    from xiva_source.features.extractor import feature_schema, features_from_360
    from xiva_source.xiva_api.client import XivaClient

    types = feature_arrow_types()
    names = list(feature_schema())
    since = None
    if start_date is not None:
        since = start_date - timedelta(seconds=options.pull_overlap_seconds)
    client = XivaClient(settings=settings)
    calls_before = _requests(client)
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    first_error: XivaError | None = None
    try:
        latest: dict[str, datetime] = {}
        for customer in client.iter_customers(updated_since=since):
            updated = _parse_ts(customer["lastUpdate"])
            # Changes after end_date belong to the next run (its window starts at end_date).
            if updated <= end_date and updated >= latest.get(customer["id"], updated):
                latest[customer["id"]] = updated
        for cid, result in client.iter_customers_360(latest, max_workers=settings.xiva_max_workers):
            if isinstance(result, XivaError):
                failed.append(cid)
                first_error = first_error or result
                continue
            values = features_from_360(result, now=end_date)
            ts = _as_utc(values[EVENT_TIMESTAMP])
            if ts <= end_date:
                values[EVENT_TIMESTAMP] = ts
                rows.append(values)
        if failed and len(failed) > options.max_failed_fraction * max(1, len(latest)):
            raise DataSourceError(
                "xiva",
                f"{len(failed)} of {len(latest)} customer 360 fetches failed (first: "
                f"{', '.join(failed[:_FAILED_IDS_KEPT])}; e.g. {first_error})",
                hint="Xiva is failing too often to trust this pull; check its status and "
                "XIVA_REQUESTS_PER_SECOND, or set FEATURE_STORE_DATA_SOURCE=dwh meanwhile.",
            )
    except XivaError as e:
        if isinstance(e, DataSourceError):
            raise
        raise DataSourceError(
            "xiva",
            str(e),
            hint="Check XIVA_API_BASE_URL and the Xiva credentials, or set "
            "FEATURE_STORE_DATA_SOURCE=dwh (or auto) to serve from the DWH meanwhile.",
        ) from e
    finally:
        report.xiva_calls += max(0, _requests(client) - calls_before)
        client.close()
    if failed:
        report.failed_customers += len(failed)
        report.failed_customer_ids.extend(
            failed[: _FAILED_IDS_KEPT - len(report.failed_customer_ids)]
        )
        logger.warning(
            "Xiva pull: %d of %d customer 360 fetches failed and were skipped (first: %s); "
            "they are picked up again by the next run only if they change",
            len(failed),
            len(latest),
            ", ".join(failed[:_FAILED_IDS_KEPT]),
        )
    table = dwh.rows_to_arrow(
        [ENTITY, *names, EVENT_TIMESTAMP],
        [[r.get(c) for c in (ENTITY, *names, EVENT_TIMESTAMP)] for r in rows],
        types=types,
    )
    report.add_rows("xiva", table.num_rows)
    if options.write_snapshots and table.num_rows:
        url = options.snapshot_url or settings.dwh_url
        try:
            dwh.append_snapshots(url, options.snapshot_table, table, {n: types[n] for n in names})
        except DwhError as e:
            report.errors["snapshot"] = str(e)
            logger.warning("Xiva pull not recorded in the snapshot table: %s", e)
    return table


def _requests(client: Any) -> int:
    try:
        return int(client.usage(hours=1).totals.requests)
    except Exception:  # usage counters are informative; Redis may be down
        return 0


# --------------------------------------------------------------------------------------------
# DWH


def _dwh_columns(source: DwhSource, feats: Sequence[str], settings: Settings) -> list[str]:
    """The requested features the DWH source has (reflected; the rest are null)."""
    present = {name for name, _ in source.column_types(settings)}
    return [f for f in feats if f in present]


def _stream_dwh(
    source: DwhSource,
    feats: Sequence[str],
    start: datetime | None,
    end: datetime,
    settings: Settings,
    types: Mapping[str, pa.DataType],
    chunk_size: int,
) -> Generator[pa.Table, None, None]:
    url = source.url(settings)
    for table in dwh.stream_rows(
        url,
        source.spec,
        columns=[ENTITY, *feats],
        timestamp_field=source.timestamp_field,
        start_date=start,
        end_date=end,
        chunk_size=chunk_size,
        types=types,
    ):
        yield _rename_ts(table, source.timestamp_field)


def _pull_dwh(
    source: DwhSource,
    feats: Sequence[str],
    start: datetime | None,
    end: datetime,
    settings: Settings,
    types: Mapping[str, pa.DataType],
    chunk_size: int,
    report: PullReport,
) -> Iterator[pa.Table]:
    present = _dwh_columns(source, feats, settings) if feats else []
    for table in _stream_dwh(source, present, start, end, settings, types, chunk_size):
        report.add_rows("dwh", table.num_rows)
        yield _select(table, feats, types)


# --------------------------------------------------------------------------------------------
# auto


def _pull_auto(
    source: CustomerSource,
    feats: Sequence[str],
    start: datetime | None,
    end: datetime,
    settings: Settings,
    options: PullOptions,
    types: Mapping[str, pa.DataType],
    chunk_size: int,
    report: PullReport,
) -> Iterator[pa.Table]:
    """Merge Xiva and the DWH per customer; skip (and report) a source that fails.

    Xiva's changes are held in memory (one row per changed customer); the DWH is streamed. A
    customer changed in only one source is merged with the other's current values (the DWH row
    by id; Xiva's last known values from the snapshot table), so an incremental run never
    overwrites a preferred value with the other source's.
    """
    strategy = settings.feature_store_merge_strategy
    failures: dict[str, BaseException] = {}
    xiva: pa.Table | None = None
    try:
        xiva = pull_xiva(source.xiva, start, end, settings, options, report)
    except DataSourceError as e:
        failures["xiva"] = e

    url = source.dwh.url(settings)
    dwh_feats: list[str] = []
    chunks: Generator[pa.Table, None, None] = _prepend(None, iter(()))
    first: pa.Table | None = None
    try:
        dwh_feats = _dwh_columns(source.dwh, feats, settings)
        chunks = _stream_dwh(source.dwh, dwh_feats, start, end, settings, types, chunk_size)
        first = next(chunks, None)  # connect now, so a dead DWH is a fallback, not a crash
    except DataSourceError as e:
        failures["dwh"] = e

    if len(failures) == 2:
        raise AllSourcesFailedError(failures) from failures["dwh"]
    if "xiva" in failures:
        record_fallback(report, "xiva", "dwh", failures["xiva"])
    if "dwh" in failures:
        record_fallback(report, "dwh", "xiva", failures["dwh"])
        assert xiva is not None
        yield from _chunks(_select(xiva, feats, types), chunk_size)
        return

    pending = xiva
    xiva_ids = set(pending.column(ENTITY).to_pylist()) if pending is not None else set()
    seen: set[str] = set()
    snapshot_url = options.snapshot_url or settings.dwh_url
    with contextlib.closing(chunks):  # return the DWH connection even if the consumer stops
        yield from _merge_dwh_chunks(
            _prepend(first, chunks),
            pending,
            xiva_ids,
            seen,
            snapshot_url,
            options,
            feats,
            end,
            types,
            strategy,
            report,
        )
    if pending is not None:
        # Xiva customers the DWH window did not contain: merge with their current DWH row. On a
        # full pull (no start) the window held every DWH row, so there is nothing to look up.
        rest_ids = [i for i in pending.column(ENTITY).to_pylist() if i not in seen]
        for start_i in range(0, len(rest_ids), chunk_size):
            batch_ids = rest_ids[start_i : start_i + chunk_size]
            if start is None:
                yield _select(_take_ids(pending, batch_ids), feats, types)
                continue
            current = dwh.lookup_rows(
                url,
                source.dwh.spec,
                batch_ids,
                columns=dwh_feats,
                timestamp_field=source.dwh.timestamp_field,
                end_date=end,
                types=types,
            )
            current = _rename_ts(current, source.dwh.timestamp_field)
            yield merge_tables(_take_ids(pending, batch_ids), current, feats, strategy, types)


def _merge_dwh_chunks(
    chunks: Iterator[pa.Table],
    pending: pa.Table | None,
    xiva_ids: set[str],
    seen: set[str],
    snapshot_url: str,
    options: PullOptions,
    feats: Sequence[str],
    end: datetime,
    types: Mapping[str, pa.DataType],
    strategy: MergeStrategy,
    report: PullReport,
) -> Iterator[pa.Table]:
    """Merge each DWH chunk with Xiva's rows (this pull's, else the last known snapshot)."""
    for chunk in chunks:
        report.add_rows("dwh", chunk.num_rows)
        chunk = dwh.latest_per_customer(chunk)
        ids = chunk.column(ENTITY).to_pylist()
        seen.update(ids)
        in_xiva = [i for i in ids if i in xiva_ids]
        x_part = _take_ids(pending, in_xiva) if pending is not None else None
        others = [i for i in ids if i not in xiva_ids]
        last_known = _last_known_xiva(snapshot_url, options, others, feats, end, types, report)
        x_rows = _concat([t for t in (x_part, last_known) if t is not None])
        yield merge_tables(x_rows, chunk, feats, strategy, types)


def _last_known_xiva(
    url: str,
    options: PullOptions,
    ids: Sequence[str],
    feats: Sequence[str],
    end: datetime,
    types: Mapping[str, pa.DataType],
    report: PullReport,
) -> pa.Table | None:
    if not ids or not options.write_snapshots:
        return None
    from xiva_source.feast_plugin.sources import DWH_ONLY_TYPES

    xiva_feats = [f for f in feats if f not in DWH_ONLY_TYPES]
    try:
        table = dwh.read_latest_snapshots(
            url, options.snapshot_table, ids, xiva_feats, end_date=end, types=types
        )
    except DwhError as e:
        report.errors["snapshot"] = str(e)
        logger.warning("Xiva's last known values unavailable (snapshot table): %s", e)
        return None
    return None if table is None else table.drop_columns([dwh.PULLED_AT])


# --------------------------------------------------------------------------------------------
# helpers


def _known_features(types: Mapping[str, pa.DataType], *, dwh_only: bool) -> list[str]:
    from xiva_source.feast_plugin.sources import DWH_ONLY_TYPES

    names = [n for n in types if n not in DWH_ONLY_TYPES]
    return names + list(DWH_ONLY_TYPES) if dwh_only else names


def _select(
    table: pa.Table | None, feats: Sequence[str], types: Mapping[str, pa.DataType]
) -> pa.Table:
    """``customer_id``, ``feats`` (absent ones null), ``event_timestamp``, types aligned."""
    return merge_tables(table, None, feats, MergeStrategy.XIVA_FIRST, types)


def _rename_ts(table: pa.Table, timestamp_field: str) -> pa.Table:
    if timestamp_field == EVENT_TIMESTAMP:
        return table
    return table.rename_columns(
        [EVENT_TIMESTAMP if c == timestamp_field else c for c in table.column_names]
    )


def _take_ids(table: pa.Table | None, ids: Sequence[str]) -> pa.Table | None:
    if table is None or not ids:
        return None
    return table.filter(pc.is_in(table.column(ENTITY), value_set=pa.array(list(ids), pa.string())))


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    common = [c for c in tables[0].column_names if all(c in t.column_names for t in tables)]
    return pa.concat_tables([t.select(common) for t in tables], promote_options="default")


def _prepend(first: pa.Table | None, rest: Iterator[pa.Table]) -> Generator[pa.Table, None, None]:
    if first is not None:
        yield first
        yield from rest


def _chunks(table: pa.Table, chunk_size: int) -> Iterator[pa.Table]:
    if table.num_rows == 0:
        return
    for batch in table.combine_chunks().to_batches(max_chunksize=chunk_size):
        yield pa.Table.from_batches([batch])


def _parse_ts(value: str) -> datetime:
    return _as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def _as_utc(moment: datetime) -> datetime:
    if hasattr(moment, "to_pydatetime"):
        moment = moment.to_pydatetime()
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
