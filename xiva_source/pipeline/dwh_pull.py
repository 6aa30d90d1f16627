"""Pull from the DWH: a table or query streamed over its timestamp column (server-side cursor).

A read may be cut into customer ranges (:func:`dwh_boundaries`, ``PullContext.customer_range``)
so that workers (Ray tasks) read the parts of one window in parallel, each through
:func:`pull_dwh`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from datetime import datetime, timedelta

import pyarrow as pa

from xiva_source import dwh
from xiva_source.dwh.facts import counts_to_facts, source_columns
from xiva_source.features.catalogue import ENTITY, EVENT_TIMESTAMP
from xiva_source.pipeline.context import PullContext
from xiva_source.pipeline.sources import DwhSourceSpec
from xiva_source.pipeline.tables import conform, rename_timestamp
from xiva_source.timeutil import as_utc

__all__ = [
    "dwh_boundaries",
    "dwh_columns",
    "lookback_start",
    "lookup_dwh",
    "pull_dwh",
    "stream_dwh",
]


def dwh_columns(source: DwhSourceSpec, ctx: PullContext) -> list[str]:
    """The source columns for the requested features (reflected; the rest are served null).

    A fact the table lacks is read through its count column (``last_payment_date`` through
    ``last_purchase_days_ago``, ``birth_date`` through ``age``; :mod:`xiva_source.dwh.facts`);
    :func:`stream_dwh` and :func:`lookup_dwh` turn the counts back into the facts.

    Raises:
        DwhError: The DWH cannot be reached or the table does not exist.
    """
    present = {name for name, _ in source.column_types(ctx.settings)}
    return source_columns(ctx.feature_names, present)


def stream_dwh(
    source: DwhSourceSpec, ctx: PullContext, columns: Sequence[str]
) -> Generator[pa.Table, None, None]:
    """The source's rows in the window, ``columns`` only, timestamp named ``event_timestamp``.

    An incremental read starts ``DWH_LOOKBACK_SECONDS`` before ``ctx.start``: rows an ETL loads
    late (stamped before the previous run's end, committed after it) are read by the next runs
    until they fall out of the lookback. Rows come oldest first, so a writer whose last write
    wins keeps each customer's latest row; a row read again is written again with the same
    values and timestamp (idempotent). Only ``ctx.customer_range`` when it is set. A source with a
    created timestamp column yields one row per customer and timestamp, the latest created (a tie
    on the timestamp decided as Feast decides it;
    :meth:`~xiva_source.dwh.reads.TableSpec.from_clause`), with its ``created_timestamp``.

    Raises:
        DwhError: The DWH failed (when the first chunk is read).
    """
    for table in dwh.stream_rows(
        source.url(ctx.settings),
        source.spec,
        columns=[ENTITY, *columns],
        timestamp_field=source.timestamp_field,
        start_date=lookback_start(ctx),
        end_date=ctx.end,
        chunk_size=ctx.chunk_size,
        types=ctx.feature_types,
        order_by_timestamp=True,
        customer_range=ctx.customer_range,
        also=ctx.dwh_lookback if ctx.start is not None else None,
        written_since=ctx.dwh_written_since if ctx.start is not None else None,
    ):
        table = counts_to_facts(table, source.timestamp_field, keep=ctx.feature_names)
        table = rename_timestamp(
            table, source.timestamp_field, source.spec.created_timestamp_column
        )
        _count_lookback_rows(table, ctx)
        yield table


def dwh_boundaries(source: DwhSourceSpec, ctx: PullContext, parts: int) -> list[str]:
    """Customer ids cutting :func:`stream_dwh`'s window into at most ``parts`` ranges.

    The window is the read's (the lookback included), so the ranges balance the rows it reads;
    the ranges ``[None, b1), [b1, b2), ..., [bn, None)`` cover every row exactly once whatever
    the boundaries are (:func:`~xiva_source.dwh.reads.customer_boundaries`).

    Raises:
        DwhError: The DWH failed.
    """
    # Loaded on first use (SQLAlchemy, pandas), as dwh.stream_rows is: the pipeline stays light.
    from xiva_source.dwh.reads import customer_boundaries

    return customer_boundaries(
        source.url(ctx.settings),
        source.spec,
        source.timestamp_field,
        start_date=lookback_start(ctx),
        end_date=ctx.end,
        parts=parts,
    )


def lookback_start(ctx: PullContext) -> datetime | None:
    """Where an incremental DWH read starts: ``ctx.start`` minus ``DWH_LOOKBACK_SECONDS``, or
    ``ctx.start`` when the job named the parts of the lookback to read (``ctx.dwh_lookback``).
    """
    if ctx.start is None:
        return None
    if ctx.dwh_lookback is not None:
        return ctx.start
    return ctx.start - timedelta(seconds=ctx.settings.dwh_lookback_seconds)


def _count_lookback_rows(table: pa.Table, ctx: PullContext) -> None:
    """Add the rows of ``table`` stamped before the window start to ``dwh_lookback_rows``."""
    if ctx.start is None or EVENT_TIMESTAMP not in table.column_names or table.num_rows == 0:
        return
    import pyarrow.compute as pc

    column = table[EVENT_TIMESTAMP]
    start = as_utc(ctx.start)
    tz = getattr(column.type, "tz", None)
    bound = pa.scalar(start if tz else start.replace(tzinfo=None), type=column.type)
    ctx.report.dwh_lookback_rows += int(pc.sum(pc.less(column, bound)).as_py() or 0)


def lookup_dwh(
    source: DwhSourceSpec, ctx: PullContext, ids: Sequence[str], columns: Sequence[str]
) -> pa.Table:
    """The current DWH row (as of ``ctx.end``) of each customer of ``ids``.

    Raises:
        DwhError: The DWH failed.
    """
    table = dwh.lookup_rows(
        source.url(ctx.settings),
        source.spec,
        list(ids),
        columns=list(columns),
        timestamp_field=source.timestamp_field,
        end_date=ctx.end,
        types=ctx.feature_types,
    )
    table = counts_to_facts(table, source.timestamp_field, keep=ctx.feature_names)
    return rename_timestamp(table, source.timestamp_field)


def pull_dwh(source: DwhSourceSpec, ctx: PullContext) -> Iterator[pa.Table]:
    """Stream the source's rows as they are (not de-duplicated), in the output shape.

    Args:
        source: The DWH table or query.
        ctx: The pull.

    Yields:
        ``customer_id``, ``ctx.feature_names`` (the ones the table lacks null),
        ``event_timestamp`` (and ``created_timestamp`` when the source names a created
        timestamp column).

    Raises:
        DwhError: The DWH failed.
    """
    present = dwh_columns(source, ctx) if ctx.feature_names else []
    for table in stream_dwh(source, ctx, present):
        ctx.report.add_rows("dwh", table.num_rows)
        yield conform(table, ctx.feature_names, ctx.feature_types)
