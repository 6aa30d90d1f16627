"""Live refresh of one customer: read Xiva now, write the features online, return them.

The batch job brings the online store up to date every run; a live refresh is for the moment in
between, e.g. right after a customer changed their plan at the counter. It reads the customer's
360 view through :func:`~xiva_source.features.extractor.extract_customer_features` and writes
the Xiva features of the ``customer_features`` view with the online store's ``online_write_batch``
(only the features it has: the DWH-only ones are left as they are).

What it writes follows the data-source mode, so the online row stays what a materialization would
produce:

- ``xiva``: every Xiva feature, nulls included (Xiva is the only source).
- ``auto``: the pipeline's one merge precedence (:func:`xiva_source.pipeline.merge_values`)
  between what Xiva says now and what is online now (standing in for the DWH's side), and the
  non-null merged values: with ``xiva_first`` every non-null Xiva value wins, with ``dwh_first``
  Xiva's value fills only features that are null online.
- ``dwh``: refused (:class:`~xiva_source.jobs.errors.LiveRefreshError`): this deployment does not
  read Xiva.

Like every Xiva pull, the read is appended to the snapshot table (history for training data).

The event timestamp is the customer's ``lastUpdate``. Feast's Redis store keeps the newest row per
entity and view, so refreshing a customer that has not changed since the last write changes nothing
online (the values returned are still the ones read now).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xiva_source.feast_plugin.errors import OnlineStoreError, RepositoryError
from xiva_source.features.catalogue import ENTITY, EVENT_TIMESTAMP
from xiva_source.jobs.errors import LiveRefreshError
from xiva_source.settings import DataSourceMode, Settings, load_settings

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from xiva_source.xiva_api.client import XivaClient

__all__ = ["CUSTOMER_VIEW", "LiveRefreshError", "refresh_customer"]

logger = logging.getLogger(__name__)

CUSTOMER_VIEW = "customer_features"
"""The feature view a live refresh writes."""


def refresh_customer(
    customer_id: str,
    store: FeatureStore | None = None,
    repo_path: str | os.PathLike[str] = "feature_repo",
    client: XivaClient | None = None,
    *,
    settings: Settings | None = None,
    view: str = CUSTOMER_VIEW,
) -> dict[str, Any]:
    """Fetch ``customer_id`` from Xiva now and write its features to the online store.

    Args:
        customer_id: The Xiva customer id.
        store: The feature store; default ``FeatureStore(repo_path)``.
        repo_path: The Feast repository, when ``store`` is not given.
        client: The Xiva client; default one built from the settings (and closed afterwards).
        settings: The settings the caller loaded; default
            ``load_settings(repo_path=...)`` (the ``.env`` beside or above the repository).
        view: The feature view to write.

    Returns:
        The features read: ``customer_id``, every Xiva feature (the facts ``last_payment_date``
        and ``birth_date`` among them), ``event_timestamp`` (UTC), and the features derived from
        the facts as of now (``last_purchase_days_ago``, ``age``: never written, derived when
        read, :mod:`xiva_source.features.derived`).

    Raises:
        ConfigurationError: A setting is invalid (exit 2).
        LiveRefreshError: The mode is ``dwh``: this deployment does not read Xiva (exit 2).
        RepositoryError: No ``feature_store.yaml`` at ``repo_path``, or ``view`` is not in the
            registry (not applied).
        XivaNotFoundError: Xiva does not know the customer; nothing was written.
        XivaError: Xiva could not be read (down, credentials, throttled past the retry budget);
            nothing was written.
        OnlineStoreError: The online store could not be read or written.

    Example:
        >>> features = refresh_customer("c3a23741-f257-4fec-ac82-b61554ae0811")  # doctest: +SKIP
        >>> features["customer_tier"]  # doctest: +SKIP
        'gold'
    """
    from xiva_source.features.extractor import extract_customer_features

    if settings is None:
        settings = load_settings(repo_path=store.repo_path if store is not None else repo_path)
    if settings.feature_store_data_source is DataSourceMode.DWH:
        raise LiveRefreshError(
            "FEATURE_STORE_DATA_SOURCE is 'dwh': this deployment does not read Xiva, so there is "
            "nothing to refresh live.",
            "set FEATURE_STORE_DATA_SOURCE to 'auto' or 'xiva', or wait for the next "
            "`make materialize`.",
        )
    if store is None:
        store = _load_store(repo_path)
    fv = _feature_view(store, view)

    own_client = client is None
    if client is None:
        from xiva_source.xiva_api.client import XivaClient

        client = XivaClient(settings=settings)
    try:
        features = extract_customer_features(customer_id, client=client)
    finally:
        if own_client:
            client.close()

    values = _values_to_write(store, fv, features, settings)
    _write(store, fv, customer_id, values, features[EVENT_TIMESTAMP])
    logger.info("refreshed customer %s: %d features written online", customer_id, len(values))
    _append_snapshot(store, features, settings)
    from xiva_source.features.derived import derive_row

    # What a read serves now: the derived features next to their facts (none is stored).
    return {**features, **derive_row(features)}


def _load_store(repo_path: str | os.PathLike[str]) -> FeatureStore:
    from feast import FeatureStore

    path = Path(repo_path)
    if not (path / "feature_store.yaml").is_file():
        raise RepositoryError(f"No feature_store.yaml in {str(path)!r}.")
    try:
        return FeatureStore(repo_path=str(path))
    except Exception as e:  # Feast raises many types for a bad yaml
        raise RepositoryError(
            f"{path / 'feature_store.yaml'} cannot be loaded: {e}",
            "correct feature_store.yaml (see feature_repo/feature_store.yaml).",
        ) from e


def _feature_view(store: FeatureStore, name: str) -> FeatureView:
    from feast.errors import FeatureViewNotFoundException

    try:
        fv: FeatureView = store.get_feature_view(name)
    except FeatureViewNotFoundException as e:
        raise RepositoryError(
            f"Feature view {name!r} is not in the registry of project {store.project!r}.",
            "run `make apply` (feast apply) first.",
        ) from e
    except Exception as e:  # Feast raises many types for an unreadable registry
        raise RepositoryError(
            f"The registry of project {store.project!r} cannot be read: {e}",
            "run `make apply` (feast apply) first.",
        ) from e
    return fv


def _values_to_write(
    store: FeatureStore, fv: FeatureView, features: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """The features the refresh writes, per the mode (see the module docstring)."""
    from xiva_source.pipeline.context import feature_arrow_types
    from xiva_source.pipeline.merge import merge_values

    names = [f.name for f in fv.features if f.name in features]
    if settings.feature_store_data_source is DataSourceMode.XIVA:
        return {name: features[name] for name in names}
    online = _online_values(store, fv.name, features[ENTITY], names)
    types = feature_arrow_types()
    merged = merge_values(
        features,
        online,
        names,
        settings.feature_store_merge_strategy,
        {name: types[name] for name in names if name in types},
    )
    # The merged row, as a materialization would write it; a feature null on both sides is
    # null online already.
    return {name: value for name, value in merged.items() if value is not None}


def _online_values(
    store: FeatureStore, view: str, customer_id: str, names: Sequence[str]
) -> dict[str, Any]:
    """What the online store serves for ``customer_id`` now (``None`` where it has nothing)."""
    from redis.exceptions import RedisError

    if not names:
        return {}
    try:
        row = store.get_online_features(
            features=[f"{view}:{name}" for name in names],
            entity_rows=[{ENTITY: customer_id}],
        ).to_dict()
    except RedisError as e:
        raise _redis_failure(e, "read") from e
    return {name: row[name][0] for name in names}


def _write(
    store: FeatureStore,
    fv: FeatureView,
    customer_id: str,
    values: dict[str, Any],
    event_timestamp: datetime,
) -> None:
    from feast.infra.online_stores.helpers import get_online_store_from_config
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import python_values_to_proto_values
    from redis.exceptions import RedisError

    if not values:
        return
    dtypes = {f.name: f.dtype.to_value_type() for f in fv.features}
    protos = {
        name: python_values_to_proto_values([value], dtypes[name])[0]
        for name, value in values.items()
    }
    entity_key = EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=customer_id)])
    online_store = get_online_store_from_config(store.config.online_store)
    try:
        _mark(store, online_store, customer_id)  # before the write: a crash leaves the mark
        online_store.online_write_batch(
            store.config, fv, [(entity_key, protos, event_timestamp, None)], None
        )
        _mark(store, online_store, customer_id)  # and after: a refresh in between sees it next
    except RedisError as e:
        raise _redis_failure(e, "written") from e


def _mark(store: FeatureStore, online_store: Any, customer_id: str) -> None:
    """Mark the customer in the changed-customers journal (segment refreshes re-evaluate it)."""
    from xiva_source.feast_plugin.changed import mark_changed
    from xiva_source.feast_plugin.online_store import online_redis_client

    client = online_redis_client(store.config, online_store=online_store)
    if client is not None:  # a Redis online store: the one segments read
        mark_changed(client, store.project, [customer_id])


def _append_snapshot(store: FeatureStore, features: dict[str, Any], settings: Settings) -> None:
    """Record the read in the snapshot table, like a pull does (history for training).

    A failure is logged and does not fail the refresh: the online write already happened.
    """
    from xiva_source import dwh
    from xiva_source.dwh.errors import DwhError
    from xiva_source.features.extractor import feature_schema
    from xiva_source.pipeline.context import PullOptions, feature_arrow_types

    options = PullOptions.from_repo_config(store.config)
    if not options.write_snapshots:
        return
    types = feature_arrow_types()
    names = list(feature_schema())
    columns = [ENTITY, *names, EVENT_TIMESTAMP]
    table = dwh.rows_to_arrow(columns, [[features.get(c) for c in columns]], types=types)
    try:
        dwh.append_snapshots(
            options.snapshot_database(settings),
            options.snapshot_table,
            table,
            {n: types[n] for n in names},
        )
    except DwhError as e:
        logger.warning("live refresh not recorded in the snapshot table: %s", e)


def _redis_failure(error: Exception, what: str) -> OnlineStoreError:
    """``error`` as the online store's; a wrong ``REDIS_TYPE`` (``MOVED``) says so in its fix."""
    from xiva_source.redis_client import cluster_hint, describe_redis_error

    return OnlineStoreError(
        f"the online store (Redis) could not be {what}: {describe_redis_error(error)}",
        cluster_hint(error),
    )
