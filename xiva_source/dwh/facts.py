"""The DWH's counts read as facts: ``last_purchase_days_ago`` and ``age`` as of ``updated_at``.

The DWH contract stores ``last_purchase_days_ago`` and ``age`` as counts that were true at the
row's ``updated_at``; the feature store keeps the facts behind them (``last_payment_date``,
``birth_date``) and derives the counts when read (:mod:`xiva_source.features.derived`), so a
DWH value ages exactly like a Xiva one. Every DWH read of customer features goes through here:

- :func:`source_columns`: the columns to select for the requested features (a fact the table does
  not have is read through its count column; a table or query that has the fact itself is read
  as it is);
- :func:`counts_to_facts`: the count columns of a result replaced by their facts, computed from the
  row's timestamp (``updated_at``'s date minus the days; minus the years for a birth date, the
  latest birth date consistent with the age).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pyarrow as pa

from xiva_source.features.catalogue import DERIVED_FEATURES

__all__ = ["COUNT_COLUMNS", "counts_to_facts", "source_columns"]

COUNT_COLUMNS: dict[str, str] = {d.fact: d.name for d in DERIVED_FEATURES.values()}
"""Fact -> the DWH column holding it as a count (e.g. ``birth_date``: ``age``)."""

_FACT_TYPE = pa.timestamp("us", tz="UTC")


def source_columns(features: Sequence[str], available: Collection[str]) -> list[str]:
    """The source columns to read for ``features`` (those the source cannot give are left out).

    Args:
        features: The requested features (facts among them).
        available: The source's columns (reflected).

    Returns:
        For each feature it can give, in order: the feature's own column, or for a fact the
        source lacks, its count column (:data:`COUNT_COLUMNS`).
    """
    out: list[str] = []
    for name in features:
        if name in available:
            out.append(name)
        elif name in COUNT_COLUMNS and COUNT_COLUMNS[name] in available:
            out.append(COUNT_COLUMNS[name])
    return out


def counts_to_facts(
    table: pa.Table, timestamp_field: str, *, keep: Collection[str] = ()
) -> pa.Table:
    """``table`` with each count column replaced (in place) by its fact, as of ``timestamp_field``.

    Args:
        table: A DWH read holding ``timestamp_field`` and perhaps ``last_purchase_days_ago`` /
            ``age``.
        timestamp_field: The moment each row's counts were true (``updated_at``).
        keep: Columns a caller asked for as they are (a count named here is not converted).

    Returns:
        The same table, ``last_purchase_days_ago`` -> ``last_payment_date`` and ``age`` ->
        ``birth_date`` (``timestamp[us, UTC]``, 00:00 of the date); unchanged if it has no count.
    """
    counts = [c for c in table.column_names if c in DERIVED_FEATURES and c not in keep]
    if not counts or timestamp_field not in table.column_names:
        return table
    from xiva_source.features.derived import facts_from_counts

    stamps = table.column(timestamp_field).to_pandas()
    for name in counts:
        facts = facts_from_counts(name, table.column(name).to_pandas(), stamps)
        array = pa.array(facts.dt.tz_convert("UTC"), type=_FACT_TYPE, from_pandas=True)
        index = table.column_names.index(name)
        table = table.set_column(index, DERIVED_FEATURES[name].fact, array)
    return table
