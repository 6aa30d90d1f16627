"""DWH -> Arrow read benchmark: the three ways from PostgreSQL to Arrow, measured in one run.

Usage::

    .venv/bin/python bench/dwh_read.py                     # 200,000 and 1,000,000 rows
    .venv/bin/python bench/dwh_read.py --rows 200000       # one size

Each size fills ``customer_features_view`` (the DWH contract's table, ``dwh/schema.py``) in a fresh
PostgreSQL schema with generated rows (12% NULL cells, as the demo data), then reads every row,
oldest first, in chunks of 10,000 rows with the feature types the pipeline passes, three ways:

- rows: SQLAlchemy server-side cursor + ``rows_to_arrow`` (the path before this change, still
  used for SQLite and id lookups: ``stream_rows(path="rows")``);
- copy: psycopg 3 ``COPY (...) TO STDOUT (FORMAT BINARY)``, rows decoded by psycopg's C loaders,
  then the same ``rows_to_arrow``;
- adbc: ``adbc-driver-postgresql`` (binary COPY decoded into Arrow in C) + ``conform_arrow``, the
  path ``stream_rows`` takes on PostgreSQL (``path="adbc"``).

The three results are checked equal (values, types, nulls) before the rates are printed. Needs
PostgreSQL (db ``test``, user ``root`` on 127.0.0.1, or ``BENCH_PG_URL``); the schema is dropped at
the end. Rates are wall clock on a shared machine: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xiva_source.dwh.arrow import rows_to_arrow
from xiva_source.dwh.reads import TableSpec, stream_rows
from xiva_source.dwh.schema import contract_metadata
from xiva_source.pipeline.context import feature_arrow_types

PG_BASE_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
TABLE = "customer_features_view"
TIMESTAMP = "updated_at"
COLUMNS = [
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
    TIMESTAMP,
]
COPY_TYPES = [
    "uuid",
    "varchar",
    "numeric",
    "int4",
    "int4",
    "numeric",
    "numeric",
    "numeric",
    "varchar",
    "varchar",
    "int4",
    "timestamp",
]
CHUNK = 10_000

_FILL = """
INSERT INTO customer_features_view SELECT
  gen_random_uuid(),
  CASE WHEN random() < 0.12 THEN NULL
       ELSE (ARRAY['active','inactive','suspended'])[1 + floor(random() * 3)::int] END,
  CASE WHEN random() < 0.12 THEN NULL ELSE round((random() * 10000)::numeric, 2) END,
  CASE WHEN random() < 0.12 THEN NULL ELSE floor(random() * 120)::int END,
  CASE WHEN random() < 0.12 THEN NULL ELSE floor(random() * 400)::int END,
  CASE WHEN random() < 0.12 THEN NULL ELSE round((random() * 150)::numeric, 2) END,
  CASE WHEN random() < 0.12 THEN NULL ELSE round((random() * 30000)::numeric, 2) END,
  CASE WHEN random() < 0.12 THEN NULL ELSE round(random()::numeric, 4) END,
  CASE WHEN random() < 0.12 THEN NULL
       ELSE (ARRAY['bronze','silver','gold','platinum'])[1 + floor(random() * 4)::int] END,
  CASE WHEN random() < 0.12 THEN NULL
       ELSE (ARRAY['Toronto','Montreal','Vancouver','Calgary','Ottawa','Halifax'])
            [1 + floor(random() * 6)::int] END,
  CASE WHEN random() < 0.12 THEN NULL ELSE 18 + floor(random() * 70)::int END,
  (now() AT TIME ZONE 'UTC') - random() * interval '1095 days'
FROM generate_series(1, :rows)
"""


def fill(rows: int) -> tuple[str, str]:
    """A fresh schema holding ``rows`` generated rows; returns (schema, its URL)."""
    schema = f"bench_read_{uuid.uuid4().hex[:10]}"
    base = sa.create_engine(PG_BASE_URL)
    with base.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    base.dispose()
    url = f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"
    engine = sa.create_engine(url)
    contract_metadata().tables[TABLE].create(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(_FILL), {"rows": rows})
        conn.execute(sa.text(f"ANALYZE {TABLE}"))
    engine.dispose()
    return schema, url


def drop(schema: str) -> None:
    engine = sa.create_engine(PG_BASE_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def read_stream(url: str, path: str) -> Iterator[pa.Table]:
    return stream_rows(
        url,
        TableSpec(table=TABLE),
        columns=COLUMNS,
        timestamp_field=TIMESTAMP,
        start_date=None,
        end_date=None,
        chunk_size=CHUNK,
        types=feature_arrow_types(),
        order_by_timestamp=True,
        path=path,  # type: ignore[arg-type]
    )


def read_copy(url: str) -> Iterator[pa.Table]:
    """psycopg 3 binary COPY, rows decoded by its C loaders, then the row path's conversion."""
    import psycopg

    types = feature_arrow_types()
    uri = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    query = f"COPY (SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY {TIMESTAMP}) TO STDOUT"
    with psycopg.connect(uri) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        with conn.cursor().copy(query + " (FORMAT BINARY)") as copy:
            copy.set_types(COPY_TYPES)
            rows: list[tuple[object, ...]] = []
            for row in copy.rows():
                rows.append(row)
                if len(rows) == CHUNK:
                    yield rows_to_arrow(COLUMNS, rows, types=types, timestamp_columns=[TIMESTAMP])
                    rows = []
            if rows:
                yield rows_to_arrow(COLUMNS, rows, types=types, timestamp_columns=[TIMESTAMP])


def measure(read: Callable[[], Iterator[pa.Table]]) -> tuple[float, pa.Table]:
    start = time.perf_counter()
    chunks = list(read())
    return time.perf_counter() - start, pa.concat_tables(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[200_000, 1_000_000])
    args = parser.parse_args()
    print(f"DWH -> Arrow, PostgreSQL, {TABLE}, chunks of {CHUNK:,} rows, oldest first")
    for rows in args.rows:
        schema, url = fill(rows)
        try:
            paths: dict[str, Callable[[], Iterator[pa.Table]]] = {
                "rows (SQLAlchemy cursor, before)": partial(read_stream, url, "rows"),
                "copy (psycopg binary COPY)": partial(read_copy, url),
                "adbc (stream_rows, now)": partial(read_stream, url, "adbc"),
            }
            results = {name: measure(read) for name, read in paths.items()}
        finally:
            drop(schema)
        tables = [table for _, table in results.values()]
        same = all(t.num_rows == rows and t.equals(tables[0]) for t in tables)
        base = rows / next(iter(results.values()))[0]
        print(f"\n{rows:,} rows (results identical: {same})")
        for name, (seconds, _) in results.items():
            rate = rows / seconds
            print(f"  {name:34s} {seconds:7.2f} s {rate:12,.0f} rows/s  x{rate / base:.2f}")
        if not same:
            raise SystemExit("the paths returned different tables")


if __name__ == "__main__":
    main()
