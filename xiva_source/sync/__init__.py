"""The real-time sync worker (``xiva-source sync``): Xiva's and the DWH's changes followed into
the online store and the segments within seconds.

=================  ==============================================================================
module             concern
=================  ==============================================================================
``worker``         :class:`SyncWorker`: the loop (lock, Xiva batches, DWH, day boundary, status)
``checkpoint``     the position ``(lastUpdate, ids done at that second)`` saved after each batch
``dwh``            :class:`DwhFollower`: the DWH's newer rows through the pipeline's one merge
``status``         the status record in Redis (``xiva-source status``), the counters
``metrics``        the Prometheus textfile and ``/metrics``
``errors``         the worker's errors (light)
=================  ==============================================================================

Names load on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.sync.checkpoint import Checkpoint, CheckpointStore, checkpoint_key
    from xiva_source.sync.dwh import DwhFollower
    from xiva_source.sync.errors import SyncCheckpointError, SyncConfigError, SyncError
    from xiva_source.sync.metrics import MetricsServer, SyncMetrics, sync_textfile
    from xiva_source.sync.status import (
        SyncCounters,
        SyncStatus,
        read_status,
        status_json,
        status_key,
        status_lines,
        sync_lock_key,
    )
    from xiva_source.sync.worker import SyncHook, SyncOptions, SyncWorker

__all__ = lazy.attach(__name__, __file__)
