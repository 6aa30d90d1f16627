"""The write script's arguments (pure, no Redis; the script itself runs in test_bulk_writer.py)."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np

from xiva_source.feast_plugin.redis_format import (
    WRITE_SCRIPT,
    WRITE_SCRIPT_SHA,
    ScriptRows,
    encode_timestamps,
    field_name,
    script_calls,
    script_header,
    script_rows,
)


def test_the_script_is_the_shipped_lua_file() -> None:
    shipped = resources.files("xiva_source.feast_plugin.redis_format") / "write.lua"
    assert shipped.read_text(encoding="utf-8") == WRITE_SCRIPT
    assert "redis.call('HSET'" in WRITE_SCRIPT
    assert hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest() == WRITE_SCRIPT_SHA


def test_the_header_names_the_timestamp_and_feature_fields() -> None:
    header = script_header("v", ["a", "b"], ttl_seconds=60, force=True)
    assert header == [b"_ts:v", 60, "1", 2, field_name("v", "a"), field_name("v", "b")]
    assert script_header("v", [], ttl_seconds=0, force=False) == [b"_ts:v", 0, "0", 0]


def _columns() -> tuple[list[bytes], np.ndarray, np.ndarray, list[np.ndarray], list[bytes]]:
    keys = [b"k0", b"k1", b"k2"]
    seconds = np.array([10, -5, 0], dtype=np.int64)
    nanos = np.array([1000, 0, 0], dtype=np.int64)
    a = np.array([b"a0", b"", b"a2"], dtype=object)
    b = np.array([b"", b"", b"b2"], dtype=object)
    return keys, seconds, nanos, [a, b], [b"", b""]


def test_full_rows_carry_every_cell() -> None:
    keys, seconds, nanos, cells, nulls = _columns()
    rows = script_rows(keys, seconds, nanos, cells, nulls)
    blobs = encode_timestamps(seconds, nanos)
    assert rows.keys == keys
    assert rows.args == [
        (b"10", b"1000", blobs[0], b"", b"a0", b""),
        (b"-5", b"0", blobs[1], b"", b"", b""),
        (b"0", b"0", blobs[2], b"", b"a2", b"b2"),
    ]


def test_partial_rows_carry_their_known_cells_and_a_mask() -> None:
    keys, seconds, nanos, cells, nulls = _columns()
    rows = script_rows(keys, seconds, nanos, cells, nulls, partial=True)
    blobs = encode_timestamps(seconds, nanos)
    assert rows.keys == [b"k0", b"k2"]  # k1 has no known cell: not sent
    assert rows.args == [
        (b"10", b"1000", blobs[0], b"10", b"a0"),
        (b"0", b"0", blobs[2], b"11", b"a2", b"b2"),
    ]
    assert rows.take([1]).keys == [b"k2"]
    empty = script_rows(keys, seconds, nanos, [], [], partial=True)
    assert empty == ScriptRows([], [])


def test_calls_hold_at_most_rows_per_call() -> None:
    keys, seconds, nanos, cells, nulls = _columns()
    rows = script_rows(keys, seconds, nanos, cells, nulls)
    header = script_header("v", ["a", "b"], ttl_seconds=0, force=False)
    calls = list(script_calls(header, rows, 2))
    assert [c[:3] for c in calls] == [
        ["EVALSHA", WRITE_SCRIPT_SHA, 2],
        ["EVALSHA", WRITE_SCRIPT_SHA, 1],
    ]
    assert calls[0][3:5] == [b"k0", b"k1"] and calls[0][5 : 5 + len(header)] == header
    assert calls[0][5 + len(header) :] == [*rows.args[0], *rows.args[1]]
    assert calls[1][3:] == [b"k2", *header, *rows.args[2]]
