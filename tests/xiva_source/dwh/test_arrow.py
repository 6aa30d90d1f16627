"""The warehouse's type rules and helpers, on plain values: no database needed."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from xiva_source import dwh
from xiva_source.dwh.arrow import table_records
from xiva_source.dwh.engine import bind_timestamp

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UTC_TS = pa.timestamp("us", tz="UTC")


def test_rows_to_arrow_applies_the_type_rules() -> None:
    uid = uuid.UUID(int=1)
    plus_two = timezone(timedelta(hours=2))
    table = dwh.rows_to_arrow(
        ["customer_id", "revenue", "count", "score", "city", "event_timestamp"],
        [
            [uid, Decimal("1.50"), 3, 1, 7, datetime(2026, 1, 1, 2, 0, tzinfo=plus_two)],
            [None, None, None, None, None, datetime(2026, 1, 1)],  # naive: UTC
        ],
        types={"score": pa.float64(), "city": pa.string(), "missing": pa.int64()},
    )
    assert table.schema.field("customer_id").type == pa.string()
    assert table.column("customer_id").to_pylist() == [str(uid), None]
    assert table.schema.field("revenue").type == pa.float64()  # DECIMAL -> float64
    assert table.column("revenue").to_pylist() == [1.5, None]
    assert table.schema.field("count").type == pa.int64()  # nullable int, not float
    assert table.column("score").to_pylist() == [1.0, None]  # int cast to the known float type
    assert table.column("city").to_pylist() == ["7", None]  # to the known string type
    assert table.schema.field("event_timestamp").type == UTC_TS
    assert table.column("event_timestamp").to_pylist() == [T0, T0]


def test_an_all_null_or_empty_column_takes_its_known_type() -> None:
    table = dwh.rows_to_arrow(["a", "ts"], [[None, None]], types={"a": pa.int64()})
    assert table.schema.field("a").type == pa.int64()
    empty = dwh.rows_to_arrow(
        ["a", "pulled_at"], [], types={"a": pa.float64()}, timestamp_columns=["pulled_at"]
    )
    assert empty.num_rows == 0
    assert empty.schema.field("a").type == pa.float64()
    assert empty.schema.field("pulled_at").type == UTC_TS


def test_latest_per_customer_keeps_the_latest_row_then_the_latest_pull() -> None:
    t1 = T0 + timedelta(days=1)
    table = pa.table(
        {
            "customer_id": ["b", "a", "a", "b", "b"],
            "v": [1, 2, 3, 4, 5],
            "event_timestamp": pa.array([T0, t1, T0, t1, t1], UTC_TS),
            "pulled_at": pa.array([T0, T0, t1, T0, t1], UTC_TS),
        }
    )
    latest = dwh.latest_per_customer(table)
    assert latest.column("customer_id").to_pylist() == ["a", "b"]
    assert latest.column("v").to_pylist() == [2, 5]  # b: same event time, later pull wins
    other = table.drop_columns(["pulled_at"]).rename_columns(["customer_id", "v", "updated_at"])
    assert dwh.latest_per_customer(other, "updated_at").column("customer_id").to_pylist() == [
        "a",
        "b",
    ]
    assert dwh.latest_per_customer(table.slice(0, 0)).num_rows == 0


def test_latest_per_customer_breaks_a_tie_by_the_created_timestamp() -> None:
    t1 = T0 + timedelta(days=1)
    table = pa.table(
        {
            "customer_id": ["a", "a", "a", "b", "b"],
            "v": [1, 2, 3, 4, 5],
            "updated_at": pa.array([T0, T0, T0, t1, t1], UTC_TS),
            "loaded_at": pa.array([t1, None, T0, None, T0], UTC_TS),
        }
    )
    latest = dwh.latest_per_customer(table, "updated_at", "loaded_at")
    assert latest.column("v").to_pylist() == [1, 5]  # latest created; none loses
    pulled = table.rename_columns(["customer_id", "v", "event_timestamp", "created_timestamp"])
    assert dwh.latest_per_customer(pulled).column("v").to_pylist() == [1, 5]


def test_table_records_hand_the_driver_plain_datetimes() -> None:
    table = pa.table({"a": [1], "ts": pa.array([T0], UTC_TS)})
    (record,) = table_records(table)
    assert record == {"a": 1, "ts": T0}
    assert not isinstance(record["ts"], pd.Timestamp)


def test_table_spec_is_a_table_or_a_query() -> None:
    with pytest.raises(ValueError, match="exactly one of table= or query="):
        dwh.TableSpec()
    with pytest.raises(ValueError, match="exactly one of table= or query="):
        dwh.TableSpec(table="t", query="SELECT 1")
    clause = dwh.TableSpec(table="dwh.features").from_clause(["customer_id", "ts"], "ts")
    assert isinstance(clause, sa.TableClause)
    assert clause.schema == "dwh" and clause.name == "features"
    assert isinstance(clause.c["ts"].type, sa.DateTime)


def test_timestamps_are_bound_in_utc_naive_for_sqlite_only() -> None:
    sqlite = sa.create_engine("sqlite://")
    postgres = sa.create_engine("postgresql+psycopg://u@localhost/db")  # never connects
    moment = datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3)))
    assert bind_timestamp(sqlite, moment) == datetime(2026, 1, 1)
    assert bind_timestamp(postgres, moment) == T0 and bind_timestamp(postgres, moment).tzinfo
    assert bind_timestamp(postgres, datetime(2026, 1, 1)) == T0  # naive is UTC


def test_sql_error_text_is_one_short_line() -> None:
    error = sa.exc.OperationalError("SELECT 1", {}, Exception("no such table: x\nmore detail"))
    assert dwh.sql_error_text(error) == "OperationalError: no such table: x"
    assert len(dwh.sql_error_text(ValueError("y" * 1000))) == 300


def test_bad_urls_fail_with_the_fix_and_never_the_password() -> None:
    with pytest.raises(dwh.DwhError, match="DWH_URL") as caught:
        dwh.get_engine("nosuchdialect://user:hunter2@host/db")
    assert "hunter2" not in str(caught.value)
    assert caught.value.fix and "DWH_URL" in caught.value.fix


@pytest.mark.usefixtures("subprocesses")
def test_the_package_loads_its_modules_on_first_use() -> None:
    code = (
        "import sys, xiva_source.dwh, xiva_source.dwh.errors, xiva_source.dwh.tables; "
        "print(*(m in sys.modules for m in ('sqlalchemy', 'pandas', 'pyarrow')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]
    assert set(dwh.__all__) <= set(dir(dwh))
    for name in dwh.__all__:
        assert getattr(dwh, name) is not None
    with pytest.raises(AttributeError):
        dwh.create_demo_dwh  # type: ignore[attr-defined]  # noqa: B018  (moved to demo.data)
