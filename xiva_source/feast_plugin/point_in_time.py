"""The point-in-time engine behind ``get_historical_features`` (pandas ``merge_asof``).

For each entity row and feature view, the latest source row with ``event_timestamp <=`` the row's
timestamp and not older than the view's ttl is joined. DWH sources read the DWH; Xiva features
read the snapshot table (the history of past Xiva pulls); a ``CustomerSource`` follows the mode,
and in ``auto`` merges the two sides per feature with the pipeline's one precedence rule
(:func:`xiva_source.pipeline.merge.merge_aligned`), the same rule materialization applies.

Honesty rules (docs/feature-repo.md, "Training sets"):

- a Xiva snapshot is valid from the customer's ``lastUpdate`` (its event timestamp: nothing
  changed since), so a label before a customer's first observed ``lastUpdate`` gets null Xiva
  features, never values from a later pull; a DWH row is valid from its ``updated_at``;
- ties: of a customer's DWH rows with the same timestamp, the read keeps the latest created
  (the source's ``created_timestamp_column``; :meth:`~xiva_source.dwh.reads.TableSpec.from_clause`),
  as Feast's stores do; of Xiva snapshots with the same ``lastUpdate``, the latest pull;
- the ttl is whole seconds, inclusive (a row exactly ttl old is served), as Feast's stores have it;
- two columns of one name are refused (:func:`check_columns`), never silently one of them;
- the stored values are facts (``last_payment_date``, ``birth_date``); the DWH's counts are turned
  into the same facts when read (:mod:`xiva_source.dwh.facts`); the features that age
  (``last_purchase_days_ago``, ``age``) are derived by the on-demand view as of each label's
  timestamp, which the result carries in the :data:`~xiva_source.features.derived.AS_OF` column
  (the retrieval job drops it after Feast ran the on-demand views).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from xiva_source import dwh
from xiva_source.dwh.facts import counts_to_facts, source_columns
from xiva_source.feast_plugin.errors import FeatureNameCollisionError
from xiva_source.feast_plugin.sources import CustomerSource, DwhSource, XivaSource
from xiva_source.features.catalogue import DWH_ONLY_FEATURES, ENTITY, EVENT_TIMESTAMP
from xiva_source.features.derived import AS_OF
from xiva_source.pipeline.context import PullOptions, feature_arrow_types
from xiva_source.pipeline.merge import merge_aligned
from xiva_source.settings import DataSourceMode, Settings
from xiva_source.timeutil import utc_now

if TYPE_CHECKING:
    from feast.data_source import DataSource
    from feast.feature_view import FeatureView

__all__ = ["check_columns", "point_in_time"]

logger = logging.getLogger(__name__)

_FTS = "__feature_ts"
_ROW = "__entity_row"
_NULLABLE = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def point_in_time(
    feature_views: Sequence[FeatureView],
    feature_refs: Sequence[str],
    entity_df: pd.DataFrame,
    ts_col: str,
    full_feature_names: bool,
    *,
    settings: Settings,
    options: PullOptions,
) -> pd.DataFrame:
    """``entity_df`` with one column per requested feature, point-in-time correct.

    Args:
        feature_views: The views the features come from.
        feature_refs: ``"<view>:<feature>"`` references.
        entity_df: Entity rows: the join key and ``ts_col``.
        ts_col: The entity rows' timestamp column.
        full_feature_names: Name columns ``<view>__<feature>``.
        settings: The settings (mode, merge strategy, ``DWH_URL``).
        options: The offline store's options (the snapshot table).

    Returns:
        ``entity_df``'s rows in order, plus the feature columns and :data:`AS_OF` (each row's
        timestamp in UTC: the moment the on-demand views derive the features that age as of).

    Raises:
        ValueError: A view has several join keys.
        DwhError: The DWH or the snapshot table cannot be read.
    """
    result = entity_df.reset_index(drop=True).copy()
    entities = result.copy()
    entities[ts_col] = pd.to_datetime(entities[ts_col], utc=True).astype("datetime64[ns, UTC]")
    entities[_ROW] = range(len(entities))
    if len(entities) == 0:
        lo = hi = utc_now()
    else:
        lo = entities[ts_col].min().to_pydatetime()
        hi = entities[ts_col].max().to_pydatetime()
    types = feature_arrow_types()
    for fv in feature_views:
        view_name = fv.projection.name_to_use()
        features = _requested(fv, feature_refs)
        if not features:
            continue
        keys = [c.name for c in fv.entity_columns]
        if len(keys) != 1:
            raise ValueError(
                f"feature view {fv.name!r} has join keys {keys}; LoyaltyOfflineStore supports "
                "views keyed by one entity (customer_id)"
            )
        window = _Window(
            entities=entities,
            key=fv.projection.join_key_map.get(keys[0], keys[0]),
            ts_col=ts_col,
            ttl=_ttl(fv),
            end=hi,
        )
        values = _view_values(fv.batch_source, features, window, lo, types, settings, options)
        for name in features:
            column = f"{view_name}__{name}" if full_feature_names else name
            result[column] = values[name].reindex(range(len(result))).to_numpy()
    result[AS_OF] = entities[ts_col].to_numpy()
    return result


def check_columns(
    feature_views: Sequence[FeatureView],
    feature_refs: Sequence[str],
    entity_columns: Iterable[str],
    full_feature_names: bool,
) -> None:
    """Refuse a retrieval whose result would have two columns of one name.

    Without full feature names a column is named after its feature: a feature two views serve
    (one of them perhaps only an on-demand view's input, which Feast adds to the references
    after its own check) or a feature named like an ``entity_df`` column would silently hold
    one of the values. Feast's PostgreSQL store fails on such a request (an ambiguous column).

    Args:
        feature_views: The views of the retrieval.
        feature_refs: ``"<view>:<feature>"`` references, as the offline store receives them.
        entity_columns: The columns of ``entity_df``.
        full_feature_names: Columns named ``<view>__<feature>``.

    Raises:
        FeatureNameCollisionError: Two owners for one column (naming both, and the fix).
    """
    owners: dict[str, list[str]] = {c: ["the entity_df column"] for c in entity_columns}
    for fv in feature_views:
        view_name = fv.projection.name_to_use()
        for name in _requested(fv, feature_refs):
            column = f"{view_name}__{name}" if full_feature_names else name
            owners.setdefault(column, []).append(f"view {view_name!r}")
    for column, claims in owners.items():
        if len(claims) > 1:
            raise FeatureNameCollisionError(column, claims)


def _requested(fv: FeatureView, feature_refs: Sequence[str]) -> list[str]:
    """The features of ``fv`` that ``feature_refs`` ask for, each once, in order."""
    view_name = fv.projection.name_to_use()
    refs = (r.split(":", 1) for r in feature_refs)
    return list(dict.fromkeys(name for view, name in refs if view == view_name))


def _ttl(fv: FeatureView) -> timedelta | None:
    """The view's lookback in whole seconds, as Feast's stores use it (0 or none: no bound)."""
    seconds = int(fv.ttl.total_seconds()) if fv.ttl else 0
    return timedelta(seconds=seconds) if seconds > 0 else None


class _Window:
    """The entity rows of one view and the time bounds their features come from."""

    def __init__(
        self,
        entities: pd.DataFrame,
        key: str,
        ts_col: str,
        ttl: timedelta | None,
        end: datetime,
    ) -> None:
        self.entities = entities
        self.key = key
        self.ts_col = ts_col
        self.ttl = ttl
        self.end = end

    def start(self, lo: datetime) -> datetime | None:
        """The oldest feature row any entity row can use (``None``: no ttl, all history)."""
        return lo - self.ttl if self.ttl else None


def _view_values(
    source: DataSource | None,
    features: Sequence[str],
    window: _Window,
    lo: datetime,
    types: Mapping[str, pa.DataType],
    settings: Settings,
    options: PullOptions,
) -> pd.DataFrame:
    """Per entity row (index ``__entity_row``): the view's features at the row's time."""

    def side(src: XivaSource | DwhSource) -> pd.DataFrame:
        rows = _history(src, features, window.start(lo), window.end, types, settings, options)
        return _asof(window, rows, features)

    if isinstance(source, (XivaSource, DwhSource)):
        return side(source)
    assert isinstance(source, CustomerSource)  # the offline store checked the source type
    mode = settings.feature_store_data_source
    if mode == DataSourceMode.XIVA:
        return side(source.xiva)
    if mode == DataSourceMode.DWH:
        return side(source.dwh)
    xiva = side(source.xiva)
    dwh_values = side(source.dwh).reindex(xiva.index)
    merged = merge_aligned(
        _to_arrow(xiva, features),
        _to_arrow(dwh_values, features),
        features,
        settings.feature_store_merge_strategy,
        {n: types[n] for n in features if n in types},
    )
    frame = merged.to_pandas(types_mapper=_NULLABLE.get)
    frame.index = xiva.index
    return frame


def _to_arrow(frame: pd.DataFrame, features: Sequence[str]) -> pa.Table:
    return pa.Table.from_pandas(frame[list(features)], preserve_index=False)


def _history(
    source: XivaSource | DwhSource,
    features: Sequence[str],
    start: datetime | None,
    end: datetime,
    types: Mapping[str, pa.DataType],
    settings: Settings,
    options: PullOptions,
) -> pd.DataFrame:
    """All rows of one side (customer_id, features it has, __feature_ts) in ``[start, end]``."""
    if isinstance(source, DwhSource):
        available = {n for n, _ in source.column_types(settings)}
        ts = source.timestamp_field
        tables = [
            counts_to_facts(table, ts, keep=features)  # the DWH's day counts, ages -> facts
            for table in dwh.stream_rows(
                source.url(settings),
                source.spec,
                columns=[ENTITY, *source_columns(features, available)],
                timestamp_field=ts,
                start_date=start,
                end_date=end,
                types=dict(types),
            )
        ]
        cols = [ENTITY, *[f for f in features if source_columns([f], available)], ts]
        tied = _ties(tables, ts) if not source.created_timestamp_column else 0
        if tied:
            logger.warning(
                "source %r: %d rows share a customer and %s with another row and it names no "
                "created_timestamp_column, so which of them a training row gets is unspecified; "
                "give the DwhSource created_timestamp_column= (the row's load time)",
                source.name,
                tied,
                ts,
            )
    else:
        present = [f for f in features if f not in DWH_ONLY_FEATURES]
        tables = list(
            dwh.stream_snapshots(
                options.snapshot_database(settings),
                options.snapshot_table,
                present,
                start_date=start,
                end_date=end,
                types=dict(types),
            )
        )
        ts = EVENT_TIMESTAMP
        cols = [ENTITY, *present, ts, dwh.PULLED_AT]
    if tables:
        table = pa.concat_tables(tables, promote_options="default")
    else:
        table = dwh.rows_to_arrow(
            cols, [], types=dict(types), timestamp_columns=(ts, dwh.PULLED_AT)
        )
    frame = table.to_pandas(types_mapper=_NULLABLE.get).rename(columns={ts: _FTS})
    frame[_FTS] = pd.to_datetime(frame[_FTS], utc=True).astype("datetime64[ns, UTC]")
    # Several pulls may carry the same event time: the later pull wins.
    order = [_FTS, dwh.PULLED_AT] if dwh.PULLED_AT in frame.columns else [_FTS]
    frame = frame.sort_values(order, kind="stable")
    return frame.drop(columns=[dwh.PULLED_AT], errors="ignore")


def _ties(tables: Sequence[pa.Table], ts: str) -> int:
    """How many rows of ``tables`` repeat an earlier row's customer and ``ts``."""
    if not tables:
        return 0
    keys = pa.concat_tables([t.select([ENTITY, ts]) for t in tables]).to_pandas()
    return int(keys.duplicated().sum())


def _asof(window: _Window, rows: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Per entity row (indexed by ``__entity_row``): the latest ``rows`` at or before its time."""
    key, ts_col = window.key, window.ts_col
    left = window.entities[[_ROW, key, ts_col]].sort_values(ts_col, kind="stable")
    right = rows.rename(columns={ENTITY: key})
    right[key] = right[key].astype(str)
    left = left.assign(**{key: left[key].astype(str)})
    joined = pd.merge_asof(
        left, right, left_on=ts_col, right_on=_FTS, by=key, direction="backward"
    ).set_index(_ROW)
    for name in features:
        if name not in joined.columns:
            joined[name] = pd.NA
    if window.ttl:
        stale = (joined[ts_col] - joined[_FTS]) > pd.Timedelta(window.ttl)
        joined.loc[stale, list(features)] = pd.NA
    return joined[list(features)]
