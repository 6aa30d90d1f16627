"""Pulls on Ray: split by customer range so Ray workers read the DWH in parallel.

Ray is optional (the ``ray`` extra): nothing imports this package until a Ray engine runs, and
it imports Ray itself only inside the functions that need it.

==============  ==================================================================================
``parts``       :class:`PullSpec` (a pull as a value a task receives), :func:`plan_parts` (a DWH
                read by customer range, a pull with a Xiva side whole), :func:`read_part` (a part
                read by the pipeline's ``pull_batches``)
``cluster``     :func:`connect_ray`, :func:`default_parallelism` (Feast's ``batch_engine``)
``dataset``     :func:`ray_dataset`: a Ray Data datasource for Feast's Ray engine
                (``to_ray_dataset()``), one read task per part
``stream``      :func:`stream_on_ray`: the cron job's streaming Ray tasks, reports merged
==============  ==================================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.feast_plugin.ray_support.cluster import connect_ray, default_parallelism
    from xiva_source.feast_plugin.ray_support.dataset import ray_dataset
    from xiva_source.feast_plugin.ray_support.parts import PullSpec, ReadPart, plan_parts, read_part
    from xiva_source.feast_plugin.ray_support.stream import stream_on_ray

__all__ = lazy.attach(__name__, __file__)
