"""The ADBC read path on the real PostgreSQL returns exactly the row path's tables.

``stream_rows`` reads PostgreSQL through ADBC (binary COPY into Arrow) and converts with
``conform_arrow``; the row path (SQLAlchemy cursor + ``rows_to_arrow``) stays for SQLite and id
lookups. Every test reads the same thing both ways and compares chunk by chunk: values, types
and nulls.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import sqlalchemy as sa

from xiva_source import dwh
from xiva_source.demo.data import create_demo_dwh
from xiva_source.dwh import reads
from xiva_source.dwh.errors import DwhError
from xiva_source.pipeline.context import feature_arrow_types

IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(120)]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
FEATURE_COLUMNS = [
    "customer_id",
    "customer_status",
    "total_revenue",
    "transaction_count",
    "last_purchase_days_ago",
    "avg_transaction_value",
    "lifetime_value",
    "churn_score",
    "customer_tier",
    "city",
    "age",
]


def both_paths(
    caplog: pytest.LogCaptureFixture, url: str, spec: dwh.TableSpec, **kwargs: object
) -> tuple[list[pa.Table], list[pa.Table]]:
    """The chunks of the row path and of the ADBC path (which must not have fallen back)."""
    rows = list(dwh.stream_rows(url, spec, path="rows", **kwargs))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger=reads.__name__):
        caplog.clear()
        fast = list(dwh.stream_rows(url, spec, path="adbc", **kwargs))  # type: ignore[arg-type]
    assert "falls back" not in caplog.text
    return rows, fast


def assert_same(rows: list[pa.Table], fast: list[pa.Table]) -> None:
    assert [t.num_rows for t in fast] == [t.num_rows for t in rows]
    for expected, got in zip(rows, fast, strict=True):
        assert got.schema == expected.schema
        assert got.equals(expected), (got.to_pylist()[:3], expected.to_pylist()[:3])
        for name in expected.column_names:
            assert got.column(name).null_count == expected.column(name).null_count


def test_adbc_is_the_default_on_postgresql_and_installed() -> None:
    """A plain dependency (no availability check, no fallback when it is missing)."""
    import adbc_driver_postgresql.dbapi  # noqa: F401

    requires = importlib.metadata.requires("loyalty-feature-store") or []
    assert any(r.replace("_", "-").startswith("adbc-driver-postgresql") for r in requires)
    assert inspect.signature(dwh.stream_rows).parameters["path"].default == "auto"


def test_contract_view_reads_the_same_both_ways(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    create_demo_dwh(pg_url, IDS, seed=11, reference_time=NOW)
    common = {
        "columns": FEATURE_COLUMNS,
        "timestamp_field": "updated_at",
        "chunk_size": 16,
        "types": feature_arrow_types(),
        "order_by_timestamp": True,
    }
    spec = dwh.TableSpec(table="customer_features_view")
    rows, fast = both_paths(caplog, pg_url, spec, start_date=None, end_date=None, **common)
    assert sum(t.num_rows for t in rows) == 120  # 108 shared + 12 DWH-only
    table = pa.concat_tables(fast)
    assert table.schema.field("customer_id").type == pa.string()
    assert table.schema.field("total_revenue").type == pa.float64()
    assert table.schema.field("age").type == pa.int64()
    assert table.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert all(len(v) == 36 for v in table.column("customer_id").to_pylist())
    assert sum(table.column(c).null_count for c in FEATURE_COLUMNS[1:]) > 0
    assert_same(rows, fast)

    stamps = sorted(table.column("updated_at").to_pylist())
    rows, fast = both_paths(
        caplog, pg_url, spec, start_date=stamps[10], end_date=stamps[29], **common
    )
    assert sum(t.num_rows for t in fast) == 20  # both bounds inclusive, as the row path
    assert_same(rows, fast)

    # A query with a quote and a LIKE '%' reaches PostgreSQL unchanged.
    query = dwh.TableSpec(
        query="SELECT * FROM customer_features_view "
        "WHERE city LIKE 'T%' OR customer_tier = 'it''s none'"
    )
    rows, fast = both_paths(caplog, pg_url, query, start_date=None, end_date=None, **common)
    assert 0 < sum(t.num_rows for t in fast) < 120
    assert_same(rows, fast)


@pytest.mark.parametrize(
    ("table", "columns", "timestamp_field"),
    [
        (
            "customer_transaction_history",
            ["id", "customer_id", "transaction_amount", "transaction_type"],
            "transaction_date",
        ),
        (
            "customer_churn_history",
            ["customer_id", "churned", "churn_date", "total_revenue", "transaction_count"],
            "snapshot_date",  # a DATE read as a UTC timestamp
        ),
        (
            "customer_offer_history",
            ["customer_id", "offer_id", "converted", "total_revenue"],
            "created_at",
        ),
    ],
)
def test_history_tables_read_the_same_both_ways(
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
    table: str,
    columns: list[str],
    timestamp_field: str,
) -> None:
    create_demo_dwh(pg_url, IDS[:40], seed=5, reference_time=NOW)
    rows, fast = both_paths(
        caplog,
        pg_url,
        dwh.TableSpec(table=table),
        columns=columns,
        timestamp_field=timestamp_field,
        start_date=None,
        end_date=None,
        chunk_size=25,
        order_by_timestamp=True,
    )
    assert sum(t.num_rows for t in fast) > 25
    assert_same(rows, fast)


def test_other_postgresql_types_nulls_and_time_zones(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = dwh.get_engine(pg_url)
    base = datetime(2026, 1, 1, 12, 30, 15, 123456)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE odd_types (customer_id uuid, small smallint, big bigint, "
                "ratio real, exact double precision, note text, flag boolean, "
                "known numeric(8, 3), always_null numeric(6, 2), seen_at timestamptz, "
                "event_at timestamp)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO odd_types VALUES (:id, :small, :big, :ratio, :exact, :note, :flag, "
                ":known, NULL, :seen_at, :event_at)"
            ),
            [
                {
                    "id": None if i == 3 else IDS[i],
                    "small": None if i % 4 == 0 else i - 5,
                    "big": None if i % 5 == 0 else 2**40 + i,
                    "ratio": None if i % 3 == 0 else i / 7,
                    "exact": None if i % 6 == 0 else -i / 3,
                    "note": None if i % 2 == 0 else f"n'{i}%",
                    "flag": None if i % 7 == 0 else i % 2 == 1,
                    "known": None if i % 8 == 0 else f"{i}.125",
                    "seen_at": None
                    if i % 9 == 0
                    else (base + timedelta(hours=i)).replace(
                        tzinfo=UTC if i % 2 else datetime.now().astimezone().tzinfo
                    ),
                    "event_at": base - timedelta(days=i, microseconds=i),
                }
                for i in range(30)
            ],
        )
    columns = ["customer_id", "small", "big", "ratio", "exact", "note", "flag", "known"]
    columns += ["always_null", "seen_at"]
    common = {
        "columns": columns,
        "timestamp_field": "event_at",
        "start_date": None,
        "end_date": NOW,
        "chunk_size": 7,
        "order_by_timestamp": True,
    }
    spec = dwh.TableSpec(table="odd_types")
    # An all-null column takes its known type, as rows_to_arrow does.
    typed = {"always_null": pa.float64(), "small": pa.float64(), "big": pa.int64()}
    rows, fast = both_paths(caplog, pg_url, spec, types=typed, **common)
    assert sum(t.num_rows for t in fast) == 30
    table = pa.concat_tables(fast)
    assert table.column("customer_id").null_count == 1
    assert table.schema.field("small").type == pa.float64()
    assert table.schema.field("ratio").type == pa.float64()
    assert table.schema.field("seen_at").type == pa.timestamp("us", tz="UTC")
    assert_same(rows, fast)

    # Timestamps given as features are read as UTC too (seen_at is TIMESTAMPTZ).
    rows, fast = both_paths(
        caplog, pg_url, spec, types={"seen_at": pa.timestamp("us", tz="UTC")}, **common
    )
    assert_same([t.drop(["always_null"]) for t in rows], [t.drop(["always_null"]) for t in fast])


def test_a_type_without_a_rule_falls_back_to_rows(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = dwh.get_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE with_json (customer_id text, doc jsonb, at timestamp)"))
        conn.execute(sa.text("INSERT INTO with_json VALUES ('a', '{\"k\": 1}', '2026-01-01')"))
    kwargs = {
        "columns": ["customer_id", "doc"],
        "timestamp_field": "at",
        "start_date": None,
        "end_date": None,
    }
    spec = dwh.TableSpec(table="with_json")
    rows = list(dwh.stream_rows(pg_url, spec, path="rows", **kwargs))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger=reads.__name__):
        fast = list(dwh.stream_rows(pg_url, spec, path="adbc", **kwargs))  # type: ignore[arg-type]
    assert "falls back to rows" in caplog.text
    assert pa.concat_tables(fast).equals(pa.concat_tables(rows))


def test_adbc_errors_name_the_url_without_its_password(pg_url: str) -> None:
    with pytest.raises(DwhError) as error:
        list(
            dwh.stream_rows(
                pg_url,
                dwh.TableSpec(table="no_such_table"),
                columns=["customer_id"],
                timestamp_field="updated_at",
                start_date=None,
                end_date=None,
                path="adbc",
            )
        )
    assert "no_such_table" in str(error.value)
    bad = "postgresql+psycopg://root:hunter2secret@127.0.0.1:1/none"
    with pytest.raises(DwhError) as error:
        list(
            dwh.stream_rows(
                bad,
                dwh.TableSpec(table="t"),
                columns=["customer_id"],
                timestamp_field="updated_at",
                start_date=None,
                end_date=None,
                path="adbc",
            )
        )
    assert "hunter2secret" not in str(error.value)
    assert "hunter2secret" not in (error.value.fix or "")


def test_empty_reads_yield_nothing_both_ways(pg_url: str) -> None:
    create_demo_dwh(pg_url, IDS[:5], seed=1, reference_time=NOW)
    for path in ("rows", "adbc"):
        chunks = list(
            dwh.stream_rows(
                pg_url,
                dwh.TableSpec(table="customer_features_view"),
                columns=["customer_id"],
                timestamp_field="updated_at",
                start_date=NOW + timedelta(days=1),
                end_date=None,
                path=path,  # type: ignore[arg-type]
            )
        )
        assert chunks == []
