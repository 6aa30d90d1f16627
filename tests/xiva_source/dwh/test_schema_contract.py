"""The DWH contract as metadata, without a database: DDL per dialect, type families, the line."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from xiva_source.dwh.schema import (
    CONTRACT_TABLES,
    UPDATED_AT,
    InitReport,
    TableState,
    contract_ddl,
    contract_metadata,
    type_family,
)
from xiva_source.dwh.tables import CUSTOMER_FEATURES_TABLE, HISTORY_TABLES
from xiva_source.features.catalogue import DWH_ONLY_FEATURE_TYPES, ENTITY


def test_the_contract_names_the_dwh_tables_and_the_dwh_only_features() -> None:
    metadata = contract_metadata()
    assert tuple(metadata.tables) == CONTRACT_TABLES == (CUSTOMER_FEATURES_TABLE, *HISTORY_TABLES)
    view = metadata.tables[CUSTOMER_FEATURES_TABLE]
    for name in DWH_ONLY_FEATURE_TYPES:  # the DWH-only features are DECIMAL columns
        assert type_family(view.c[name].type) == "decimal"
    assert [c.name for c in view.primary_key] == [ENTITY]
    not_null = {c.name for c in view.columns if not c.nullable}
    assert not_null == {ENTITY, UPDATED_AT}  # every feature may be NULL
    assert {i.name for i in view.indexes} == {f"ix_{CUSTOMER_FEATURES_TABLE}_{UPDATED_AT}"}
    for name in HISTORY_TABLES:
        table = metadata.tables[name]
        assert not table.c[ENTITY].nullable and [c.name for c in table.primary_key] == ["id"]
    assert contract_metadata() is not metadata  # a new one per call: callers may bind tables


def test_ddl_uses_each_backends_types() -> None:
    pg = "\n".join(contract_ddl(postgresql.dialect()))
    lite = "\n".join(contract_ddl(sqlite.dialect()))
    assert "customer_id UUID NOT NULL" in pg and "customer_id VARCHAR(36) NOT NULL" in lite
    assert "updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL" in pg
    assert "updated_at DATETIME NOT NULL" in lite
    assert "churn_score NUMERIC(5, 4)" in pg and "churn_score NUMERIC(5, 4)" in lite
    assert pg.count("CREATE TABLE") == 4 and pg.count("CREATE INDEX") == 4
    only = contract_ddl(sqlite.dialect(), ["customer_offer_history"])
    assert [s.split("(")[0].strip() for s in only] == [
        "CREATE TABLE customer_offer_history",
        "CREATE INDEX ix_customer_offer_history_customer_id ON customer_offer_history",
    ]
    assert all(s.endswith(";") and "\t" not in s for s in only)


@pytest.mark.parametrize(
    ("sql_type", "family"),
    [
        (sa.String(20), "text"),
        (sa.Text(), "text"),
        (postgresql.UUID(), "text"),
        (sa.Integer(), "integer"),
        (sa.BigInteger(), "integer"),
        (sa.Numeric(12, 2), "decimal"),
        (sa.Float(), "decimal"),
        (sa.DateTime(), "timestamp"),
        (postgresql.TIMESTAMP(timezone=True), "timestamp"),
        (sa.Date(), "date"),
        (sa.Boolean(), "boolean"),
        (sa.types.NullType(), None),
    ],
)
def test_type_families(sql_type: sa.types.TypeEngine[object], family: str | None) -> None:
    assert type_family(sql_type) == family


def test_the_summary_line_says_what_happened() -> None:
    def report(*states: TableState, dry_run: bool = False) -> InitReport:
        return InitReport("sqlite:///d.sqlite", "sqlite", states, (), dry_run)

    created = report(TableState("a", "created"), TableState("b", "exists"))
    assert created.line() == (
        "dwh init ok created=1 existing=1 incomplete=0 url=sqlite:///d.sqlite; created: a"
    )
    assert created.exit_code == 0
    again = report(TableState("a", "exists"))
    assert again.line().endswith("; nothing to create: every contract table exists")
    dry = report(TableState("a", "missing"), dry_run=True)
    assert dry.line() == (
        "dwh init dry-run would_create=1 existing=0 incomplete=0 url=sqlite:///d.sqlite; "
        "would create: a; nothing was changed"
    )
    bad = report(
        TableState(
            "a", "incomplete", ("age", "city"), ("updated_at is TEXT, the contract says timestamp",)
        ),
        TableState("b", "created"),
    )
    line = bad.line()
    assert line.startswith("dwh init failed created=1 existing=0 incomplete=1 ")
    assert (
        "; a: missing column(s) age, city; updated_at is TEXT, the contract says timestamp " in line
    )
    assert "(left unaltered); fix: add the columns" in line and bad.exit_code == 1


def test_docs_dwh_md_states_the_contract() -> None:
    """docs/dwh.md lists every contract column with its PostgreSQL type and nullability."""
    import re
    from pathlib import Path

    docs = (Path(__file__).parents[3] / "docs" / "dwh.md").read_text()
    dialect = postgresql.dialect()
    for table in contract_metadata().tables.values():
        start = docs.index(f"`{table.name}`: ")
        section = docs[start : docs.index("\n\n", docs.index("| column |", start))]
        rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", section, re.M)}
        assert list(rows) == [c.name for c in table.columns], table.name
        for column in table.columns:
            sql = str(column.type.compile(dialect=dialect)).replace(" WITHOUT TIME ZONE", "")
            cells = [c.strip() for c in rows[column.name].split("|")]
            assert cells[2].replace(" ", "").startswith(f"`{sql.replace(' ', '')}`"), cells
            nulls = [c for c in cells if c in ("yes", "no")]
            assert nulls == ["yes" if column.nullable else "no"], (table.name, column.name)
