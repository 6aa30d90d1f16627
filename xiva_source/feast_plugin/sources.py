"""Feast data sources: :class:`XivaSource`, :class:`DwhSource` and the mode switch
:class:`CustomerSource`.

All three are ``CUSTOM_SOURCE`` in the registry: ``data_source_class_type`` holds the class path and
the options are JSON in ``custom_options``, so any process that can import :mod:`xiva_source` can
load the registry and read from them. No secret is ever stored: a :class:`DwhSource` without a
``dwh_url`` reads ``DWH_URL`` at run time, and Xiva credentials always come from the settings.

They satisfy the pipeline's source specs (:mod:`xiva_source.pipeline.sources`: a ``source_kind``
class attribute and the members a pull reads), so :func:`~xiva_source.pipeline.pull.pull_batches`
reads them without knowing Feast. Methods that need settings take them from the caller; only the
methods Feast itself calls with a ``RepoConfig`` load them, once, for the repository
(:func:`~xiva_source.feast_plugin.repo_settings.repo_settings`).

:class:`~xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore` is the one offline store that
reads them (old registries name them ``xiva_source.sources.*``: a shim keeps that path).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Literal

import pyarrow as pa
from feast.data_source import DataSource
from feast.field import Field
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto
from feast.repo_config import RepoConfig
from feast.types import FeastType, Float64, Int64, String, UnixTimestamp
from feast.value_type import ValueType

from xiva_source.dwh import TableSpec
from xiva_source.dwh.errors import DwhError
from xiva_source.feast_plugin.column_types import (
    arrow_type_name,
    python_type_name,
    sql_type_name,
    value_type,
)
from xiva_source.feast_plugin.repo_settings import repo_settings
from xiva_source.features.catalogue import DWH_ONLY_FEATURES, ENTITY, EVENT_TIMESTAMP
from xiva_source.redaction import redact_url
from xiva_source.settings import Settings

__all__ = [
    "CustomerSource",
    "DwhSource",
    "XivaSource",
    "feature_arrow_types",
    "xiva_feature_fields",
]

_EXTRACTOR_TYPES: dict[str, FeastType] = {
    "string": String,
    "float": Float64,
    "int": Int64,
    "timestamp": UnixTimestamp,
}


def xiva_feature_fields() -> list[Field]:
    """Feast fields of every Xiva feature (standard + custom), from ``feature_schema()``."""
    from xiva_source.features.extractor import feature_schema

    return [Field(name=n, dtype=_EXTRACTOR_TYPES[t]) for n, t in feature_schema().items()]


def feature_arrow_types() -> dict[str, pa.DataType]:
    """Arrow type of every known feature (the pipeline's, re-exported for the plugin's users)."""
    from xiva_source.pipeline.context import feature_arrow_types as types

    return types()


class _OptionsSource(DataSource):
    """Shared proto plumbing: the subclass's options as JSON in ``custom_options``."""

    def source_type(self) -> DataSourceProto.SourceType.ValueType:
        return DataSourceProto.CUSTOM_SOURCE

    def _options(self) -> dict[str, Any]:
        raise NotImplementedError

    def _to_proto_impl(self) -> DataSourceProto:
        proto = DataSourceProto(
            name=self.name,
            type=DataSourceProto.CUSTOM_SOURCE,
            data_source_class_type=f"{type(self).__module__}.{type(self).__qualname__}",
            field_mapping=self.field_mapping,
            custom_options=DataSourceProto.CustomSourceOptions(
                configuration=json.dumps(self._options(), sort_keys=True).encode()
            ),
            description=self.description,
            tags=self.tags,
            owner=self.owner,
        )
        proto.timestamp_field = self.timestamp_field
        proto.created_timestamp_column = self.created_timestamp_column
        return proto

    @staticmethod
    def source_datatype_to_feast_value_type() -> Callable[[str], ValueType]:
        return value_type

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, type(self))
            and super().__eq__(other)
            and self._options() == other._options()
        )

    def __hash__(self) -> int:
        return super().__hash__()

    @staticmethod
    def _common(proto: DataSourceProto) -> dict[str, Any]:
        return {
            "name": proto.name,
            "timestamp_field": proto.timestamp_field,
            "created_timestamp_column": proto.created_timestamp_column,
            "field_mapping": dict(proto.field_mapping),
            "description": proto.description,
            "tags": dict(proto.tags),
            "owner": proto.owner,
        }

    @staticmethod
    def _config(proto: DataSourceProto) -> dict[str, Any]:
        raw = proto.custom_options.configuration
        return dict(json.loads(raw.decode() if isinstance(raw, bytes) else raw))


