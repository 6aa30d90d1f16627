"""``LoyaltyOfflineStore``: the one Feast offline store of the project.

It dispatches on the source type (Feast allows one offline store per repository):

- :class:`~xiva_source.feast_plugin.sources.DwhSource`: the DWH table or query;
- :class:`~xiva_source.feast_plugin.sources.XivaSource`: Xiva for materialization, the snapshot
  table for historical retrieval;
- :class:`~xiva_source.feast_plugin.sources.CustomerSource`: either, or both merged, per
  ``FEATURE_STORE_DATA_SOURCE`` / ``FEATURE_STORE_MERGE_STRATEGY``.

Pulls go through :func:`xiva_source.pipeline.pull.pull_batches`; historical retrieval through the
point-in-time engine (:mod:`xiva_source.feast_plugin.point_in_time`). Laid out like Feast's
``postgres_offline_store``: config, store, retrieval job, then private helpers.

Settings: every method Feast calls is an entry point. It loads the settings once, for the
repository (:func:`~xiva_source.feast_plugin.repo_settings.repo_settings`: the ``.env`` beside or
above it, then the environment), and passes them down; nothing below reads the environment.

``feature_store.yaml``::

    offline_store:
      type: xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore
      snapshot_table: xiva_customer_snapshots   # optional
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.offline_store import (
    OfflineStore,
    RetrievalJob,
    RetrievalMetadata,
)
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from pydantic import Field, StrictStr

from xiva_source import dwh
from xiva_source.dwh.tables import SNAPSHOT_TABLE
from xiva_source.feast_plugin.feast_runs import begin_feast_pull
from xiva_source.feast_plugin.on_demand import declared_inputs_only
from xiva_source.feast_plugin.repo_settings import repo_settings
from xiva_source.feast_plugin.sources import (
    CustomerSource,
    DwhSource,
    XivaSource,
    feature_arrow_types,
)
from xiva_source.features.catalogue import EVENT_TIMESTAMP
from xiva_source.pipeline.auto import is_partial
from xiva_source.pipeline.context import PullOptions
from xiva_source.pipeline.progress import progress_bar
from xiva_source.pipeline.pull import pull_batches
from xiva_source.pipeline.report import PullReport
from xiva_source.pipeline.tables import empty_table, to_source_names
from xiva_source.settings import Settings
from xiva_source.timeutil import utc_now

if TYPE_CHECKING:
    from xiva_source.feast_plugin.ray_support import PullSpec

__all__ = ["LoyaltyOfflineStore", "LoyaltyOfflineStoreConfig", "LoyaltyRetrievalJob"]

logger = logging.getLogger(__name__)


class LoyaltyOfflineStoreConfig(FeastConfigBaseModel):
    """Offline store config (``offline_store:`` in ``feature_store.yaml``)."""

    type: Literal[
        "xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore",
        # feature_store.yaml files written before the re-layout (compatibility shim)
        "xiva_source.offline_store.LoyaltyOfflineStore",
    ] = "xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore"
    """Offline store type selector."""
    snapshot_table: StrictStr = SNAPSHOT_TABLE
    """Table every Xiva pull is appended to (history of Xiva features for training)."""
    snapshot_url: StrictStr | None = None
    """SQLAlchemy URL of the snapshot table's database; None means DWH_URL (keep secrets out)."""
    chunk_size: int = Field(10_000, ge=1)
    """Rows per chunk read from the DWH (server-side cursor) and yielded by pulls."""
    pull_overlap_seconds: float | None = Field(None, ge=0)
    """How far before its start an incremental Xiva pull re-reads; None: the setting's."""
    max_failed_fraction: float = Field(0.05, ge=0, le=1)
    """Above this fraction of failed 360 fetches, the Xiva source fails as a whole."""
    write_snapshots: bool = True
    """Append every Xiva pull to the snapshot table."""
    full_pull_when_never_materialized: bool = True
    """Read everything (no lower bound) while no view of the source was ever materialized."""


