"""How the job writes the online store: its last write wins, partial rows keep what they don't know.

Feast's Redis writer skips a row whose event timestamp is not newer than the stored ``_ts`` of its
view. The job does not rely on that: a merged row's timestamp is the later of its sources' (a
Xiva change stamped before the DWH row it is merged with would lose against the row already
stored), a catch-up after a fallback carries the same timestamps as the partial rows it repairs,
and ``--full`` must rewrite a row stamped in the year 9999. So the job writes with Feast's own
``skip_dedup`` (every row written, in order) and orders what it writes instead: it holds the
lock, every DWH read comes oldest row first, and ``auto`` writes each customer's fully merged row
after any other row of it (:mod:`xiva_source.pipeline.auto`). Its last write is the merged truth.
(Live refresh and Feast's own writers keep Feast's newer-wins check; a refresh racing a run is
overwritten by values at most one run old, and the next run reads that customer again.)

A partial table (:func:`xiva_source.pipeline.auto.is_partial`) is written cell by cell: its null
cells are left out of the row, so the online store keeps its value for them (Feast's writer sets
only the fields a row carries); a row with no known cell is not written at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.errors import OnlineStoreError
from xiva_source.pipeline.auto import is_partial

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore, FeatureView
    from feast.infra.online_stores.online_store import OnlineStore

__all__ = ["OnlineWriter"]


class OnlineWriter:
    """Writes the job's Arrow chunks to the online store (see the module docstring).

    Args:
        store: The job's own feature store (its online config is switched to last-write-wins).
        online_store: The online store instance.
    """

    def __init__(self, store: FeatureStore, online_store: OnlineStore) -> None:
        self.store = store
        self.online_store = online_store
        online = store.config.online_store
        if hasattr(online, "skip_dedup"):  # Redis; SQLite's upsert already lets the last win
            online.skip_dedup = True

    def write(self, fv: FeatureView, table: pa.Table, join_keys: dict[str, Any]) -> int:
        """Write ``table``'s rows for ``fv``; returns the rows written (partial rows may be none).

        Raises:
            OnlineStoreError: Redis failed.
        """
        from redis.exceptions import RedisError

        from xiva_source.feast_plugin.online_rows import to_online_rows

        partial = is_partial(table)
        written = 0
        for rows in to_online_rows(fv, table, join_keys):
            if partial:
                rows = _known_cells(rows)
            if not rows:
                continue
            try:
                self.online_store.online_write_batch(self.store.config, fv, rows, None)
            except RedisError as e:
                raise OnlineStoreError(f"the online store (Redis) failed: {e}") from e
            written += len(rows)
        return written


def _known_cells(rows: list[Any]) -> list[Any]:
    """Each row with its null cells left out; rows left with no cell dropped."""
    out = []
    for entity_key, values, ts, created in rows:
        known = {k: v for k, v in values.items() if not _is_null(v)}
        if known:
            out.append((entity_key, known, ts, created))
    return out


def _is_null(value: Any) -> bool:
    """A null cell: no value set, or Feast's null timestamp (NaT as an int)."""
    from feast.type_map import NULL_TIMESTAMP_INT_VALUE

    kind = value.WhichOneof("val")
    return kind is None or (
        kind == "unix_timestamp_val" and value.unix_timestamp_val == NULL_TIMESTAMP_INT_VALUE
    )
