"""Hostile segment files and a damaged registry through the ``segmentation`` command line (real
Feast repository, real Redis): clear errors, no traceback, the good segments still run."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.support.segmentation.repo import FeastRepo
from xiva_source.cli import segmentation_main as main

GOOD = (
    "- name: rich\n  description: big spenders\n  rules:\n"
    "    - {'>': [{'var': 'total_revenue'}, 2000]}\n"
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    start = time.perf_counter()
    code = main(list(argv))
    assert time.perf_counter() - start < 30
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "unexpected error" not in err
    return code, out, err


@pytest.fixture
def segdir(tmp_path: Path) -> Path:
    d = tmp_path / "segments"
    d.mkdir()
    (d / "a_good.yaml").write_text(GOOD)
    return d


def test_a_400_digit_literal_fails_validate_and_sizes_still_runs_the_others(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (segdir / "whales.json").write_text(
        '{"name": "whales", "rules": [{">": [{"var": "total_revenue"}, ' + "9" * 400 + "]}]}"
    )
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir)]
    code, out, err = _run(capsys, *base, "validate")
    assert code == 1 and "1 segment(s) valid, 1 error(s)" in out
    assert "whales.json" in err and "wider than 64 bits" in err
    for command in ("sizes", "refresh"):
        code, out, err = _run(capsys, *base, command)
        assert code == 1, command
        assert out.startswith("rich\t") and "whales" not in out  # the good segment ran
        assert err.count("error: ") == 1 and "whales.json" in err


def test_alias_bomb_in_description_is_refused_by_list_and_validate(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i, prev in zip("bcdefghij", "abcdefghi", strict=True):
        lines.append(f"{i}: &{i} [{','.join(['*' + prev] * 9)}]")
    (segdir / "bomb.yaml").write_text(
        "\n".join(lines) + "\nname: bomb\ndescription: *j\nrules: [{'!': [1]}]\n"
    )
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir)]
    code, out, err = _run(capsys, *base, "list")
    assert code == 1 and out.splitlines() == ["rich\t1 rule(s)\tbig spenders"]
    assert "bomb.yaml" in err and "aliases (*name) are not allowed" in err
    code, out, err = _run(capsys, *base, "validate")
    assert code == 1 and "aliases (*name) are not allowed" in err


def test_an_oversized_file_is_reported_and_the_others_load(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = json.dumps({"name": "s{}", "description": "d" * 200, "rules": [{"!": [1]}]})
    (segdir / "huge.json").write_text("[" + ",".join([one] * 6000) + "]")
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir)]
    code, out, err = _run(capsys, *base, "sizes")
    assert code == 1 and out.startswith("rich\t")
    assert "huge.json" in err and "more than the limit of 1,048,576" in err


def test_a_corrupted_registry_is_a_clear_error(
    seg_repo: FeastRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(seg_repo.path, repo)
    yaml_path = repo / "feature_store.yaml"
    yaml_path.write_text(yaml_path.read_text().replace(str(seg_repo.path), str(repo)))
    (repo / "data" / "registry.db").write_bytes(b"\x00not a registry\xff" * 64)
    for command in (["validate"], ["list", "--features"], ["sizes"], ["evaluate", "C00001"]):
        code, _, err = _run(capsys, "--repo", str(repo), *command)
        assert code == 1, command
        assert "registry of the repository" in err and "cannot be read" in err
        assert "make apply" in err and err.count("fix:") == 1
