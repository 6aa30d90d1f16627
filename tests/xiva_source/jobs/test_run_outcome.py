"""Issue 10: exit statuses a monitor can use, one line per run, the run record, status, metrics.

Everything is real: the session's Xiva simulator (a wrong password makes Xiva fail), Redis, the
DWH and an applied copy of ``feature_repo`` (``repo``); the commands run in process through
``xiva_source.cli.main`` at the default log level, as cron runs them.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.support.feast import FeastEnv
from xiva_source.cli import main


def _materialize(repo: Path, *extra: str) -> int:
    return main(["materialize", "--repo", str(repo), "--no-progress", *extra])


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_fallback_exits_3_with_one_line_saying_why(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "auto")
    monkeypatch.setenv("XIVA_API_PASSWORD", "wrong-password")

    code = _materialize(repo)

    captured = capsys.readouterr()
    line = _one_line(captured.err)  # the summary, and nothing else at the default level
    assert code == 3 and captured.out == ""
    assert line.startswith("materialize degraded mode=auto")
    assert "; degraded: 1 fallback to one source" in line and "; fallback: xiva failed" in line
    assert "FEATURE_STORE_DATA_SOURCE=dwh" not in line  # already in auto: no such advice
    assert ".." not in line.replace("...", "") and "wrong-password" not in line


def test_fail_on_fallback_makes_the_same_run_exit_1(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "auto")
    monkeypatch.setenv("XIVA_API_PASSWORD", "wrong-password")

    assert _materialize(repo, "--fail-on-fallback") == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("materialize failed mode=auto") and line.count("Fix:") == 1

    monkeypatch.setenv("MATERIALIZE_FAIL_ON_FALLBACK", "true")  # the setting does the same
    assert _materialize(repo) == 1
    assert _one_line(capsys.readouterr().err).startswith("materialize failed mode=auto")


def test_a_failed_run_prints_its_cause_and_fix_once_and_is_recorded(
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = tmp_path / "loyalty.prom"
    monkeypatch.setenv("METRICS_TEXTFILE", str(metrics))
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    monkeypatch.setenv("DWH_URL", "postgresql+psycopg://root:dwh-pw@127.0.0.1:1/test")

    code = _materialize(repo)

    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert code == 1 and captured.out == ""
    assert line.startswith("materialize failed mode=dwh") and "; error: view " in line
    assert line.count("Fix:") == 1 and line.count("DWH_URL") >= 1
    assert ".." not in line.replace("...", "") and "dwh-pw" not in line

    # The failure is in the run record (status) and the metrics, password masked everywhere.
    assert main(["status", "--repo", str(repo), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["last_run"]["outcome"] == "failed" and report["last_run"]["exit_code"] == 1
    assert "DWH_URL" in report["last_run"]["error"] and "dwh-pw" not in out
    failed = [v["name"] for v in report["views"] if (v["last_run"] or {}).get("outcome")]
    assert len(failed) == 1  # the view the run failed on
    text = metrics.read_text()
    assert "loyalty_materialization_failures_total 1" in text
    assert f'feature_view="{failed[0]}",status="failure"}} 1' in text
    assert "loyalty_materialization_exit_status 1" in text


def test_status_shows_freshness_last_run_and_counts_and_checks_max_age(
    repo: Path,
    feast_env: FeastEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = tmp_path / "textfile" / "loyalty.prom"
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")
    monkeypatch.setenv("METRICS_TEXTFILE", str(metrics))
    assert _materialize(repo) == 0
    assert capsys.readouterr().out.startswith("materialize ok mode=dwh")

    assert main(["status", "--repo", str(repo), "--json", "--max-age", "1h"]) == 0
    report = json.loads(capsys.readouterr().out)
    views = {view["name"]: view for view in report["views"]}
    assert set(views) == {"customer_features", "customer_dwh_features"}
    for view in views.values():
        assert view["watermark"] and 0 <= view["age_seconds"] < 3600
        assert view["sources"]["dwh"]["age_seconds"] < 3600
        assert view["last_run"]["outcome"] == "ok" and view["last_run"]["rows"] > 0
    assert report["last_run"]["outcome"] == "ok" and report["last_run"]["exit_code"] == 0
    assert report["last_run"]["rows_by_source"]["dwh"] > 0
    assert report["online_keys"] == len(feast_env.dwh.shared_ids) or report["online_keys"] > 0
    assert isinstance(report["pending_retries"], dict) and report["stale_views"] == []
    assert "requests" in report["xiva_usage"]

    text = metrics.read_text()
    assert 'result_total{feature_view="customer_features",status="success"} 1' in text
    assert 'loyalty_materialization_rows_total{feature_view="customer_features",source="dwh"}' in (
        text
    )
    assert "loyalty_materialization_exit_status 0" in text

    time.sleep(1.1)
    assert main(["status", "--repo", str(repo), "--max-age", "1s"]) == 1
    captured = capsys.readouterr()
    assert "view customer_features: watermark " in captured.out
    assert "last run: ok (exit 0)" in captured.out
    assert _one_line(captured.err).startswith("status: stale: customer_dwh_features")
    assert " older than 1s (or never materialized)" in captured.err


def test_status_of_a_never_materialized_repository_is_stale(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--repo", str(repo), "--max-age", "1d"]) == 1
    captured = capsys.readouterr()
    assert "watermark none (age never); no run recorded" in captured.out
    assert "last run: none recorded" in captured.out
    assert main(["status", "--repo", str(repo)]) == 0  # no --max-age: no check
    capsys.readouterr()


def test_status_with_redis_down_still_reports_what_it_can(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1

    assert main(["status", "--repo", str(repo), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"state", "usage", "online_keys"} <= set(report["problems"])
    assert report["online_keys"] is None and len(report["views"]) == 2


def test_redis_down_is_one_line_too_and_the_metrics_still_count_it(
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = tmp_path / "loyalty.prom"
    monkeypatch.setenv("METRICS_TEXTFILE", str(metrics))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1

    assert _materialize(repo) == 1

    captured = capsys.readouterr()
    line = _one_line(captured.err)  # the run record cannot be stored: said at INFO only
    assert line.startswith("materialize failed") and line.count("Fix:") == 1
    assert "REDIS_URL" in line and "connection_string" not in line
    assert "loyalty_materialization_failures_total 1" in metrics.read_text()


def test_xiva_at_a_closed_port_in_auto_mode_is_one_degraded_line_within_seconds(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "auto")
    monkeypatch.setenv("XIVA_API_BASE_URL", f"http://127.0.0.1:{port}/api")

    started = time.monotonic()
    code = _materialize(repo)

    assert time.monotonic() - started < 15
    line = _one_line(capsys.readouterr().err)  # no retry or breaker log lines at WARNING
    assert code == 3 and line.startswith("materialize degraded mode=auto")
    assert "; fallback: xiva failed" in line


@pytest.mark.parametrize("where", ["under a file", "a directory"])
def test_an_unwritable_metrics_textfile_is_named_with_its_fix_and_never_fails_the_run(
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    # Tests run as root, which file modes do not stop: a file as the parent directory, or a
    # directory where the file should be, cannot be written by anyone.
    (tmp_path / "not-a-dir").write_text("x")
    (tmp_path / "a-dir.prom").mkdir()
    metrics = tmp_path / ("not-a-dir/loyalty.prom" if where == "under a file" else "a-dir.prom")
    monkeypatch.setenv("METRICS_TEXTFILE", str(metrics))
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "dwh")

    assert _materialize(repo) == 0  # the run's own status

    captured = capsys.readouterr()
    line = _one_line(captured.out)
    assert captured.err == "" and line.startswith("materialize ok mode=dwh")
    assert f"; warning: metrics not written to {metrics} (METRICS_TEXTFILE): " in line
    assert "point METRICS_TEXTFILE at a file" in line and str(metrics.parent) in line

    monkeypatch.setenv("DWH_URL", "postgresql+psycopg://root@127.0.0.1:1/test")
    assert _materialize(repo) == 1  # a failed run keeps its own status and its one Fix
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("materialize failed") and line.count("Fix:") == 1
    assert "metrics not written to" in line