class XivaSource(_OptionsSource):
    """Customer features read live from Xiva (the 360 view, through the extractor).

    Columns are ``customer_id``, every feature of
    :func:`~xiva_source.features.extractor.feature_schema` and ``event_timestamp`` (the customer's
    ``lastUpdate``). Connection settings and credentials come from the settings (``XIVA_API_*``)
    at run time, never from the registry.

    Args:
        name: Unique source name in the project.
        timestamp_field: The event-timestamp column (``event_timestamp``).
        description: Human-readable description.
        tags: Free-form metadata.
        owner: Owner e-mail.
    """

    source_kind: ClassVar[Literal["xiva"]] = "xiva"
    """What the pipeline dispatches on (:mod:`xiva_source.pipeline.sources`)."""

    def __init__(
        self,
        name: str,
        timestamp_field: str = EVENT_TIMESTAMP,
        *,
        created_timestamp_column: str = "",
        field_mapping: dict[str, str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        super().__init__(
            name=name,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            description=description,
            tags=tags,
            owner=owner,
        )

    def _options(self) -> dict[str, Any]:
        return {"name": self.name}

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> XivaSource:
        return XivaSource(**_OptionsSource._common(data_source))

    def validate(self, config: RepoConfig) -> None:
        """Check the extractor's schema loads (custom features included)."""
        feature_arrow_types()

    def get_table_column_names_and_types(self, config: RepoConfig) -> Iterable[tuple[str, str]]:
        columns = [(ENTITY, "STRING")]
        columns += [
            (n, arrow_type_name(t))
            for n, t in feature_arrow_types().items()
            if n not in DWH_ONLY_FEATURES
        ]
        columns.append((self.timestamp_field, "TIMESTAMP"))
        return columns


class DwhSource(_OptionsSource):
    """Customer features in the data warehouse: a table/view or a SQL query.

    Args:
        name: Unique source name in the project.
        table: Table or view name (``schema.table`` allowed); exactly one of table/query.
        query: A ``SELECT`` returning ``customer_id``, the features and the timestamp column.
        timestamp_field: The event-timestamp column (``updated_at``).
        created_timestamp_column: Optional row-creation column: of a customer's rows with the
            same ``timestamp_field``, the latest created is the one every read serves
            (historical retrieval, materialization; a row without one loses the tie), as in
            Feast's own stores. Without it, which of tied rows is served is unspecified.
        dwh_url: SQLAlchemy URL; ``None`` (recommended) reads ``DWH_URL`` at run time so no
            password is stored in the registry.
        description: Human-readable description.
        tags: Free-form metadata.
        owner: Owner e-mail.

    Raises:
        ValueError: Neither or both of ``table``/``query``, or ``dwh_url`` holds a password.
    """

    source_kind: ClassVar[Literal["dwh"]] = "dwh"
    """What the pipeline dispatches on (:mod:`xiva_source.pipeline.sources`)."""

    def __init__(
        self,
        name: str,
        table: str | None = None,
        query: str | None = None,
        timestamp_field: str = "updated_at",
        created_timestamp_column: str = "",
        dwh_url: str | None = None,
        *,
        field_mapping: dict[str, str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.spec = TableSpec(
            table=table or None,
            query=query or None,
            created_timestamp_column=created_timestamp_column or "",
        )
        if dwh_url and redact_url(dwh_url) != dwh_url:
            raise ValueError(
                f"DwhSource {name!r}: dwh_url contains a password, which would be stored in the "
                "registry; leave dwh_url=None and set DWH_URL in the environment or .env instead"
            )
        self.dwh_url = dwh_url or None
        super().__init__(
            name=name,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            description=description,
            tags=tags,
            owner=owner,
        )

    @property
    def table(self) -> str | None:
        """The table or view name, if table-based."""
        return self.spec.table

    @property
    def query(self) -> str | None:
        """The SQL query, if query-based."""
        return self.spec.query

    def url(self, settings: Settings) -> str:
        """The DWH URL to read: ``dwh_url`` if set, else ``DWH_URL`` from ``settings``."""
        return self.dwh_url or settings.dwh_url

    def _options(self) -> dict[str, Any]:
        return {"table": self.table, "query": self.query, "dwh_url": self.dwh_url}

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> DwhSource:
        options = _OptionsSource._config(data_source)
        return DwhSource(
            table=options.get("table"),
            query=options.get("query"),
            dwh_url=options.get("dwh_url"),
            **_OptionsSource._common(data_source),
        )

    def validate(self, config: RepoConfig) -> None:
        """Options are checked at construction; the DWH is not contacted (apply works offline)."""

    def get_table_column_names_and_types(self, config: RepoConfig) -> Iterable[tuple[str, str]]:
        """Reflect the table's columns (or run the query with ``LIMIT 1``).

        Raises:
            DwhError: The DWH cannot be reached or the table does not exist.
            ConfigurationError: A setting is invalid.
        """
        return self.column_types(repo_settings(config))

    def column_types(self, settings: Settings) -> list[tuple[str, str]]:
        """``(column, type name)`` of the table or query, read from the DWH.

        Args:
            settings: The settings (``DWH_URL`` unless the source names its own URL).

        Raises:
            DwhError: The DWH cannot be reached or the table does not exist.
        """
        import sqlalchemy as sa

        from xiva_source.dwh import get_engine, sql_error_text

        url = self.url(settings)
        engine = get_engine(url)
        try:
            if self.table:
                schema, _, name = self.table.rpartition(".")
                try:
                    cols = sa.inspect(engine).get_columns(name, schema=schema or None)
                except sa.exc.NoSuchTableError:
                    cols = []
                if not cols:
                    raise DwhError(
                        f"table {self.table!r} of source {self.name!r} not found at "
                        f"{redact_url(url)!r}",
                        hint="Create it (`xiva-source dwh init`, see docs/dwh.md) or point "
                        "DwhSource at the right table= / query=, and check DWH_URL.",
                    )
                return [(c["name"], sql_type_name(c["type"])) for c in cols]
            with engine.connect() as conn:
                result = conn.execute(sa.text(f"SELECT * FROM ({self.query}) AS q LIMIT 1"))
                row = result.fetchone()
                names = list(result.keys())
            values = row if row is not None else [None] * len(names)
            return [(n, python_type_name(v)) for n, v in zip(names, values, strict=True)]
        except sa.exc.SQLAlchemyError as e:
            raise DwhError(
                f"cannot read the columns of source {self.name!r} at {redact_url(url)!r}: "
                f"{sql_error_text(e)}"
            ) from e


class CustomerSource(_OptionsSource):
    """The mode switch behind ``customer_features``: Xiva, the DWH, or both merged.

    At pull time the offline store reads ``FEATURE_STORE_DATA_SOURCE`` (``xiva`` | ``dwh`` |
    ``auto``) and ``FEATURE_STORE_MERGE_STRATEGY`` (``xiva_first`` | ``dwh_first``) from the
    settings its caller loaded; the feature names are the same whatever the mode. The event
    timestamp column is always ``event_timestamp`` (the DWH's ``updated_at`` is renamed).

    Args:
        name: Unique source name in the project.
        xiva: The Xiva side.
        dwh: The DWH side.
        description: Human-readable description.
        tags: Free-form metadata.
        owner: Owner e-mail.
    """

    source_kind: ClassVar[Literal["customer"]] = "customer"
    """What the pipeline dispatches on (:mod:`xiva_source.pipeline.sources`)."""

    def __init__(
        self,
        name: str,
        xiva: XivaSource,
        dwh: DwhSource,
        *,
        timestamp_field: str = EVENT_TIMESTAMP,
        created_timestamp_column: str = "",
        field_mapping: dict[str, str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.xiva = xiva
        self.dwh = dwh
        super().__init__(
            name=name,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            description=description,
            tags=tags,
            owner=owner,
        )

    def _options(self) -> dict[str, Any]:
        return {
            "xiva": {"name": self.xiva.name, "timestamp_field": self.xiva.timestamp_field},
            "dwh": {
                "name": self.dwh.name,
                "timestamp_field": self.dwh.timestamp_field,
                "created_timestamp_column": self.dwh.created_timestamp_column,
                **self.dwh._options(),
            },
        }

    @staticmethod
    def from_proto(data_source: DataSourceProto) -> CustomerSource:
        options = _OptionsSource._config(data_source)
        return CustomerSource(
            xiva=XivaSource(**options["xiva"]),
            dwh=DwhSource(**options["dwh"]),
            **_OptionsSource._common(data_source),
        )

    def validate(self, config: RepoConfig) -> None:
        """Validate both sides."""
        self.xiva.validate(config)
        self.dwh.validate(config)

    def get_table_column_names_and_types(self, config: RepoConfig) -> Iterable[tuple[str, str]]:
        """Xiva's columns: the feature names are the same whatever the mode."""
        columns = list(self.xiva.get_table_column_names_and_types(config))
        return [
            (self.timestamp_field, t) if n == self.xiva.timestamp_field else (n, t)
            for n, t in columns
        ]
