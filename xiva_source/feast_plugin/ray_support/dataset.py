"""Feast's Ray engine: a pull as a Ray Data datasource, one read task per part.

Feast's read node calls the retrieval job's ``to_ray_dataset()`` (:func:`ray_dataset`), then
filters, dedups and writes the online store in Ray workers. Rows are those of
``pull_all_from_table_or_query`` in-process: partial rows left out, timestamp renamed. Each task
records its part in the shared state when it ends (``spec.record``): the job carries on from a
pull whose every part is recorded (:mod:`~xiva_source.feast_plugin.feast_runs`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from xiva_source.feast_plugin.ray_support.parts import (
    PullSpec,
    ReadPart,
    empty_part,
    plan_parts,
    read_part,
)
from xiva_source.pipeline.report import PullReport

if TYPE_CHECKING:
    import ray.data

__all__ = ["ray_dataset"]

logger = logging.getLogger(__name__)


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
                        yield empty_part(spec)  # the dataset keeps its schema when nothing is read
                    if spec.record is not None:
                        spec.record.save(report, part=index, parts=len(parts))
                    logger.info(
                        "pulled %s part %d/%d: rows %s%s",
                        spec.source.name,
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
