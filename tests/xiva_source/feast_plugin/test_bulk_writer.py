"""The bulk writer writes exactly what Feast's own Redis writer writes, newer-write-wins in Redis.

Differential: the same Arrow rows go through stock Feast (``_convert_arrow_to_proto`` ->
``RedisOnlineStore.online_write_batch``) under one project and through
:class:`~xiva_source.feast_plugin.bulk_writer.BulkWriter` under another; every hash is compared
cell for cell (``HGETALL``, nulls included), and stock ``get_online_features`` reads the values
back. On a single Redis and on the real 3-primary cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
import redis
from feast import Entity, FeatureView, Field, FileSource
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType
from feast.repo_config import RepoConfig
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp
from feast.utils import _convert_arrow_to_proto
from feast.value_type import ValueType

from tests.support.feast import make_repo
from xiva_source.feast_plugin.bulk_writer import BulkWriter
from xiva_source.feast_plugin.redis_format import RedisLayout, decode_timestamp

if TYPE_CHECKING:
    from feast import FeatureStore

    from tests.support.redis_cluster import RedisClusterNodes

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
TTL = 5000
JOIN = {"customer_id": ValueType.STRING}


# --- helpers ------------------------------------------------------------------------------------
def _config(project: str, online: RedisOnlineStoreConfig | None = None) -> RepoConfig:
    return RepoConfig(
        project=project,
        provider="local",
        registry="unused-registry.db",
        online_store=online
        or RedisOnlineStoreConfig(connection_string="127.0.0.1:6379", key_ttl_seconds=TTL),
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
    )


def _mixed_view() -> FeatureView:
    return FeatureView(
        name="mixed",
        entities=[Entity(name="customer", join_keys=["customer_id"])],
        schema=[
            Field(name="status", dtype=String),
            Field(name="revenue", dtype=Float64),
            Field(name="score", dtype=Float32),
            Field(name="count", dtype=Int64),
            Field(name="age", dtype=Int32),
            Field(name="vip", dtype=Bool),
            Field(name="since", dtype=UnixTimestamp),
            Field(name="tags", dtype=Array(Int64)),
        ],
        source=FileSource(path="unused.parquet", timestamp_field="updated_at"),
    )


def _mixed_table(rows: int, ns: str) -> pa.Table:
    statuses = ["active", None, "Active", "suspended", "", "ünï"]
    return pa.table(
        {
            "customer_id": [f"{ns}-c{i}" for i in range(rows)],
            "status": [statuses[i % 6] for i in range(rows)],
            "revenue": [
                None if i % 7 == 0 else (float("nan") if i % 11 == 0 else i * 1.25 - 40)
                for i in range(rows)
            ],
            "score": pa.array([None if i % 3 == 0 else i / 8 for i in range(rows)], pa.float32()),
            "count": pa.array(
                [None if i % 4 == 0 else (i - 20) * 10**9 for i in range(rows)], pa.int64()
            ),
            "age": pa.array([None if i % 6 == 0 else i % 90 for i in range(rows)], pa.int32()),
            "vip": [None if i % 5 == 0 else i % 2 == 0 for i in range(rows)],
            "since": pa.array(
                [
                    None if i % 9 == 0 else datetime(1960 + i % 70, 1 + i % 12, 1, tzinfo=UTC)
                    for i in range(rows)
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "tags": [None if i % 8 == 0 else [i, i + 1] for i in range(rows)],
            # repeated instants, one before 1970, microseconds
            "updated_at": pa.array(
                [
                    datetime(1969, 7, 20, 20, 17, 40, 5, tzinfo=UTC)
                    if i == 3
                    else T0 + timedelta(seconds=i % 10, microseconds=i)
                    for i in range(rows)
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def _stock_write(config: RepoConfig, fv: FeatureView, table: pa.Table) -> None:
    """Stock Feast: its converter, its Redis writer (newer-wins path)."""
    rows = _convert_arrow_to_proto(table, fv, JOIN)
    RedisOnlineStore().online_write_batch(config, fv, rows, None)


def _hashes(client: Any, layout: RedisLayout, ids: list[str]) -> list[dict[bytes, bytes]]:
    return [client.hgetall(layout.key(i)) for i in ids]


def _ids(table: pa.Table) -> list[str]:
    return [str(v) for v in table.column("customer_id").to_pylist()]


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def _project(ns: str) -> str:
    return "bw_" + ns.replace("-", "_")


# --- differential, single Redis -----------------------------------------------------------------
def test_every_type_is_written_cell_for_cell_as_feasts_writer(client: Any, redis_ns: str) -> None:
    fv = _mixed_view()
    table = _mixed_table(60, redis_ns)
    stock, ours = _config(f"{_project(redis_ns)}_stock"), _config(f"{_project(redis_ns)}_bulk")
    _stock_write(stock, fv, table)
    result = BulkWriter(client, ours, ttl_seconds=TTL, rows_per_call=7).write(fv, table, JOIN)
    assert (result.sent, result.written) == (60, 60)

    ids = _ids(table)
    want = _hashes(client, RedisLayout.of(stock, ["customer_id"]), ids)
    got = _hashes(client, RedisLayout.of(ours, ["customer_id"]), ids)
    assert all(len(h) == 9 for h in want)  # 8 features + _ts, null cells included
    assert got == want
    key = RedisLayout.of(ours, ["customer_id"]).key(ids[0])
    assert 0 < client.ttl(key) <= TTL


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Path]:
    """The project's repository applied under a project of this module's own."""
    project = f"bw_{uuid.uuid4().hex[:10]}"
    path = make_repo(tmp_path_factory.mktemp("bulk") / "repo", project)
    yield path
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=f"*{project}*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def _store(repo: Path) -> FeatureStore:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def _repo_tables(ids: list[str]) -> dict[str, pa.Table]:
    """Rows of both views of the repository: every feature type, nulls in every column."""
    from xiva_source.pipeline.context import feature_arrow_types

    types = feature_arrow_types()
    n = len(ids)
    ts = pa.array([T0 - timedelta(days=i % 3) for i in range(n)], pa.timestamp("us", tz="UTC"))

    def col(name: str, values: list[Any]) -> pa.Array:
        return pa.array(values, types[name])

    ix = range(n)
    day = [datetime(2025, 12, 1 + i % 28, tzinfo=UTC) for i in ix]
    status = [None if i % 5 == 0 else ["active", "churned"][i % 2] for i in range(n)]
    features = pa.table(
        {
            "customer_id": ids,
            "customer_status": col("customer_status", status),
            "total_revenue": col("total_revenue", [None if i % 4 == 1 else i * 10.5 for i in ix]),
            "transaction_count": col("transaction_count", [None if i % 6 == 2 else i for i in ix]),
            "last_payment_date": col(
                "last_payment_date", [None if i % 7 == 3 else d for i, d in enumerate(day)]
            ),
            "customer_tier": col("customer_tier", [["gold", "silver", None][i % 3] for i in ix]),
            "city": col("city", [None if i % 8 == 4 else f"City {i % 4}" for i in ix]),
            "birth_date": col(
                "birth_date",
                [None if i % 9 == 5 else datetime(1950 + i % 60, 3, 1, tzinfo=UTC) for i in ix],
            ),
            "outstanding_amount": col(
                "outstanding_amount", [None if i % 3 == 0 else -i / 3 for i in ix]
            ),
            "event_timestamp": ts,
        }
    )
    dwh = pa.table(
        {
            "customer_id": ids,
            "avg_transaction_value": col(
                "avg_transaction_value", [None if i % 2 else i / 7 for i in ix]
            ),
            "lifetime_value": col("lifetime_value", [float(i) for i in ix]),
            "churn_score": col("churn_score", [None if i % 5 == 0 else 0.5 for i in ix]),
            "event_timestamp": ts,
        }
    )
    return {"customer_features": features, "customer_dwh_features": dwh}


def _stock_repo_write(store: FeatureStore, project: str, fv: FeatureView, table: pa.Table) -> None:
    config = _config(project)  # same serialization version, plain Feast Redis store
    assert fv.batch_source is not None
    renamed = table.rename_columns(
        [
            fv.batch_source.timestamp_field if c == "event_timestamp" else c
            for c in table.column_names
        ]
    )
    rows = _convert_arrow_to_proto(renamed, fv, JOIN)
    RedisOnlineStore().online_write_batch(config, fv, rows, None)


def test_repository_views_read_back_through_get_online_features(repo: Path, client: Any) -> None:
    store = _store(repo)
    ids = [f"bw-{uuid.uuid4().hex[:6]}-{i}" for i in range(30)]
    tables = _repo_tables(ids)
    stock_project = f"{store.project}_stock"
    writer = BulkWriter(client, store.config, ttl_seconds=TTL)
    for view, table in tables.items():
        fv = store.get_feature_view(view)
        _stock_repo_write(store, stock_project, fv, table)
        assert writer.write(fv, table, JOIN).written == len(ids)

    stock_layout = RedisLayout(stock_project, ("customer_id",))
    ours = RedisLayout.of(store.config, ["customer_id"])
    assert _hashes(client, ours, ids) == _hashes(client, stock_layout, ids)
    assert all(len(h) == 9 + 4 for h in _hashes(client, ours, ids))  # both views, nulls too

    refs = [f"{v}:{f}" for v, t in tables.items() for f in t.column_names[1:-1]]
    got = store.get_online_features(
        features=refs, entity_rows=[{"customer_id": c} for c in ids], full_feature_names=True
    ).to_dict()
    assert got["customer_id"] == ids
    for view, table in tables.items():
        for name in table.column_names[1:-1]:
            want = table.column(name).to_pylist()
            have = got[f"{view}__{name}"]
            for i, (h, w) in enumerate(zip(have, want, strict=True)):
                if isinstance(w, datetime):  # UnixTimestamp reads back as an aware datetime
                    assert h is not None and h.replace(tzinfo=UTC) == w, (view, name, i)
                else:
                    assert h == w, (view, name, i, h, w)


# --- the rule -----------------------------------------------------------------------------------
def _one_row(ns: str, city: str, at: datetime, cid: str = "c1") -> tuple[FeatureView, pa.Table]:
    fv = FeatureView(
        name="small",
        entities=[Entity(name="customer", join_keys=["customer_id"])],
        schema=[Field(name="city", dtype=String), Field(name="revenue", dtype=Float64)],
        source=FileSource(path="unused.parquet", timestamp_field="updated_at"),
    )
    table = pa.table(
        {
            "customer_id": [f"{ns}-{cid}"],
            "city": [city],
            "revenue": [1.0],
            "event_timestamp": pa.array([at], pa.timestamp("us", tz="UTC")),
        }
    )
    return fv, table


def _city(client: Any, config: RepoConfig, ns: str, cid: str = "c1") -> Any:
    from xiva_source.feast_plugin.redis_format import decode_value, field_name

    cell = client.hget(
        RedisLayout.of(config, ["customer_id"]).key(f"{ns}-{cid}"), field_name("small", "city")
    )
    return decode_value(cell)


def test_older_rows_lose_equal_and_newer_win_force_always(client: Any, redis_ns: str) -> None:
    config = _config(_project(redis_ns))
    writer = BulkWriter(client, config, ttl_seconds=TTL)
    later = T0 + timedelta(hours=1)

    assert writer.write(*_one_row(redis_ns, "A", T0), JOIN).written == 1
    assert (
        writer.write(*_one_row(redis_ns, "older", T0 - timedelta(microseconds=1)), JOIN).written
        == 0
    )
    assert _city(client, config, redis_ns) == "A"
    assert writer.write(*_one_row(redis_ns, "equal", T0), JOIN).written == 1
    assert _city(client, config, redis_ns) == "equal"
    assert writer.write(*_one_row(redis_ns, "newer", later), JOIN).written == 1
    assert _city(client, config, redis_ns) == "newer"

    far = datetime(9999, 1, 1, tzinfo=UTC)
    writer.write(*_one_row(redis_ns, "Atlantis", far), JOIN)
    assert writer.write(*_one_row(redis_ns, "back", later), JOIN).written == 0
    forced = BulkWriter(client, config, ttl_seconds=TTL, force=True)
    assert forced.write(*_one_row(redis_ns, "back", later), JOIN).written == 1
    assert _city(client, config, redis_ns) == "back"
    key = RedisLayout.of(config, ["customer_id"]).key(f"{redis_ns}-c1")
    assert decode_timestamp(client.hget(key, "_ts:small")) == later.timestamp()

    # Before 1970 (a negative protobuf varint): still ordered.
    old = datetime(1960, 5, 5, 1, 2, 3, 4, tzinfo=UTC)
    assert forced.write(*_one_row(redis_ns, "sixties", old, "c2"), JOIN).written == 1
    assert (
        writer.write(*_one_row(redis_ns, "older", old - timedelta(seconds=1), "c2"), JOIN).written
        == 0
    )
    assert writer.write(*_one_row(redis_ns, "same", old, "c2"), JOIN).written == 1
    assert _city(client, config, redis_ns, "c2") == "same"


def test_newer_wins_is_decided_row_by_row_in_a_batch(client: Any, redis_ns: str) -> None:
    """Feast's own newer-wins leaves a stored row alone; the bulk writer agrees on every row."""
    fv = _mixed_view()
    table = _mixed_table(40, redis_ns)
    stock, ours = _config(f"{_project(redis_ns)}_stock"), _config(f"{_project(redis_ns)}_bulk")
    _stock_write(stock, fv, table)
    BulkWriter(client, ours, ttl_seconds=TTL).write(fv, table, JOIN)
    # Every other row again, half of them an hour older (lose), half an hour newer (win).
    shifted = table.set_column(
        table.column_names.index("updated_at"),
        "updated_at",
        pa.array(
            [
                t + timedelta(hours=1 if i % 2 else -1)
                for i, t in enumerate(table.column("updated_at").to_pylist())
            ],
            pa.timestamp("us", tz="UTC"),
        ),
    )
    changed = shifted.set_column(1, "status", pa.array(["changed"] * shifted.num_rows, pa.string()))
    _stock_write(stock, fv, changed)
    result = BulkWriter(client, ours, ttl_seconds=TTL).write(fv, changed, JOIN)
    assert result.written == 20
    ids = _ids(table)
    assert _hashes(client, RedisLayout.of(ours, ["customer_id"]), ids) == _hashes(
        client, RedisLayout.of(stock, ["customer_id"]), ids
    )


