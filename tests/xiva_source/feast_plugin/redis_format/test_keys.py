"""Entity keys and field names (pure: compared with Feast's own helpers, no Redis)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key, serialize_entity_key_prefix
from feast.infra.online_stores.helpers import _mmh3, _redis_key, compute_versioned_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.value_type import ValueType

from xiva_source.feast_plugin.redis_format import (
    RedisLayout,
    field_name,
    glob_escape,
    timestamp_field,
)


def _proto(join_keys: list[str], values: list[Value]) -> EntityKey:
    return EntityKey(join_keys=join_keys, entity_values=values)


def _redis_glob(pattern: bytes, key: bytes) -> bool:
    """Redis' MATCH for the subset the layout uses: ``*`` and backslash escapes."""
    regex, i = b"", 0
    while i < len(pattern):
        c = pattern[i : i + 1]
        if c == b"\\":
            regex += re.escape(pattern[i + 1 : i + 2])
            i += 2
            continue
        regex += b".*" if c == b"*" else re.escape(c)
        i += 1
    return re.fullmatch(regex, key, re.DOTALL) is not None


@pytest.mark.parametrize("cid", ["C001", "", "customer-ü-42", "*?[]\\", "x" * 300])
def test_keys_are_feasts_keys(cid: str) -> None:
    layout = RedisLayout("loyalty", ("customer_id",))
    proto = _proto(["customer_id"], [Value(string_val=cid)])
    assert layout.entity_key(cid) == serialize_entity_key(proto, entity_key_serialization_version=3)
    assert layout.key(cid) == _redis_key("loyalty", proto, 3)
    assert layout.entity_id(layout.key(cid)) == cid
    assert layout.is_key(layout.key(cid))
    assert layout.entity_values(layout.key(cid)) == (cid.encode(),)


def test_several_join_keys_are_sorted_like_feast() -> None:
    layout = RedisLayout("p", ("store_id", "customer_id"))
    assert layout.join_keys == ("customer_id", "store_id")
    proto = _proto(["store_id", "customer_id"], [Value(string_val="S1"), Value(string_val="C1")])
    assert layout.key("C1", "S1") == _redis_key("p", proto, 3)
    assert layout.prefix == serialize_entity_key_prefix(["customer_id", "store_id"])
    assert layout.entity_values(layout.key("C1", "S1")) == (b"C1", b"S1")
    with pytest.raises(ValueError, match="one join key"):
        layout.entity_id(layout.key("C1", "S1"))


def test_the_exact_check_rejects_other_projects_and_entities() -> None:
    mine = RedisLayout("shop", ("customer_id",))
    suffixed = RedisLayout("myshop", ("customer_id",))
    two_keys = RedisLayout("shop", ("customer_id", "store_id"))
    other_entity = RedisLayout("shop", ("account_id",))
    int_key = _redis_key("shop", _proto(["customer_id"], [Value(int64_val=7)]), 3)
    assert mine.is_key(mine.key("C1"))
    # "myshop" ends with "shop": the SCAN pattern matches, the exact check does not.
    assert _redis_glob(mine.scan_pattern(), suffixed.key("C1"))
    assert not mine.is_key(suffixed.key("C1"))
    assert mine.entity_id(suffixed.key("C1")) is None
    assert not mine.is_key(two_keys.key("C1", "S1"))
    assert not mine.is_key(other_entity.key("C1"))
    assert mine.is_key(int_key)  # a value of another type is still this entity's key
    assert mine.entity_id(int_key) is None  # but not a string id
    for broken in (b"", mine.prefix, mine.key("C1")[:-1] + b"x", mine.key("C1") + b"shop"):
        assert not mine.is_key(broken)
        assert mine.entity_id(broken) is None


def test_scan_pattern_matches_every_key_and_escapes_glob_characters() -> None:
    layout = RedisLayout("p[1]*?", ("id*",))
    pattern = layout.scan_pattern()
    assert b"\\[1\\]\\*\\?" in pattern and b"id\\*" in pattern
    for cid in ("a", "", "[x]", "\\"):
        assert _redis_glob(pattern, layout.key(cid))
    assert not _redis_glob(pattern, RedisLayout("p", ("id*",)).key("a"))
    assert glob_escape(b"a*b?c[d]e\\") == b"a\\*b\\?c\\[d\\]e\\\\"


