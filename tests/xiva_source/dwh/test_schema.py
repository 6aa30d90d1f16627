"""Creating the DWH contract's tables on the real PostgreSQL and SQLite: idempotent, the tables
as the contract says (reflected and compared), existing tables checked and never altered."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.tiers import service
from xiva_source import dwh
from xiva_source.demo.data import create_demo_dwh
from xiva_source.dwh.errors import DwhError
from xiva_source.dwh.schema import CONTRACT_TABLES, contract_metadata, init_dwh

IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(20)]


@pytest.fixture(params=["sqlite", "postgresql"])
@service("postgresql")  # its postgresql case reaches pg_url through getfixturevalue
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty warehouse: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'dwh.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


def assert_matches_contract(url: str) -> None:
    """Reflect the warehouse and compare every contract table with the metadata, type for type."""
    engine = dwh.get_engine(url)
    inspector = sa.inspect(engine)
    for table in contract_metadata().tables.values():
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            found = columns[column.name]
            want = column.type.compile(dialect=engine.dialect)
            assert found["type"].compile(dialect=engine.dialect) == want, column.name
            assert found["nullable"] == column.nullable, column.name
        key = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert key == [c.name for c in table.primary_key]
        indexes = {(i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table.name)}
        assert indexes == {(i.name, tuple(c.name for c in i.columns)) for i in table.indexes}


def test_init_creates_the_contract_tables_once(empty_url: str) -> None:
    first = init_dwh(empty_url)
    assert first.named("created") == list(CONTRACT_TABLES) and first.ok
    assert first.ddl and all(s.endswith(";") for s in first.ddl)
    assert_matches_contract(empty_url)

    second = init_dwh(empty_url)
    assert second.named("exists") == list(CONTRACT_TABLES)
    assert second.named("created") == [] and second.ddl == () and second.exit_code == 0
    assert_matches_contract(empty_url)


def test_the_dry_run_ddl_builds_the_same_warehouse(empty_url: str) -> None:
    """What `--dry-run` prints is what a DBA without our tool would run."""
    dry = init_dwh(empty_url, dry_run=True)
    assert dry.named("missing") == list(CONTRACT_TABLES) and len(dry.ddl) == 8
    assert sa.inspect(dwh.get_engine(empty_url)).get_table_names() == []  # nothing was created
    with dwh.get_engine(empty_url).begin() as conn:
        for statement in dry.ddl:
            conn.execute(sa.text(statement))
    assert_matches_contract(empty_url)
    assert init_dwh(empty_url).named("exists") == list(CONTRACT_TABLES)


def test_an_existing_table_without_contract_columns_is_reported_not_altered(
    empty_url: str,
) -> None:
    engine = dwh.get_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE customer_features_view (customer_id VARCHAR(36) PRIMARY KEY, "
                "customer_status VARCHAR(20), updated_at VARCHAR(40) NOT NULL, extra INTEGER)"
            )
        )
    report = init_dwh(empty_url)
    assert not report.ok and report.exit_code == 1
    (state,) = [t for t in report.tables if t.name == "customer_features_view"]
    assert state.status == "incomplete"
    assert state.missing_columns == (
        "total_revenue",
        "transaction_count",
        "last_purchase_days_ago",
        "avg_transaction_value",
        "lifetime_value",
        "churn_score",
        "customer_tier",
        "city",
        "age",
    )
    assert state.wrong_types == ("updated_at is VARCHAR(40), the contract says timestamp",)
    assert report.named("created") == list(CONTRACT_TABLES[1:])  # the others are created
    columns = [c["name"] for c in sa.inspect(engine).get_columns("customer_features_view")]
    assert columns == ["customer_id", "customer_status", "updated_at", "extra"]  # unaltered
    assert "customer_features_view: missing column(s) total_revenue" in report.line()


def test_a_view_and_compatible_types_satisfy_the_contract(pg_url: str) -> None:
    """A deployment's own view (TEXT ids, TIMESTAMPTZ, BIGINT counts) is accepted as it is."""
    init_dwh(pg_url)
    with dwh.get_engine(pg_url).begin() as conn:
        conn.execute(sa.text("ALTER TABLE customer_features_view RENAME TO features_base"))
        conn.execute(
            sa.text(
                "CREATE VIEW customer_features_view AS SELECT CAST(customer_id AS TEXT) AS "
                "customer_id, customer_status, total_revenue, CAST(transaction_count AS BIGINT) "
                "AS transaction_count, last_purchase_days_ago, avg_transaction_value, "
                "lifetime_value, churn_score, customer_tier, city, age, "
                "CAST(updated_at AS TIMESTAMPTZ) AS updated_at FROM features_base"
            )
        )
    report = init_dwh(pg_url)
    assert report.ok and report.named("exists") == list(CONTRACT_TABLES)


def test_the_demo_data_uses_the_contract(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    create_demo_dwh(url, IDS, seed=1)
    assert_matches_contract(url)
    assert init_dwh(url).named("exists") == list(CONTRACT_TABLES)


def test_an_unreachable_warehouse_is_a_short_dwh_error() -> None:
    with pytest.raises(DwhError) as caught:
        init_dwh("postgresql+psycopg://etl:hunter2@127.0.0.1:1/dwh")
    text = str(caught.value)
    assert "postgresql+psycopg://etl:***@127.0.0.1:1/dwh: OperationalError" in text
    assert "hunter2" not in text and "\n" not in text
    assert "--dry-run" in caught.value.fix
