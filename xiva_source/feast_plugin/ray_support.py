"""Pulls on Ray: split by customer range so Ray workers read the DWH in parallel.

Ray is optional (the ``ray`` extra): nothing imports this module until a Ray engine runs, and
it imports Ray itself only inside the functions that need it.

A pull (:class:`PullSpec`) is cut into parts (:func:`plan_parts`):

- a DWH read (a ``DwhSource``, or a ``CustomerSource`` in ``dwh`` mode) becomes one part per
  customer range, cut at :func:`~xiva_source.dwh.reads.customer_boundaries` (ids as text,
  ``ntile`` over the window): each part reads ``lower <= customer_id < upper`` (NULL ids in the
  first), so every row is read exactly once, and a customer's rows stay in one part, oldest first;
- a pull with a Xiva side (``xiva`` or ``auto`` mode) is one part running the whole
  :func:`~xiva_source.pipeline.pull.pull_batches`: Xiva's customer list cannot be cut by id range
  cheaply, and ``auto``'s merge order (Xiva's changes, then the DWH window merged with them) must
  stay in one stream. Its report, fallbacks and partial rows are exactly the in-process ones.

Two consumers:

- Feast's Ray engine (``batch_engine: type: ray.engine``): its read node calls the retrieval
  job's ``to_ray_dataset()`` (:func:`ray_dataset`: a Ray Data datasource, one read task per
  part), then filters, dedups and writes the online store in Ray workers. Rows are those of
  ``pull_all_from_table_or_query`` in-process: partial rows left out, timestamp renamed.
- The cron job (:func:`stream_on_ray`): one streaming Ray task per part; the job consumes the
  chunks in part order and writes them with its own writer, and the parts' reports are merged
  into the run's report (watermarks, summary line).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from xiva_source.features.catalogue import CREATED_TIMESTAMP, ENTITY, EVENT_TIMESTAMP
from xiva_source.pipeline.auto import is_partial
from xiva_source.pipeline.context import PullContext, PullOptions, feature_arrow_types
from xiva_source.pipeline.report import PullReport
from xiva_source.pipeline.sources import source_kind
from xiva_source.pipeline.tables import conform, empty_table, rename_timestamp, to_source_names
from xiva_source.settings import DataSourceMode, Settings
from xiva_source.timeutil import as_utc

if TYPE_CHECKING:
    import ray.data

    from xiva_source.pipeline.sources import DwhSourceSpec

__all__ = [
    "PullSpec",
    "ReadPart",
    "connect_ray",
    "default_parallelism",
    "merge_reports",
    "plan_parts",
    "ray_dataset",
    "read_part",
    "stream_on_ray",
]

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
        timestamp_field: The name Feast expects for the event timestamp (Feast's path).
        created_timestamp_column: The name Feast expects for the created timestamp ("": none).
        for_feast: Shape rows as ``pull_all_from_table_or_query`` does: partial rows left out,
            schema metadata dropped, timestamps renamed to ``timestamp_field`` and
            ``created_timestamp_column``.
        latest: Keep each customer's latest row (``pull_latest_from_table_or_query``).
    """

    source: Any
    settings: Settings
    feature_names: tuple[str, ...]
    start: datetime | None
    end: datetime
    options: PullOptions
    chunk_size: int = 10_000
    source_starts: Mapping[str, datetime | None] | None = None
    timestamp_field: str = EVENT_TIMESTAMP
    created_timestamp_column: str = ""
    for_feast: bool = False
    latest: bool = False


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


@dataclass
class _PartResult:
    """What a part returns to the job after its chunks: its report, or its error."""

    report: PullReport = field(default_factory=PullReport)
    error: BaseException | None = None


def dwh_side(spec: PullSpec) -> DwhSourceSpec | None:
    """The DWH source a pull reads alone (it can be cut by range), else ``None``."""
    kind = source_kind(spec.source)
    if kind == "dwh":
        return spec.source  # type: ignore[no-any-return]
    if kind == "customer" and spec.settings.feature_store_data_source == DataSourceMode.DWH:
        return spec.source.dwh  # type: ignore[no-any-return]
    return None


