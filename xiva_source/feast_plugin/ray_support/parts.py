"""A pull cut into parts that Ray tasks read.

A DWH read (a ``DwhSource``, or a ``CustomerSource`` in ``dwh`` mode) becomes one part per
customer range (:func:`~xiva_source.pipeline.pull.customer_ranges`): every row in exactly one
part, a customer's rows in one part, oldest first. A pull with a Xiva side is one part, the whole
pull: its report, fallbacks and partial rows are exactly the in-process ones. Either way a part
is read by :func:`~xiva_source.pipeline.pull.pull_batches` itself (with ``customer_range=``),
so a part's rows are those of the in-process pull.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from xiva_source.features.catalogue import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from xiva_source.pipeline.auto import is_partial
from xiva_source.pipeline.context import PullOptions, feature_arrow_types
from xiva_source.pipeline.report import PullReport
from xiva_source.pipeline.tables import empty_table, to_source_names
from xiva_source.settings import Settings

if TYPE_CHECKING:
    from xiva_source.feast_plugin.feast_runs import FeastPullRecord

__all__ = ["PullSpec", "ReadPart", "empty_part", "plan_parts", "read_part"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullSpec:
    """One pull, as a value a Ray task receives (pickled: it carries the driver's settings).

    Attributes:
        source: The view's ``XivaSource``, ``DwhSource`` or ``CustomerSource``.
        settings: The driver's settings (workers read with exactly them).
        feature_names: Features to read.
        start: Window start (``None``: everything).
        end: Window end.
        options: The offline store's options.
        chunk_size: Rows per chunk.
        source_starts: Start per source (the job's watermarks), overriding ``start``.
        rereads: The job's re-read marks (``pull_batches(rereads=)``).
        timestamp_field: The name Feast expects for the event timestamp (Feast's path).
        created_timestamp_column: The name Feast expects for the created timestamp ("": none).
        for_feast: Shape rows as ``pull_all_from_table_or_query`` does: partial rows left out,
            schema metadata dropped, timestamps renamed to ``timestamp_field`` and
            ``created_timestamp_column``.
        latest: Keep each customer's latest row (``pull_latest_from_table_or_query``).
        record: Feast's path: each part records what it merged in the shared state when it
            ends (:class:`~xiva_source.feast_plugin.feast_runs.FeastPullRecord`).
    """

    source: Any
    settings: Settings
    feature_names: tuple[str, ...]
    start: datetime | None
    end: datetime
    options: PullOptions
    chunk_size: int = 10_000
    source_starts: Mapping[str, datetime | None] | None = None
    rereads: Mapping[str, datetime | None] | None = None
    timestamp_field: str = EVENT_TIMESTAMP
    created_timestamp_column: str = ""
    for_feast: bool = False
    latest: bool = False
    record: FeastPullRecord | None = None


@dataclass(frozen=True)
class ReadPart:
    """A part of a pull: a customer range of a DWH read, or the whole pull.

    Attributes:
        lower: Inclusive lower customer id (``None``: from the start, NULL ids included).
        upper: Exclusive upper customer id (``None``: to the end).
        whole: The whole pull (``pull_batches``), not a range.
    """

    lower: str | None = None
    upper: str | None = None
    whole: bool = False


def plan_parts(spec: PullSpec, parts: int) -> list[ReadPart]:
    """Cut ``spec`` into at most ``parts`` parts (one whole part when it cannot be cut).

    Raises:
        DwhError: The DWH failed while the boundaries were read.
    """
    if parts <= 1 or not spec.feature_names:
        return [ReadPart(whole=True)]
    from xiva_source.pipeline.pull import customer_ranges

    ranges = customer_ranges(
        spec.source,
        parts,
        settings=spec.settings,
        start_date=spec.start,
        end_date=spec.end,
        source_starts=spec.source_starts,
    )
    if ranges is None:  # a pull with a Xiva side
        return [ReadPart(whole=True)]
    return [ReadPart(lower, upper) for lower, upper in ranges]


def read_part(spec: PullSpec, part: ReadPart, report: PullReport) -> Iterator[pa.Table]:
    """The chunks of one part, as the in-process pull yields them (run in a Ray worker).

    Raises:
        DataSourceError: A source failed (as the in-process pull raises it).
    """
    tables = _pull(spec, part, report)
    if spec.latest:
        from xiva_source.dwh.arrow import latest_per_customer

        every = list(tables)
        if every:
            table = pa.concat_tables(every, promote_options="default")
            yield latest_per_customer(table, *_ts_names(spec))
        return
    yield from tables


def empty_part(spec: PullSpec) -> pa.Table:
    """No row, in the shape of ``spec``'s chunks (a dataset keeps its schema when empty)."""
    table = empty_table(feature_arrow_types(), list(spec.feature_names))
    shaped = _for_feast(spec, table) if spec.for_feast else None
    return shaped if shaped is not None else table


def _pull(spec: PullSpec, part: ReadPart, report: PullReport) -> Iterator[pa.Table]:
    from xiva_source.pipeline.pull import pull_batches

    for table in pull_batches(
        spec.source,
        settings=spec.settings,
        feature_names=list(spec.feature_names),
        start_date=spec.start,
        end_date=spec.end,
        options=spec.options,
        chunk_size=spec.chunk_size,
        report=report,
        source_starts=spec.source_starts,
        customer_range=None if part.whole else (part.lower, part.upper),
        rereads=spec.rereads,
    ):
        shaped = _for_feast(spec, table) if spec.for_feast else table
        if shaped is not None:
            yield shaped


def _ts_names(spec: PullSpec) -> tuple[str, str]:
    """The event and created timestamp columns of the part's tables."""
    if spec.for_feast:
        return spec.timestamp_field, spec.created_timestamp_column
    return EVENT_TIMESTAMP, CREATED_TIMESTAMP


def _for_feast(spec: PullSpec, table: pa.Table) -> pa.Table | None:
    """A chunk as ``pull_all_from_table_or_query`` returns it; ``None`` for a partial chunk."""
    if is_partial(table):
        # As in-process: Feast writes whole rows, so partial rows would erase online values.
        logger.warning(
            "%d rows of %s left out: a source failed and Feast cannot write partial rows; "
            "`xiva-source materialize` catches them up",
            table.num_rows,
            spec.source.name,
        )
        return None
    return to_source_names(
        table.replace_schema_metadata(None), spec.timestamp_field, spec.created_timestamp_column
    )
