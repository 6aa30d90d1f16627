"""Pull from Xiva: every customer changed in the window, one row each, recorded as a snapshot."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from xiva_source import dwh
from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError
from xiva_source.features.catalogue import ENTITY, EVENT_TIMESTAMP
from xiva_source.pipeline.context import PullContext
from xiva_source.pipeline.report import FAILED_IDS_KEPT
from xiva_source.settings import DataSourceMode
from xiva_source.timeutil import as_utc, parse_iso
from xiva_source.xiva_api.errors import XivaError

__all__ = ["pull_xiva"]

logger = logging.getLogger(__name__)


def pull_xiva(ctx: PullContext) -> pa.Table:
    """Every customer changed in ``[ctx.start - overlap, ctx.end]``: one row each, all features.

    The boundary is re-read inclusively (``pull_overlap_seconds``); a customer listed twice is
    fetched once, at its latest ``lastUpdate``. The 360 views are fetched concurrently within
    the shared rate. The pull is appended to the snapshot table (a snapshot failure is logged
    and reported, it does not fail the pull).

    Args:
        ctx: The pull (settings, options, window, types, report).

    Returns:
        ``customer_id``, every Xiva feature (``feature_schema()``), ``event_timestamp`` (UTC).

    Raises:
        DataSourceError: Xiva failed (listing failed, or more than ``max_failed_fraction`` of the
            360 fetches failed).
    """
    from xiva_source.features.extractor import feature_schema, features_from_360
    from xiva_source.xiva_api.client import XivaClient

    settings, options, report = ctx.settings, ctx.options, ctx.report
    names = list(feature_schema())
    since = None
    if ctx.start is not None:
        since = ctx.start - timedelta(seconds=options.pull_overlap_seconds)
    client = XivaClient(settings=settings)
    calls_before = _requests(client)
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    first_error: XivaError | None = None
    latest: dict[str, datetime] = {}
    try:
        for customer in client.iter_customers(updated_since=since):
            updated = parse_iso(customer["lastUpdate"])
            # Changes after the end belong to the next run (its window starts at this end).
            if updated <= ctx.end and updated >= latest.get(customer["id"], updated):
                latest[customer["id"]] = updated
        for cid, result in client.iter_customers_360(latest, max_workers=settings.xiva_max_workers):
            if isinstance(result, XivaError):
                failed.append(cid)
                first_error = first_error or result
                continue
            values = features_from_360(result, now=ctx.end)
            ts = as_utc(values[EVENT_TIMESTAMP])
            if ts <= ctx.end:
                values[EVENT_TIMESTAMP] = ts
                rows.append(values)
        if failed and len(failed) > options.max_failed_fraction * max(1, len(latest)):
            raise DataSourceError(
                "xiva",
                f"{len(failed)} of {len(latest)} customer 360 fetches failed (first: "
                f"{', '.join(failed[:FAILED_IDS_KEPT])}; e.g. "
                f"{first_error.problem if first_error else 'unknown'})",
                hint="Xiva is failing too often to trust this pull; check its status and "
                "XIVA_REQUESTS_PER_SECOND, or set FEATURE_STORE_DATA_SOURCE=dwh meanwhile.",
            )
    except XivaError as e:
        hint = e.fix
        if ctx.settings.feature_store_data_source != DataSourceMode.AUTO:
            hint += " Meanwhile FEATURE_STORE_DATA_SOURCE=auto serves the DWH's values."
        raise DataSourceError("xiva", e.problem, hint=hint) from e
    finally:
        report.xiva_calls += max(0, _requests(client) - calls_before)
        client.close()
    if failed:
        report.add_failed_customers(failed)
        logger.warning(
            "Xiva pull: %d of %d customer 360 fetches failed and were skipped (first: %s); "
            "they are picked up again by the next run only if they change",
            len(failed),
            len(latest),
            ", ".join(failed[:FAILED_IDS_KEPT]),
        )
    columns = [ENTITY, *names, EVENT_TIMESTAMP]
    table = dwh.rows_to_arrow(
        columns, [[r.get(c) for c in columns] for r in rows], types=ctx.feature_types
    )
    report.add_rows("xiva", table.num_rows)
    if options.write_snapshots and table.num_rows:
        _record_snapshot(ctx, table, names)
    return table


def _record_snapshot(ctx: PullContext, table: pa.Table, names: list[str]) -> None:
    """Append the pull to the snapshot table; a failure is reported, not raised."""
    try:
        dwh.append_snapshots(
            ctx.options.snapshot_database(ctx.settings),
            ctx.options.snapshot_table,
            table,
            {n: ctx.feature_types[n] for n in names},
        )
    except DwhError as e:
        ctx.report.errors["snapshot"] = str(e)
        logger.warning("Xiva pull not recorded in the snapshot table: %s", e)


def _requests(client: Any) -> int:
    try:
        return int(client.usage(hours=1).totals.requests)
    except Exception:  # usage counters are informative; Redis may be down
        return 0
