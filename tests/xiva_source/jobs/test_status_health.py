"""Issue 16: ``xiva-source status`` as a health check in every state.

Each trouble is real (Redis and the DWH at ports nothing listens on, the run state corrupted in
Redis, a bad ``--max-age``): a short line on stderr, a distinct exit status, never a traceback,
never a false "healthy". The command runs in process through ``xiva_source.cli.main``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import redis

from xiva_source.cli import main
from xiva_source.jobs.status import HEALTH_EXIT_CODES


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status(repo: Path, *extra: str) -> int:
    return main(["status", "--repo", str(repo), *extra])


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def materialized(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    assert main(["materialize", "--repo", str(repo), "--no-progress"]) == 0
    return repo


def test_the_exit_statuses_are_distinct() -> None:
    assert len(set(HEALTH_EXIT_CODES.values())) == len(HEALTH_EXIT_CODES)
    assert 2 not in HEALTH_EXIT_CODES.values()  # 2 stays a usage or configuration error


def test_healthy_only_when_every_part_answers_and_views_are_fresh(
    materialized: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert _status(materialized, "--max-age", "1h") == 0
    assert _status(materialized, "--check") == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("flag", [["--max-age", "1h"], ["--check"], ["--max-age", "1h", "--json"]])
def test_redis_down_is_exit_5_with_one_line(
    materialized: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: list[str],
) -> None:
    capsys.readouterr()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{_dead_port()}/0")

    assert _status(materialized, *flag) == 5

    line = _one_line(capsys.readouterr().err)
    assert line.startswith("status: online store down: the online store (Redis")
    assert "; fix: start Redis or check REDIS_URL" in line and "Traceback" not in line


def test_without_a_check_the_report_still_exits_0_with_redis_down(
    materialized: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{_dead_port()}/0")
    assert _status(materialized) == 0
    captured = capsys.readouterr()
    assert "unknown state:" in captured.out and captured.err == ""


def test_the_dwh_down_is_exit_6_with_one_line(
    materialized: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    monkeypatch.setenv("DWH_URL", f"postgresql+psycopg://root:dwh-pw@127.0.0.1:{_dead_port()}/t")

    assert _status(materialized, "--max-age", "1h", "--json") == 6  # fresh views: not healthy
    assert json.loads(capsys.readouterr().out)["health"] == {"status": "dwh down", "exit_code": 6}
    assert _status(materialized, "--max-age", "1h") == 6

    line = _one_line(capsys.readouterr().err)
    assert line.startswith("status: dwh down: the DWH") and "; fix: start the warehouse" in line
    assert "dwh-pw" not in line and "Traceback" not in line


def test_a_corrupted_state_is_exit_4_with_its_repair(
    materialized: Path, project: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.hset(f"xiva_source:materialize:state:{project}", "wm:customer_features:dwh", "garbage")
    client.close()
    capsys.readouterr()

    assert _status(materialized, "--max-age", "1h") == 4

    line = _one_line(capsys.readouterr().err)
    assert line.startswith("status: state corrupted: the run state is corrupted: ")
    assert "'wm:customer_features:dwh'" in line and "'garbage'" in line and "Traceback" not in line


@pytest.mark.parametrize("max_age", ["1e400", "99999999999d", "nan", "abc", "0", "-5m"])
def test_a_bad_max_age_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], max_age: str
) -> None:
    assert _status(tmp_path, f"--max-age={max_age}") == 2
    err = capsys.readouterr().err
    assert "error: argument --max-age:" in err and "Traceback" not in err
