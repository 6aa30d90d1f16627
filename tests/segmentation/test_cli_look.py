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


def test_overlap_lists_the_top_pairs_and_every_pair_up_to_a_cap(
    seg_repo: FeastRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "segments"
    d.mkdir()
    (d / "a.yaml").write_text(
        "- {name: ov_lyon, rules: [{'==': [{'var': 'city'}, 'Lyon']}]}\n"
        "- {name: ov_paris, rules: [{'==': [{'var': 'city'}, 'Paris']}]}\n"
        "- name: ov_rich_paris\n  rules: [{'==': [{'var': 'city'}, 'Paris']}, "
        "{'>': [{'var': 'total_revenue'}, 1000]}]\n"
    )
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(d)]
    code, out, _ = _run(capsys, *base, "overlap", "--top", "1")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "segment_a\tsegment_b\tin_both\tjaccard"
    assert lines[1].startswith("ov_paris\tov_rich_paris\t")  # the most overlapping pair
    assert lines[2].startswith("population: 603")
    assert lines[3] == (
        "shown: the 1 most overlapping of 3 pair(s); --top K for more, --all for every pair"
    )
    code, out, _ = _run(capsys, *base, "overlap", "--all")
    lines = out.splitlines()
    assert [line.split("\t")[:2] for line in lines[1:4]] == [
        ["ov_lyon", "ov_paris"],  # every pair, in the segments' order
        ["ov_lyon", "ov_rich_paris"],
        ["ov_paris", "ov_rich_paris"],
    ]
    assert lines[-1].startswith("population")
    doc = _json(capsys, *base, "overlap", "--top", "2")
    assert doc["pair_count"] == 3 and doc["top"] == 2 and len(doc["pairs"]) == 2
    assert doc["pairs"][0]["a"] == "ov_paris" and len(doc["matrix"]) == 3
    doc = _json(capsys, *base, "overlap", "--all")
    assert doc["top"] is None and len(doc["pairs"]) == 3
    code, _, err = _run(capsys, *base, "overlap", "--top", "1", "--all")
    assert code == 2 and "not allowed with" in err

    # 451 segments make 101,475 pairs: every pair is refused before the population is read.
    (d / "b.yaml").write_text(
        "".join(
            f"- {{name: ov_{i:03d}, rules: [{{'>': [{{'var': 'total_revenue'}}, {i}]}}]}}\n"
            for i in range(448)
        )
    )
    code, out, err = _run(capsys, *base, "overlap", "--all")
    assert code == 1 and out == ""
    assert "451 segments make 101,475 pairs, more than the 100,000" in err
    assert "fix: list the most overlapping ones with --top K" in err
    code, _, err = _run(capsys, *base, "overlap", "--top", "100001")
    assert code == 2 and "at most 100,000 pairs" in err
    doc = _json(capsys, *base, "overlap")
    assert doc["pair_count"] == 101_475 and len(doc["pairs"]) == 20 and doc["matrix"] is None
