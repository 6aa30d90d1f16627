"""A segment's members written to a file for a campaign: the one place both exports share.

:meth:`segmentation.engine.SegmentEngine.export` (over the online store, chunk by chunk) and
:meth:`segmentation.sql.DwhSegments.export` (in the warehouse, one frame) check the file name,
add the ``group`` column and write CSV or parquet here, so their files have the same columns and
the same format.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmentation.errors import SegmentationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXPORT_SUFFIXES", "GROUP_COLUMN", "export_target", "insert_groups", "write_frames"]

EXPORT_SUFFIXES = (".csv", ".parquet")
"""The export formats, by the file's suffix."""

GROUP_COLUMN = "group"
"""The column of each member's group (:mod:`segmentation.groups`), after the join key."""


def export_target(path: str | os.PathLike[str]) -> Path:
    """The export file ``path``, checked before anything is computed.

    Args:
        path: ``*.csv`` or ``*.parquet``.

    Returns:
        The path.

    Raises:
        SegmentationError: The suffix is neither ``.csv`` nor ``.parquet``.
    """
    target = Path(path)
    if target.suffix not in EXPORT_SUFFIXES:
        raise SegmentationError(
            f"cannot export to {target.name!r}: unknown format",
            "name the file *.csv or *.parquet",
        )
    return target


def insert_groups(frame: pd.DataFrame, groups: Iterable[str]) -> None:
    """Insert the ``group`` column (one group per row, in order) after the join key, in place."""
    import pandas as pd

    frame.insert(1, GROUP_COLUMN, pd.Series(list(groups), dtype=object, index=frame.index))


def write_frames(target: Path, frames: Iterable[pd.DataFrame], schema: Any = None) -> None:
    """Write ``frames`` to ``target`` (``.csv`` or ``.parquet``) one after the other, creating
    its directory.

    A CSV file gets the header once. A parquet file gets one row group per frame, all with
    ``schema`` (default: the first frame's), so a chunk whose column holds only nulls still gets
    the column's type.

    Args:
        target: A path checked by :func:`export_target`.
        frames: The rows, chunk by chunk (at least one frame, possibly empty).
        schema: The parquet file's ``pyarrow.Schema`` (ignored for CSV).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".csv":
        with target.open("w", newline="", encoding="utf-8") as out:
            for i, frame in enumerate(frames):
                frame.to_csv(out, index=False, header=i == 0)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A known schema opens the file at once: the engine's chunks are then read while written.
    writer = None if schema is None else pq.ParquetWriter(target, schema)
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
