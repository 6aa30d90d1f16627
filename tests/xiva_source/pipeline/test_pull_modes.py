"""Data-source modes and the auto merge, through ``pull_batches`` (real simulator, PostgreSQL)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from tests.support.feast import FeastEnv
from xiva_source.dwh import TableSpec, get_engine
from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError
from xiva_source.feast_plugin.sources import CustomerSource, DwhSource, XivaSource
from xiva_source.features.derived import facts_from_counts
from xiva_source.features.extractor import features_from_360
from xiva_source.pipeline import PullReport, PullSource, pull_batches
from xiva_source.pipeline.auto import is_partial
from xiva_source.pipeline.errors import AllSourcesFailedError
from xiva_source.settings import Settings, load_settings
from xiva_source.simulator import FaultConfig

EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
"""A start that is not ``None``: a source with a watermark (read before), window = everything."""

FEATURES = [
    "customer_status",
    "total_revenue",
    "transaction_count",
    "customer_tier",
    "city",
    "birth_date",
]
SOURCE = CustomerSource(
    "customer_source",
    xiva=XivaSource("xiva_customers"),
    dwh=DwhSource("dwh_customer_features", table="customer_features_view"),
)


def _pull(
    report: PullReport | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    tables = list(
        pull_batches(
            SOURCE,
            settings=load_settings(),  # per pull: the tests switch modes in the environment
            feature_names=FEATURES,
            start_date=start,
            end_date=end or datetime.now(UTC),
            report=report,
            chunk_size=64,
        )
    )
    assert not any(is_partial(t) for t in tables), "a fallback wrote partial rows"
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    assert table.column_names == ["customer_id", *FEATURES, "event_timestamp"]
    # auto may yield a customer twice (its Xiva change, then its DWH row): the same merged row;
    # the job's writer lets the last write win.
    out: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        assert out.setdefault(row["customer_id"], row) == row
    return out


def _dwh_rows(env: FeastEnv) -> dict[str, dict[str, Any]]:
    return _rows_at(env.dwh_url)


def _same(value: Any) -> Any:
    """Numbers compared at cent precision (DECIMAL in the DWH, float in Xiva)."""
    return round(float(value), 2) if isinstance(value, (int, float, Decimal)) else value


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_mode_serves_the_same_feature_names_and_auto_merges_per_feature(
    feast_env: FeastEnv,
) -> None:
    sim, dwh = feast_env.sim, feast_env.dwh
    xiva_rows = {cid: features_from_360(sim.view_360(cid)) for cid in sim.customer_ids()}
    dwh_rows = _dwh_rows(feast_env)

    feast_env.set_mode("xiva")
    xiva = _pull()
    feast_env.set_mode("dwh")
    only_dwh = _pull()
    feast_env.set_mode("auto", "xiva_first")
    report = PullReport()
    xiva_first = _pull(report)
    feast_env.set_mode("auto", "dwh_first")
    dwh_first = _pull()

    assert set(xiva) == set(sim.customer_ids())
    assert set(only_dwh) == set(dwh.customer_ids)
    everyone = set(sim.customer_ids()) | set(dwh.customer_ids)
    assert set(xiva_first) == set(dwh_first) == everyone
    assert report.mode == "auto" and report.fallbacks == []
    assert report.rows_by_source == {"xiva": len(xiva), "dwh": len(only_dwh)}

    # Customers in one source only are served from it.
    for cid in dwh.xiva_only_ids[:5]:
        assert xiva_first[cid]["city"] == dwh_first[cid]["city"] == xiva[cid]["city"]
    for cid in dwh.dwh_only_ids[:5]:
        assert xiva_first[cid]["birth_date"] == dwh_first[cid]["birth_date"]
        assert xiva_first[cid]["birth_date"] == dwh_rows[cid]["birth_date"]

    # Shared customers, per feature: the preferred source's value unless null, then the other's.
    checked = {"xiva_null": 0, "dwh_null": 0, "both": 0}
    for cid in dwh.shared_ids:
        for feature in FEATURES:
            x, d = _same(xiva_rows[cid][feature]), _same(dwh_rows[cid][feature])
            if x is None and d is not None:
                checked["xiva_null"] += 1
                assert _same(xiva_first[cid][feature]) == d
            elif d is None and x is not None:
                checked["dwh_null"] += 1
                assert _same(dwh_first[cid][feature]) == x
            elif x is not None:
                checked["both"] += 1
                assert _same(xiva_first[cid][feature]) == x
                assert _same(dwh_first[cid][feature]) == d
        latest = max(
            xiva_rows[cid]["event_timestamp"], dwh_rows[cid]["updated_at"].replace(tzinfo=UTC)
        )
        assert xiva_first[cid]["event_timestamp"] == latest
    assert all(n > 0 for n in checked.values()), checked


def test_auto_falls_back_to_the_dwh_when_xiva_is_down(
    feast_env: FeastEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="xiva_source.pipeline")
    first_end = datetime.now(UTC)
    _pull(end=first_end)  # Xiva read once: its last known values are recorded
    monkeypatch.setenv("XIVA_API_BASE_URL", f"http://127.0.0.1:{_closed_port()}/api")
    report = PullReport()
    rows = _pull(report, start=EPOCH_START)
    assert set(rows) == set(feast_env.dwh.customer_ids)
    assert report.rows_by_source == {"dwh": len(feast_env.dwh.customer_ids)}
    assert len(report.fallbacks) == 1 and report.fallbacks[0].startswith("xiva failed")
    assert "xiva" in report.errors
    # INFO: the run's summary line is what reports it at the default level (issue 10)
    assert any(r.levelname == "INFO" and "fallback" in r.getMessage() for r in caplog.records)


def test_auto_never_serves_the_dwh_for_xiva_owned_features_xiva_never_read(
    feast_env: FeastEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XIVA_API_BASE_URL", f"http://127.0.0.1:{_closed_port()}/api")
    report = PullReport()
    tables = list(
        pull_batches(
            SOURCE,
            settings=load_settings(),
            feature_names=FEATURES,
            start_date=None,
            end_date=datetime.now(UTC),
            report=report,
        )
    )
    # xiva_first: every feature is Xiva's unless Xiva's is null. A customer with no recorded
    # Xiva values (the snapshot table) is unknown: not served at all, never the DWH's values.
    # (Customers other pulls recorded are merged with those last known values.)
    assert not any(is_partial(t) for t in tables) and report.fallbacks


def test_auto_falls_back_to_xiva_when_the_dwh_is_wrong(
    feast_env: FeastEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DWH_URL", "postgresql+psycopg://root:pw@127.0.0.1:5432/no_such_db")
    report = PullReport()
    tables = list(
        pull_batches(
            SOURCE,
            settings=load_settings(),
            feature_names=FEATURES,
            start_date=None,
            end_date=datetime.now(UTC),
            report=report,
        )
    )
    # Partial: Xiva's (preferred) non-null values; a null cell means "keep the online value".
    assert tables and all(is_partial(t) for t in tables)
    rows = {r["customer_id"]: r for t in tables for r in t.to_pylist()}
    assert set(rows) == set(feast_env.sim.customer_ids())
    assert report.fallbacks and report.fallbacks[0].startswith("dwh failed")
    assert "pw" not in " ".join(report.fallbacks)
    assert "snapshot" in report.errors  # the snapshot table lives in the (dead) DWH


def test_both_sources_failing_raises_all_sources_failed(
    feast_env: FeastEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    feast_env.sim.set_faults(FaultConfig(rate=1.0, kinds=("503",), retry_after="zero"))
    monkeypatch.setenv("DWH_URL", "sqlite:////nonexistent-dir/x/dwh.sqlite")
    with pytest.raises(AllSourcesFailedError) as info:
        _pull()
    assert set(info.value.failures) == {"xiva", "dwh"}
    assert "FEATURE_STORE_DATA_SOURCE" in str(info.value)


def test_single_mode_failures_raise_naming_the_cause_and_the_fix(
    feast_env: FeastEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    feast_env.set_mode("xiva")
    monkeypatch.setenv("XIVA_API_BASE_URL", f"http://127.0.0.1:{_closed_port()}/api")
    with pytest.raises(DataSourceError) as xiva_info:
        _pull()
    assert xiva_info.value.source == "xiva"
    assert "FEATURE_STORE_DATA_SOURCE=auto" in str(xiva_info.value)

    feast_env.set_mode("dwh")
    monkeypatch.setenv("DWH_URL", "postgresql+psycopg://root:pw@127.0.0.1:5432/no_such_db")
    with pytest.raises(DwhError) as dwh_info:
        _pull()
    assert "DWH_URL" in str(dwh_info.value) and ":pw@" not in str(dwh_info.value)


def test_failed_360_fetches_are_reported_and_too_many_fail_the_source(
    feast_env: FeastEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XIVA_RETRY_BUDGET", "0.3")  # fail each faulty customer fast
    sim = feast_env.sim
    feast_env.set_mode("xiva")
    ids = sim.customer_ids()

    def fail(customers: list[str]) -> None:
        paths = tuple(f"/customerManagement/v4/customers/{c}/" for c in customers)
        sim.set_faults(FaultConfig(rate=1.0, kinds=("500",), paths=paths))

    fail(ids[:3])
    report = PullReport()
    rows = _pull(report)
    assert report.failed_customers == 3
    assert set(report.failed_customer_ids) == set(ids[:3])
    assert set(rows) == set(ids[3:])

    fail(ids[:40])  # 10% > the 5% threshold
    with pytest.raises(DataSourceError, match="40 of 400 customer 360 fetches failed"):
        _pull()


def test_incremental_auto_pull_merges_changes_with_the_other_sources_current_values(
    feast_env: FeastEnv, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xiva_source.demo.data import create_demo_dwh

    sim = feast_env.sim
    info = create_demo_dwh(pg_url, sim, seed=5)  # a DWH of this test's own, to change rows
    monkeypatch.setenv("DWH_URL", pg_url)
    first_end = datetime.now(UTC)
    _pull(end=first_end)  # the first run: records Xiva's values in the snapshot table

    xiva = {c: features_from_360(sim.view_360(c)) for c in info.shared_ids}
    dwh_rows = _rows_at(pg_url)
    # A: changes only in the DWH; Xiva's city (preferred) must survive.
    a = next(c for c in info.shared_ids if xiva[c]["city"] is not None)
    # B: changes only in Xiva and has no birth date there; the DWH's (from its age) is filled in.
    b = next(
        c
        for c in info.shared_ids
        if xiva[c]["birth_date"] is None and dwh_rows[c]["birth_date"] is not None
    )
    with get_engine(pg_url).begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE customer_features_view SET city = 'Nowhere', updated_at = :t "
                "WHERE CAST(customer_id AS TEXT) = :c"
            ),
            {"t": datetime.now(UTC).replace(tzinfo=None), "c": a},
        )
    sim.update_customers(ids=[b])
    sim.reset_counters()

    rows = _pull(start=first_end)
    assert {a, b} <= set(rows)
    assert rows[a]["city"] == xiva[a]["city"]  # not the DWH's new 'Nowhere'
    assert rows[b]["birth_date"] == dwh_rows[b]["birth_date"]
    assert rows[b]["total_revenue"] == pytest.approx(
        features_from_360(sim.view_360(b))["total_revenue"]
    )
    calls = sim.counters()["by_endpoint"].get("customer_360", {})
    assert sum(calls.values()) < len(info.shared_ids) // 2  # only the changed customers


def _rows_at(url: str) -> dict[str, dict[str, Any]]:
    with get_engine(url).connect() as conn:
        result = conn.execute(sa.text("SELECT * FROM customer_features_view"))
        rows = {str(r["customer_id"]): dict(r) for r in result.mappings()}
    for row in rows.values():  # the DWH's age as of updated_at, read as the birth-date fact
        born = facts_from_counts("age", [row["age"]], [row["updated_at"]]).iloc[0]
        row["birth_date"] = None if pd.isna(born) else born.to_pydatetime()
    return rows


# --------------------------------------------------------------------------------------------
# The pipeline knows no Feast: plain objects satisfying its source Protocols are pulled alike.


@dataclass(frozen=True)
class _PlainXiva:
    name: str = "plain_xiva"
    source_kind: Literal["xiva"] = "xiva"


@dataclass(frozen=True)
class _PlainDwh:
    name: str = "plain_dwh"
    spec: TableSpec = field(default_factory=lambda: TableSpec(table="customer_features_view"))
    timestamp_field: str = "updated_at"
    source_kind: Literal["dwh"] = "dwh"

    def url(self, settings: Settings) -> str:
        return settings.dwh_url

    def column_types(self, settings: Settings) -> list[tuple[str, str]]:
        columns = sa.inspect(get_engine(self.url(settings))).get_columns("customer_features_view")
        return [(c["name"], str(c["type"])) for c in columns]


@dataclass(frozen=True)
class _PlainCustomer:
    name: str = "plain_customers"
    xiva: _PlainXiva = _PlainXiva()
    dwh: _PlainDwh = _PlainDwh()
    source_kind: Literal["customer"] = "customer"


def test_plain_source_specs_pull_like_the_feast_sources(feast_env: FeastEnv) -> None:
    def rows(source: PullSource) -> list[dict[str, Any]]:
        tables = pull_batches(
            source,
            settings=load_settings(),
            feature_names=FEATURES,
            start_date=None,
            end_date=end,
        )
        return sorted(pa.concat_tables(tables).to_pylist(), key=lambda r: r["customer_id"])

    end = datetime.now(UTC)
    feast_env.set_mode("auto", "dwh_first")
    assert rows(_PlainCustomer()) == rows(SOURCE)
    assert rows(_PlainDwh()) == rows(SOURCE.dwh)