def test_partial_rows_write_only_their_known_cells(client: Any, redis_ns: str) -> None:
    from xiva_source.feast_plugin.redis_format import decode_value, field_name

    fv = _mixed_view()
    table = _mixed_table(12, redis_ns)
    config = _config(_project(redis_ns))
    writer = BulkWriter(client, config, ttl_seconds=TTL)
    writer.write(fv, table, JOIN)
    layout = RedisLayout.of(config, ["customer_id"])
    ids = _ids(table)
    before = _hashes(client, layout, ids)

    later = pa.array([T0 + timedelta(days=1)] * 12, pa.timestamp("us", tz="UTC"))
    partial = pa.table(
        {
            "customer_id": ids,
            "status": pa.array([None] * 6 + ["new"] * 6, pa.string()),
            **{
                name: pa.nulls(12, table.schema.field(name).type)
                for name in ("revenue", "score", "count", "age", "vip", "since", "tags")
            },
            "updated_at": later,
        }
    )
    result = writer.write(fv, partial, JOIN, partial=True)
    assert (result.sent, result.written) == (6, 6)  # rows without a known cell are not sent
    after = _hashes(client, layout, ids)
    status = field_name("mixed", "status")
    for i in range(12):
        if i < 6:
            assert after[i] == before[i]
        else:
            assert decode_value(after[i][status]) == "new"
            assert {k: v for k, v in after[i].items() if k not in (status, b"_ts:mixed")} == {
                k: v for k, v in before[i].items() if k not in (status, b"_ts:mixed")
            }


