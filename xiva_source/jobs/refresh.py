"""Live refresh of one customer: read Xiva now, write the features online, return them.

The batch job brings the online store up to date every run; a live refresh is for the moment in
between, e.g. right after a customer changed their plan at the counter. It reads the customer's
360 view through :func:`~xiva_source.features.extractor.extract_customer_features` and writes
the Xiva features of the ``customer_features`` view with the online store's ``online_write_batch``
(only the features it has: the DWH-only ones are left as they are).

What it writes follows the data-source mode, so the online row stays what a materialization would
produce:

- ``xiva``: every Xiva feature, nulls included (Xiva is the only source).
- ``auto`` + ``xiva_first``: every non-null Xiva feature; a null leaves the stored value (which
  the merge would have filled from the DWH).
- ``auto`` + ``dwh_first``: only features that are null online now (the DWH wins where it has a
  value).
- ``dwh``: refused (:class:`LiveRefreshError`): this deployment does not read Xiva.

Like every Xiva pull, the read is appended to the snapshot table (history for training data).

The event timestamp is the customer's ``lastUpdate``. Feast's Redis store keeps the newest row per
entity and view, so refreshing a customer that has not changed since the last write changes nothing
online (the values returned are still the ones read now).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from xiva_source.jobs.errors import LiveRefreshError
from xiva_source.settings import DataSourceMode, MergeStrategy, Settings, load_settings
from xiva_source.xiva_api.errors import XivaError

if TYPE_CHECKING:
    from feast import FeatureStore

    from xiva_source.xiva_api.client import XivaClient

__all__ = ["CUSTOMER_VIEW", "LiveRefreshError", "cli", "refresh_customer"]

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
        settings: The settings; default :func:`~xiva_source.settings.load_settings`.
        view: The feature view to write.

    Returns:
        The features read: ``customer_id``, every Xiva feature and ``event_timestamp`` (UTC).

    Raises:
        XivaNotFoundError: Xiva does not know the customer; nothing was written.
        XivaError: Xiva could not be read (down, credentials, throttled past the retry budget);
            nothing was written.
        LiveRefreshError: The mode is ``dwh`` or the view does not exist; nothing was written.

    Example:
        >>> features = refresh_customer("a0d35428-691f-4375-9118-d2bdf6811426")  # doctest: +SKIP
        >>> features["customer_tier"]  # doctest: +SKIP
        'gold'
    """
    from xiva_source.features.extractor import extract_customer_features

    settings = settings if settings is not None else load_settings()
    if settings.feature_store_data_source is DataSourceMode.DWH:
        raise LiveRefreshError(
            "FEATURE_STORE_DATA_SOURCE is 'dwh': this deployment does not read Xiva, so there is "
            "nothing to refresh live.",
            "set FEATURE_STORE_DATA_SOURCE to 'auto' or 'xiva', or wait for the next "
            "`make materialize`.",
        )
    if store is None:
        from feast import FeatureStore

        store = FeatureStore(repo_path=str(repo_path))
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

    values = _values_to_write(store, fv.name, features, settings)
    _write(store, fv, customer_id, values, features["event_timestamp"])
    logger.info("refreshed customer %s: %d features written online", customer_id, len(values))
    _append_snapshot(store, features, settings)
    return features


def _append_snapshot(store: FeatureStore, features: dict[str, Any], settings: Settings) -> None:
    """Record the read in the snapshot table, like a pull does (history for training).

    A failure is logged and does not fail the refresh: the online write already happened.
    """
    from xiva_source import dwh
    from xiva_source.dwh.errors import DwhError
    from xiva_source.feast_plugin.sources import feature_arrow_types
    from xiva_source.features.extractor import feature_schema
    from xiva_source.pipeline.pull import PullOptions

    options = PullOptions.from_repo_config(store.config)
    if not options.write_snapshots:
        return
    types = feature_arrow_types()
    names = list(feature_schema())
    columns = ["customer_id", *names, "event_timestamp"]
    table = dwh.rows_to_arrow(columns, [[features.get(c) for c in columns]], types=types)
    try:
        dwh.append_snapshots(
            options.snapshot_url or settings.dwh_url,
            options.snapshot_table,
            table,
            {n: types[n] for n in names},
        )
    except DwhError as e:
        logger.warning("live refresh not recorded in the snapshot table: %s", e)


def _feature_view(store: FeatureStore, name: str) -> Any:
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(name)
    except FeatureViewNotFoundException as e:
        raise LiveRefreshError(
            f"Feature view {name!r} is not in the registry of project {store.project!r}.",
            "run `make apply` (feast apply) first.",
        ) from e


def _values_to_write(
    store: FeatureStore, view: str, features: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """The features the refresh writes, per the mode (see the module docstring)."""
    fv = store.get_feature_view(view)
    names = [f.name for f in fv.features if f.name in features]
    if settings.feature_store_data_source is DataSourceMode.XIVA:
        return {name: features[name] for name in names}
    present = {name: features[name] for name in names if features[name] is not None}
    if settings.feature_store_merge_strategy is MergeStrategy.XIVA_FIRST or not present:
        return present
    online = store.get_online_features(
        features=[f"{view}:{name}" for name in present],
        entity_rows=[{"customer_id": features["customer_id"]}],
    ).to_dict()
    return {name: value for name, value in present.items() if online[name][0] is None}


def _write(
    store: FeatureStore,
    fv: Any,
    customer_id: str,
    values: dict[str, Any],
    event_timestamp: datetime,
) -> None:
    from feast.infra.online_stores.helpers import get_online_store_from_config
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import python_values_to_proto_values

    if not values:
        return
    dtypes = {f.name: f.dtype.to_value_type() for f in fv.features}
    protos = {
        name: python_values_to_proto_values([value], dtypes[name])[0]
        for name, value in values.items()
    }
    entity_key = EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer_id)])
    online_store = get_online_store_from_config(store.config.online_store)
    online_store.online_write_batch(
        store.config, fv, [(entity_key, protos, event_timestamp, None)], None
    )


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m xiva_source refresh <customer_id> [--repo feature_repo]``.

    Prints the features as JSON; exit 0 on success, 1 when Xiva fails or the customer is unknown,
    2 on a usage or configuration error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m xiva_source refresh",
        description="Fetch one customer from Xiva now, write the features online, print them.",
    )
    parser.add_argument("customer_id", help="The Xiva customer id.")
    parser.add_argument("--repo", default="feature_repo", help="Feast repository directory.")
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:
        return int(e.code or 0)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not os.path.isfile(os.path.join(args.repo, "feature_store.yaml")):
        print(
            f"refresh error: no feature_store.yaml in {args.repo!r}. Fix: pass --repo with the "
            "Feast repository directory and run `make apply`.",
            file=sys.stderr,
        )
        return 2
    try:
        features = refresh_customer(args.customer_id, repo_path=args.repo)
    except LiveRefreshError as e:
        print(f"refresh error: {e}", file=sys.stderr)
        return 2
    except XivaError as e:
        print(f"refresh failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps(features, default=_json_default, indent=2, sort_keys=True))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
