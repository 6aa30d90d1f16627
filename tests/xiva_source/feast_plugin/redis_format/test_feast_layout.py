"""The format reads exactly what Feast's own Redis writer stores, the SCAN finds it (real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from feast import Entity, FeatureView, Field, FileSource
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.repo_config import RepoConfig
from feast.types import Float64, Int64, String

from tests.support.services import REDIS_URL
from xiva_source.feast_plugin.online_store import (
    LoyaltyRedisOnlineStore,
    bind_online_config,
    online_redis_client,
    redis_url_to_feast,
)
from xiva_source.feast_plugin.redis_format import (
    RedisLayout,
    decode_timestamp,
    decode_value,
    field_name,
    timestamp_field,
    view_name,
)
from xiva_source.feast_plugin.redis_scan import scan_entity_keys

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def project(redis_url: str) -> Iterator[str]:
    """A project of the test's own; its keys (and its ``x`` + project neighbour's) removed after."""
    name = f"layout_{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"*{name}".encode(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _config(tmp_path: Path, project: str, online: dict[str, object]) -> RepoConfig:
    config = RepoConfig(
        project=project,
        registry=str(tmp_path / "registry.db"),
        provider="local",
        offline_store={"type": "xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore"},
        online_store=online,
        entity_key_serialization_version=3,
    )
    config.repo_path = tmp_path
    return config


def _view() -> FeatureView:
    return FeatureView(
        name="customer_features",
        entities=[Entity(name="customer", join_keys=["customer_id"])],
        schema=[
            Field(name="city", dtype=String),
            Field(name="age", dtype=Int64),
            Field(name="total_revenue", dtype=Float64),
        ],
        source=FileSource(path="unused.parquet", timestamp_field="event_timestamp"),
        ttl=timedelta(days=1),
    )


def _rows(ids: list[str]) -> list[tuple[EntityKey, dict[str, Value], datetime, datetime | None]]:
    return [
        (
            EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=cid)]),
            {
                "city": Value(string_val=f"city-{i}"),
                "age": Value(int64_val=20 + i),
                "total_revenue": Value(double_val=i * 1.5),
            },
            T0 + timedelta(seconds=i),
            None,
        )
        for i, cid in enumerate(ids)
    ]


def test_what_feast_writes_is_what_the_layout_reads(
    project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("ONLINE_TTL_SECONDS", "900")
    config = _config(
        tmp_path, project, {"type": "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore"}
    )
    view = _view()
    ids = ["C001", "ü-2", "*[3]?", "C004"]
    # Feast's own writer, through the project's store (bound to REDIS_URL / ONLINE_TTL_SECONDS).
    LoyaltyRedisOnlineStore().online_write_batch(config, view, _rows(ids), None)
    # A neighbour project whose name ends with this one's: same SCAN pattern, not its keys.
    neighbour = _config(
        tmp_path,
        "x" + project,
        {"type": "redis", "connection_string": redis_url_to_feast(REDIS_URL)},
    )
    RedisOnlineStore().online_write_batch(neighbour, view, _rows(["C001", "C999"]), None)

    client: Any = online_redis_client(config)  # redis-py's stubs type replies as Awaitable
    assert client is not None
    layout = RedisLayout.of(config, ["customer_id"])
    keys = sorted(scan_entity_keys(client, layout, count=10))
    assert keys == sorted(layout.key(c) for c in ids)
    assert sorted(layout.entity_id(k) or "" for k in keys) == sorted(ids)
    assert bind_online_config(config).key_ttl_seconds == 900
    assert all(0 < client.ttl(k) <= 900 for k in keys)

    name = view_name(view, config)
    fields = [field_name(name, f) for f in ("city", "age", "total_revenue")]
    for i, cid in enumerate(ids):
        city, age, revenue, ts = client.hmget(layout.key(cid), [*fields, timestamp_field(name)])
        assert (decode_value(city), decode_value(age), decode_value(revenue)) == (
            f"city-{i}",
            20 + i,
            i * 1.5,
        )
        assert decode_timestamp(ts) == (T0 + timedelta(seconds=i)).timestamp()
    # And Feast reads back through the same store what the layout found.
    got = LoyaltyRedisOnlineStore().online_read(config, view, [_rows(ids)[1][0]], ["city"])
    assert got[0][1] is not None and got[0][1]["city"].string_val == "city-1"