def test_a_wrong_column_is_a_clear_error(client: Any, redis_ns: str) -> None:
    fv, table = _one_row(redis_ns, "A", T0)
    writer = BulkWriter(client, _config(_project(redis_ns)))
    with pytest.raises(ValueError, match="revenue"):
        writer.write(fv, table.drop_columns(["revenue"]), JOIN)
    with pytest.raises(ValueError, match=r"event_timestamp|updated_at"):
        writer.write(fv, table.drop_columns(["event_timestamp"]), JOIN)


# --- Redis Cluster ------------------------------------------------------------------------------
def test_on_a_redis_cluster_cells_equal_feasts_cluster_writer(
    redis_cluster: RedisClusterNodes,
) -> None:
    ns = f"bwc{uuid.uuid4().hex[:8]}"
    cluster = redis_cluster.client()
    online = RedisOnlineStoreConfig(
        redis_type=RedisType.redis_cluster,
        connection_string=",".join(f"127.0.0.1:{p}" for p in redis_cluster.ports),
        key_ttl_seconds=TTL,
    )
    stock, ours = _config(f"{ns}_stock", online), _config(f"{ns}_bulk", online)
    try:
        fv = _mixed_view()
        table = _mixed_table(300, ns)
        _stock_write(stock, fv, table)
        cluster.script_flush()  # the writer loads its script where NOSCRIPT says so
        writer = BulkWriter(cluster, ours, ttl_seconds=TTL, rows_per_call=50)
        assert writer.write(fv, table, JOIN).written == 300
        ids = _ids(table)
        want = _hashes(cluster, RedisLayout.of(stock, ["customer_id"]), ids)
        got = _hashes(cluster, RedisLayout.of(ours, ["customer_id"]), ids)
        assert got == want and all(len(h) == 9 for h in got)
        assert 0 < cluster.ttl(RedisLayout.of(ours, ["customer_id"]).key(ids[5])) <= TTL

        # newer-wins and partial rows there too
        older = table.set_column(
            table.column_names.index("updated_at"),
            "updated_at",
            pa.array([datetime(1950, 1, 1, tzinfo=UTC)] * 300, pa.timestamp("us", tz="UTC")),
        )
        assert writer.write(fv, older, JOIN).written == 0
        assert _hashes(cluster, RedisLayout.of(ours, ["customer_id"]), ids) == want
        forced = BulkWriter(cluster, ours, ttl_seconds=TTL, force=True)
        partial = older.set_column(1, "status", pa.array(["p"] * 300, pa.string()))
        for name in ("revenue", "score", "count", "age", "vip", "since", "tags"):
            index = partial.column_names.index(name)
            partial = partial.set_column(
                index, name, pa.nulls(300, partial.schema.field(name).type)
            )
        assert forced.write(fv, partial, JOIN, partial=True).written == 300
        after = _hashes(cluster, RedisLayout.of(ours, ["customer_id"]), ids)
        from xiva_source.feast_plugin.redis_format import decode_value, field_name

        assert {decode_value(h[field_name("mixed", "status")]) for h in after} == {"p"}
        assert all(
            h[field_name("mixed", "revenue")] == w[field_name("mixed", "revenue")]
            for h, w in zip(after, want, strict=True)
        )
    finally:
        cluster.close()
        redis_cluster.delete_matching(f"*{ns}*")


