"""Segments in the warehouse: rules compiled to SQL and run in the DWH (``--in-dwh``).

- :mod:`segmentation.sql.compiler`: a segment's rules compiled to a two-valued SQLAlchemy
  ``WHERE`` clause (the members the in-memory path finds; features that age relative to ``now``;
  what cannot compile is refused by name: :class:`SqlCompileError`).
- :mod:`segmentation.sql.warehouse`: :class:`DwhSegments` runs them over the latest row of every
  customer (sizes, members, export); :func:`segment_groups` gives an export's ``group`` column.

Example:
    >>> dwh = DwhSegments("sqlite:///dwh.sqlite", segments)  # doctest: +SKIP
    >>> dwh.sizes()  # doctest: +SKIP
    {'gold_vip': 120, 'at_risk': 37}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from segmentation.sql.compiler import (
        SqlCompileError,
        SqlFeature,
        compile_rule_sql,
        compile_segment_sql,
        feature_columns,
    )
    from segmentation.sql.warehouse import DwhSegments, SegmentCounts, segment_groups

__all__ = lazy.attach(__name__, __file__)
