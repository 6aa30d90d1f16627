"""PostgreSQL over TLS (``sslmode=verify-full``, ``sslrootcert``, a client certificate) in
``DWH_URL``: every connection carries it (SQLAlchemy, ADBC's streamed reads, the snapshot and
pending tables, the segmentation SQL pushdown, the whole Feast flow), and a wrong CA, a missing
client certificate or clear text are refused with the fix. The server is a private cluster of the
session (``tests/support/tls.py``: TLS only, client certificates required)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from tests.support.feast import FeastEnv, make_repo
from tests.support.tls import PostgresTls
from xiva_source.demo.data import DemoDwh, create_demo_dwh
from xiva_source.dwh import get_engine
from xiva_source.dwh.errors import DwhError
from xiva_source.dwh.pending import count_pending, remember_pending
from xiva_source.dwh.reads import ReadPath, TableSpec, stream_rows
from xiva_source.dwh.snapshots import append_snapshots, read_latest_snapshots
from xiva_source.simulator import XivaSimulator
from xiva_source.timeutil import utc_now


@pytest.fixture(scope="module")
def tls_dwh(pg_tls: PostgresTls, feast_sim: XivaSimulator) -> DemoDwh:
    """The demo DWH in the TLS-only PostgreSQL, for ``feast_sim``'s customers."""
    return create_demo_dwh(pg_tls.url(), feast_sim, seed=11)


def test_sqlalchemy_connections_are_tls_with_the_client_certificate(
    pg_tls: PostgresTls, tls_dwh: DemoDwh
) -> None:
    with get_engine(pg_tls.url()).connect() as conn:
        row = conn.execute(
            sa.text("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ).one()
    assert row.ssl is True
    assert "loyalty" in (row.client_dn or "")


def test_adbc_streamed_reads_use_the_same_tls_options(
    pg_tls: PostgresTls, tls_dwh: DemoDwh
) -> None:
    tables = list(
        stream_rows(
            pg_tls.url(),
            TableSpec(
                query="SELECT s.ssl AS ssl_used, now() AS updated_at, 'x' AS customer_id "
                "FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()"
            ),
            columns=["customer_id", "ssl_used"],
            timestamp_field="updated_at",
            start_date=None,
            end_date=None,
            path="adbc",
        )
    )
    assert pa.concat_tables(tables).column("ssl_used").to_pylist() == [True]


def test_snapshot_and_pending_tables_over_tls(pg_tls: PostgresTls, tls_dwh: DemoDwh) -> None:
    url = pg_tls.url()
    name = f"snap_{uuid.uuid4().hex[:8]}"
    now = utc_now()
    table = pa.table(
        {
            "customer_id": ["c1", "c2"],
            "city": ["Toronto", "Ottawa"],
            "event_timestamp": pa.array([now, now], pa.timestamp("us", tz="UTC")),
        }
    )
    assert append_snapshots(url, name, table, {"city": pa.string()}) == 2
    latest = read_latest_snapshots(url, name, ["c1", "c2"], ["city"])
    assert latest is not None
    assert sorted(latest.column("city").to_pylist()) == ["Ottawa", "Toronto"]
    remember_pending(url, f"{name}_pending", "xiva", {"c3": "timeout"}, now=now)
    assert count_pending(url, f"{name}_pending") == 1


def test_the_sql_pushdown_over_tls(pg_tls: PostgresTls, tls_dwh: DemoDwh) -> None:
    from segmentation import Segment
    from segmentation.sql import DwhSegments

    toronto = Segment("toronto", [{"==": [{"var": "city"}, "Toronto"]}])
    sizes = DwhSegments(pg_tls.url(), [toronto]).sizes()
    assert 0 < sizes["toronto"] < len(tls_dwh.shared_ids) + len(tls_dwh.dwh_only_ids)


@pytest.mark.parametrize("path", ["adbc", "rows"])
def test_a_wrong_ca_is_refused_naming_sslrootcert(
    pg_tls: PostgresTls, tls_dwh: DemoDwh, path: ReadPath
) -> None:
    with pytest.raises(DwhError) as info:
        list(
            stream_rows(
                pg_tls.url(ca=pg_tls.files.other_ca),
                TableSpec(table="customer_features_view"),
                columns=["customer_id"],
                timestamp_field="updated_at",
                start_date=None,
                end_date=None,
                path=path,
            )
        )
    assert "certificate verify failed" in info.value.problem
    assert "sslrootcert" in (info.value.fix or "")


def test_no_client_certificate_or_clear_text_is_refused_with_the_fix(
    pg_tls: PostgresTls, tls_dwh: DemoDwh
) -> None:
    for url in (pg_tls.url(client_cert=False), pg_tls.url(sslmode="disable")):
        with pytest.raises(DwhError) as info:
            remember_pending(url, "pending_x", "xiva", {"c1": "x"}, now=utc_now())
        assert "sslcert" in (info.value.fix or "") or "sslmode" in (info.value.fix or ""), (
            info.value
        )


@pytest.fixture
def tls_dwh_repo(
    feast_env: FeastEnv, pg_tls: PostgresTls, tls_dwh: DemoDwh, tmp_path: Path
) -> Iterator[Path]:
    """A repository whose DWH (and snapshot table) is the TLS-only PostgreSQL."""
    feast_env.monkeypatch.setenv("DWH_URL", pg_tls.url())
    feast_env.dwh_url = pg_tls.url()
    suffix = uuid.uuid4().hex[:10]
    yield make_repo(tmp_path / "repo", f"loyalty_{suffix}", snapshot_table=f"snap_{suffix}")
    import redis

    from tests.support.services import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{suffix}".encode(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def test_the_feast_flow_with_the_dwh_over_tls(
    tls_dwh_repo: Path, feast_env: FeastEnv, tls_dwh: DemoDwh
) -> None:
    from feast import FeatureStore

    from xiva_source.jobs.materialize import run_materialization

    summary = run_materialization(tls_dwh_repo, progress=False)
    assert summary.status == "ok", summary.line()
    ids = tls_dwh.dwh_only_ids[:5]
    rows = (
        FeatureStore(repo_path=str(tls_dwh_repo))
        .get_online_features(
            features=["customer_features:city"], entity_rows=[{"customer_id": c} for c in ids]
        )
        .to_dict()
    )
    assert any(city is not None for city in rows["city"])
