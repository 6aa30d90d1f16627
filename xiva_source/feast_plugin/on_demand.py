"""Python-mode on-demand views, run without Feast's generic overhead: online and in training sets.

The features that age (``customer_time_features``: ``age``, ``last_purchase_days_ago``) are an
on-demand view in Feast's ``mode="python"``: its body receives plain lists and derives in
microseconds (:func:`xiva_source.features.derived.derive_columns`). Around the body, Feast 0.67
spends more than the body itself:

- online, ``utils._augment_response_with_on_demand_transforms`` converts every feature of the
  response to Python (not only the view's inputs), parses every feature reference twice and runs
  ``OnDemandFeatureView``'s methods under ``typeguard`` (the class is ``@typechecked``): about
  0.3 ms per read of one customer, as much as the Redis read itself.
  :func:`augment_online_response` is the same step for python-mode views, converting only the
  view's declared inputs (a differential test compares both on the same reads:
  ``tests/xiva_source/feast_plugin/test_on_demand.py``), and naming the outputs
  ``view__feature`` under ``full_feature_names`` (Feast 0.67 does not for python-mode views
  online, so it drops them; the pandas mode and the training sets name them);
- in a training set, ``PythonTransformation.transform_arrow`` calls ``to_pydict()`` on the whole
  retrieval table (every feature of every view, every timestamp through pyarrow's slow
  timezone-aware conversion: seconds per 100,000 rows) before the body reads two columns.
  :func:`declared_inputs_only` gives the retrieval job copies of the views whose body receives
  only its declared inputs, as online.

Views in ``pandas`` or ``substrait`` mode and views with aggregations are Feast's unchanged
(:func:`python_views_only` says when the online step applies).

:class:`OnlineRead` is the store's side: ``OnlineStore.get_online_features`` step by step
(Feast's own helpers: request context, the store's read, feature types, dropped columns), the
on-demand step being :func:`augment_online_response` for python-mode views and Feast's
otherwise. ``LoyaltyRedisOnlineStore`` reads through it (sync and async, so ``feast serve``
too); a feature service with ``precompute_online`` is left to Feast whole. A test pins the
Feast functions mirrored here (their source digests): a Feast upgrade that changes them fails
it until this module is checked against the new code.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
from feast import utils
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus, GetOnlineFeaturesResponse
from feast.type_map import (
    feast_value_type_to_pa,
    feast_value_type_to_python_type,
    python_values_to_proto_values,
)
from feast.types import ComplexFeastType, PrimitiveFeastType
from feast.utils import _parse_feature_ref
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from xiva_source.features.derived import AS_OF

if TYPE_CHECKING:
    from feast.field import Field
    from feast.infra.online_stores.online_store import OnlineStore
    from feast.infra.registry.base_registry import BaseRegistry
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.online_response import OnlineResponse

__all__ = [
    "OnlineRead",
    "augment_online_response",
    "declared_inputs_only",
    "precomputed",
    "python_views_only",
]


def precomputed(features: Any) -> bool:
    """Whether ``features`` is a feature service read from precomputed vectors (Feast's path)."""
    from feast.feature_service import FeatureService

    return isinstance(features, FeatureService) and bool(
        getattr(features, "precompute_online", False)
    )


@dataclass
class OnlineRead:
    """One ``get_online_features`` call, between Feast's preparation and its result.

    :meth:`prepare`, then the store's ``_read_features_per_fv`` (or its async twin) with
    :meth:`read_args`, then :meth:`finish`: the steps of Feast's
    ``OnlineStore.get_online_features`` without its precomputed-vector branch (the caller
    leaves :func:`precomputed` services to Feast).
    """

    join_key_values: dict[str, Any]
    grouped_refs: list[Any]
    entity_name_to_join_key_map: dict[str, str]
    views: list[OnDemandFeatureView]
    feature_refs: list[str]
    requested_result_row_names: set[str]
    response: GetOnlineFeaturesResponse
    full_feature_names: bool
    include_feature_view_version_metadata: bool
    read_started: float | None

    @classmethod
    def prepare(
        cls,
        store: OnlineStore,
        features: Any,
        entity_rows: Any,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> OnlineRead:
        """Feast's request context and entity keys for one read.

        Args:
            store: The online store reading.
            features: Feature references or a feature service (not :func:`precomputed`).
            entity_rows: Rows (dicts) or columns, as ``get_online_features`` takes them.
            registry: The registry.
            project: The project.
            full_feature_names: Whether result names are ``view__feature``.
            include_feature_view_version_metadata: Feast's flag, passed on.

        Returns:
            The read, ready for the store's ``_read_features_per_fv``.

        Raises:
            ValueError: The entity rows do not all have the same keys (as Feast).
        """
        if isinstance(entity_rows, list):
            columnar: dict[str, list[Any]] = {k: [] for k in entity_rows[0]}
            for row in entity_rows:
                for key, value in row.items():
                    try:
                        columnar[key].append(value)
                    except KeyError as e:
                        raise ValueError("All entity_rows must have the same keys.") from e
            entity_rows = columnar
        (
            join_key_values,
            grouped_refs,
            entity_name_to_join_key_map,
            views,
            feature_refs,
            requested_result_row_names,
            response,
        ) = utils._prepare_entities_to_read_from_online_store(
            registry=registry,
            project=project,
            features=features,
            entity_values=entity_rows,
            full_feature_names=full_feature_names,
            native_entity_values=True,
        )
        store._check_versioned_read_support(grouped_refs)
        return cls(
            join_key_values=join_key_values,
            grouped_refs=grouped_refs,
            entity_name_to_join_key_map=entity_name_to_join_key_map,
            views=views,
            feature_refs=feature_refs,
            requested_result_row_names=requested_result_row_names,
            response=response,
            full_feature_names=full_feature_names,
            include_feature_view_version_metadata=include_feature_view_version_metadata,
            read_started=time.monotonic() if _tracks_reads() else None,
        )

    def read_args(self) -> tuple[Any, ...]:
        """The arguments of the store's ``_read_features_per_fv`` after the config."""
        return (
            self.grouped_refs,
            self.join_key_values,
            self.entity_name_to_join_key_map,
            self.response,
            self.full_feature_names,
            self.include_feature_view_version_metadata,
        )

    def finish(self, store: OnlineStore) -> OnlineResponse:
        """The on-demand views applied and the unrequested columns dropped: the response.

        Args:
            store: The online store that read.

        Returns:
            What Feast's ``get_online_features`` returns.
        """
        from feast.online_response import OnlineResponse

        if self.read_started is not None:
            from feast.metrics import track_online_store_read

            track_online_store_read(time.monotonic() - self.read_started)
        feature_types = store._build_feature_types(self.grouped_refs)
        if self.views:
            augment = (
                augment_online_response
                if python_views_only(self.views)
                else utils._augment_response_with_on_demand_transforms
            )
            augment(
                self.response,
                self.feature_refs,
                self.views,
                self.full_feature_names,
                feature_types=feature_types,
            )
        utils._drop_unneeded_columns(self.response, self.requested_result_row_names)
        return OnlineResponse(self.response, feature_types=feature_types)


def _tracks_reads() -> bool:
    try:
        from feast.metrics import _config

        return bool(_config.online_features)
    except Exception:  # as Feast: metrics are optional
        return False


def python_views_only(views: Sequence[OnDemandFeatureView]) -> bool:
    """True when :func:`augment_online_response` can run every view of ``views``.

    Args:
        views: The on-demand views a read requested.

    Returns:
        Every view is in ``mode="python"`` without aggregations (the others take Feast's path).
    """
    return all(view.mode == "python" and not view.aggregations for view in views)


def augment_online_response(
    response: GetOnlineFeaturesResponse,
    feature_refs: Sequence[str],
    views: Sequence[OnDemandFeatureView],
    full_feature_names: bool,
    feature_types: Mapping[str, ValueType] | None = None,
) -> None:
    """Feast's ``_augment_response_with_on_demand_transforms`` for python-mode views.

    The same call per view (``transform`` or ``transform_singleton``, both the short and the
    ``view__feature`` name of each source feature present), the same outputs appended in the
    same order, types and statuses. Two differences, by design:

    - the body receives its declared inputs (the features its sources list, the join keys,
      request data), each converted once; Feast converts every feature of the response and
      also hands the body the undeclared features of the views it reads from. The outputs are
      the same for a body that reads what it declares (the rule Feast states, #6158), and it is
      what the body receives in a training set (:func:`declared_inputs_only`);
    - with ``full_feature_names`` the outputs are named ``view__feature``, as Feast names a
      pandas-mode view's (and a python-mode view's in a training set); Feast 0.67 leaves a
      python-mode view's outputs unnamed online, so they match no requested name and are
      dropped from the response.

    Args:
        response: The response Feast filled from the online store (modified in place).
        feature_refs: Every requested ``view:feature``.
        views: The requested on-demand views (:func:`python_views_only` holds).
        full_feature_names: Whether result names are ``view__feature``.
        feature_types: Value types by feature name, for the conversion to Python.
    """
    from feast.online_response import OnlineResponse

    # Feast's constructor also drops the entity-less dummy column from the response.
    types = OnlineResponse(response, feature_types=dict(feature_types or {}))._feature_types
    by_name = {(v.projection.name_alias if v.projection else None) or v.name: v for v in views}
    wanted: dict[str, list[str]] = {}
    features: set[str] = set()  # the names of every feature read (not join keys, request data)
    for view_name, feature in _parsed(tuple(feature_refs)):
        features.update((feature, f"{view_name}__{feature}"))
        if view_name in by_name:
            name = by_name[view_name].projection.name_to_use()
            wanted.setdefault(view_name, []).append(
                f"{name}__{feature}" if full_feature_names else feature
            )
    for view in views:
        features.update(_declared_inputs(view))
    # Columns as they were before any view added its outputs; a repeated name: the last wins.
    index = {name: i for i, name in enumerate(response.metadata.feature_names.val)}
    converted: dict[str, list[Any]] = {}

    def column(name: str) -> list[Any]:
        values = converted.get(name)
        if values is None:
            feature_type = types.get(name)
            values = [
                feast_value_type_to_python_type(v, feature_type)
                for v in response.results[index[name]].values
            ]
            converted[name] = values
        return values

    for view_name, refs in wanted.items():
        view = by_name[view_name]
        if view.write_to_online_store:
            continue  # read from the store like a feature view
        declared = _declared_inputs(view)
        inputs = {name: column(name) for name in index if name in declared or name not in features}
        outputs = _named(view, _transform(view, inputs), full_feature_names)
        selected = [name for name in outputs if name in refs]
        dtypes = {f.name: f.dtype for f in [*view.entity_columns, *view.features]}
        for name in selected:
            vector = outputs[name]
            values = python_values_to_proto_values(
                vector if isinstance(vector, list) else [vector],
                _value_type(dtypes.get(name)),
            )
            response.metadata.feature_names.val.append(name)
            response.results.append(
                GetOnlineFeaturesResponse.FeatureVector(
                    values=values,
                    statuses=[FieldStatus.PRESENT] * len(values),
                    event_timestamps=[Timestamp()] * len(values),
                )
            )


@functools.lru_cache(maxsize=1024)
def _parsed(refs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # A service's references are the same read after read: parsed once.
    return tuple((view, feature) for view, _, feature in map(_parse_feature_ref, refs))


def _declared_inputs(view: OnDemandFeatureView) -> set[str]:
    """Both names of every feature the view's sources list, and its request data fields."""
    names: set[str] = set()
    for projection in view.source_feature_view_projections.values():
        for f in projection.features:
            names.update((f.name, f"{projection.name}__{f.name}"))
    for request in view.source_request_sources.values():
        names.update(f.name for f in request.schema)
    return names


def _transform(view: OnDemandFeatureView, inputs: dict[str, list[Any]]) -> dict[str, Any]:
    # OnDemandFeatureView.transform_dict without its typeguard checks: both names of every
    # source feature present for the body, the added name removed from its result.
    prepared = dict(inputs)
    added: list[str] = []
    for projection in view.source_feature_view_projections.values():
        for feature in projection.features:
            full = f"{projection.name}__{feature.name}"
            if full in inputs:
                prepared[feature.name] = inputs[full]
                added.append(feature.name)
            elif feature.name in inputs:
                prepared[full] = inputs[feature.name]
                added.append(full)
    transformation: Any = view.feature_transformation
    if view.singleton:
        outputs: dict[str, Any] = transformation.transform_singleton(prepared)
    else:
        outputs = transformation.transform(prepared)
    for name in added:
        outputs.pop(name, None)
    return outputs


def _named(view: OnDemandFeatureView, outputs: dict[str, Any], full: bool) -> dict[str, Any]:
    # The renaming Feast applies to a pandas-mode view's output (_postprocess_arrow_table) and
    # not to a python-mode one: without it, full_feature_names=True would drop every output
    # (the requested names are view__feature, the body's are feature).
    names: dict[str, str] = {}
    for feature in view.features:
        short, long = feature.name, f"{view.projection.name_to_use()}__{feature.name}"
        if full and short in outputs:
            names[short] = long
        elif not full and long in outputs:
            names[long] = short
    return {names.get(name, name): value for name, value in outputs.items()} if names else outputs


def _value_type(dtype: Any) -> ValueType:
    # As Feast: a Feast type gives its value type; a bare ValueType (or none) gives UNKNOWN.
    if dtype is None or isinstance(dtype, ValueType):
        return ValueType.UNKNOWN
    if isinstance(dtype, (ComplexFeastType, PrimitiveFeastType)):
        return dtype.to_value_type()
    raise TypeError(f"Unexpected type for feature_type: {type(dtype)}")


def declared_inputs_only(
    views: Sequence[OnDemandFeatureView], join_keys: Collection[str]
) -> list[OnDemandFeatureView]:
    """The views a retrieval job applies: python-mode ones see only their declared inputs.

    Feast hands a python-mode view's body ``table.to_pydict()`` of the whole retrieval table.
    The copies returned here hand it, as lists, what it receives online
    (:func:`augment_online_response`: the features its sources list, both names, its request
    data, the join keys) and the as-of column (:data:`~xiva_source.features.derived.AS_OF`);
    timestamps are converted through pandas (aware datetimes, microseconds). The body's
    columns are then cast to the view's declared types where Arrow could not infer them (a
    column of nulls only). Other views are returned unchanged.

    Args:
        views: The requested on-demand views.
        join_keys: The entity columns of the retrieval table.

    Returns:
        The views to hand to Feast's ``RetrievalJob`` (copies; the registry's stay untouched).
    """
    out: list[OnDemandFeatureView] = []
    for view in views:
        if view.mode != "python" or view.aggregations:
            out.append(view)
            continue
        narrowed = copy.copy(view)
        narrowed.feature_transformation = _DeclaredInputs(view, join_keys)  # type: ignore[assignment]
        out.append(narrowed)
    return out


class _DeclaredInputs:
    """The transformation of a python-mode view, fed only its declared input columns."""

    def __init__(self, view: OnDemandFeatureView, join_keys: Collection[str]) -> None:
        self.inner: Any = view.feature_transformation
        self.names = {AS_OF, *join_keys, *_declared_inputs(view)}
        # Feast adds each source feature's other name as a copy of the column.
        self.aliases: dict[str, str] = {}
        for projection in view.source_feature_view_projections.values():
            for f in projection.features:
                full = f"{projection.name}__{f.name}"
                self.aliases.update({full: f.name, f.name: full})

    def transform_arrow(self, table: pa.Table, features: list[Field]) -> pa.Table:
        inputs: dict[str, list[Any]] = {}
        for name in table.column_names:
            if name not in self.names or name in inputs:
                continue
            column = table.column(name)
            alias = self.aliases.get(name)
            if alias in inputs and column.equals(table.column(alias)):
                inputs[name] = list(inputs[alias])  # the same values, converted once
            else:
                inputs[name] = _python_values(column)
        result = pa.Table.from_pydict(self.inner.udf(inputs))
        declared = {f.name: f.dtype for f in features}
        for i, name in enumerate(result.column_names):
            if pa.types.is_null(result.column(i).type) and name in declared:
                target = _arrow_type(declared[name])
                if target is not None:
                    result = result.set_column(i, name, result.column(i).cast(target))
        return result

    def __getattr__(self, name: str) -> Any:
        # Anything else Feast asks the transformation (mode, udf_string, ...) is the view's.
        return getattr(self.inner, name)


def _python_values(column: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        # pyarrow converts aware timestamps one by one through the time zone (about 10x
        # slower): pandas converts the column at once, NaT becomes None.
        stamps = pd.DatetimeIndex(column.to_pandas()).to_pydatetime().tolist()
        return [None if v is pd.NaT else v for v in stamps]
    values: list[Any] = column.to_pylist()
    return values


def _arrow_type(dtype: Any) -> pa.DataType | None:
    try:
        return feast_value_type_to_pa(_value_type(dtype))
    except (TypeError, ValueError, KeyError):
        return None