def plan_parts(spec: PullSpec, parts: int) -> list[ReadPart]:
    """Cut ``spec`` into at most ``parts`` parts (one whole part when it cannot be cut).

    Raises:
        DwhError: The DWH failed while the boundaries were read.
    """
    source = dwh_side(spec)
    if source is None or parts <= 1 or not spec.feature_names:
        return [ReadPart(whole=True)]
    from xiva_source.dwh.reads import customer_boundaries

    ctx = _context(spec, PullReport())
    bounds = customer_boundaries(
        source.url(spec.settings),
        source.spec,
        source.timestamp_field,
        start_date=_dwh_start(ctx),
        end_date=ctx.end,
        parts=parts,
    )
    edges: list[str | None] = [None, *bounds, None]
    return [ReadPart(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def read_part(spec: PullSpec, part: ReadPart, report: PullReport) -> Iterator[pa.Table]:
    """The chunks of one part, as the in-process pull yields them (run in a Ray worker).

    Raises:
        DataSourceError: A source failed (as the in-process pull raises it).
    """
    tables = _read_whole(spec, report) if part.whole else _read_range(spec, part, report)
    if spec.latest:
        from xiva_source.dwh.arrow import latest_per_customer

        every = list(tables)
        if every:
            table = pa.concat_tables(every, promote_options="default")
            yield latest_per_customer(table, *_ts_names(spec))
        return
    yield from tables


def _read_whole(spec: PullSpec, report: PullReport) -> Iterator[pa.Table]:
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
    ):
        shaped = _for_feast(spec, table) if spec.for_feast else table
        if shaped is not None:
            yield shaped


def _read_range(spec: PullSpec, part: ReadPart, report: PullReport) -> Iterator[pa.Table]:
    """``pipeline.dwh_pull.pull_dwh`` restricted to ``part``'s customer range."""
    from xiva_source.dwh.facts import counts_to_facts
    from xiva_source.dwh.reads import stream_rows
    from xiva_source.pipeline.dwh_pull import dwh_columns

    source = dwh_side(spec)
    assert source is not None  # plan_parts cuts DWH reads only
    report.mode = report.mode or DataSourceMode.DWH.value
    ctx = _context(spec, report)
    present = dwh_columns(source, ctx)
    for table in stream_rows(
        source.url(ctx.settings),
        source.spec,
        columns=[ENTITY, *present],
        timestamp_field=source.timestamp_field,
        start_date=_dwh_start(ctx),
        end_date=ctx.end,
        chunk_size=ctx.chunk_size,
        types=ctx.feature_types,
        order_by_timestamp=True,
        customer_range=(part.lower, part.upper),
    ):
        table = counts_to_facts(table, source.timestamp_field, keep=ctx.feature_names)
        table = rename_timestamp(
            table, source.timestamp_field, source.spec.created_timestamp_column
        )
        report.add_rows("dwh", table.num_rows)
        table = conform(table, ctx.feature_names, ctx.feature_types)
        shaped = _for_feast(spec, table) if spec.for_feast else table
        if shaped is not None:
            yield shaped


def _context(spec: PullSpec, report: PullReport) -> PullContext:
    return PullContext(
        settings=spec.settings,
        options=spec.options,
        feature_types=feature_arrow_types(),
        feature_names=tuple(spec.feature_names),
        start=as_utc(spec.start) if spec.start is not None else None,
        end=as_utc(spec.end),
        chunk_size=spec.chunk_size,
        report=report,
        retries=None,
        source_starts={k: as_utc(v) if v else None for k, v in (spec.source_starts or {}).items()},
    )


def _dwh_start(ctx: PullContext) -> datetime | None:
    from dataclasses import replace

    from xiva_source.pipeline.dwh_pull import lookback_start

    return lookback_start(replace(ctx, start=ctx.start_for("dwh")))


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
            getattr(spec.source, "name", "?"),
        )
        return None
    return to_source_names(
        table.replace_schema_metadata(None), spec.timestamp_field, spec.created_timestamp_column
    )


def _empty(spec: PullSpec) -> pa.Table:
    table = empty_table(feature_arrow_types(), list(spec.feature_names))
    shaped = _for_feast(spec, table) if spec.for_feast else None
    return shaped if shaped is not None else table


def merge_reports(into: PullReport, part: PullReport) -> None:
    """Add a part's report to the pull's (counts summed, lists and errors joined)."""
    into.mode = into.mode or part.mode
    for source, n in part.rows_by_source.items():
        into.add_rows(source, n)
    for f in fields(PullReport):
        name = f.name
        if name in ("mode", "rows_by_source", "progress"):
            continue
        mine, theirs = getattr(into, name), getattr(part, name)
        if name in ("max_lateness_seconds", "overlap_seconds"):
            setattr(into, name, max(mine, theirs))
        elif name == "pending_retries":
            setattr(into, name, None if mine is None or theirs is None else mine + theirs)
        elif isinstance(mine, list):
            mine.extend(theirs)
        elif isinstance(mine, dict):
            mine.update(theirs)
        elif isinstance(mine, (int, float)) and not isinstance(mine, bool):
            setattr(into, name, mine + theirs)


def connect_ray(config: Any) -> None:
    """Connect to the Ray cluster of the repository's Ray engine, as Feast's engine does.

    ``batch_engine.ray_address`` (e.g. ``ray://head:10001``), KubeRay settings and ``ray_conf``
    are Feast's (:func:`feast.infra.ray_initializer.ensure_ray_initialized`); an already
    initialized Ray (a test's, a notebook's) is used as it is.
    """
    from feast.infra.ray_initializer import ensure_ray_initialized

    ensure_ray_initialized(config.batch_engine)


