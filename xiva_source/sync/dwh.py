"""The DWH follower: the worker's reads of the warehouse's newer rows, on their own interval.

Every ``dwh_interval`` the worker reads, for each feature view that reads the DWH in this mode
(``customer_dwh_features`` always; ``customer_features`` in ``auto`` and ``dwh``), the rows with an
``updated_at`` after its last complete read, with the job's lookback (``DWH_LOOKBACK_SECONDS``
before it, so late ETL loads are caught as the job catches them), through the pipeline's one pull
(:func:`xiva_source.pipeline.pull_batches`): in ``auto`` each DWH row is merged with Xiva's last
known values (the snapshot table the worker's Xiva path appends to) by the one merge precedence
(:mod:`xiva_source.pipeline.merge`), and Xiva's side is read from "now" only (the worker's Xiva
path follows it). Rows go through the job's writer (:class:`~xiva_source.jobs.writes.OnlineWriter`:
newer-wins in Redis, partial rows by cell), so the follower, the worker's Xiva path and a cron job
never write a row over a newer one.

A DWH that fails (or, in ``auto``, a pull whose DWH rows could not be merged) raises
:class:`~xiva_source.dwh.errors.DwhError`; the position stays where it was, and the next read
after the DWH is back covers the outage.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from xiva_source.redis_client import RedisClient
    from xiva_source.settings import Settings

__all__ = ["DwhFollower"]

logger = logging.getLogger(__name__)


class DwhFollower:
    """Reads the DWH's newer rows into the online store (see the module docstring).

    Args:
        store: The feature store.
        settings: The settings (mode, merge strategy, ``DWH_URL``, lookback).
        client: The online store's Redis client (the writer's).
    """

    def __init__(self, store: FeatureStore, settings: Settings, client: RedisClient) -> None:
        from feast.infra.online_stores.helpers import get_online_store_from_config

        self.store = store
        self.settings = settings
        self.client = client
        self.online_store = get_online_store_from_config(store.config.online_store)

    def views(self) -> list[FeatureView]:
        """The views that read the DWH in this mode."""
        from xiva_source.feast_plugin.feast_runs import view_mode

        mode = self.settings.feature_store_data_source.value
        return [
            fv
            for fv in sorted(self.store.list_feature_views(), key=lambda v: v.name)
            if fv.batch_source is not None and view_mode(fv.batch_source, mode) != "xiva"
        ]

    def follow(self, since: datetime | None, now: datetime) -> int:
        """Write the DWH rows updated in ``[since - lookback, now]`` (everything: ``since`` None).

        Returns:
            The rows sent to the online store.

        Raises:
            DwhError: The DWH failed, or its rows could not be merged with Xiva's (``auto``).
            OnlineStoreError: Redis failed.
        """
        from xiva_source.feast_plugin.feast_runs import unmerged
        from xiva_source.jobs.writes import OnlineWriter
        from xiva_source.pipeline.context import PullOptions
        from xiva_source.pipeline.pull import pull_batches
        from xiva_source.pipeline.report import PullReport

        written = 0
        options = PullOptions.from_repo_config(self.store.config)
        for fv in self.views():
            report = PullReport()
            join_keys: dict[str, Any] = {
                column.name: column.dtype.to_value_type() for column in fv.entity_columns
            }
            writer = OnlineWriter(self.store, self.online_store, client=self.client)
            try:
                for table in pull_batches(
                    fv.batch_source,  # type: ignore[arg-type]  # our sources satisfy the specs
                    settings=self.settings,
                    feature_names=[f.name for f in fv.features],
                    start_date=since,
                    end_date=now,
                    options=options,
                    report=report,
                    # Xiva's changes are the worker's own path: read from now only.
                    source_starts={"xiva": now, "dwh": since},
                ):
                    written += writer.write(fv, table, join_keys)
                writer.flush()
            except DwhError:
                raise
            except DataSourceError as e:  # both sources failed (auto)
                raise DwhError(f"the DWH read of {fv.name} failed: {e}") from e
            if unmerged(report, "dwh"):
                reason = report.errors.get("dwh") or "; ".join(report.fallbacks) or "unmerged"
                raise DwhError(f"the DWH rows of {fv.name} were not merged: {reason}")
            logger.debug("DWH follower: %s %d rows up to %s", fv.name, written, now)
        return written
