"""The cron job's pulls on Ray: one streaming Ray task per part, chunks consumed in part order.

The job writes the chunks with its own writer (lock, watermarks, partial rows written cell by
cell, as a local run); each part's report comes last from its task and is merged into the pull's
(:meth:`~xiva_source.pipeline.report.PullReport.merge`).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from xiva_source.feast_plugin.ray_support.parts import PullSpec, ReadPart, plan_parts, read_part
from xiva_source.pipeline.report import PullReport

__all__ = ["stream_on_ray"]


@dataclass
class _PartResult:
    """What a part returns to the job after its chunks: its report, or its error."""

    report: PullReport = field(default_factory=PullReport)
    error: BaseException | None = None


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
                report.merge(item.report)
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