def default_parallelism(config: Any | None = None) -> int:
    """Parts per pull: the engine's ``max_workers``, else the cluster's CPUs times its
    ``max_parallelism_multiplier`` (Feast's Ray engine settings), at least 1."""
    import ray

    engine = getattr(config, "batch_engine", None) if config is not None else None
    workers = getattr(engine, "max_workers", None)
    if workers:
        return max(1, int(workers))
    multiplier = int(getattr(engine, "max_parallelism_multiplier", 2) or 2)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus * multiplier)


# --------------------------------------------------------------------------------------------
# Feast's Ray engine: a Ray Data datasource, one read task per part


def ray_dataset(spec: PullSpec, parallelism: int) -> ray.data.Dataset:
    """``spec`` as a Ray Dataset read by one Ray task per part (Feast's read node uses it).

    Raises:
        DwhError: The DWH failed while the ranges were planned.
    """
    import ray.data

    parts = plan_parts(spec, parallelism)
    return ray.data.read_datasource(_datasource(spec, parts), override_num_blocks=len(parts))


def _datasource(spec: PullSpec, parts: list[ReadPart]) -> Any:
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class LoyaltyPullDatasource(Datasource):  # type: ignore[misc]
        """One read task per part of the pull."""

        def get_name(self) -> str:
            return "LoyaltyPull"

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(  # type: ignore[override]  # newer Ray passes more keywords
            self, parallelism: int, **kwargs: Any
        ) -> list[ReadTask]:
            # The parts were planned on the driver; Ray's own parallelism hint is not used.
            def task(index: int, part: ReadPart) -> ReadTask:
                def read() -> Iterator[pa.Table]:
                    report = PullReport()
                    n = 0
                    for table in read_part(spec, part, report):
                        n += table.num_rows
                        yield table
                    if n == 0 and index == 0:
                        yield _empty(spec)  # the dataset keeps its schema when nothing is read
                    logger.info(
                        "pulled %s part %d/%d: rows %s%s",
                        getattr(spec.source, "name", "?"),
                        index + 1,
                        len(parts),
                        report.rows_by_source,
                        f", fallbacks: {report.fallbacks}" if report.fallbacks else "",
                    )

                meta = BlockMetadata(
                    num_rows=None, size_bytes=None, input_files=None, exec_stats=None
                )
                return ReadTask(read, meta)

            return [task(i, part) for i, part in enumerate(parts)]

    return LoyaltyPullDatasource()


# --------------------------------------------------------------------------------------------
# the cron job: streaming Ray tasks, chunks consumed in part order, reports merged


def stream_on_ray(
    spec: PullSpec, report: PullReport, parallelism: int, task_options: Mapping[str, Any] | None
) -> Iterator[pa.Table]:
    """The pull's chunks, read by one streaming Ray task per part (all parts run at once).

    Chunks come part by part, each part's in its own order (a customer's rows stay in order);
    after the last chunk ``report`` holds every part's report merged.

    Raises:
        DataSourceError: A part's source failed (the task's own error, re-raised here).
    """
    import ray

    parts = plan_parts(spec, parallelism)
    # A part runs at most this many chunks ahead of the job's writes: memory stays bounded.
    options: dict[str, Any] = {"_generator_backpressure_num_objects": 4}
    options.update(task_options or {})
    remote = ray.remote(num_returns="streaming")(_part_task).options(**options)
    pending = [remote.remote(spec, part) for part in parts]
    everything = list(pending)
    try:
        while pending:
            # Whichever part has a chunk ready: parts are disjoint in customers, so only the
            # order inside a part matters (a customer's rows, oldest first).
            ready, _ = ray.wait(pending, num_returns=1)
            generator = ready[0]
            try:
                ref = next(generator)  # type: ignore[arg-type]  # an ObjectRefGenerator
            except StopIteration:
                pending.remove(generator)
                continue
            item = ray.get(ref)
            if isinstance(item, _PartResult):
                merge_reports(report, item.report)
                if item.error is not None:
                    raise item.error
            else:
                yield item
    finally:
        for generator in everything:
            ray.cancel(generator)  # a failed or abandoned pull stops its other parts


def _part_task(spec: PullSpec, part: ReadPart) -> Iterator[pa.Table | _PartResult]:
    """One part in a Ray worker: its chunks, then its report (or its error) last."""
    report = PullReport()
    try:
        yield from read_part(spec, part, report)
    except Exception as e:
        report.progress = None
        yield _PartResult(report, _picklable(e))
        return
    report.progress = None
    yield _PartResult(report)


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
