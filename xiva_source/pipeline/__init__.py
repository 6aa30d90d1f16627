"""The pull pipeline: pulls from Xiva and the DWH, the ``auto`` merge, the run report.

Arrow only: imports nothing of Feast or of :mod:`xiva_source.feast_plugin`; what it needs of a
source is written down as Protocols in :mod:`xiva_source.pipeline.sources`.

==================  ================================================================
module              concern
==================  ================================================================
``pull``            :func:`pull_batches`: dispatch on the source and the mode
``context``         :class:`PullOptions`, :class:`PullContext`, feature Arrow types
``xiva_pull``       Xiva, streamed: changed and pending customers, 360 views, the snapshot table
``retries``         :class:`PendingRetries`: customers not read, fetched again by the next pull
``dwh_pull``        the DWH: streamed reads, lookups by id
``auto``            both, merged per customer; fallbacks
``merge``           merge precedence: the one implementation
``report``          :class:`PullReport`, :func:`record_fallback`
``progress``        :class:`BarProgress`, :func:`progress_bar`: the tqdm bar a pull drives
``tables``          Arrow helpers (output shape, chunks)
``sources``         the Protocols a source satisfies
``errors``          :class:`AllSourcesFailedError`
==================  ================================================================

Names load on first use (PEP 562), so ``import xiva_source.pipeline.errors`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.pipeline.auto import pull_auto
    from xiva_source.pipeline.context import PullContext, PullOptions, feature_arrow_types
    from xiva_source.pipeline.dwh_pull import pull_dwh
    from xiva_source.pipeline.errors import AllSourcesFailedError
    from xiva_source.pipeline.merge import (
        merge_aligned,
        merge_tables,
        merge_values,
        preferred_first,
    )
    from xiva_source.pipeline.pull import pull_batches
    from xiva_source.pipeline.report import PullReport, record_fallback
    from xiva_source.pipeline.retries import PendingRetries
    from xiva_source.pipeline.sources import (
        CustomerSourceSpec,
        DwhSourceSpec,
        PullSource,
        XivaSourceSpec,
    )
    from xiva_source.pipeline.tables import empty_table
    from xiva_source.pipeline.xiva_pull import iter_xiva, pull_xiva

__all__ = lazy.attach(__name__, __file__)
