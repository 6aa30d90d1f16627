"""``LoyaltyOfflineStore``: the one Feast offline store of the project.

It dispatches on the source type (Feast allows one offline store per repository):

- :class:`~xiva_source.feast_plugin.sources.DwhSource`: the DWH table or query;
- :class:`~xiva_source.feast_plugin.sources.XivaSource`: Xiva for materialization, the snapshot table for
  historical retrieval;
- :class:`~xiva_source.feast_plugin.sources.CustomerSource`: either, or both merged, per
  ``FEATURE_STORE_DATA_SOURCE`` / ``FEATURE_STORE_MERGE_STRATEGY``.

Reads go through :func:`xiva_source.pipeline.pull.pull_batches`. Laid out like Feast's
``postgres_offline_store``: config, store, retrieval job, then private helpers.

``feature_store.yaml``::

    offline_store:
      type: xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore
      snapshot_table: xiva_customer_snapshots   # optional
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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
from xiva_source.feast_plugin.sources import DWH_ONLY_TYPES, CustomerSource, DwhSource, XivaSource
from xiva_source.pipeline.merge import PullReport, empty_table
from xiva_source.pipeline.pull import PullOptions, pull_batches
from xiva_source.settings import DataSourceMode, MergeStrategy, Settings, load_settings

__all__ = ["LoyaltyOfflineStore", "LoyaltyOfflineStoreConfig", "LoyaltyRetrievalJob"]

logger = logging.getLogger(__name__)

ENTITY = "customer_id"
EVENT_TIMESTAMP = "event_timestamp"
_FTS = "__feature_ts"
_ROW = "__entity_row"


class LoyaltyOfflineStoreConfig(FeastConfigBaseModel):
    """Offline store config (``offline_store:`` in ``feature_store.yaml``)."""

    type: Literal[
        "xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore",
        # feature_store.yaml files written before the re-layout (compatibility shim)
        "xiva_source.offline_store.LoyaltyOfflineStore",
    ] = "xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore"
    """Offline store type selector."""
    snapshot_table: StrictStr = dwh.SNAPSHOT_TABLE
    """Table every Xiva pull is appended to (history of Xiva features for training)."""
    snapshot_url: StrictStr | None = None
    """SQLAlchemy URL of the snapshot table's database; None means DWH_URL (keep secrets out)."""
    chunk_size: int = Field(10_000, ge=1)
    """Rows per chunk read from the DWH (server-side cursor) and yielded by pulls."""
    pull_overlap_seconds: float = Field(300.0, ge=0)
    """An incremental Xiva pull re-reads this far before its start (clock skew, page ties)."""
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
        """The latest row per customer in ``[start_date, end_date]`` (see ``pull_all``)."""
        job = LoyaltyOfflineStore.pull_all_from_table_or_query(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
        )
        assert isinstance(job, LoyaltyRetrievalJob)
        return LoyaltyRetrievalJob(lambda: _latest(job.to_arrow(), timestamp_field), config=config)

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
        """
        assert isinstance(config.offline_store, LoyaltyOfflineStoreConfig)
        _check_source(data_source)
        end = end_date or datetime.now(UTC)
        feats = list(feature_name_columns)

        def run() -> pa.Table:
            start = start_date
            if start is not None and _never_materialized(config, data_source):
                logger.info(
                    "no feature view of source %r was ever materialized: reading everything "
                    "(ignoring the start %s Feast derived from the ttl)",
                    data_source.name,
                    start,
                )
                start = None
            report = PullReport()
            tables = list(
                pull_batches(
                    data_source,
                    feature_names=feats,
                    start_date=start,
                    end_date=end,
                    repo_config=config,
                    chunk_size=config.offline_store.chunk_size,
                    report=report,
                )
            )
            _log_report(data_source.name, report)
            if not tables:
                table = empty_table(_types(), feats)
            else:
                table = pa.concat_tables(tables, promote_options="default")
            if timestamp_field != EVENT_TIMESTAMP:
                table = table.rename_columns(
                    [timestamp_field if c == EVENT_TIMESTAMP else c for c in table.column_names]
                )
            return table

        return LoyaltyRetrievalJob(run, config=config)

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
        (``pandas.merge_asof``). DWH sources read the DWH; Xiva features read the snapshot
        table; ``CustomerSource`` follows the mode, and in ``auto`` merges the two sides per
        feature with the same rules as materialization.

        Raises:
            ValueError: ``entity_df`` is not a DataFrame, or lacks the join key / timestamp.
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
        offline_utils.assert_expected_columns_in_entity_df(
            schema, offline_utils.get_expected_join_keys(project, feature_views, registry), ts_col
        )
        stamps = pd.to_datetime(entity_df[ts_col], utc=True)
        settings = load_settings()

        def run() -> pa.Table:
            frame = _point_in_time(
                config, settings, feature_views, feature_refs, entity_df, ts_col, full_feature_names
            )
            return pa.Table.from_pandas(frame, preserve_index=False)

        return LoyaltyRetrievalJob(
            run,
            config=config,
            full_feature_names=full_feature_names,
            on_demand_feature_views=OnDemandFeatureView.get_requested_odfvs(
                feature_refs, project, registry
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
        """
        assert isinstance(config.offline_store, LoyaltyOfflineStoreConfig)
        source = feature_view.batch_source
        _check_source(source)
        settings = load_settings()
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
            types = _types()
            names = [f.name for f in feature_view.features]
            dwh.append_snapshots(
                config.offline_store.snapshot_url or settings.dwh_url,
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
    """

    def __init__(
        self,
        table_fn: Callable[[], pa.Table],
        config: RepoConfig,
        full_feature_names: bool = False,
        on_demand_feature_views: list[OnDemandFeatureView] | None = None,
        metadata: RetrievalMetadata | None = None,
    ) -> None:
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

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._table_fn().to_pandas()

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


def _types() -> dict[str, pa.DataType]:
    from xiva_source.feast_plugin.sources import feature_arrow_types

    return feature_arrow_types()


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


def _never_materialized(config: RepoConfig, source: DataSource) -> bool:
    """True when no feature view whose batch source is ``source`` has a materialized interval."""
    offline = config.offline_store
    if not getattr(offline, "full_pull_when_never_materialized", True):
        return False
    try:
        from feast.infra.registry.registry import Registry

        registry = Registry(config.project, config.registry, config.repo_path)
        views = [
            fv
            for fv in registry.list_feature_views(config.project, allow_cache=False)
            if fv.batch_source is not None and fv.batch_source.name == source.name
        ]
    except Exception as e:  # an unreadable registry must not block materialization
        logger.warning("cannot tell whether %r was materialized before: %s", source.name, e)
        return False
    return bool(views) and not any(fv.materialization_intervals for fv in views)


def _latest(table: pa.Table, timestamp_field: str) -> pa.Table:
    return dwh.latest_per_customer(table, timestamp_field)


def _nullable_pandas(table: pa.Table) -> pd.DataFrame:
    mapping = {
        pa.int64(): pd.Int64Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    return table.to_pandas(types_mapper=mapping.get)


def _history(
    source: XivaSource | DwhSource,
    features: Sequence[str],
    start: datetime | None,
    end: datetime,
    config: RepoConfig,
    settings: Settings,
) -> pd.DataFrame:
    """All rows of one side (customer_id, features it has, __feature_ts) in ``[start, end]``."""
    types = _types()
    options = PullOptions.from_repo_config(config)
    if isinstance(source, DwhSource):
        present = [n for n, _ in source.column_types(settings) if n in set(features)]
        tables = list(
            dwh.stream_rows(
                source.url(settings),
                source.spec,
                columns=[ENTITY, *present],
                timestamp_field=source.timestamp_field,
                start_date=start,
                end_date=end,
                types=types,
            )
        )
        ts = source.timestamp_field
        cols = [ENTITY, *present, ts]
    else:
        present = [f for f in features if f not in DWH_ONLY_TYPES]
        tables = list(
            dwh.stream_snapshots(
                options.snapshot_url or settings.dwh_url,
                options.snapshot_table,
                present,
                start_date=start,
                end_date=end,
                types=types,
            )
        )
        ts = EVENT_TIMESTAMP
        cols = [ENTITY, *present, ts, dwh.PULLED_AT]
    if tables:
        table = pa.concat_tables(tables, promote_options="default")
    else:
        table = dwh.rows_to_arrow(cols, [], types=types, timestamp_columns=(ts, dwh.PULLED_AT))
    frame = _nullable_pandas(table).rename(columns={ts: _FTS})
    frame[_FTS] = pd.to_datetime(frame[_FTS], utc=True).astype("datetime64[ns, UTC]")
    order = [_FTS, dwh.PULLED_AT] if dwh.PULLED_AT in frame.columns else [_FTS]
    frame = frame.sort_values(order, kind="stable")
    return frame.drop(columns=[dwh.PULLED_AT], errors="ignore")


def _asof(
    entities: pd.DataFrame,
    key: str,
    ts_col: str,
    rows: pd.DataFrame,
    features: Sequence[str],
    ttl: timedelta | None,
) -> pd.DataFrame:
    """Per entity row (indexed by ``__entity_row``): the latest ``rows`` at or before its time."""
    left = entities[[_ROW, key, ts_col]].sort_values(ts_col, kind="stable")
    right = rows.rename(columns={ENTITY: key})
    right[key] = right[key].astype(str)
    left = left.assign(**{key: left[key].astype(str)})
    joined = pd.merge_asof(
        left, right, left_on=ts_col, right_on=_FTS, by=key, direction="backward"
    ).set_index(_ROW)
    for name in features:
        if name not in joined.columns:
            joined[name] = pd.NA
    if ttl:
        stale = (joined[ts_col] - joined[_FTS]) > pd.Timedelta(ttl)
        joined.loc[stale, list(features)] = pd.NA
    return joined[list(features)]


def _point_in_time(
    config: RepoConfig,
    settings: Settings,
    feature_views: list[FeatureView],
    feature_refs: list[str],
    entity_df: pd.DataFrame,
    ts_col: str,
    full_feature_names: bool,
) -> pd.DataFrame:
    result = entity_df.reset_index(drop=True).copy()
    entities = result.copy()
    entities[ts_col] = pd.to_datetime(entities[ts_col], utc=True).astype("datetime64[ns, UTC]")
    entities[_ROW] = range(len(entities))
    if len(entities) == 0:
        lo = hi = datetime.now(UTC)
    else:
        lo = entities[ts_col].min().to_pydatetime()
        hi = entities[ts_col].max().to_pydatetime()
    for fv in feature_views:
        view_name = fv.projection.name_to_use()
        features = [r.split(":", 1)[1] for r in feature_refs if r.split(":", 1)[0] == view_name]
        if not features:
            continue
        keys = [c.name for c in fv.entity_columns]
        if len(keys) != 1:
            raise ValueError(
                f"feature view {fv.name!r} has join keys {keys}; LoyaltyOfflineStore supports "
                "views keyed by one entity (customer_id)"
            )
        key = fv.projection.join_key_map.get(keys[0], keys[0])
        ttl = fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None
        start = lo - ttl if ttl else None
        values = _view_values(
            fv.batch_source, features, entities, key, ts_col, ttl, start, hi, config, settings
        )
        for name in features:
            column = f"{view_name}__{name}" if full_feature_names else name
            result[column] = values[name].reindex(range(len(result))).to_numpy()
    return result


def _view_values(
    source: DataSource | None,
    features: Sequence[str],
    entities: pd.DataFrame,
    key: str,
    ts_col: str,
    ttl: timedelta | None,
    start: datetime | None,
    end: datetime,
    config: RepoConfig,
    settings: Settings,
) -> pd.DataFrame:
    def side(src: XivaSource | DwhSource) -> pd.DataFrame:
        rows = _history(src, features, start, end, config, settings)
        return _asof(entities, key, ts_col, rows, features, ttl)

    if isinstance(source, (XivaSource, DwhSource)):
        return side(source)
    assert isinstance(source, CustomerSource)
    mode = settings.feature_store_data_source
    if mode == DataSourceMode.XIVA:
        return side(source.xiva)
    if mode == DataSourceMode.DWH:
        return side(source.dwh)
    xiva, dwh_values = side(source.xiva), side(source.dwh)
    first, second = (
        (xiva, dwh_values)
        if settings.feature_store_merge_strategy == MergeStrategy.XIVA_FIRST
        else (dwh_values, xiva)
    )
    return _combine(first, second, features)


def _combine(first: pd.DataFrame, second: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=first.index)
    for name in features:
        a, b = first[name], second[name].reindex(first.index)
        out[name] = a.where(a.notna(), b)
    return out
