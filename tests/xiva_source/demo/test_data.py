"""The demo DWH: the contract's tables, filled deterministically, customers split three ways."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from xiva_source import dwh
from xiva_source.demo.data import create_demo_dwh

IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(60)]
NOW = datetime(2026, 6, 1, tzinfo=UTC)


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
    info = create_demo_dwh(url, IDS, seed=3, reference_time=NOW)
    first = _dump(url)
    again = create_demo_dwh(url, IDS, seed=3, reference_time=NOW)  # replaces, same rows
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
        other = create_demo_dwh(url, IDS, seed=4, reference_time=NOW)
        assert _dump(url) != first and other.dwh_only_ids != info.dwh_only_ids


def test_a_naive_reference_time_is_utc_and_a_simulator_gives_its_customers(tmp_path: Path) -> None:
    class _Sim:
        def customer_ids(self) -> list[str]:
            return IDS[:20]

    aware = create_demo_dwh(f"sqlite:///{tmp_path / 'a.sqlite'}", IDS[:20], reference_time=NOW)
    naive = create_demo_dwh(
        f"sqlite:///{tmp_path / 'b.sqlite'}", _Sim(), reference_time=NOW.replace(tzinfo=None)
    )
    assert naive == aware
    assert _dump(f"sqlite:///{tmp_path / 'a.sqlite'}") == _dump(
        f"sqlite:///{tmp_path / 'b.sqlite'}"
    )


@pytest.mark.usefixtures("subprocesses")
def test_the_dwh_package_does_not_import_the_demo() -> None:
    import subprocess
    import sys

    code = (
        "import sys, xiva_source.dwh.reads, xiva_source.dwh.snapshots; "
        "print(any(m.startswith('xiva_source.demo') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
