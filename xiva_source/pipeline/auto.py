"""``auto`` mode: pull Xiva and the DWH, merge them per customer, never degrade what is online.

Order (memory flat: nothing is held beyond one chunk):

1. The DWH is probed (its columns reflected), so a dead DWH is known before Xiva is read.
2. Xiva's changes stream chunk by chunk (:func:`~xiva_source.pipeline.xiva_pull.iter_xiva`, which
   appends each chunk to the snapshot table); each chunk is merged with the current DWH rows of
   its customers (looked up by id).
3. The DWH's window streams oldest first (from ``start - DWH_LOOKBACK_SECONDS``); each chunk is
   merged with Xiva's last known values of its customers (the snapshot table, which now holds
   step 2's pull too). A customer in both is written twice, with the same values.

Per-source starts (``ctx.start_for``): each source reads from its own watermark (the job's).
Xiva's rows are *settled* when they were merged with the DWH's current rows (step 2) and
recorded in the snapshot table, on which step 3 of every later run relies. When they are not
(the DWH down at the probe or failing mid-pull: the rows are written partially,
``errors["xiva_unmerged"]``; the snapshot table refusing a chunk: ``errors["snapshot"]``), the
report says so and the job keeps a re-read mark (:mod:`xiva_source.jobs.plan`); a later pull
gets it (``ctx.rereads``) and, once the DWH answers its probe (and the snapshot database its
pending-table read, :mod:`~xiva_source.pipeline.xiva_pull`), reads Xiva from the mark: merged
with the DWH and recorded this time, so step 3 merges every DWH row with Xiva's true last
values. While the DWH is still down Xiva is read from its watermark only. Pending customers read
in an unsettled chunk stay pending (:meth:`~xiva_source.pipeline.retries.PendingRetries.keep`).
(With ``write_snapshots`` off nothing is ever recorded: while the DWH was never read, Xiva is
read in full alongside it.)

A failing source never degrades what is online. Rows the pipeline cannot merge (one side
unknown: the DWH is down, Xiva is down with no last known values for a customer, or the
snapshot table cannot be read) are yielded *partial* (:func:`mark_partial`): they carry only the
cells the surviving source owns whatever the other says (its non-null values when it is the
preferred source, the features the other source does not have), every other cell null, meaning
"unknown: keep the online value" (the job writes a partial row's non-null cells only). Such a
failure is a fallback in the report: ``errors["xiva"]``, ``errors["dwh"]`` or
``errors["xiva_last_known"]``; the job keeps the watermark of the source whose changes were not
merged. Both sources failing raises :class:`AllSourcesFailedError`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Generator, Iterator
from dataclasses import replace
from datetime import datetime

import pyarrow as pa

from xiva_source import dwh
from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError
from xiva_source.features.catalogue import DWH_ONLY_FEATURES, ENTITY
from xiva_source.pipeline.context import PullContext
from xiva_source.pipeline.dwh_pull import dwh_columns, lookup_dwh, stream_dwh
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.pipeline.merge import merge_tables, preferred_first
from xiva_source.pipeline.report import record_fallback
from xiva_source.pipeline.sources import CustomerSourceSpec
from xiva_source.pipeline.tables import conform, take_ids
from xiva_source.pipeline.xiva_pull import SNAPSHOT, iter_xiva, window_end

__all__ = [
    "DWH_UNMERGED",
    "LAST_KNOWN",
    "PARTIAL_KEY",
    "XIVA_UNMERGED",
    "is_partial",
    "mark_partial",
    "pull_auto",
]

logger = logging.getLogger(__name__)

PARTIAL_KEY = b"xiva_source.partial"
"""Schema metadata key of a partial table: its null cells are unknown, not null."""

LAST_KNOWN = "xiva_last_known"
"""``PullReport.errors`` key: Xiva's last known values (snapshot table) could not be read."""

DWH_UNMERGED = "dwh_unmerged"
"""``PullReport.errors`` key: DWH rows of customers Xiva was never fully read for could not be
merged (Xiva failed before it had ever been read in full): the DWH watermark stays, so the next
run reads those rows again once Xiva is back (a first run with Xiva down loses no customer)."""


XIVA_UNMERGED = "xiva_unmerged"
"""``PullReport.errors`` key: Xiva rows were written partially because the DWH's side was unknown
(down at the probe or failing mid-pull): they are not settled, so the job keeps a re-read mark at
this pull's start and Xiva is read again from it once the DWH is back
(:func:`xiva_source.jobs.plan.rereads_after`)."""


