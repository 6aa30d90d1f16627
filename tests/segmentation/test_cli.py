"""The ``segmentation`` command line, called in-process (and once as ``python -m segmentation``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.segmentation.repo import FeastRepo
from xiva_source.cli import segmentation_main as main


@pytest.fixture
def segdir(tmp_path: Path) -> Path:
    d = tmp_path / "segments"
    d.mkdir()
    (d / "s.yaml").write_text(
        "- name: paris\n  description: Paris customers\n  rules:\n"
        "    - {'==': [{'var': 'city'}, 'Paris']}\n"
        "- name: rich\n  description: big spenders\n  rules:\n"
        "    - {'>': [{'var': 'total_revenue'}, 2000]}\n"
    )
    return d


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_ok_and_errors(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = str(seg_repo.path)
    code, out, _ = _run(capsys, "--repo", repo, "--segments-dir", str(segdir), "validate")
    assert code == 0 and "2 segment(s) valid, 0 error(s)" in out
    (segdir / "bad.json").write_text(
        json.dumps({"name": "bad", "rules": [{"==": [{"var": "status"}, "x"]}]})
    )
    (segdir / "evil.json").write_text(
        json.dumps({"name": "evil", "rules": [{"method": ["os", "system", ["echo pwned"]]}]})
    )
    code, out, err = _run(capsys, "--repo", repo, "--segments-dir", str(segdir), "validate")
    assert code == 1 and "2 error(s)" in out
    assert "did you mean customer_status" in err and "must match the Feast feature names" in err
    assert "'method' calls arbitrary Python" in err and "Traceback" not in err


def test_list(seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--repo", str(seg_repo.path), "--segments-dir", str(segdir), "list")
    assert code == 0 and out.splitlines() == [
        "paris\t1 rule(s)\tParis customers",
        "rich\t1 rule(s)\tbig spenders",
    ]
    code, out, _ = _run(capsys, "--repo", str(seg_repo.path), "list", "--features")
    assert code == 0 and "customer_features:customer_status" in out and "churn_score" in out


def test_evaluate_sizes_members_export_refresh_history(
    seg_repo: FeastRepo, segdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--repo", str(seg_repo.path), "--segments-dir", str(segdir)]
    code, out, _ = _run(capsys, *base, "evaluate", "C00001")
    doc = json.loads(out)
    assert code == 0 and doc["segments"] == ["paris"] and doc["features"]["city"] == "Paris"

    code, out, _ = _run(capsys, *base, "sizes")
    sizes = dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)
    code, out, _ = _run(capsys, *base, "members", "paris")
    members = out.split()
    assert code == 0 and len(members) == int(sizes["paris"]) > 0

    target = tmp_path / "paris.csv"
    code, out, _ = _run(capsys, *base, "export", "paris", str(target))
    assert code == 0 and pd.read_csv(target, dtype=str)["customer_id"].tolist() == members

    code, out, _ = _run(capsys, *base, "refresh", "paris")
    assert code == 0 and out.startswith(f"paris\tsize={len(members)}")
    code, out, _ = _run(capsys, *base, "refresh", "paris")  # nothing changed since
    assert code == 0 and "\tincremental\tevaluated=" in out and "joined=0\tleft=0" in out
    code, out, _ = _run(capsys, *base, "refresh", "--full", "paris")
    assert code == 0 and out.startswith(f"paris\tsize={len(members)}") and "\tfull" in out
    code, out, _ = _run(capsys, *base, "members", "paris", "--stored")
    assert out.split() == members
    code, out, _ = _run(capsys, *base, "history", "paris", "--limit", "1")
    assert code == 0 and f"size={len(members)}" in out


def test_usage_and_errors(seg_repo: FeastRepo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "sizes")  # cwd has no feature_repo
    assert code == 2 and "No Feast repository at 'feature_repo'" in err
    assert _run(capsys, "frobnicate")[0] == 2
    assert _run(capsys)[0] == 2  # no command
    code, _, err = _run(capsys, "--repo", str(seg_repo.path), "--max-age", "soon", "sizes")
    assert code == 2 and "--max-age" in err
    code, _, err = _run(capsys, "--repo", str(seg_repo.path), "history", "nope")
    assert code == 1 and "unknown segment 'nope'" in err and "Traceback" not in err
    assert err.count("fix:") == 1 and "Fix:" not in err


def test_options_after_the_command(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "list", "--segments-dir", str(segdir))
    assert code == 0 and out.startswith("paris\t")
    code, out, _ = _run(capsys, "validate", "--repo", str(seg_repo.path), "--segments-dir",
                        str(segdir))  # fmt: skip
    assert code == 0 and "2 segment(s) valid" in out


def test_segments_dir_setting(
    seg_repo: FeastRepo,
    segdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SEGMENTS_DIR", str(segdir))
    code, out, _ = _run(capsys, "list")
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == ["paris", "rich"]
    # --segments-dir wins over the setting
    code, out, _ = _run(capsys, "list", "--segments-dir", str(segdir.parent / "none"))
    assert code == 1


def test_segment_errors_print_their_fix_once(
    seg_repo: FeastRepo, segdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (segdir / "bad.json").write_text(
        json.dumps({"name": "bad", "rules": [{"==": [{"var": "status"}, "x"]}]})
    )
    code, _, err = _run(capsys, "--repo", str(seg_repo.path), "--segments-dir", str(segdir),
                        "validate")  # fmt: skip
    assert code == 1 and err.count("Fix:") == 1


def test_module_entry_point(seg_repo: FeastRepo) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "segmentation", "--repo", str(seg_repo.path), "validate"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 error(s)" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["preview", "pari"], "error: unknown segment 'pari'"),
        (["export", "pari", "out.csv"], "error: unknown segment 'pari'"),
        (["export", "paris", "out.xlsx"], "error: cannot export to 'out.xlsx': unknown format"),
        (["members", "paris", "-o", "out.txt"], "error: cannot export to 'out.txt'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_loaded(
    argv: list[str],
    problem: str,
    segdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No repository and a dead Redis: the answer comes from the arguments and segment files."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    nowhere = str(tmp_path / "no-repository")
    code, out, err = _run(capsys, "--repo", nowhere, "--segments-dir", str(segdir), *argv)
    assert code == 1 and out == ""
    assert problem in err and "fix: " in err
    if "unknown segment" in problem:
        assert "use one of paris, rich" in err


@pytest.mark.usefixtures("subprocesses")
def test_sizes_without_feasts_sdk_are_the_sizes_through_it(
    seg_repo: FeastRepo,
    segdir: Path,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # seg_repo's yaml names Feast's Redis store (Feast's path); the copy uses the project's, with
    # REDIS_URL (the light registry reader's path), over the same registry and online data.
    light = tmp_path / "repo"
    shutil.copytree(seg_repo.path, light, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((light / "feature_store.yaml").read_text())
    config["online_store"] = {
        "type": "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore"
    }
    (light / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.setenv("REDIS_URL", redis_url)
    argv = ["--repo", str(light), "--segments-dir", str(segdir), "sizes"]
    code = (
        "import sys\nfrom xiva_source.cli import segmentation_main\n"
        f"code = segmentation_main({argv!r})\nprint('feast' in sys.modules, code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *lines, last = proc.stdout.splitlines()
    assert last == "False 0", proc.stderr
    _, through_feast, _ = _run(
        capsys, "--repo", str(seg_repo.path), "--segments-dir", str(segdir), "sizes"
    )
    assert lines == through_feast.splitlines()
    assert int(lines[0].split("\t")[1]) > 0  # a real population was read
