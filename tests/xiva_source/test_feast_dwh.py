"""DWH access: the demo loader, streamed reads and their types, the snapshot table, writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from xiva_source import dwh
from xiva_source.dwh.errors import DwhError

IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(60)]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = dwh.TableSpec(table="customer_features_view")
NEW_ID = "00000000-0000-4000-8000-999999999999"
COLUMNS = ["customer_id", "total_revenue", "transaction_count", "churn_score", "city"]


def _dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    with dwh.get_engine(url).connect() as conn:
        return {
            t: sorted(conn.execute(sa.text(f"SELECT * FROM {t}")).all(), key=repr)
            for t in (dwh.CUSTOMER_FEATURES_TABLE, *dwh.HISTORY_TABLES)
        }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_demo_dwh_is_deterministic_and_splits_customers(
    backend: str, tmp_path: Path, pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}" if backend == "sqlite" else pg_url
    info = dwh.create_demo_dwh(url, IDS, seed=3, reference_time=NOW)
    first = _dump(url)
    again = dwh.create_demo_dwh(url, IDS, seed=3, reference_time=NOW)  # replaces, same rows
    assert _dump(url) == first
    assert again.customer_ids == info.customer_ids
    assert set(info.xiva_only_ids) == set(IDS[::10])
    assert set(info.shared_ids) == set(IDS) - set(IDS[::10])
    assert len(info.dwh_only_ids) == 6 and not set(info.dwh_only_ids) & set(IDS)
    assert info.rows[dwh.CUSTOMER_FEATURES_TABLE] == len(first[dwh.CUSTOMER_FEATURES_TABLE]) == 60
    assert all(info.rows[t] > 0 for t in dwh.HISTORY_TABLES)
    nulls = sum(v is None for row in first[dwh.CUSTOMER_FEATURES_TABLE] for v in row)
    assert nulls > 0
    if backend == "postgresql":
        other = dwh.create_demo_dwh(url, IDS, seed=4, reference_time=NOW)
        assert _dump(url) != first and other.dwh_only_ids != info.dwh_only_ids


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_streamed_reads_are_chunked_typed_and_window_filtered(
    backend: str, tmp_path: Path, pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}" if backend == "sqlite" else pg_url
    dwh.create_demo_dwh(url, IDS, seed=3, reference_time=NOW)
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


def test_push_writes_offline_to_the_dwh_table(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast import FeatureStore

    from tests.feast_fixtures import make_repo

    monkeypatch.setenv("DWH_URL", pg_url)
    dwh.create_demo_dwh(pg_url, IDS, seed=3, reference_time=NOW)
    repo = make_repo(tmp_path / "repo", "loyalty_push_" + tmp_path.name[-6:].replace("-", "_"))
    store = FeatureStore(repo_path=str(repo))
    ts = pd.Timestamp("2026-07-01T00:00:00Z")
    store.write_to_offline_store(
        "customer_dwh_features",
        pd.DataFrame(
            {
                "customer_id": [NEW_ID],
                "customer_status": ["active"],
                "total_revenue": [10.0],
                "transaction_count": [1],
                "last_purchase_days_ago": [3],
                "avg_transaction_value": [1.0],
                "lifetime_value": [2.0],
                "churn_score": [0.5],
                "customer_tier": ["gold"],
                "city": ["Toronto"],
                "age": [40],
                "updated_at": [ts],
            }
        ),
    )
    with dwh.get_engine(pg_url).connect() as conn:
        n = conn.execute(
            sa.text(
                "SELECT count(*) FROM customer_features_view WHERE churn_score = 0.5 "
                "AND CAST(customer_id AS TEXT) = :c"
            ),
            {"c": NEW_ID},
        ).scalar_one()
    assert n == 1


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
