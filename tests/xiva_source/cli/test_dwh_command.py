"""``xiva-source dwh init`` on an empty SQLite file and an empty PostgreSQL database, twice each;
``--dry-run``; exit statuses and short errors (the schema itself: tests/xiva_source/dwh/);
``dwh seed`` on both: the simulator's customers, a filled table refused, ``--replace``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from xiva_source import dwh
from xiva_source.cli import main
from xiva_source.dwh.schema import CONTRACT_TABLES

if TYPE_CHECKING:
    from xiva_source.simulator import XivaSimulator

CREATED = "created: " + ", ".join(CONTRACT_TABLES)


@pytest.mark.usefixtures("pg_base_url")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_dwh_init_twice_creates_once(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'dwh.sqlite'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    monkeypatch.setenv("DWH_URL", url)  # as a deployment sets it

    assert main(["dwh", "init"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("dwh init ok created=4 existing=0 incomplete=0 url=")
    assert out.rstrip().endswith(CREATED) and out.count("\n") == 1 and err == ""
    assert set(CONTRACT_TABLES) <= set(sa.inspect(dwh.get_engine(url)).get_table_names())

    assert main(["dwh", "init"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("dwh init ok created=0 existing=4 incomplete=0 url=")
    assert out.rstrip().endswith("nothing to create: every contract table exists") and err == ""


def test_dry_run_prints_the_ddl_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}"
    assert main(["dwh", "init", "--dry-run", "--dwh-url", url]) == 0
    out = capsys.readouterr().out
    assert out.count("CREATE TABLE") == 4 and "updated_at DATETIME NOT NULL" in out
    assert out.splitlines()[-1].startswith("dwh init dry-run would_create=4 existing=0")
    assert out.rstrip().endswith("nothing was changed")
    assert sa.inspect(dwh.get_engine(url)).get_table_names() == []


def test_an_incomplete_table_fails_with_the_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}"
    with dwh.get_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE customer_churn_history (id INTEGER PRIMARY KEY)"))
    assert main(["dwh", "init", "--dwh-url", url]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("dwh init failed created=3 existing=0 incomplete=1 ")
    assert "customer_churn_history: missing column(s) customer_id, churned" in err
    assert "(left unaltered); fix: add the columns" in err


@pytest.mark.parametrize(
    ("url", "status", "problem"),
    [
        ("nonsense", 2, "error: DWH_URL 'nonsense' is not a SQLAlchemy URL."),
        (
            "oracle+nodriver://etl:hunter2@dwh/x",
            2,
            "error: DWH_URL 'oracle+nodriver://etl:***@dwh/x' names a database driver",
        ),
        (
            "postgresql+psycopg://etl:hunter2@127.0.0.1:1/dwh",
            1,
            "error: Data source 'dwh' failed: postgresql+psycopg://etl:***@127.0.0.1:1/dwh: "
            "OperationalError",
        ),
    ],
)
def test_a_bad_dwh_url_gives_the_short_error(
    url: str,
    status: int,
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DWH_URL", url)
    assert main(["dwh", "init"]) == status
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 2, err
    assert problem in lines[0] and lines[1].startswith("  fix: ")
    assert "hunter2" not in err and "Traceback" not in err


def test_dwh_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dwh"]) == 2
    assert "{init,seed}" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_dwh_seed_fills_the_contract_for_the_simulators_customers(
    backend: str,
    sim: XivaSimulator,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'dwh.sqlite'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    args = ["dwh", "seed", "--dwh-url", url, "--customers", str(sim.config.customers)]
    assert main([*args, "--seed", str(sim.config.seed)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1
    assert out.startswith(f"dwh seed ok customers={sim.config.customers} ")
    with dwh.get_engine(url).connect() as conn:
        seeded = {
            str(c)
            for c in conn.execute(sa.text("SELECT customer_id FROM customer_features_view"))
            .scalars()
            .all()
        }
        churn = conn.execute(sa.text("SELECT COUNT(*) FROM customer_churn_history")).scalar_one()
    xiva = set(sim.customer_ids())
    # The demo population: 9 in 10 of the simulator's customers, plus 10% only in the DWH.
    assert len(seeded & xiva) == len(xiva) * 9 // 10
    assert len(seeded - xiva) == len(xiva) // 10
    assert churn >= len(seeded)

    # A second seed refuses the filled tables and writes nothing; --replace refills them.
    assert main([*args, "--seed", str(sim.config.seed)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("xiva-source dwh: error: ")
    assert f"customer_features_view ({len(seeded):,} rows)" in err and "nothing was written" in err
    assert "fix: Seed an empty database (or schema), or pass --replace" in err
    assert main([*args, "--seed", "1", "--replace", "--customers", "10"]) == 0
    assert capsys.readouterr().out.startswith("dwh seed ok customers=10 ")


def test_dwh_seed_fills_tables_dwh_init_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}"
    assert main(["dwh", "init", "--dwh-url", url]) == 0
    assert main(["dwh", "seed", "--dwh-url", url, "--customers", "20"]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith("dwh seed ok customers=20 shared_with_xiva=18 dwh_only=2 xiva_only=2 ")
    )


def test_dwh_seed_refuses_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'dwh.sqlite'}"
    assert main(["dwh", "seed", "--dry-run", "--dwh-url", url]) == 2
    assert "--dry-run applies to `dwh init` only" in capsys.readouterr().err
    assert sa.inspect(dwh.get_engine(url)).get_table_names() == []
