"""The streaming pull API shared by the offline store and the materialization job.

:func:`pull_batches` reads one source over ``[start_date, end_date]`` and yields Arrow tables with
``customer_id``, the requested features and ``event_timestamp`` (UTC):

- a DWH source (:class:`~xiva_source.pipeline.sources.DwhSourceSpec`): streamed from the DWH
  (server-side cursor), so memory stays flat however many rows the table has
  (:mod:`~xiva_source.pipeline.dwh_pull`);
- a Xiva source (:class:`~xiva_source.pipeline.sources.XivaSourceSpec`): customers changed since
  ``start_date`` minus an overlap, their 360 views run through the extractor, every pull appended
  to the snapshot table (:mod:`~xiva_source.pipeline.xiva_pull`);
- a customer source (:class:`~xiva_source.pipeline.sources.CustomerSourceSpec`): Xiva, the DWH,
  or both merged per customer and feature (``auto``, :mod:`~xiva_source.pipeline.auto`), per
  ``FEATURE_STORE_DATA_SOURCE`` / ``FEATURE_STORE_MERGE_STRATEGY``.

In ``auto`` mode a failing source is skipped (WARNING log + :class:`PullReport` fallback); when
the only source, or both, fail the pull raises, so a materialization fails, the online store
keeps its values and the watermark does not move.

A pull that reads the DWH alone can be cut into customer ranges (:func:`customer_ranges`), each
read by :func:`pull_batches` with ``customer_range=``: every row in exactly one range, a
customer's rows in one range, oldest first (the Ray engine's parts). A pull with a Xiva side
cannot: Xiva's customer list is not cut by id range cheaply, and ``auto``'s merge order (Xiva's
changes, then the DWH window merged with them) must stay in one stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, cast

import pyarrow as pa

from xiva_source.features.catalogue import DWH_ONLY_FEATURES
from xiva_source.pipeline.auto import pull_auto
from xiva_source.pipeline.context import PullContext, PullOptions, feature_arrow_types
from xiva_source.pipeline.dwh_pull import dwh_boundaries, pull_dwh
from xiva_source.pipeline.report import PullReport
from xiva_source.pipeline.retries import PendingRetries
from xiva_source.pipeline.sources import (
    CustomerSourceSpec,
    DwhSourceSpec,
    PullSource,
    source_kind,
)
from xiva_source.pipeline.tables import conform
from xiva_source.pipeline.xiva_pull import iter_xiva
from xiva_source.settings import DataSourceMode, Settings
from xiva_source.timeutil import as_utc

if TYPE_CHECKING:
    from xiva_source.dwh.reads import CustomerRange

__all__ = ["PullOptions", "PullReport", "customer_ranges", "dwh_read", "pull_batches"]


def pull_batches(
    source: PullSource,
    *,
    settings: Settings,
    feature_names: Sequence[str],
    start_date: datetime | None,
    end_date: datetime,
    options: PullOptions | None = None,
    chunk_size: int = 10_000,
    report: PullReport | None = None,
    source_starts: Mapping[str, datetime | None] | None = None,
    customer_range: CustomerRange | None = None,
    rereads: Mapping[str, datetime | None] | None = None,
    dwh_lookback: Sequence[tuple[datetime, datetime]] | None = None,
    dwh_written_since: tuple[datetime, tuple[int, tuple[int, ...]]] | None = None,
) -> Iterator[pa.Table]:
    """Stream one source's rows over ``[start_date, end_date]``.

    Args:
        source: A Xiva, DWH or customer source (the Feast plugin's ``XivaSource``, ``DwhSource``,
            ``CustomerSource``; see :mod:`xiva_source.pipeline.sources`).
        settings: The settings (mode, merge strategy, URLs, credentials).
        feature_names: Features to return (empty: every feature the source knows).
        start_date: Inclusive lower bound; ``None`` reads everything (first run).
        end_date: Inclusive upper bound.
        options: The offline store's options (``PullOptions.from_repo_config``); defaults if
            ``None``.
        chunk_size: Most rows per yielded table.
        report: Filled in as the pull runs (mode, rows per source, Xiva calls, fallbacks).
        source_starts: Lower bound per source (``xiva``, ``dwh``), overriding ``start_date``
            for that source: the materialization job's watermarks per source.
        customer_range: Only the customers ``lower <= customer_id < upper`` (one of
            :func:`customer_ranges`): a part of a pull that reads the DWH alone.
        rereads: Sources to read again from an earlier moment than their start (``None``: the
            beginning) once the parts that settle their rows answer: the job's re-read marks
            (Xiva's rows of an earlier run not merged with the DWH or not recorded;
            :mod:`xiva_source.jobs.plan`). ``report.reread`` says whether it happened.
        dwh_lookback: The parts ``(lo, hi]`` before its start an incremental DWH read takes
            again instead of the whole ``DWH_LOOKBACK_SECONDS`` (:mod:`xiva_source.jobs.lookback`);
            ``None``: the whole lookback. ``report.dwh_lookback_rows`` counts the rows read
            from before the start.
        dwh_written_since: ``(lo, (xmax, xip))``: besides ``dwh_lookback``, the rows stamped
            from ``lo`` that the last run's snapshot could not see (a PostgreSQL table's ``xmin``).

    Yields:
        Tables with ``customer_id``, ``feature_names`` and ``event_timestamp`` (UTC). Xiva and
        merged pulls have one row per customer; DWH pulls return the source's rows as they are,
        except that a source with a created timestamp column gives one row per customer and
        timestamp (the latest created) and its ``created_timestamp`` column.

    Raises:
        DataSourceError: The source failed (``DwhError`` for the DWH).
        AllSourcesFailedError: ``auto`` mode and both sources failed.
        TypeError: ``source`` is not one of this project's sources.
        ValueError: ``customer_range`` for a pull with a Xiva side (it cannot be cut).

    Example:
        >>> report = PullReport()
        >>> for table in pull_batches(fv.batch_source, settings=settings,  # doctest: +SKIP
        ...                           feature_names=["city"], start_date=None, end_date=now,
        ...                           report=report):
        ...     write(table)
    """
    kind = _kind(source)
    if customer_range is not None and dwh_read(source, settings) is None:
        raise ValueError(
            f"source {source.name!r} reads Xiva ({settings.feature_store_data_source.value} "
            "mode): only a pull that reads the DWH alone can be cut into customer ranges"
        )
    options = options if options is not None else PullOptions()
    report = report if report is not None else PullReport()
    retries = None
    if kind != "dwh":
        # Keyed by the source the view reads, so two views never take each other's retries.
        retries = PendingRetries.beside_snapshots(settings, options, source.name, report)
    ctx = _context(
        settings,
        options,
        feature_names,
        start_date,
        end_date,
        report,
        dwh_only=kind == "dwh",
        chunk_size=chunk_size,
        retries=retries,
        source_starts=source_starts,
        customer_range=customer_range,
        rereads=rereads,
        dwh_lookback=dwh_lookback,
        dwh_written_since=dwh_written_since,
    )
    if kind == "customer":
        customer = cast(CustomerSourceSpec, source)
        mode = settings.feature_store_data_source
        ctx.report.mode = mode.value
        if mode == DataSourceMode.XIVA:
            yield from _xiva_chunks(ctx)
        elif mode == DataSourceMode.DWH:
            yield from pull_dwh(customer.dwh, replace(ctx, start=ctx.start_for("dwh")))
        else:
            yield from pull_auto(customer, ctx)
            # Every chunk was taken: the pending customers read may now be forgotten.
            if retries is not None:
                retries.commit()
    elif kind == "xiva":
        ctx.report.mode = ctx.report.mode or DataSourceMode.XIVA.value
        yield from _xiva_chunks(ctx)
    else:
        ctx.report.mode = ctx.report.mode or DataSourceMode.DWH.value
        yield from pull_dwh(cast(DwhSourceSpec, source), replace(ctx, start=ctx.start_for("dwh")))


def dwh_read(source: PullSource, settings: Settings) -> DwhSourceSpec | None:
    """The DWH source a pull of ``source`` reads alone, else ``None`` (the pull reads Xiva).

    A DWH source, or a customer source in ``dwh`` mode (``FEATURE_STORE_DATA_SOURCE``).

    Raises:
        TypeError: ``source`` is not one of this project's sources.
    """
    kind = _kind(source)
    if kind == "dwh":
        return cast(DwhSourceSpec, source)
    if kind == "customer" and settings.feature_store_data_source == DataSourceMode.DWH:
        return cast(CustomerSourceSpec, source).dwh
    return None


def customer_ranges(
    source: PullSource,
    parts: int,
    *,
    settings: Settings,
    start_date: datetime | None,
    end_date: datetime,
    source_starts: Mapping[str, datetime | None] | None = None,
) -> list[CustomerRange] | None:
    """The customer ranges cutting a pull of ``source`` into at most ``parts`` parts.

    Each range is read by :func:`pull_batches` with the same window and ``customer_range=``;
    together they read every row of the window exactly once, a customer's rows in one range
    (cut at the window's ids, :func:`~xiva_source.pipeline.dwh_pull.dwh_boundaries`).

    Args:
        source: The pull's source.
        parts: How many parts are wanted (fewer come back when there are fewer customers).
        settings: As for :func:`pull_batches`.
        start_date: As for :func:`pull_batches`.
        end_date: As for :func:`pull_batches`.
        source_starts: As for :func:`pull_batches`.

    Returns:
        ``[(None, b1), (b1, b2), ..., (bn, None)]``; ``None`` when the pull reads Xiva (it
        cannot be cut: the module's docstring says why).

    Raises:
        DwhError: The DWH failed while the boundaries were read.
        TypeError: ``source`` is not one of this project's sources.
    """
    dwh_source = dwh_read(source, settings)
    if dwh_source is None:
        return None
    if parts <= 1:
        return [(None, None)]
    ctx = _context(
        settings,
        None,
        (),
        start_date,
        end_date,
        PullReport(),
        dwh_only=True,
        source_starts=source_starts,
    )
    bounds = dwh_boundaries(dwh_source, replace(ctx, start=ctx.start_for("dwh")), parts)
    edges: list[str | None] = [None, *bounds, None]
    return list(itertools.pairwise(edges))


def _kind(source: PullSource) -> str:
    kind = source_kind(source)
    if kind not in ("xiva", "dwh", "customer"):
        raise TypeError(
            f"source {getattr(source, 'name', source)!r} is a {type(source).__name__}; the "
            "Loyalty offline store reads only XivaSource, DwhSource and CustomerSource "
            "(xiva_source.feast_plugin.sources)"
        )
    return kind


def _context(
    settings: Settings,
    options: PullOptions | None,
    feature_names: Sequence[str],
    start_date: datetime | None,
    end_date: datetime,
    report: PullReport,
    *,
    dwh_only: bool,
    chunk_size: int = 10_000,
    retries: PendingRetries | None = None,
    source_starts: Mapping[str, datetime | None] | None = None,
    customer_range: CustomerRange | None = None,
    rereads: Mapping[str, datetime | None] | None = None,
    dwh_lookback: Sequence[tuple[datetime, datetime]] | None = None,
    dwh_written_since: tuple[datetime, tuple[int, tuple[int, ...]]] | None = None,
) -> PullContext:
    """One pull's context: the window in UTC, every known feature when none is named."""
    types = feature_arrow_types()
    return PullContext(
        settings=settings,
        options=options if options is not None else PullOptions(),
        feature_types=types,
        feature_names=tuple(feature_names) or _known_features(types, dwh_only=dwh_only),
        start=as_utc(start_date) if start_date is not None else None,
        end=as_utc(end_date),
        chunk_size=chunk_size,
        report=report,
        retries=retries,
        source_starts={k: as_utc(v) if v else None for k, v in (source_starts or {}).items()},
        customer_range=customer_range,
        rereads={k: as_utc(v) if v else None for k, v in (rereads or {}).items()},
        dwh_lookback=(
            tuple((as_utc(lo), as_utc(hi)) for lo, hi in dwh_lookback)
            if dwh_lookback is not None
            else None
        ),
        dwh_written_since=(
            (as_utc(dwh_written_since[0]), dwh_written_since[1]) if dwh_written_since else None
        ),
    )


def _xiva_chunks(ctx: PullContext) -> Iterator[pa.Table]:
    """Xiva streamed; pending customers read are forgotten once the consumer took their chunk."""
    ctx = replace(ctx, start=ctx.start_for("xiva"))
    for table in iter_xiva(ctx, commit_retries=True):
        yield conform(table, ctx.feature_names, ctx.feature_types)


def _known_features(types: Mapping[str, pa.DataType], *, dwh_only: bool) -> tuple[str, ...]:
    """Every feature a source serves: Xiva's, plus the DWH-only ones for a DWH source."""
    names = [n for n in types if n not in DWH_ONLY_FEATURES]
    return tuple(names + list(DWH_ONLY_FEATURES)) if dwh_only else tuple(names)
