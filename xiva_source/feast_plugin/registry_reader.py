"""A light reader of a Feast repository: ``feature_store.yaml`` and its file registry, no Feast SDK.

``import feast`` costs seconds (its ``__init__`` loads the whole SDK), and so does importing any
module under ``feast``, its generated protobuf modules included. The commands that only read the
registry (``xiva-source status``, ``segmentation validate``) read it here instead:

- ``feature_store.yaml`` with PyYAML, environment variables expanded as Feast expands them;
- the registry file (a serialized ``feast.core.Registry`` protobuf) parsed with message classes
  built in a private descriptor pool from the serialized descriptors embedded in Feast's
  generated ``*_pb2.py`` files (read as text, never imported: ~30 ms), so the schema is always
  the installed Feast's and a later ``import feast`` in the same process is unaffected.

:func:`read_repository` returns a :class:`LightRepository` whose views, on-demand views and
config carry the attributes those commands read from Feast's objects (``name``, ``online``,
``features`` with ``dtype`` printed as Feast prints it, ``join_keys``, ``ttl``, ``batch_source``,
``materialization_intervals``, ``most_recent_end_time``; ``project``, ``repo_path``,
``registry.path``, ``offline_store``, ``entity_key_serialization_version``). It returns ``None``
whenever the repository is something it does not read exactly as Feast would (a registry that is
not a local file, a feature type outside :data:`FEAST_TYPE_NAMES`, an unreadable file): the caller
then opens Feast's ``FeatureStore`` as before, so errors and outputs stay Feast's.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xiva_source.redis_client import RedisClient
    from xiva_source.settings import Settings

__all__ = [
    "FEAST_TYPE_NAMES",
    "LightField",
    "LightRepository",
    "LightSource",
    "LightView",
    "feast_message_class",
    "read_repository",
]

FEAST_TYPE_NAMES: dict[str, str] = {
    "BYTES": "Bytes",
    "STRING": "String",
    "INT32": "Int32",
    "INT64": "Int64",
    "DOUBLE": "Float64",
    "FLOAT": "Float32",
    "BOOL": "Bool",
    "UNIX_TIMESTAMP": "UnixTimestamp",
    "BYTES_LIST": "Array(Bytes)",
    "STRING_LIST": "Array(String)",
    "INT32_LIST": "Array(Int32)",
    "INT64_LIST": "Array(Int64)",
    "DOUBLE_LIST": "Array(Float64)",
    "FLOAT_LIST": "Array(Float32)",
    "BOOL_LIST": "Array(Bool)",
    "UNIX_TIMESTAMP_LIST": "Array(UnixTimestamp)",
}
"""``feast.types.ValueType`` name -> ``str(dtype)`` of Feast's ``Field`` (checked against Feast by
the tests); a feature of another type makes :func:`read_repository` return ``None``."""

_LOYALTY_ONLINE = {
    "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore",
    "xiva_source.online_store.LoyaltyRedisOnlineStore",
}
_SETTINGS_FIELDS = {"connection_string", "redis_type", "sentinel_master"}
_DUMMY_ENTITY = "__dummy"
_SOURCE_KINDS = {"XivaSource": "xiva", "DwhSource": "dwh", "CustomerSource": "customer"}
_SERIALIZED = re.compile(rb"AddSerializedFile\((b'.*?')\)\s*$", re.M)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Unsupported(Exception):
    """The repository holds something this reader does not read exactly as Feast would."""


@dataclass(frozen=True)
class LightField:
    """A feature of a view: its name, Feast's ``str(dtype)`` and its ``ValueType`` name."""

    name: str
    dtype: str
    value_type: str


@dataclass(frozen=True)
class LightSource:
    """A view's batch source: its name and, for the project's sources, its ``source_kind``."""

    name: str
    class_type: str
    source_kind: str | None


@dataclass(frozen=True)
class LightView:
    """A feature view (or an on-demand view: no join keys, no source, never materialized)."""

    name: str
    online: bool
    features: tuple[LightField, ...]
    join_keys: tuple[str, ...] = ()
    ttl: timedelta | None = None
    batch_source: LightSource | None = None
    materialization_intervals: tuple[tuple[datetime, datetime], ...] = ()

    @property
    def most_recent_end_time(self) -> datetime | None:
        """The latest end of a materialization interval (Feast's property), ``None`` if none."""
        ends = [end for _, end in self.materialization_intervals]
        return max(ends) if ends else None