def test_the_repository_serialization_version_is_used() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v2 = RedisLayout("p", ("customer_id",), version=2)
        proto = _proto(["customer_id"], [Value(string_val="C1")])
        assert v2.key("C1") == _redis_key("p", proto, 2)
        assert v2.entity_id(v2.key("C1")) == "C1"
        assert v2.prefix == serialize_entity_key_prefix(["customer_id"], 2)
    assert v2.key("C1") != RedisLayout("p", ("customer_id",)).key("C1")


def test_keys_column_wise_equal_feasts_keys() -> None:
    layout = RedisLayout("p", ("customer_id",))
    ids = ["a", "ü-1", "", "x" * 300]
    assert layout.keys(ids) == [layout.key(i) for i in ids]
    assert layout.keys(pa.array(ids)) == [
        _redis_key("p", _proto(["customer_id"], [Value(string_val=i)]), 3) for i in ids
    ]


def test_table_keys_equal_feasts_keys_for_any_join_keys() -> None:
    one = RedisLayout("p", ("customer_id",))
    table = pa.table({"customer_id": pa.chunked_array([["a", "ü"], ["b"]]), "x": [1, 2, 3]})
    assert one.table_keys(table, {"customer_id": ValueType.STRING}) == one.keys(["a", "ü", "b"])

    two = RedisLayout("p", ("store_id", "customer_id"))
    table = pa.table({"customer_id": ["a", "b"], "store_id": pa.array([7, -1], pa.int64())})
    types = {"customer_id": ValueType.STRING, "store_id": ValueType.INT64}
    assert two.table_keys(table, types) == [
        _redis_key(
            "p",
            _proto(["customer_id", "store_id"], [Value(string_val=c), Value(int64_val=s)]),
            3,
        )
        for c, s in (("a", 7), ("b", -1))
    ]
    int_key = RedisLayout("p", ("n",))
    numbers = pa.table({"n": pa.array([5], pa.int64())})
    assert int_key.table_keys(numbers, {"n": ValueType.INT64}) == [
        _redis_key("p", _proto(["n"], [Value(int64_val=5)]), 3)
    ]


def test_table_keys_refuse_missing_null_and_foreign_join_keys() -> None:
    layout = RedisLayout("p", ("customer_id",))
    string = {"customer_id": ValueType.STRING}
    with pytest.raises(ValueError, match="customer_id not found"):
        layout.table_keys(pa.table({"other": ["a"]}), string)
    with pytest.raises(ValueError, match="null"):
        layout.table_keys(pa.table({"customer_id": ["a", None]}), string)
    with pytest.raises(ValueError, match="not this layout"):
        layout.table_keys(pa.table({"store_id": ["a"]}), {"store_id": ValueType.STRING})


def test_field_names_are_feasts() -> None:
    assert field_name("customer_features", "age") == _mmh3("customer_features:age")
    assert field_name("v", "ü") == _mmh3("v:ü") and len(field_name("v", "ü")) == 4
    assert timestamp_field("customer_features") == b"_ts:customer_features"


def test_view_names_are_feasts_with_and_without_versioning(tmp_path: Path) -> None:
    from feast import Entity, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import String

    from xiva_source.feast_plugin.redis_format import view_name

    fv = FeatureView(
        name="customer_features",
        entities=[Entity(name="customer", join_keys=["customer_id"])],
        schema=[Field(name="city", dtype=String)],
        source=FileSource(path="unused.parquet", timestamp_field="event_timestamp"),
    )
    fv.current_version_number = 3
    names = []
    for versioning in (False, True):
        config = RepoConfig(
            project="p",
            provider="local",
            registry={
                "path": str(tmp_path / "registry.db"),
                "enable_online_feature_view_versioning": versioning,
            },
            online_store={"type": "redis"},
            offline_store={"type": "file"},
            entity_key_serialization_version=3,
        )
        names.append(view_name(fv, config))
        assert names[-1] == compute_versioned_name(fv, versioning)
    assert names == ["customer_features", "customer_features_v3"]


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize(
    "join_keys", [["customer_id"], ["store_id", "customer_id"], ["clé-ü", "a"]]
)
def test_the_prefix_written_here_is_feasts(version: int, join_keys: list[str]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # version 2 is deprecated
        expected = serialize_entity_key_prefix(join_keys, version)
    assert RedisLayout("p", tuple(join_keys), version=version).prefix == expected
