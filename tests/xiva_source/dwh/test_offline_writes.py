"""Offline writes append rows to a DWH table: directly, and through Feast's push path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from xiva_source import dwh
from xiva_source.demo.data import create_demo_dwh
from xiva_source.dwh.errors import DwhError

IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(60)]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
NEW_ID = "00000000-0000-4000-8000-999999999999"


def _count(url: str, customer_id: str) -> int:
    with dwh.get_engine(url).connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM customer_features_view "
                    "WHERE CAST(customer_id AS TEXT) = :c"
                ),
                {"c": customer_id},
            ).scalar_one()
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_write_rows_appends_and_a_bad_row_fails_with_the_fix(
    backend: str, tmp_path: Path, pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}" if backend == "sqlite" else pg_url
    create_demo_dwh(url, IDS, seed=3, reference_time=NOW)
    row = pa.table(
        {
            "customer_id": [NEW_ID],
            "total_revenue": [10.0],
            "updated_at": pa.array([NOW], pa.timestamp("us", tz="UTC")),
        }
    )
    assert dwh.write_rows(url, dwh.CUSTOMER_FEATURES_TABLE, row) == 1
    assert _count(url, NEW_ID) == 1
    with pytest.raises(DwhError, match="primary key on customer_id"):
        dwh.write_rows(url, dwh.CUSTOMER_FEATURES_TABLE, row)  # a second row per customer
    with pytest.raises(DwhError, match="no_such_table"):
        dwh.write_rows(url, "no_such_table", row)


def test_push_writes_offline_to_the_dwh_table(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast import FeatureStore

    from tests.support.feast import make_repo

    monkeypatch.setenv("DWH_URL", pg_url)
    create_demo_dwh(pg_url, IDS, seed=3, reference_time=NOW)
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
