"""Merge precedence in ``auto`` mode: the one implementation.

Rules (the same for materialization, historical retrieval and live refresh):

- a customer in both sources gets, per feature, the preferred source's value unless it is null,
  then the other source's value;
- a customer in only one source is served from that source;
- the event timestamp is the later of the two sources' timestamps.

``xiva_first`` prefers Xiva, ``dwh_first`` prefers the DWH.

Three entry points, one rule (:func:`merge_aligned` applies it; the others go through it):

- :func:`merge_tables`: two pulls joined on ``customer_id`` (materialization);
- :func:`merge_aligned`: two row-aligned tables, e.g. the point-in-time values of both sides
  for the same entity rows (historical retrieval);
- :func:`merge_values`: one customer's two dicts (live refresh).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from xiva_source.features.catalogue import ENTITY, EVENT_TIMESTAMP
from xiva_source.pipeline.tables import TIMESTAMP_TYPE, conform
from xiva_source.settings import MergeStrategy

__all__ = ["merge_aligned", "merge_tables", "merge_values", "preferred_first"]

_T = TypeVar("_T")


def preferred_first(strategy: MergeStrategy, xiva: _T, dwh: _T) -> tuple[_T, _T]:
    """``(preferred, other)``: the two sides in the order ``strategy`` gives them.

    Args:
        strategy: ``XIVA_FIRST`` or ``DWH_FIRST``.
        xiva: The Xiva side (anything).
        dwh: The DWH side (anything).

    Returns:
        ``(xiva, dwh)`` for ``XIVA_FIRST``, ``(dwh, xiva)`` for ``DWH_FIRST``.
    """
    return (xiva, dwh) if strategy == MergeStrategy.XIVA_FIRST else (dwh, xiva)


def merge_aligned(
    xiva: pa.Table,
    dwh: pa.Table,
    feature_names: Sequence[str],
    strategy: MergeStrategy,
    feature_types: Mapping[str, pa.DataType] | None = None,
) -> pa.Table:
    """Merge two row-aligned tables feature by feature: the precedence rule itself.

    Row ``i`` of ``xiva`` and row ``i`` of ``dwh`` describe the same entity row; each output
    value is the preferred side's value unless it is null, then the other side's.

    Args:
        xiva: Xiva's values; a feature column it lacks counts as all null.
        dwh: The DWH's values, same number of rows; a feature it lacks counts as all null.
        feature_names: The features to merge, in output order.
        strategy: Which side's non-null value wins.
        feature_types: Arrow type per feature; otherwise the first side's non-null column type
            (a null-typed column, e.g. an all-missing pandas column, takes the other's type).

    Returns:
        Exactly the ``feature_names`` columns, ``xiva.num_rows`` rows.

    Raises:
        ValueError: The two tables have different numbers of rows.

    Example:
        >>> x = pa.table({"city": ["Oslo", None]})
        >>> d = pa.table({"city": ["Bergen", "Moss"]})
        >>> merge_aligned(x, d, ["city"], MergeStrategy.XIVA_FIRST).column("city").to_pylist()
        ['Oslo', 'Moss']
    """
    if xiva.num_rows != dwh.num_rows:
        raise ValueError(
            f"merge_aligned needs row-aligned tables: xiva has {xiva.num_rows} rows, "
            f"dwh {dwh.num_rows}"
        )
    types = _resolve_types(feature_names, feature_types, (xiva, dwh))
    first, second = preferred_first(strategy, xiva, dwh)
    columns = [
        pc.coalesce(_column(first, name, types[name]), _column(second, name, types[name]))
        for name in feature_names
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema([(n, types[n]) for n in feature_names]))


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
    sides = tuple(t for t in (xiva, dwh) if t is not None)
    types = _resolve_types(feature_names, feature_types, sides)
    x = conform(xiva, feature_names, types)
    # A merged row has no one created timestamp: the DWH side's is dropped.
    d = conform(dwh, feature_names, types).select([ENTITY, *feature_names, EVENT_TIMESTAMP])
    if d.num_rows == 0:
        return x
    if x.num_rows == 0:
        return d
    # Acero cannot join null-typed columns; merge_aligned reads those (absent) as null anyway.
    value_columns = [*(n for n in feature_names if types[n] != pa.null()), EVENT_TIMESTAMP]
    a = x.select([ENTITY, *value_columns])
    a = a.rename_columns([ENTITY, *(f"x.{c}" for c in value_columns)])
    b = d.select([ENTITY, *value_columns])
    b = b.rename_columns([ENTITY, *(f"d.{c}" for c in value_columns)])
    joined = a.join(b, keys=ENTITY, join_type="full outer", coalesce_keys=True)
    x_side = joined.select([f"x.{c}" for c in value_columns]).rename_columns(value_columns)
    d_side = joined.select([f"d.{c}" for c in value_columns]).rename_columns(value_columns)
    merged = merge_aligned(x_side, d_side, feature_names, strategy, types)
    # max_element_wise has no kernel for zoned timestamps: compare the underlying int64.
    latest = pc.max_element_wise(
        x_side.column(EVENT_TIMESTAMP).cast(pa.int64()),
        d_side.column(EVENT_TIMESTAMP).cast(pa.int64()),
        skip_nulls=True,
    )
    columns = [joined.column(ENTITY), *merged.columns, latest.cast(TIMESTAMP_TYPE)]
    return pa.Table.from_arrays(columns, names=[ENTITY, *feature_names, EVENT_TIMESTAMP])


def merge_values(
    xiva: Mapping[str, Any] | None,
    dwh: Mapping[str, Any] | None,
    feature_names: Sequence[str],
    strategy: MergeStrategy,
    feature_types: Mapping[str, pa.DataType] | None = None,
) -> dict[str, Any]:
    """Merge one customer's values from each source (through :func:`merge_aligned`).

    Args:
        xiva: Xiva's values by feature; a missing feature (or ``None``) counts as null.
        dwh: The DWH's (or the online store's current) values by feature, likewise.
        feature_names: The features to merge.
        strategy: Which side's non-null value wins.
        feature_types: Arrow type per feature; otherwise inferred from the two values.

    Returns:
        ``{feature: merged value}`` for every name of ``feature_names``.

    Raises:
        TypeError: The two values of a feature have no common Arrow type and no
            ``feature_types`` entry says which to use.

    Example:
        >>> merge_values({"city": None, "age": 40}, {"city": "Moss", "age": 41}, ["city", "age"],
        ...              MergeStrategy.XIVA_FIRST)
        {'city': 'Moss', 'age': 40}
    """
    x_values, d_values = xiva or {}, dwh or {}
    given = feature_types or {}
    types: dict[str, pa.DataType] = {}
    x_columns: list[pa.Array] = []
    d_columns: list[pa.Array] = []
    for name in feature_names:
        pair = [x_values.get(name), d_values.get(name)]
        try:
            both = pa.array(pair, type=given.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise TypeError(
                f"feature {name!r}: a {type(pair[0]).__name__} and a {type(pair[1]).__name__} "
                "cannot be merged as one Arrow type; pass its type in feature_types"
            ) from e
        types[name] = both.type
        x_columns.append(both.slice(0, 1))
        d_columns.append(both.slice(1, 1))
    if not feature_names:
        return {}
    x = pa.Table.from_arrays(x_columns, names=list(feature_names))
    d = pa.Table.from_arrays(d_columns, names=list(feature_names))
    merged = merge_aligned(x, d, feature_names, strategy, types)
    return dict(merged.to_pylist()[0])


def _resolve_types(
    feature_names: Sequence[str],
    feature_types: Mapping[str, pa.DataType] | None,
    sides: Sequence[pa.Table],
) -> dict[str, pa.DataType]:
    """One Arrow type per feature: the given one, else the first non-null column type."""
    given = feature_types or {}
    types: dict[str, pa.DataType] = {}
    for name in feature_names:
        dtype = given.get(name)
        if dtype is None:
            found = [side.schema.field(name).type for side in sides if name in side.column_names]
            dtype = next((t for t in found if t != pa.null()), found[0] if found else pa.null())
        types[name] = dtype
    return types


def _column(table: pa.Table, name: str, dtype: pa.DataType) -> pa.ChunkedArray | pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, type=dtype)
    column = table.column(name)
    return column.cast(dtype) if column.type != dtype else column
