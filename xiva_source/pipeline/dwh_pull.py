"""Pull from the DWH: a table or query streamed over its timestamp column (server-side cursor)."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence

import pyarrow as pa

from xiva_source import dwh
from xiva_source.features.catalogue import ENTITY
from xiva_source.pipeline.context import PullContext
from xiva_source.pipeline.sources import DwhSourceSpec
from xiva_source.pipeline.tables import conform, rename_timestamp

__all__ = ["dwh_columns", "lookup_dwh", "pull_dwh", "stream_dwh"]


def dwh_columns(source: DwhSourceSpec, ctx: PullContext) -> list[str]:
    """The requested features the DWH source has (reflected; the rest are served null).

    Raises:
        DwhError: The DWH cannot be reached or the table does not exist.
    """
    present = {name for name, _ in source.column_types(ctx.settings)}
    return [f for f in ctx.feature_names if f in present]


def stream_dwh(
    source: DwhSourceSpec, ctx: PullContext, columns: Sequence[str]
) -> Generator[pa.Table, None, None]:
    """The source's rows in the window, ``columns`` only, timestamp named ``event_timestamp``.

    Raises:
        DwhError: The DWH failed (when the first chunk is read).
    """
    for table in dwh.stream_rows(
        source.url(ctx.settings),
        source.spec,
        columns=[ENTITY, *columns],
        timestamp_field=source.timestamp_field,
        start_date=ctx.start,
        end_date=ctx.end,
        chunk_size=ctx.chunk_size,
        types=ctx.feature_types,
    ):
        yield rename_timestamp(table, source.timestamp_field)


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
    return rename_timestamp(table, source.timestamp_field)


def pull_dwh(source: DwhSourceSpec, ctx: PullContext) -> Iterator[pa.Table]:
    """Stream the source's rows as they are (not de-duplicated), in the output shape.

    Args:
        source: The DWH table or query.
        ctx: The pull.

    Yields:
        ``customer_id``, ``ctx.feature_names`` (the ones the table lacks null),
        ``event_timestamp``.

    Raises:
        DwhError: The DWH failed.
    """
    present = dwh_columns(source, ctx) if ctx.feature_names else []
    for table in stream_dwh(source, ctx, present):
        ctx.report.add_rows("dwh", table.num_rows)
        yield conform(table, ctx.feature_names, ctx.feature_types)
