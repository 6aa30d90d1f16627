"""``auto`` mode: the per-customer, per-feature merge of Xiva and the DWH, and fallback reporting.

Rules (the same for materialization and for historical retrieval):

- a customer in both sources gets, per feature, the preferred source's value unless it is null,
  then the other source's value;
- a customer in only one source is served from that source;
- the event timestamp is the later of the two sources' timestamps.

``xiva_first`` prefers Xiva, ``dwh_first`` prefers the DWH.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from xiva_source.settings import MergeStrategy

__all__ = ["PullReport", "empty_table", "merge_tables", "record_fallback"]

logger = logging.getLogger(__name__)

ENTITY = "customer_id"
EVENT_TIMESTAMP = "event_timestamp"
_TS_TYPE = pa.timestamp("us", tz="UTC")


@dataclass
class PullReport:
    """What one pull did; filled in as the pull runs (read it after the iterator is exhausted).

    Attributes:
        mode: ``xiva``, ``dwh`` or ``auto``.
        rows_by_source: Rows read from each source (``xiva``, ``dwh``).
        xiva_calls: Xiva HTTP requests made by the pull (auth and retries included).
        fallbacks: One sentence per source that failed in ``auto`` mode and was skipped.
        failed_customers: Customers whose 360 fetch failed (below the failure threshold).
        errors: Source (or ``snapshot``) -> the error that was tolerated.
        failed_customer_ids: The first few customers whose 360 fetch failed.
    """

    mode: str = ""
    rows_by_source: dict[str, int] = field(default_factory=dict)
    xiva_calls: int = 0
    fallbacks: list[str] = field(default_factory=list)
    failed_customers: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    failed_customer_ids: list[str] = field(default_factory=list)

    def add_rows(self, source: str, n: int) -> None:
        """Count ``n`` rows read from ``source``."""
        self.rows_by_source[source] = self.rows_by_source.get(source, 0) + n


def record_fallback(report: PullReport, failed: str, serving: str, error: BaseException) -> None:
    """Record (WARNING log + report) that ``failed`` was skipped and ``serving`` is used."""
    message = f"{failed} failed, serving from {serving} only: {error}"
    report.fallbacks.append(message)
    report.errors[failed] = str(error)
    logger.warning("auto mode fallback: %s", message)


def empty_table(feature_types: Mapping[str, pa.DataType], feature_names: Sequence[str]) -> pa.Table:
    """An empty table with ``customer_id``, ``feature_names`` and ``event_timestamp``."""
    fields = [pa.field(ENTITY, pa.string())]
    fields += [pa.field(f, feature_types.get(f, pa.null())) for f in feature_names]
    fields.append(pa.field(EVENT_TIMESTAMP, _TS_TYPE))
    return pa.schema(fields).empty_table()


def _conform(
    table: pa.Table | None,
    feature_names: Sequence[str],
    feature_types: Mapping[str, pa.DataType],
) -> pa.Table:
    """``table`` with exactly the output columns (missing features null), types aligned."""
    if table is None:
        return empty_table(feature_types, feature_names)
    columns = [table.column(ENTITY).cast(pa.string())]
    for name in feature_names:
        dtype = feature_types.get(name)
        if name in table.column_names:
            col = table.column(name)
            if dtype is None:
                dtype = col.type
            columns.append(col.cast(dtype) if col.type != dtype else col)
        else:
            columns.append(pa.nulls(table.num_rows, type=dtype or pa.null()))
    columns.append(table.column(EVENT_TIMESTAMP).cast(_TS_TYPE))
    return pa.Table.from_arrays(columns, names=[ENTITY, *feature_names, EVENT_TIMESTAMP])


def merge_tables(
    xiva: pa.Table | None,
    dwh: pa.Table | None,
    feature_names: Sequence[str],
    strategy: MergeStrategy,
    feature_types: Mapping[str, pa.DataType] | None = None,
) -> pa.Table:
    """Merge one row per customer from each source into one row per customer.

    Args:
        xiva: Xiva rows (``customer_id``, features, ``event_timestamp``); ``None`` if absent.
        dwh: DWH rows, same columns (features the DWH lacks may be missing); ``None`` if absent.
        feature_names: Output features, in order.
        strategy: Which source's non-null value wins.
        feature_types: Arrow type per feature (aligns the two sources' types).

    Returns:
        ``customer_id``, ``feature_names``, ``event_timestamp``: every customer of either side.

    Example:
        >>> merged = merge_tables(x, d, ["city"], MergeStrategy.XIVA_FIRST)  # doctest: +SKIP
    """
    types = dict(feature_types or {})
    for side in (xiva, dwh):
        if side is not None:
            for name in feature_names:
                if name not in types and name in side.column_names:
                    types[name] = side.schema.field(name).type
    x = _conform(xiva, feature_names, types)
    d = _conform(dwh, feature_names, types)
    if d.num_rows == 0:
        return x
    if x.num_rows == 0:
        return d
    first, second = (x, d) if strategy == MergeStrategy.XIVA_FIRST else (d, x)
    a = first.rename_columns([ENTITY, *(f"a.{c}" for c in first.column_names[1:])])
    b = second.rename_columns([ENTITY, *(f"b.{c}" for c in second.column_names[1:])])
    joined = a.join(b, keys=ENTITY, join_type="full outer", coalesce_keys=True)
    columns = [joined.column(ENTITY)]
    for name in feature_names:
        columns.append(pc.coalesce(joined.column(f"a.{name}"), joined.column(f"b.{name}")))
    # max_element_wise has no kernel for zoned timestamps: compare the underlying int64.
    latest = pc.max_element_wise(
        joined.column(f"a.{EVENT_TIMESTAMP}").cast(pa.int64()),
        joined.column(f"b.{EVENT_TIMESTAMP}").cast(pa.int64()),
        skip_nulls=True,
    )
    columns.append(latest.cast(_TS_TYPE))
    return pa.Table.from_arrays(columns, names=[ENTITY, *feature_names, EVENT_TIMESTAMP])
