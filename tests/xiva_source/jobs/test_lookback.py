"""The DWH lookback reads again only from where the counts changed (a real SQLite DWH)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from xiva_source.dwh.reads import TableSpec, window_counts
from xiva_source.jobs.lookback import bucket_seconds, plan_lookback
from xiva_source.settings import Settings

if TYPE_CHECKING:
    from tests.support.feast import FeastEnv

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
LOOKBACK = 3600.0  # buckets of 100 s


@dataclass
class _Table:
    """The view's DWH source: a table of the test's own SQLite file."""

    path: Path
    spec: TableSpec = field(default_factory=lambda: TableSpec(table="features"))
    timestamp_field: str = "updated_at"

    source_kind: Literal["dwh"] = "dwh"
    name: str = "features"

    def url(self, settings: Settings) -> str:
        return f"sqlite:///{self.path}"

    def column_types(self, settings: Settings) -> list[tuple[str, str]]:
        return [("customer_id", "VARCHAR"), ("updated_at", "DATETIME")]


def _dwh(tmp_path: Path) -> tuple[_Table, sa.Table, sa.Engine]:
    source = _Table(tmp_path / "dwh.sqlite")
    engine = sa.create_engine(source.url(Settings()))
    table = sa.Table(
        "features",
        sa.MetaData(),
        sa.Column("customer_id", sa.String),
        sa.Column("updated_at", sa.DateTime),
    )
    table.metadata.create_all(engine)
    return source, table, engine


def _commit(engine: sa.Engine, table: sa.Table, *stamps: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"customer_id": f"C{s.timestamp():.0f}", "updated_at": s.replace(tzinfo=None)}
                for s in stamps
            ],
        )


def test_window_counts_count_left_open_right_closed_intervals(tmp_path: Path) -> None:
    source, table, engine = _dwh(tmp_path)
    _commit(engine, table, T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=10))
    edges = [T0 - timedelta(seconds=1), T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=10)]
    assert window_counts(source.url(Settings()), source.spec, "updated_at", edges) == [1, 1, 1]


def test_only_buckets_where_rows_arrived_late_are_read_again(tmp_path: Path) -> None:
    settings = Settings(dwh_lookback_seconds=LOOKBACK)
    assert bucket_seconds(LOOKBACK) == 100
    source, table, engine = _dwh(tmp_path)
    _commit(engine, table, *(T0 - timedelta(minutes=m) for m in range(0, 50, 2)))

    # A full run counts (nothing to compare with): the next run compares with it.
    first = plan_lookback(source, settings, start=T0, end=T0, previous=None)
    assert first.ranges is None and first.changed == -1
    assert sum(first.counts.counts.values()) == 25  # rows of the last hour (and its bucket)

    late = T0 - timedelta(minutes=21, seconds=10)  # stamped before the run, committed after
    _commit(engine, table, late, T0 + timedelta(minutes=5))
    end2 = T0 + timedelta(minutes=10)
    second = plan_lookback(source, settings, start=T0, end=end2, previous=first.counts)
    assert second.changed == 1 and second.ranges is not None and len(second.ranges) == 1
    ((lo, hi),) = second.ranges
    assert lo < late <= hi and hi - lo == timedelta(seconds=100)  # its bucket, not the hour

    late2 = T0 + timedelta(minutes=7)  # in the second run's own window, committed after it
    _commit(engine, table, late2)
    end3 = T0 + timedelta(minutes=20)
    third = plan_lookback(source, settings, start=end2, end=end3, previous=second.counts)
    assert third.changed == 1 and third.ranges is not None and len(third.ranges) == 1
    ((lo, hi),) = third.ranges
    assert lo < late2 <= hi <= end2

    end4 = T0 + timedelta(minutes=30)
    fourth = plan_lookback(source, settings, start=end3, end=end4, previous=third.counts)
    assert fourth.changed == 0 and fourth.ranges == ()  # nothing late: its own window only

    # Counts of another read's end (a watermark that did not move there): the whole lookback.
    other = plan_lookback(source, settings, start=end4, end=end4, previous=third.counts)
    assert other.ranges is None and other.changed == -1


def test_a_long_gap_between_runs_keeps_the_count_query_small(tmp_path: Path) -> None:
    settings = Settings(dwh_lookback_seconds=LOOKBACK)
    source, table, engine = _dwh(tmp_path)
    _commit(engine, table, T0 - timedelta(minutes=1), T0 + timedelta(days=2, minutes=-5))
    first = plan_lookback(source, settings, start=T0, end=T0, previous=None)
    end = T0 + timedelta(days=2)
    second = plan_lookback(source, settings, start=T0, end=end, previous=first.counts)
    assert second.changed == 0 and second.ranges == ()
    assert len(second.counts.counts) <= 37  # only the buckets the next run compares
    assert sum(second.counts.counts.values()) == 1


def test_the_job_reads_late_rows_again_and_nothing_else(
    feast_repo: Path, feast_env: FeastEnv, pg_url: str
) -> None:
    from datetime import timedelta as td

    from tests.support.xiva_source.jobs import online, touch_dwh
    from xiva_source.demo.data import create_demo_dwh
    from xiva_source.jobs.materialize import run_materialization
    from xiva_source.timeutil import utc_now

    dwh = create_demo_dwh(pg_url, feast_env.sim, seed=11)
    feast_env.monkeypatch.setenv("DWH_URL", pg_url)
    feast_env.set_mode("dwh")
    recent = utc_now() - td(minutes=30)  # inside the 6-hour lookback: re-read by every run before
    touch_dwh(pg_url, dwh.customer_ids[:40], recent)
    full = run_materialization(feast_repo, progress=False)
    assert full.status == "ok" and full.report.rows_by_source["dwh"] > 40

    quiet = run_materialization(feast_repo, progress=False)
    assert quiet.report.dwh_lookback_rows == 0  # nothing arrived late: nothing read again
    assert quiet.report.rows_by_source.get("dwh", 0) == 0

    late = dwh.customer_ids[50:53]  # stamped an hour ago, committed after the last run
    touch_dwh(pg_url, late, utc_now() - td(hours=1), revenue_delta=5000.0)
    changed = dwh.customer_ids[60:65]
    touch_dwh(pg_url, changed, utc_now())
    third = run_materialization(feast_repo, progress=False)
    got = online(feast_repo, late)
    assert all(got[c]["customer_dwh_features__churn_score"] == 0.5 for c in late)
    # The late rows' bucket only (the 40 rows of 30 minutes ago are not read again), per view.
    views = len(third.views)
    assert 3 * views <= third.report.dwh_lookback_rows < 40
