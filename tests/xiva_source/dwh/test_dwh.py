"""DWH access on the real PostgreSQL and SQLite: streamed reads and their types, id lookups, the
snapshot table, appends, and the errors of a bad URL or a missing table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from xiva_source import dwh
from xiva_source.demo.data import create_demo_dwh
from xiva_source.dwh.errors import DwhError
from xiva_source.dwh.reads import ReadPath, customer_boundaries

IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(60)]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = dwh.TableSpec(table="customer_features_view")
COLUMNS = ["customer_id", "total_revenue", "transaction_count", "churn_score", "city"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_streamed_reads_are_chunked_typed_and_window_filtered(
    backend: str, tmp_path: Path, pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}" if backend == "sqlite" else pg_url
    create_demo_dwh(url, IDS, seed=3, reference_time=NOW)
    chunks = list(
        dwh.stream_rows(
            url,
            SPEC,
            columns=COLUMNS,
            timestamp_field="updated_at",
            start_date=None,
            end_date=None,
            chunk_size=16,
            types={"transaction_count": pa.int64(), "total_revenue": pa.float64()},
        )
    )
    assert [c.num_rows for c in chunks] == [16, 16, 16, 12]
    table = pa.concat_tables(chunks)
    schema = table.schema
    assert schema.field("total_revenue").type == pa.float64()  # DECIMAL -> float64
    assert schema.field("churn_score").type == pa.float64()
    assert schema.field("transaction_count").type == pa.int64()  # nullable int, not float
    assert schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert sum(table.column(c).null_count for c in COLUMNS[1:]) > 0  # NULLs stay NULL

    stamps = sorted(table.column("updated_at").to_pylist())
    start, end = stamps[10], stamps[29]
    window = pa.concat_tables(
        dwh.stream_rows(
            url, SPEC, columns=COLUMNS, timestamp_field="updated_at", start_date=start, end_date=end
        )
    )
    assert window.num_rows == 20  # both bounds inclusive

    query = dwh.TableSpec(query="SELECT * FROM customer_features_view WHERE age > 40")
    adults = pa.concat_tables(
        dwh.stream_rows(
            url,
            query,
            columns=["customer_id", "age"],
            timestamp_field="updated_at",
            start_date=None,
            end_date=None,
        )
    )
    assert adults.num_rows > 0 and min(adults.column("age").to_pylist()) > 40


@pytest.mark.parametrize(
    ("backend", "path"), [("sqlite", "rows"), ("postgresql", "rows"), ("postgresql", "adbc")]
)
def test_every_read_keeps_the_latest_created_of_rows_tied_on_the_timestamp(
    backend: str, path: ReadPath, tmp_path: Path, pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}" if backend == "sqlite" else pg_url
    t1, t2 = NOW, NOW + timedelta(hours=1)
    rows = [  # (customer, v, updated_at, loaded_at) in storage order
        ("a", 1, t1, t1 + timedelta(minutes=5)),
        ("a", 2, t1, t1 + timedelta(minutes=9)),  # a at t1
        ("a", 3, t1, None),
        ("a", 4, t2, None),  # a at t2: alone, kept
        ("b", 5, t1, None),
        ("b", 6, t1, t1),  # b at t1
    ]
    engine = sa.create_engine(url)
    naive = backend == "sqlite"  # SQLite keeps naive UTC, as the warehouse's rule reads it
    hist = sa.Table(
        "hist",
        sa.MetaData(),
        sa.Column("customer_id", sa.Text),
        sa.Column("v", sa.BigInteger),
        sa.Column("updated_at", sa.DateTime(timezone=not naive)),
        sa.Column("loaded_at", sa.DateTime(timezone=not naive)),
    )
    with engine.begin() as conn:
        hist.create(conn)
        conn.execute(
            sa.insert(hist),
            [
                {
                    "customer_id": c,
                    "v": v,
                    "updated_at": u.replace(tzinfo=None) if naive else u,
                    "loaded_at": (at.replace(tzinfo=None) if naive else at) if at else None,
                }
                for c, v, u, at in rows
            ],
        )
    engine.dispose()
    want = [("a", 2, t1), ("b", 6, t1), ("a", 4, t2)]
    specs = [
        dwh.TableSpec(table="hist", created_timestamp_column="loaded_at"),
        dwh.TableSpec(query="SELECT * FROM hist", created_timestamp_column="loaded_at"),
    ]
    for spec in specs:
        table = pa.concat_tables(
            dwh.stream_rows(
                url,
                spec,
                columns=["customer_id", "v"],
                timestamp_field="updated_at",
                start_date=None,
                end_date=None,
                order_by_timestamp=True,
                path=path,
            )
        )
        assert table.column_names == ["customer_id", "v", "updated_at", "loaded_at"]
        got = list(zip(*table.select(["customer_id", "v", "updated_at"]).columns, strict=True))
        got = [tuple(x.as_py() for x in row) for row in got]
        assert sorted(got[:2]) == want[:2] and got[2] == want[2]  # oldest first
        assert table.column("loaded_at").type == pa.timestamp("us", tz="UTC")
    spec = specs[0]
    window = dwh.stream_rows(
        url,
        spec,
        columns=["customer_id", "v"],
        timestamp_field="updated_at",
        start_date=t1,
        end_date=t1,
        customer_range=("b", None),
        path=path,
    )
    assert pa.concat_tables(window).column("v").to_pylist() == [6]
    looked_up = dwh.lookup_rows(
        url, spec, ["a", "b"], columns=["v"], timestamp_field="updated_at", end_date=t1
    )
    assert looked_up.column("v").to_pylist() == [2, 6]
    bounds = customer_boundaries(url, spec, "updated_at", start_date=None, end_date=None, parts=2)
    assert bounds == ["b"]  # halves of the three rows read (a, a | b), not of the six stored


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_lookup_rows_reads_each_ids_latest_row_up_to_the_end_date(
    backend: str, tmp_path: Path, pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}" if backend == "sqlite" else pg_url
    info = create_demo_dwh(url, IDS, seed=3, reference_time=NOW)
    wanted = [*info.shared_ids[:5], info.xiva_only_ids[0], "not-a-customer"]
    found = dwh.lookup_rows(
        url,
        SPEC,
        wanted,
        columns=["city"],
        timestamp_field="updated_at",
        types={"city": pa.string()},
    )
    assert found.column_names == ["customer_id", "city", "updated_at"]
    assert sorted(found.column("customer_id").to_pylist()) == sorted(info.shared_ids[:5])
    assert found.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")

    stamps = found.column("updated_at").to_pylist()
    cut = sorted(stamps)[2]
    as_of = dwh.lookup_rows(
        url, SPEC, wanted, columns=["city"], timestamp_field="updated_at", end_date=cut
    )
    assert as_of.num_rows == 3 and max(as_of.column("updated_at").to_pylist()) == cut
    empty = dwh.lookup_rows(
        url, SPEC, [], columns=["city"], timestamp_field="updated_at", types={"city": pa.string()}
    )
    assert empty.num_rows == 0 and empty.schema.field("city").type == pa.string()


def test_snapshot_table_is_created_widened_and_read_latest_first(pg_url: str) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    types = {"city": pa.string(), "age": pa.int64()}

    def rows(city: str, ts: datetime) -> pa.Table:
        return pa.table(
            {
                "customer_id": ["a", "b"],
                "city": [city, None],
                "age": [30, None],
                "event_timestamp": pa.array([ts, ts], pa.timestamp("us", tz="UTC")),
            }
        )

    assert dwh.read_latest_snapshots(pg_url, "snaps", ["a"], ["city"]) is None  # no table yet
    dwh.append_snapshots(pg_url, "snaps", rows("Toronto", t0), types, pulled_at=t0)
    wider = {**types, "score": pa.float64()}
    later = rows("Montreal", t0 + timedelta(days=1)).append_column("score", pa.array([1.5, None]))
    dwh.append_snapshots(pg_url, "snaps", later, wider)
    latest = dwh.read_latest_snapshots(pg_url, "snaps", ["a", "b", "zzz"], ["city", "score"])
    assert latest is not None
    got = {r["customer_id"]: (r["city"], r["score"]) for r in latest.to_pylist()}
    assert got == {"a": ("Montreal", 1.5), "b": (None, None)}
    as_of = dwh.read_latest_snapshots(pg_url, "snaps", ["a"], ["city"], end_date=t0)
    assert as_of is not None and as_of.column("city").to_pylist() == ["Toronto"]
    history = pa.concat_tables(
        dwh.stream_snapshots(pg_url, "snaps", ["city"], start_date=None, end_date=None)
    )
    assert history.num_rows == 4


def test_bad_urls_and_missing_tables_fail_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DwhError, match="DWH_URL"):
        dwh.get_engine("nosuchdialect://x")
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    with pytest.raises(DwhError, match="table/query"):
        list(
            dwh.stream_rows(
                url,
                SPEC,
                columns=COLUMNS,
                timestamp_field="updated_at",
                start_date=None,
                end_date=None,
            )
        )