def test_on_a_redis_cluster_a_stale_slot_map_is_learnt_again(
    redis_cluster: RedisClusterNodes,
) -> None:
    """Slots moved since the client learnt the map (``MOVED``): the table is written again."""
    ns = f"bwm{uuid.uuid4().hex[:8]}"
    cluster = redis_cluster.client()
    config = _config(f"{ns}_bulk")
    try:
        fv = _mixed_view()
        table = _mixed_table(120, ns)
        manager = cluster.nodes_manager
        first = cluster.get_primaries()[0]
        for slot in list(manager.slots_cache):  # as if every slot had moved to one primary
            manager.slots_cache[slot] = [first]
        writer = BulkWriter(cluster, config, ttl_seconds=TTL, rows_per_call=25)
        assert writer.write(fv, table, JOIN).written == 120
        assert len({manager.get_node_from_slot(s).name for s in range(16384)}) == 3  # relearnt
        layout = RedisLayout.of(config, ["customer_id"])
        assert all(len(h) == 9 for h in _hashes(cluster, layout, _ids(table)))
    finally:
        cluster.close()
        redis_cluster.delete_matching(f"*{ns}*")


def test_submitted_tables_are_stored_after_flush(client: Any, redis_ns: str) -> None:
    fv = _mixed_view()
    table = _mixed_table(90, redis_ns)
    stock, ours = _config(f"{_project(redis_ns)}_stock"), _config(f"{_project(redis_ns)}_bulk")
    _stock_write(stock, fv, table)
    writer = BulkWriter(client, ours, ttl_seconds=TTL, rows_per_call=10)
    assert sum(writer.submit(fv, table.slice(i, 30), JOIN) for i in (0, 30, 60)) == 90
    assert writer.flush() == 90
    ids = _ids(table)
    assert _hashes(client, RedisLayout.of(ours, ["customer_id"]), ids) == _hashes(
        client, RedisLayout.of(stock, ["customer_id"]), ids
    )
    assert writer.flush() == 0  # nothing pending


def test_a_redis_failure_in_the_background_surfaces_at_flush(redis_ns: str) -> None:
    from xiva_source.feast_plugin.errors import OnlineStoreError

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    writer = BulkWriter(dead, _config(_project(redis_ns)))
    writer.submit(*_one_row(redis_ns, "A", T0), JOIN)
    with pytest.raises(OnlineStoreError, match="Redis"):
        writer.flush()