def mark_partial(table: pa.Table) -> pa.Table:
    """``table`` marked partial: a null cell means "unknown, keep the online value"."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), PARTIAL_KEY: b"1"})


def is_partial(table: pa.Table) -> bool:
    """True when ``table`` was marked by :func:`mark_partial`."""
    metadata = table.schema.metadata or {}
    return metadata.get(PARTIAL_KEY) == b"1"


def pull_auto(source: CustomerSourceSpec, ctx: PullContext) -> Iterator[pa.Table]:
    """Merge Xiva and the DWH per customer and feature; a failing source degrades nothing.

    Args:
        source: The customer source (its Xiva and DWH sides).
        ctx: The pull (``ctx.start_for("xiva")`` / ``("dwh")``: each source's lower bound).

    Yields:
        ``customer_id``, ``ctx.feature_names``, ``event_timestamp``: merged rows, or partial
        tables (:func:`is_partial`) where one side is unknown.

    Raises:
        AllSourcesFailedError: Both sources failed.
    """
    failures: dict[str, DataSourceError] = {}
    dwh_cols: list[str] = []
    try:
        dwh_cols = dwh_columns(source.dwh, ctx)
    except DataSourceError as e:
        failures["dwh"] = e

    # Xiva's unsettled rows are read again only with the DWH up to merge them with.
    dwh_up = not failures
    xctx = replace(
        ctx, start=_xiva_start(ctx, dwh_up=dwh_up), rereads=ctx.rereads if dwh_up else {}
    )
    stream = _closable(iter_xiva(xctx, commit_retries=False))
    with contextlib.closing(stream):
        while True:
            try:
                chunk = next(stream, None)
            except DataSourceError as e:
                failures["xiva"] = e
                break
            if chunk is None:
                break
            current: pa.Table | None = None
            if "dwh" not in failures:
                try:
                    current = lookup_dwh(
                        source.dwh, ctx, chunk.column(ENTITY).to_pylist(), dwh_cols
                    )
                except DataSourceError as e:
                    failures["dwh"] = e
            if current is not None:
                yield merge_tables(
                    chunk, current, ctx.feature_names, ctx.strategy, ctx.feature_types
                )
            else:
                _unmerged_xiva(ctx, chunk)
                owned = _owned(chunk, "xiva", ctx, other_features=None)
                if owned is not None:
                    yield owned

    if len(failures) == 2:
        raise AllSourcesFailedError(dict(failures)) from failures["dwh"]
    if "xiva" in failures:
        record_fallback(ctx.report, "xiva", "dwh", failures["xiva"])
    if "dwh" in failures:
        record_fallback(ctx.report, "dwh", "xiva", failures["dwh"])
        return
    yield from _dwh_window(source, ctx, dwh_cols, xiva_failed="xiva" in failures)


def _closable(tables: Iterator[pa.Table]) -> Generator[pa.Table, None, None]:
    """``tables`` as a generator, so closing it closes the pull under it (its connections)."""
    yield from tables


def _xiva_start(ctx: PullContext, *, dwh_up: bool) -> datetime | None:
    """Xiva's lower bound: its own (the job's watermark; its re-read mark: ``iter_xiva``)."""
    xiva = ctx.start_for("xiva")
    if dwh_up and ctx.start_for("dwh") is None and not ctx.options.write_snapshots:
        # The DWH was never read: step 3 reads all of it and merges with Xiva's last known
        # values, which are never recorded here: read Xiva again in full, merged in step 2.
        return None
    return xiva


def _unmerged_xiva(ctx: PullContext, chunk: pa.Table) -> None:
    """Xiva's ``chunk`` is written without the DWH's side: not settled (the module docstring)."""
    ctx.report.errors.setdefault(
        XIVA_UNMERGED,
        "Xiva's rows were written partially (the DWH unavailable): Xiva is read again from "
        "this run's start once the DWH is back, and merged",
    )
    if ctx.retries is not None:
        ctx.retries.keep(chunk.column(ENTITY).to_pylist())


def _dwh_window(
    source: CustomerSourceSpec, ctx: PullContext, dwh_cols: list[str], *, xiva_failed: bool
) -> Iterator[pa.Table]:
    """Step 3: the DWH's window, each chunk merged with Xiva's last known values."""
    # Is a customer missing from the snapshot table one Xiva does not have? Only when Xiva was
    # read in full and recorded at some point (a watermark, nothing left to re-read) or by this
    # very run.
    xiva_complete = not xiva_failed or (
        ctx.start_for("xiva") is not None and "xiva" not in ctx.rereads
    )
    stream = stream_dwh(source.dwh, replace(ctx, start=ctx.start_for("dwh")), dwh_cols)
    with contextlib.closing(stream):  # return the DWH connection even if the consumer stops
        while True:
            try:
                chunk = next(stream, None)
            except DataSourceError as e:
                record_fallback(ctx.report, "dwh", "xiva", e)
                return
            if chunk is None:
                return
            ctx.report.add_rows("dwh", chunk.num_rows)
            chunk = dwh.latest_per_customer(chunk)
            yield from _merge_with_last_known(ctx, chunk, xiva_complete=xiva_complete)


def _merge_with_last_known(
    ctx: PullContext, chunk: pa.Table, *, xiva_complete: bool
) -> Iterator[pa.Table]:
    ids = chunk.column(ENTITY).to_pylist()
    xiva_feats = [f for f in ctx.feature_names if f not in DWH_ONLY_FEATURES]
    known = _last_known_xiva(ctx, ids, xiva_feats)
    if known is None:  # unreadable: every row of the chunk is partial
        owned = _owned(chunk, "dwh", ctx, other_features=xiva_feats)
        if owned is not None:
            yield owned
        return
    if xiva_complete:  # a customer without a snapshot is one Xiva does not have
        yield merge_tables(known, chunk, ctx.feature_names, ctx.strategy, ctx.feature_types)
        return
    known_ids = set(known.column(ENTITY).to_pylist())
    with_known = take_ids(chunk, [i for i in ids if i in known_ids])
    if with_known is not None and with_known.num_rows:
        yield merge_tables(known, with_known, ctx.feature_names, ctx.strategy, ctx.feature_types)
    unknown = take_ids(chunk, [i for i in ids if i not in known_ids])
    if unknown is not None and unknown.num_rows:
        ctx.report.errors.setdefault(
            DWH_UNMERGED,
            "Xiva was never read in full, so DWH customers without Xiva values were written "
            "partially; the DWH watermark stays and the next run merges them",
        )
        owned = _owned(unknown, "dwh", ctx, other_features=xiva_feats)
        if owned is not None:
            yield owned


def _last_known_xiva(ctx: PullContext, ids: list[str], xiva_feats: list[str]) -> pa.Table | None:
    """Xiva's last recorded values of ``ids``; ``None`` (and a fallback) when unreadable."""
    problem: str | None = None
    if not ctx.options.write_snapshots:
        problem = "write_snapshots is off, so Xiva's values are not recorded"
    elif SNAPSHOT in ctx.report.errors:
        problem = f"the snapshot table failed during this pull: {ctx.report.errors[SNAPSHOT]}"
    table: pa.Table | None = None
    if problem is None:
        try:
            table = dwh.read_latest_snapshots(
                ctx.options.snapshot_database(ctx.settings),
                ctx.options.snapshot_table,
                ids,
                xiva_feats,
                end_date=window_end(ctx),  # snapshots are stamped on Xiva's clock
                types=ctx.feature_types,
            )
        except DwhError as e:
            problem = f"the snapshot table cannot be read: {e}"
    if problem is not None:
        if LAST_KNOWN not in ctx.report.errors:
            ctx.report.errors[LAST_KNOWN] = problem
            message = (
                f"xiva's last known values unavailable ({problem}); DWH changes written only "
                "where the DWH's value wins, the DWH watermark stays"
            )
            ctx.report.fallbacks.append(message)
            logger.info("auto mode fallback: %s", message)
        return None
    if table is None:  # no pull ever created the table: nothing is known
        return conform(None, xiva_feats, ctx.feature_types)
    return table.drop_columns([dwh.PULLED_AT])


def _owned(
    table: pa.Table, owner: str, ctx: PullContext, *, other_features: Collection[str] | None
) -> pa.Table | None:
    """The cells ``owner`` decides whatever the other side says, as a partial table.

    ``owner``'s non-null values when it is the preferred source; otherwise only the features
    the other side does not have (``other_features``; ``None``: unknown, so none). ``None``
    when no cell is left.
    """
    out = conform(table, ctx.feature_names, ctx.feature_types)
    preferred, _ = preferred_first(ctx.strategy, "xiva", "dwh")
    if owner != preferred:
        keep = [
            f for f in ctx.feature_names if other_features is not None and f not in other_features
        ]
        if not keep:
            return None
        for name in ctx.feature_names:
            if name not in keep:
                index = out.column_names.index(name)
                out = out.set_column(
                    index, name, pa.nulls(out.num_rows, out.schema.field(name).type)
                )
    return mark_partial(out) if out.num_rows else None