class LoyaltyOfflineStore(OfflineStore):
    """Reads :class:`XivaSource`, :class:`DwhSource` and :class:`CustomerSource` for Feast."""

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        """The latest row per customer in ``[start_date, end_date]`` (see ``pull_all``).

        Latest: the latest ``timestamp_field``, then the latest ``created_timestamp_column``
        (a row without one loses the tie), as Feast's stores decide it.

        Raises:
            ConfigurationError: A setting is invalid.
        """
        every_row = LoyaltyOfflineStore.pull_all_from_table_or_query(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
        )
        return LoyaltyRetrievalJob(
            lambda: dwh.latest_per_customer(
                every_row._to_arrow_internal(), timestamp_field, created_timestamp_column or ""
            ),
            config=config,
            pull_spec=every_row.latest_pull_spec()
            if isinstance(every_row, LoyaltyRetrievalJob)
            else None,
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        """Every row of the source in ``[start_date, end_date]`` (lazily, when the job runs).

        While no feature view of this source was ever materialized, ``start_date`` is ignored
        and everything is read: Feast's first ``materialize-incremental`` starts at
        ``now - ttl``, which would silently drop customers unchanged for longer than the ttl.

        A ``DwhSource`` with a ``created_timestamp_column`` gives one row per customer and
        timestamp, the latest created, and that column (Feast reads it): so whichever of tied
        rows an online store would keep, it keeps the right one.

        Raises:
            ConfigurationError: A setting is invalid.
        """
        settings = repo_settings(config)
        pull = _pull_all(
            config,
            settings,
            data_source,
            feature_name_columns,
            timestamp_field,
            start_date,
            end_date,
            created_timestamp_column=created_timestamp_column or "",
        )
        spec = _pull_spec(
            config,
            settings,
            data_source,
            feature_name_columns,
            timestamp_field,
            start_date,
            end_date,
            created_timestamp_column=created_timestamp_column or "",
        )
        return LoyaltyRetrievalJob(pull, config=config, pull_spec=spec)

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        """Point-in-time correct features for each row of ``entity_df``.

        For each entity row and feature view, the latest source row with
        ``event_timestamp <= the row's timestamp`` and not older than the view's ttl is joined
        (:mod:`~xiva_source.feast_plugin.point_in_time`). DWH sources read the DWH; Xiva
        features read the snapshot table; ``CustomerSource`` follows the mode, and in ``auto``
        merges the two sides per feature with the same rule as materialization. A tie on the
        event timestamp goes to the latest created timestamp; the ttl is inclusive; duplicate
        entity rows each get their row: as in Feast's PostgreSQL store
        (``tests/xiva_source/feast_plugin/test_historical_vs_feast.py`` compares them).

        Raises:
            ValueError: ``entity_df`` is not a DataFrame, or lacks the join key / timestamp.
            FeatureNameCollisionError: Without ``full_feature_names``, two views serve a
                feature of one name (or a feature is named like an ``entity_df`` column).
            ConfigurationError: A setting is invalid.
        """
        assert isinstance(config.offline_store, LoyaltyOfflineStoreConfig)
        if not isinstance(entity_df, pd.DataFrame):
            raise ValueError(
                "LoyaltyOfflineStore needs entity_df as a pandas DataFrame with customer_id and "
                "event_timestamp columns (SQL entity queries and entity-less retrieval are not "
                "supported): read your entity rows into a DataFrame first"
            )
        for fv in feature_views:
            _check_source(fv.batch_source)
        schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        ts_col = offline_utils.infer_event_timestamp_from_entity_df(schema)
        join_keys = offline_utils.get_expected_join_keys(project, feature_views, registry)
        offline_utils.assert_expected_columns_in_entity_df(schema, join_keys, ts_col)
        from xiva_source.feast_plugin.point_in_time import check_columns, point_in_time

        check_columns(feature_views, feature_refs, entity_df.columns, full_feature_names)
        stamps = pd.to_datetime(entity_df[ts_col], utc=True)
        settings = repo_settings(config)
        options = PullOptions.from_repo_config(config)

        def run() -> pa.Table:
            frame = point_in_time(
                feature_views,
                feature_refs,
                entity_df,
                ts_col,
                full_feature_names,
                settings=settings,
                options=options,
            )
            return pa.Table.from_pandas(frame, preserve_index=False)

        return LoyaltyRetrievalJob(
            run,
            config=config,
            full_feature_names=full_feature_names,
            # Python-mode views get their inputs, not the whole table (feast_plugin.on_demand).
            on_demand_feature_views=declared_inputs_only(
                OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry), join_keys
            ),
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=[c for c in entity_df.columns if c != ts_col],
                min_event_timestamp=stamps.min().to_pydatetime() if len(stamps) else None,
                max_event_timestamp=stamps.max().to_pydatetime() if len(stamps) else None,
            ),
        )

    @staticmethod
    def offline_write_batch(
        config: RepoConfig,
        feature_view: FeatureView,
        table: pa.Table,
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Write pushed rows offline: a table-based DwhSource's table, else the snapshot table.

        Raises:
            ValueError: The view's source is a query-based DwhSource (nothing to insert into).
            ConfigurationError: A setting is invalid.
        """
        assert isinstance(config.offline_store, LoyaltyOfflineStoreConfig)
        source = feature_view.batch_source
        _check_source(source)
        settings = repo_settings(config)
        if isinstance(source, DwhSource):
            if not source.table:
                raise ValueError(
                    f"source {source.name!r} is a SQL query; offline writes need a table: give "
                    "the DwhSource table= or push to the online store only"
                )
            dwh.write_rows(source.url(settings), source.table, table)
        else:
            assert source is not None  # _check_source
            ts = source.timestamp_field
            if ts != EVENT_TIMESTAMP:
                table = table.rename_columns(
                    [EVENT_TIMESTAMP if c == ts else c for c in table.column_names]
                )
            types = feature_arrow_types()
            names = [f.name for f in feature_view.features]
            dwh.append_snapshots(
                PullOptions.from_repo_config(config).snapshot_database(settings),
                config.offline_store.snapshot_table,
                table,
                {n: types.get(n, pa.string()) for n in names},
            )
        if progress:
            progress(table.num_rows)

    def validate_data_source(self, config: RepoConfig, data_source: DataSource) -> None:
        """Reject foreign source types, then run the source's own validation."""
        _check_source(data_source)
        data_source.validate(config=config)


class LoyaltyRetrievalJob(RetrievalJob):
    """A lazy retrieval: ``table_fn`` runs when the job is converted (``to_arrow``/``to_df``).

    Args:
        table_fn: Produces the result table.
        config: The repository config.
        full_feature_names: Whether columns are ``view__feature``.
        on_demand_feature_views: On-demand views Feast applies to the result.
        metadata: Retrieval metadata (historical retrieval only).
        pull_spec: For a pull (materialization): builds the
            :class:`~xiva_source.feast_plugin.ray_support.PullSpec` that ``to_ray_dataset``
            splits over Ray workers.
    """

    def __init__(
        self,
        table_fn: Callable[[], pa.Table],
        config: RepoConfig,
        full_feature_names: bool = False,
        on_demand_feature_views: list[OnDemandFeatureView] | None = None,
        metadata: RetrievalMetadata | None = None,
        pull_spec: Callable[[], PullSpec] | None = None,
    ) -> None:
        self._pull_spec = pull_spec
        self._table_fn = table_fn
        self.config = config
        self._full_feature_names = full_feature_names
        self._on_demand_feature_views = on_demand_feature_views or []
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._table_fn()

    def to_arrow(
        self, validation_reference: Any | None = None, timeout: int | None = None
    ) -> pa.Table:
        """Feast's ``to_arrow`` (on-demand views applied), without the as-of helper column.

        The point-in-time result carries each label's timestamp as ``__as_of`` so that the
        on-demand view derives ``age`` and ``last_purchase_days_ago`` as of the label
        (:mod:`xiva_source.features.derived`); it is not a feature, so it is dropped here.
        """
        from xiva_source.features.derived import AS_OF

        table = super().to_arrow(validation_reference=validation_reference, timeout=timeout)
        return table.drop_columns([AS_OF]) if AS_OF in table.column_names else table

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._table_fn().to_pandas()

    def latest_pull_spec(self) -> Callable[[], PullSpec] | None:
        """This pull's spec keeping each customer's latest row (``pull_latest``), if a pull."""
        spec = self._pull_spec
        if spec is None:
            return None
        return lambda: dataclasses.replace(spec(), latest=True)

    def to_ray_dataset(self) -> Any:
        """The rows as a Ray Dataset (Feast's Ray engine calls this; Ray must be installed).

        A pull is read by Ray workers, one task per customer range of a DWH read, one task for
        a pull with a Xiva side (:mod:`~xiva_source.feast_plugin.ray_support`); the rows are
        those of ``to_arrow()``. Other jobs (historical retrieval) are converted on the driver.

        Returns:
            A ``ray.data.Dataset``.

        Raises:
            DwhError: The DWH failed while the ranges were planned.
        """
        import ray.data

        if self._pull_spec is None:
            return ray.data.from_arrow(self.to_arrow())
        from xiva_source.feast_plugin.ray_support import default_parallelism, ray_dataset

        return ray_dataset(self._pull_spec(), default_parallelism(self.config))

    def persist(
        self, storage: Any, allow_overwrite: bool | None = False, timeout: int | None = None
    ) -> None:
        """Saved datasets are not supported: write ``to_df()`` wherever you keep datasets."""
        raise NotImplementedError(
            "LoyaltyOfflineStore does not persist saved datasets; call to_df() and store the "
            "DataFrame (e.g. to_parquet) instead"
        )


# --------------------------------------------------------------------------------------------
# private helpers


def _check_source(source: DataSource | None) -> None:
    if not isinstance(source, (XivaSource, DwhSource, CustomerSource)):
        kind = type(source).__name__
        raise TypeError(
            f"LoyaltyOfflineStore reads XivaSource, DwhSource and CustomerSource only, not {kind}: "
            "define the view's source with xiva_source.feast_plugin.sources"
        )


def _pull_all(
    config: RepoConfig,
    settings: Settings,
    data_source: DataSource,
    feature_name_columns: list[str],
    timestamp_field: str,
    start_date: datetime | None,
    end_date: datetime | None,
    *,
    created_timestamp_column: str,
) -> Callable[[], pa.Table]:
    """The pull behind ``pull_all_from_table_or_query``, run when the job is converted.

    The table's timestamps carry the names Feast asked for (``created_timestamp_column`` "":
    none).
    """
    assert isinstance(config.offline_store, LoyaltyOfflineStoreConfig)
    _check_source(data_source)
    source: XivaSource | DwhSource | CustomerSource = data_source  # type: ignore[assignment]
    end = end_date or utc_now()
    feats = list(feature_name_columns)
    chunk_size = config.offline_store.chunk_size

    def run() -> pa.Table:
        # Feast's materialization: where it starts, and what it merged, in the shared state.
        start, record = begin_feast_pull(config, settings, source, start_date, end)
        report = PullReport()
        tables: list[pa.Table] = []
        partial = 0
        # `feast materialize` in a terminal: the bar the job shows (customers, with an ETA).
        with progress_bar(source.name) as progress:
            report.progress = progress
            for table in pull_batches(
                source,
                settings=settings,
                feature_names=feats,
                start_date=start,
                end_date=end,
                options=PullOptions.from_repo_config(config),
                chunk_size=chunk_size,
                report=report,
            ):
                progress.rows(table.num_rows)
                if is_partial(table):
                    # Feast writes whole rows: its null cells would erase online values. Left
                    # out; Feast's watermark moves, so run `xiva-source materialize` (which
                    # writes them cell by cell and catches up per source) after a fallback.
                    partial += table.num_rows
                    continue
                tables.append(table.replace_schema_metadata(None))
        report.progress = None
        if partial:
            logger.warning(
                "%d rows of %s left out: a source failed and Feast cannot write partial rows; "
                "`xiva-source materialize` catches them up",
                partial,
                source.name,
            )
        _log_report(source.name, report)
        if record is not None:
            record.save(report)
        if not tables:
            table = empty_table(feature_arrow_types(), feats)
        else:
            table = pa.concat_tables(tables, promote_options="default")
        return to_source_names(table, timestamp_field, created_timestamp_column)

    return run


def _pull_spec(
    config: RepoConfig,
    settings: Settings,
    data_source: DataSource,
    feature_name_columns: list[str],
    timestamp_field: str,
    start_date: datetime | None,
    end_date: datetime | None,
    *,
    created_timestamp_column: str,
) -> Callable[[], PullSpec]:
    """The same pull as :func:`_pull_all`, as a spec for Ray (built when the job runs)."""
    from xiva_source.feast_plugin.ray_support import PullSpec

    assert isinstance(config.offline_store, LoyaltyOfflineStoreConfig)
    _check_source(data_source)
    end = end_date or utc_now()
    chunk_size = config.offline_store.chunk_size

    def build() -> PullSpec:
        start, record = begin_feast_pull(config, settings, data_source, start_date, end)
        return PullSpec(
            source=data_source,
            settings=settings,
            feature_names=tuple(feature_name_columns),
            start=start,
            end=end,
            options=PullOptions.from_repo_config(config),
            chunk_size=chunk_size,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            for_feast=True,
            record=record,
        )

    return build


def _log_report(name: str, report: PullReport) -> None:
    logger.info(
        "pulled %s (mode %s): rows %s, %d Xiva calls, %d failed customers%s",
        name,
        report.mode,
        report.rows_by_source,
        report.xiva_calls,
        report.failed_customers,
        f", fallbacks: {report.fallbacks}" if report.fallbacks else "",
    )