@dataclass
class LightRepository:
    """What the registry-reading commands need of a Feast repository (see the module doc).

    Attributes:
        config: ``project``, ``repo_path``, ``registry.path``, ``offline_store`` (its yaml
            fields as attributes), ``online_store`` (the yaml mapping),
            ``entity_key_serialization_version``.
        redis_from_settings: The online store is the project's Redis store with its connection
            left to ``REDIS_URL`` / ``REDIS_TYPE`` / ``REDIS_SENTINEL_MASTER``; ``False`` when it
            is not Redis at all. (A yaml connection string: :func:`read_repository` is ``None``
            for callers that need the online store.)
    """

    config: Any
    feature_views: list[LightView] = field(default_factory=list)
    on_demand_feature_views: list[LightView] = field(default_factory=list)
    redis_from_settings: bool | None = None

    @property
    def project(self) -> str:
        """The Feast project."""
        return str(self.config.project)

    @property
    def repo_path(self) -> Path:
        """The repository directory."""
        return Path(self.config.repo_path)

    def list_feature_views(self) -> list[LightView]:
        """The project's feature views, in registry order (as Feast lists them)."""
        return list(self.feature_views)

    def list_on_demand_feature_views(self) -> list[LightView]:
        """The project's on-demand feature views, in registry order."""
        return list(self.on_demand_feature_views)

    def redis_client(self, settings: Settings) -> RedisClient | None:
        """The online store's Redis client, as the bound store config connects it.

        ``REDIS_URL`` (else the default) with ``REDIS_TYPE``, ``REDIS_SENTINEL_MASTER`` and the
        ``REDIS_TLS_*`` files; ``None`` when the online store is not Redis.

        Raises:
            ValueError: The yaml sets the connection itself (``redis_from_settings`` is
                ``None``): open Feast's store instead.
            ConfigurationError: ``REDIS_URL`` is not usable.
        """
        if self.redis_from_settings is None:
            raise ValueError("the online store's connection is in feature_store.yaml")
        if not self.redis_from_settings:
            return None
        from xiva_source.redis_client import RedisTls, connect_redis
        from xiva_source.settings import DEFAULT_REDIS_URL

        return connect_redis(
            settings.redis_url or DEFAULT_REDIS_URL,
            redis_type=settings.redis_type.value,
            sentinel_master=settings.redis_sentinel_master,
            tls=RedisTls.from_settings(settings),
        )


def read_repository(repo: str | os.PathLike[str]) -> LightRepository | None:
    """The repository at ``repo`` read without Feast's SDK; ``None`` when it must be Feast's.

    A missing registry file reads as an empty registry (as Feast does: a repository never
    applied). ``None``: no readable ``feature_store.yaml``, a registry that is not a local file,
    an unreadable registry, or something Feast would read differently (see the module doc).

    Args:
        repo: The repository directory (holding ``feature_store.yaml``).
    """
    path = Path(repo)
    try:
        import yaml

        raw = yaml.safe_load(os.path.expandvars((path / "feature_store.yaml").read_text()))
        config = _config(raw, path)
        registry = Path(config.registry.path)
        data = registry.read_bytes() if registry.is_file() else b""
        light = LightRepository(config, redis_from_settings=_redis_from_settings(raw))
        _fill(light, _registry_class().FromString(data) if data else None)
    except Exception:  # unreadable or unsupported: Feast reads it (and reports its errors)
        return None
    return light


def _config(raw: Any, repo: Path) -> SimpleNamespace:
    if not isinstance(raw, dict) or not isinstance(raw.get("project"), str):
        raise _Unsupported("feature_store.yaml without a project")
    registry = raw.get("registry")
    if isinstance(registry, dict):
        if registry.get("registry_type", "file") != "file":
            raise _Unsupported("not a file registry")
        if registry.get("enable_online_feature_view_versioning"):
            raise _Unsupported("versioned online view names")
        registry = registry.get("path")
    if not isinstance(registry, str) or "://" in registry:
        raise _Unsupported("not a local registry file")
    registry_path = Path(registry) if Path(registry).is_absolute() else repo / registry
    offline = raw.get("offline_store") or {}
    return SimpleNamespace(
        project=raw["project"],
        repo_path=repo,
        registry=SimpleNamespace(path=str(registry_path)),
        offline_store=SimpleNamespace(**offline) if isinstance(offline, dict) else offline,
        online_store=raw.get("online_store") or {},
        entity_key_serialization_version=int(raw.get("entity_key_serialization_version", 3)),
    )


