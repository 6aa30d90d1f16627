"""``make demo``: the whole pipeline end to end, with no Redis and no PostgreSQL."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from xiva_source.cli import main
from xiva_source.demo.run import run_demo

REPO = Path(__file__).resolve().parents[2] / "feature_repo"


def cli(argv: list[str]) -> int:
    """``xiva-source demo <argv>``."""
    return main(["demo", *argv])


def _project_env() -> dict[str, str]:
    prefixes = ("XIVA_", "DWH_", "FEATURE_STORE_", "REDIS_URL", "ONLINE_TTL")
    return {k: v for k, v in os.environ.items() if k.startswith(prefixes)}


@pytest.mark.usefixtures("local_servers")
def test_demo_runs_end_to_end_and_shows_features_and_segments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env_before = _project_env()

    code = cli(["--customers", "300", "--repo", str(REPO), "--keep", str(tmp_path / "work")])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "Xiva simulator: 300 customers" in out
    first, second = re.findall(r"^materialize ok mode=auto .*$", out, flags=re.M)
    assert re.search(r"rows dwh=\d+ xiva=300 views=2", first), first
    assert "fallbacks=0" in first
    assert "rows xiva=10 " in second  # only the changed customers...
    assert "Xiva 360-view calls in run 2: 10 " in out  # ...were fetched
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["in", "customer_id"])
    assert "customer_tier" in lines[at] and "churn_score" in lines[at]
    kinds = [line.strip().split("  ")[0] for line in lines[at + 1 : at + 5]]
    assert kinds == ["xiva+dwh", "xiva+dwh", "xiva only", "dwh only"]
    # Whole ids, to paste into `segmentation evaluate` or `xiva-source refresh`.
    uuid_text = r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
    assert all(re.search(uuid_text, line) for line in lines[at + 1 : at + 5])
    assert "..." not in "".join(lines[at + 1 : at + 5])
    sizes = re.findall(r"^  (\w+)\s+(\d[\d,]*)$", out.split("Segments", 1)[1], flags=re.M)
    assert sizes and all(int(n.replace(",", "")) <= 330 for _, n in sizes)
    assert any(int(n.replace(",", "")) > 0 for _, n in sizes)
    assert "Demo finished" in out
    assert _project_env() == env_before  # the demo's settings do not leak
    assert "REDIS_URL" not in os.environ


@pytest.mark.usefixtures("local_servers")
def test_run_demo_result(tmp_path: Path) -> None:
    narration = io.StringIO()
    result = run_demo(200, repo_path=REPO, workdir=tmp_path / "work", out=narration)
    assert result.first.status == "ok" and result.second.status == "ok"
    assert result.second_run_360_calls == 10
    assert result.customers >= 200
    assert len(result.sample) >= 3
    assert result.segment_sizes
    assert (tmp_path / "work" / "feature_repo" / "data" / "online.db").is_file()
    assert result.first.line() in narration.getvalue()


def test_demo_without_a_repository_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["--repo", str(tmp_path)]) == 2
    assert "No feature_store.yaml" in capsys.readouterr().err
