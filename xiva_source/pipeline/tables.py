"""Small Arrow helpers the pulls share: the output shape, chunking, filtering by customer."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from xiva_source.features.catalogue import CREATED_TIMESTAMP, ENTITY, EVENT_TIMESTAMP

__all__ = [
    "TIMESTAMP_TYPE",
    "chunks",
    "concat",
    "conform",
    "empty_table",
    "prepend",
    "rename_timestamp",
    "take_ids",
    "to_source_names",
]

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
"""The type of ``event_timestamp`` in every table the pipeline yields."""


def empty_table(feature_types: Mapping[str, pa.DataType], feature_names: Sequence[str]) -> pa.Table:
    """An empty table with ``customer_id``, ``feature_names`` and ``event_timestamp``.

    Args:
        feature_types: Arrow type per feature (a feature without one is null-typed).
        feature_names: The feature columns, in order.

    Returns:
        A table with no rows and the pipeline's output schema.
    """
    fields = [pa.field(ENTITY, pa.string())]
    fields += [pa.field(f, feature_types.get(f, pa.null())) for f in feature_names]
    fields.append(pa.field(EVENT_TIMESTAMP, TIMESTAMP_TYPE))
    return pa.schema(fields).empty_table()


def conform(
    table: pa.Table | None,
    feature_names: Sequence[str],
    feature_types: Mapping[str, pa.DataType],
) -> pa.Table:
    """``table`` with exactly the output columns (missing features null), types aligned.

    Args:
        table: Rows with ``customer_id`` and ``event_timestamp``; ``None`` means no rows.
        feature_names: The feature columns of the result, in order.
        feature_types: Arrow type per feature; a feature without one keeps its column's type.

    Returns:
        ``customer_id``, ``feature_names``, ``event_timestamp`` (UTC), and ``created_timestamp``
        (UTC) when ``table`` has it (a DWH source naming a created timestamp column).
    """
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
    names = [ENTITY, *feature_names, EVENT_TIMESTAMP]
    columns.append(table.column(EVENT_TIMESTAMP).cast(TIMESTAMP_TYPE))
    if CREATED_TIMESTAMP in table.column_names:
        names.append(CREATED_TIMESTAMP)
        columns.append(table.column(CREATED_TIMESTAMP).cast(TIMESTAMP_TYPE))
    return pa.Table.from_arrays(columns, names=names)


def rename_timestamp(
    table: pa.Table, timestamp_field: str, created_timestamp_column: str = ""
) -> pa.Table:
    """``table`` with the source's timestamp columns named as the pipeline names them.

    Args:
        table: Rows as the source has them.
        timestamp_field: The source's event-timestamp column (-> ``event_timestamp``).
        created_timestamp_column: The source's created timestamp column, if it names one
            (-> ``created_timestamp``).

    Returns:
        The table renamed.
    """
    names = {timestamp_field: EVENT_TIMESTAMP}
    if created_timestamp_column:
        names[created_timestamp_column] = CREATED_TIMESTAMP
    return table.rename_columns([names.get(c, c) for c in table.column_names])


def to_source_names(
    table: pa.Table, timestamp_field: str, created_timestamp_column: str | None = None
) -> pa.Table:
    """A pulled table with the source's timestamp names (the shape of Feast's pulls).

    The inverse of :func:`rename_timestamp`: ``event_timestamp`` -> ``timestamp_field``,
    ``created_timestamp`` -> ``created_timestamp_column`` (a null column when the table has no
    created timestamps: Feast reads the column whenever the source names one). Without a
    ``created_timestamp_column`` the created timestamps are dropped.

    Args:
        table: A table the pipeline yielded.
        timestamp_field: The name Feast expects for the event timestamp.
        created_timestamp_column: The name Feast expects for the created timestamp, if any.

    Returns:
        The renamed table.
    """
    if CREATED_TIMESTAMP in table.column_names and not created_timestamp_column:
        table = table.drop_columns([CREATED_TIMESTAMP])
    elif created_timestamp_column and CREATED_TIMESTAMP not in table.column_names:
        table = table.append_column(
            CREATED_TIMESTAMP, pa.nulls(table.num_rows, type=TIMESTAMP_TYPE)
        )
    names = {EVENT_TIMESTAMP: timestamp_field}
    if created_timestamp_column:
        names[CREATED_TIMESTAMP] = created_timestamp_column
    return table.rename_columns([names.get(c, c) for c in table.column_names])


def take_ids(table: pa.Table | None, ids: Sequence[str]) -> pa.Table | None:
    """The rows of ``table`` whose ``customer_id`` is in ``ids``; ``None`` if there is nothing."""
    if table is None or not ids:
        return None
    return table.filter(pc.is_in(table.column(ENTITY), value_set=pa.array(list(ids), pa.string())))


def concat(tables: Sequence[pa.Table]) -> pa.Table | None:
    """The tables' rows on their common columns (types promoted); ``None`` for no tables."""
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    common = [c for c in tables[0].column_names if all(c in t.column_names for t in tables)]
    return pa.concat_tables([t.select(common) for t in tables], promote_options="default")


def prepend(first: pa.Table | None, rest: Iterator[pa.Table]) -> Generator[pa.Table, None, None]:
    """``first`` then ``rest``; nothing at all when ``first`` is ``None`` (the stream was empty)."""
    if first is not None:
        yield first
        yield from rest


def chunks(table: pa.Table, chunk_size: int) -> Iterator[pa.Table]:
    """``table`` cut into tables of at most ``chunk_size`` rows (none for an empty table)."""
    if table.num_rows == 0:
        return
    for batch in table.combine_chunks().to_batches(max_chunksize=chunk_size):
        yield pa.Table.from_batches([batch])
