"""The jobs: the cron-safe materialization run and the live refresh of one customer.

=================  ==============================================================================
module             concern
=================  ==============================================================================
``materialize``    :func:`run_materialization`: one run over every feature view (window, writes,
                   watermark)
``summary``        :class:`RunSummary` / :class:`ViewRun`: what a run did, its one summary line
``locks``          the run's mutual exclusion: the one lock (:mod:`xiva_source.locking`) per store
``plan``           per view: its sources, where each starts and where its watermark goes
``state``          the job's use of the shared run state (:mod:`xiva_source.feast_plugin.run_state`)
``expiry``         online expiry measured from the last successful run
``failures``       a failure's ``problem`` and ``fix`` (the one mapping of foreign exceptions)
``refresh``        :func:`refresh_customer`: Xiva now -> the online store, for one customer
``errors``         the jobs' errors (light: imports no job)
=================  ==============================================================================

Names load on first use (PEP 562): ``import xiva_source.jobs.errors`` does not import Feast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.jobs.errors import (
        LiveRefreshError,
        LockLostError,
        MaterializationConfigError,
        MaterializationError,
        MaterializationFailedError,
        MaterializationStateError,
    )
    from xiva_source.jobs.expiry import extend_online_expiry, sweep_store_expiry
    from xiva_source.jobs.locks import (
        FileMaterializationLock,
        RedisMaterializationLock,
        lock_for_store,
    )
    from xiva_source.jobs.materialize import run_materialization
    from xiva_source.jobs.refresh import CUSTOMER_VIEW, refresh_customer
    from xiva_source.jobs.summary import RunSummary, ViewRun

__all__ = lazy.attach(__name__, __file__)
