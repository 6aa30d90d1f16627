"""``segmentation sizes/preview/overlap/report`` and ``--json`` of every listing command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.segmentation import look
from tests.support.segmentation.repo import FeastRepo
from xiva_source.cli import segmentation_main as main


@pytest.fixture
def segdir(tmp_path: Path) -> Path:
    d = tmp_path / "segments"
    d.mkdir()
    (d / "s.yaml").write_text(
        "- name: lk_paris\n  description: Paris customers\n  rules:\n"
        "    - {'==': [{'var': 'city'}, 'Paris']}\n"
        "- name: lk_rich_paris\n  description: rich in Paris\n  holdout: 0.2\n  rules:\n"
        "    - name: rich\n      rule: {'>': [{'var': 'total_revenue'}, 1000]}\n"
        "    - name: paris\n      rule: {'==': [{'var': 'city'}, 'Paris']}\n"
    )
    return d


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_sizes_show_population_and_percentages(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir)]
    table = look.rows(seg_repo)
    paris = len(look.members(table, look.equals("city", "Paris")))
    code, out, _ = _run(capsys, *base, "sizes")
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "population: 603 customer(s)"
    fields = lines[0].split("\t")
    assert fields == ["lk_paris", str(paris), f"{100 * paris / 603:.1f}%"]
    doc = _json(capsys, *base, "sizes")
    assert doc["population"] == 603
    assert doc["segments"][0] == {
        "name": "lk_paris",
        "size": paris,
        "percent": round(100 * paris / 603, 4),
    }


def test_every_listing_command_has_json(
    seg_repo: FeastRepo, segdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir)]
    listed = _json(capsys, *base, "list")
    assert [s["name"] for s in listed["segments"]] == ["lk_paris", "lk_rich_paris"]
    assert listed["segments"][1]["rules"][0]["name"] == "rich"

    features = _json(capsys, *base, "list", "--features")
    by_name = {f["name"]: f for f in features["features"]}
    assert by_name["city"]["view"] == "customer_features" and not by_name["city"]["derived"]
    assert "churn_score" in by_name and isinstance(features["services"], list)

    out = _run(capsys, *base, "members", "lk_paris")[1]
    members = out.split()
    doc = _json(capsys, *base, "members", "lk_paris")
    assert doc == {
        "segment": "lk_paris",
        "stored": False,
        "count": len(members),
        "members": members,
    }

    assert _run(capsys, *base, "refresh")[0] == 0
    stored = _json(capsys, *base, "members", "lk_paris", "--stored")
    assert stored["stored"] is True and stored["members"] == members
    written = _json(capsys, *base, "members", "lk_paris", "-o", str(tmp_path / "m.csv"))
    assert written["count"] == len(members) and written["output"].endswith("m.csv")

    history = _json(capsys, *base, "history", "lk_paris", "--limit", "1")
    assert history["segment"] == "lk_paris" and history["history"][0]["size"] == len(members)
    assert set(history["history"][0]) == {"timestamp", "size", "joined", "left"}

    preview = _json(capsys, *base, "preview", "lk_rich_paris", "--sample", "3")
    assert [r["name"] for r in preview["rules"]] == ["rich", "paris"]
    assert preview["population"] == 603 and len(preview["sample"]) == 3

    overlap = _json(capsys, *base, "overlap")
    assert overlap["segments"] == ["lk_paris", "lk_rich_paris"]
    assert overlap["pairs"][0]["both"] == preview["size"]  # rich in Paris are all in Paris
    assert overlap["pairs"][0]["jaccard"] == pytest.approx(preview["size"] / len(members))


def test_preview_and_overlap_text(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir)]
    code, out, _ = _run(capsys, *base, "preview", "lk_rich_paris", "--sample", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("lk_rich_paris: ") and "of 603 customer(s)" in out
    assert lines[1].split() [:2] == ["rule", "passes"]  # fmt: skip
    assert lines[2].split()[0] == "rich" and lines[3].split()[0] == "paris"
    assert lines[4].startswith("sample (first 2 by id): C")
    code, out, _ = _run(capsys, *base, "overlap", "lk_rich_paris", "lk_paris")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "segment_a\tsegment_b\tin_both\tjaccard"
    assert lines[1].startswith("lk_rich_paris\tlk_paris\t") and lines[-1].startswith("population")


def test_usage_errors(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir)]
    code, _, err = _run(capsys, *base, "preview", "lk_paris", "--sample", "-1")
    assert code == 2 and "must not be negative" in err
    code, _, err = _run(capsys, *base, "preview", "nope")
    assert code == 1 and "unknown segment 'nope'" in err and "Traceback" not in err
    code, _, err = _run(capsys, *base, "overlap", "lk_paris", "nope")
    assert code == 1 and "unknown segment 'nope'" in err
    code, _, err = _run(capsys, *base, "report", "out.pdf")
    assert code == 1 and "*.html" in err and "Traceback" not in err
