"""Xiva down: the interactive refresh fails and an ``auto`` run falls back within seconds
(real Feast repository, Redis, DWH; Xiva at a closed port). Bounds, not benchmarks."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.support.feast import FeastEnv
from xiva_source.cli import main
from xiva_source.jobs.materialize import run_materialization


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refresh_with_xiva_at_a_closed_port_fails_in_under_10_s(
    repo: Path, feast_env: FeastEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    customer_id = feast_env.sim.customer_ids()[0]
    feast_env.monkeypatch.setenv("XIVA_API_BASE_URL", f"http://127.0.0.1:{_closed_port()}/api")
    started = time.monotonic()
    code = main(["refresh", customer_id, "--repo", str(repo)])
    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 10, elapsed
    assert "XIVA_API_BASE_URL" in capsys.readouterr().err


def test_auto_run_with_xiva_at_a_closed_port_falls_back_in_under_15_s(
    repo: Path, feast_env: FeastEnv
) -> None:
    feast_env.set_mode("auto")
    feast_env.monkeypatch.setenv("XIVA_API_BASE_URL", f"http://127.0.0.1:{_closed_port()}/api")
    started = time.monotonic()
    summary = run_materialization(repo, progress=False)
    elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed
    line = summary.line()
    assert "fallback: xiva failed" in line, line
