"""``auto`` mode: pull Xiva and the DWH, merge them per customer, fall back when one fails.

Xiva's changes are held in memory (one row per changed customer); the DWH is streamed. A customer
changed in only one source is merged with the other's current values (the DWH row by id; Xiva's
last known values from the snapshot table), so an incremental run never overwrites a preferred
value with the other source's. A failing source is skipped (WARNING log + report fallback); when
both fail the pull raises :class:`AllSourcesFailedError`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator, Iterator, Sequence

import pyarrow as pa

from xiva_source import dwh
from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError
from xiva_source.features.catalogue import DWH_ONLY_FEATURES, ENTITY
from xiva_source.pipeline.context import PullContext
from xiva_source.pipeline.dwh_pull import dwh_columns, lookup_dwh, stream_dwh
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.pipeline.merge import merge_tables
from xiva_source.pipeline.report import record_fallback
from xiva_source.pipeline.sources import CustomerSourceSpec
from xiva_source.pipeline.tables import chunks, concat, conform, prepend, take_ids
from xiva_source.pipeline.xiva_pull import pull_xiva

__all__ = ["pull_auto"]

logger = logging.getLogger(__name__)


def pull_auto(source: CustomerSourceSpec, ctx: PullContext) -> Iterator[pa.Table]:
    """Merge Xiva and the DWH per customer and feature; skip (and report) a source that fails.

    Args:
        source: The customer source (its Xiva and DWH sides).
        ctx: The pull.

    Yields:
        ``customer_id``, ``ctx.feature_names``, ``event_timestamp``: one row per customer.

    Raises:
        AllSourcesFailedError: Both sources failed.
    """
    failures: dict[str, BaseException] = {}
    xiva: pa.Table | None = None
    try:
        xiva = pull_xiva(ctx)
    except DataSourceError as e:
        failures["xiva"] = e

    dwh_feats: list[str] = []
    stream: Generator[pa.Table, None, None] = prepend(None, iter(()))
    first: pa.Table | None = None
    try:
        dwh_feats = dwh_columns(source.dwh, ctx)
        stream = stream_dwh(source.dwh, ctx, dwh_feats)
        first = next(stream, None)  # connect now, so a dead DWH is a fallback, not a crash
    except DataSourceError as e:
        failures["dwh"] = e

    if len(failures) == 2:
        raise AllSourcesFailedError(failures) from failures["dwh"]
    if "xiva" in failures:
        record_fallback(ctx.report, "xiva", "dwh", failures["xiva"])
    if "dwh" in failures:
        record_fallback(ctx.report, "dwh", "xiva", failures["dwh"])
        assert xiva is not None
        yield from chunks(conform(xiva, ctx.feature_names, ctx.feature_types), ctx.chunk_size)
        return

    xiva_ids = set(xiva.column(ENTITY).to_pylist()) if xiva is not None else set()
    seen: set[str] = set()
    with contextlib.closing(stream):  # return the DWH connection even if the consumer stops
        yield from _merge_dwh_chunks(ctx, prepend(first, stream), xiva, xiva_ids, seen)
    if xiva is not None:
        yield from _merge_rest(source, ctx, xiva, seen, dwh_feats)


def _merge_dwh_chunks(
    ctx: PullContext,
    stream: Iterator[pa.Table],
    xiva: pa.Table | None,
    xiva_ids: set[str],
    seen: set[str],
) -> Iterator[pa.Table]:
    """Merge each DWH chunk with Xiva's rows (this pull's, else the last known snapshot)."""
    for chunk in stream:
        ctx.report.add_rows("dwh", chunk.num_rows)
        chunk = dwh.latest_per_customer(chunk)
        ids = chunk.column(ENTITY).to_pylist()
        seen.update(ids)
        in_xiva = [i for i in ids if i in xiva_ids]
        pulled = take_ids(xiva, in_xiva)
        last_known = _last_known_xiva(ctx, [i for i in ids if i not in xiva_ids])
        x_rows = concat([t for t in (pulled, last_known) if t is not None])
        yield merge_tables(x_rows, chunk, ctx.feature_names, ctx.strategy, ctx.feature_types)


def _merge_rest(
    source: CustomerSourceSpec,
    ctx: PullContext,
    xiva: pa.Table,
    seen: set[str],
    dwh_feats: Sequence[str],
) -> Iterator[pa.Table]:
    """Xiva customers the DWH window did not contain, merged with their current DWH row.

    On a full pull (no start) the window held every DWH row, so there is nothing to look up.
    """
    rest_ids = [i for i in xiva.column(ENTITY).to_pylist() if i not in seen]
    for offset in range(0, len(rest_ids), ctx.chunk_size):
        batch_ids = rest_ids[offset : offset + ctx.chunk_size]
        pulled = take_ids(xiva, batch_ids)
        if ctx.start is None:
            yield conform(pulled, ctx.feature_names, ctx.feature_types)
            continue
        current = lookup_dwh(source.dwh, ctx, batch_ids, dwh_feats)
        yield merge_tables(pulled, current, ctx.feature_names, ctx.strategy, ctx.feature_types)


def _last_known_xiva(ctx: PullContext, ids: Sequence[str]) -> pa.Table | None:
    """Xiva's last recorded values of ``ids`` (snapshot table); ``None`` if unavailable."""
    if not ids or not ctx.options.write_snapshots:
        return None
    xiva_feats = [f for f in ctx.feature_names if f not in DWH_ONLY_FEATURES]
    try:
        table = dwh.read_latest_snapshots(
            ctx.options.snapshot_database(ctx.settings),
            ctx.options.snapshot_table,
            ids,
            xiva_feats,
            end_date=ctx.end,
            types=ctx.feature_types,
        )
    except DwhError as e:
        ctx.report.errors["snapshot"] = str(e)
        logger.warning("Xiva's last known values unavailable (snapshot table): %s", e)
        return None
    return None if table is None else table.drop_columns([dwh.PULLED_AT])