def _redis_from_settings(raw: dict[str, Any]) -> bool | None:
    online = raw.get("online_store") or {"type": "sqlite"}
    kind = online if isinstance(online, str) else online.get("type", "sqlite")
    if kind in _LOYALTY_ONLINE:
        explicit = isinstance(online, dict) and bool(_SETTINGS_FIELDS & set(online))
        return None if explicit else True
    return False if kind == "sqlite" else None


def _fill(light: LightRepository, proto: Any) -> None:
    if proto is None:
        return
    project = light.project
    for fv in proto.feature_views:
        spec = fv.spec
        if spec.project != project:
            continue
        if spec.HasField("feature_transformation") or len(spec.source_views):
            raise _Unsupported(f"feature view {spec.name} is a batch feature view")
        dummy = bool(spec.entities) and spec.entities[0] == _DUMMY_ENTITY
        source = None
        if spec.HasField("batch_source"):
            class_type = spec.batch_source.data_source_class_type
            source = LightSource(
                spec.batch_source.name,
                class_type,
                _SOURCE_KINDS.get(class_type.rsplit(".", 1)[-1]),
            )
        light.feature_views.append(
            LightView(
                name=spec.name,
                online=spec.online,
                features=_fields(spec.features),
                join_keys=() if dummy else tuple(c.name for c in spec.entity_columns),
                ttl=_duration(spec.ttl),
                batch_source=source,
                materialization_intervals=tuple(
                    (_time(i.start_time), _time(i.end_time))
                    for i in fv.meta.materialization_intervals
                ),
            )
        )
    for odfv in proto.on_demand_feature_views:
        if odfv.spec.project == project:
            light.on_demand_feature_views.append(
                LightView(name=odfv.spec.name, online=True, features=_fields(odfv.spec.features))
            )


def _fields(specs: Any) -> tuple[LightField, ...]:
    out = []
    for spec in specs:
        kind = _value_type_names()[spec.value_type]
        if kind not in FEAST_TYPE_NAMES:
            raise _Unsupported(f"feature {spec.name} of type {kind}")
        out.append(LightField(spec.name, FEAST_TYPE_NAMES[kind], kind))
    return tuple(out)


def _duration(value: Any) -> timedelta:
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def _time(stamp: Any) -> datetime:
    return _EPOCH + _duration(stamp)


def feast_message_class(full_name: str) -> Any:
    """A message class of Feast's protos (``feast.core.Registry``, ``feast.types.Value``, ...)
    built in this module's private descriptor pool: no ``feast`` import (see the module doc).

    Raises:
        Exception: Feast is not installed or its generated modules cannot be read.
    """
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def _registry_class() -> Any:
    return feast_message_class("feast.core.Registry")


@functools.cache
def _pool() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool

    spec = importlib.util.find_spec("feast")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise _Unsupported("feast is not installed")
    protos = Path(next(iter(spec.submodule_search_locations))) / "protos"
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        added.add(name)
        if name.startswith("google/protobuf/"):
            module = importlib.import_module(
                "google.protobuf."
                + name.removeprefix("google/protobuf/").removesuffix(".proto")
                + "_pb2"
            )
            raw = module.DESCRIPTOR.serialized_pb
        else:
            text = (protos / f"{name.removesuffix('.proto')}_pb2.py").read_bytes()
            found = _SERIALIZED.search(text)
            if found is None:
                raise _Unsupported(f"no serialized descriptor in {name}")
            raw = ast.literal_eval(found.group(1).decode("latin-1"))
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        for dependency in proto.dependency:
            add(dependency)
        pool.Add(proto)

    add("feast/core/Registry.proto")
    add("feast/types/Value.proto")
    return pool


@functools.cache
def _value_type_names() -> dict[int, str]:
    descriptor = _pool().FindEnumTypeByName("feast.types.ValueType.Enum")
    return {value.number: value.name for value in descriptor.values}
