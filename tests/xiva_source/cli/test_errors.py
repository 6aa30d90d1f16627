"""Every command, under each bad setting and dead service, gives the short error.

A few lines on stderr naming the setting or service and the fix, never a traceback, and the right
exit status. The commands run as users run them (``python -m``, in a subprocess); the matrices that
need Feast run in-process too (one Feast import instead of one per case), with one subprocess case
per failure kind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.feast import ROOT, FeastEnv
from xiva_source.cli import main, segmentation_main

DEAD_REDIS = "redis://127.0.0.1:1/0"
SEGMENT = "gold_vip"  # one of the shipped example segments

XIVA_COMMANDS = [["usage"], ["materialize"], ["refresh", "C00001"], ["demo"]]
SEGMENTATION_COMMANDS = [
    ["validate"],
    ["list"],
    ["evaluate", "C00001"],
    ["sizes"],
    ["members", SEGMENT],
    ["export", SEGMENT, "out.csv"],
    ["refresh"],
    ["history", SEGMENT],
    ["preview", SEGMENT],
    ["overlap"],
    ["report", "out.html"],
    ["events"],
]


def run(
    module: str, *argv: str, cwd: Path, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <argv>`` with the test's environment plus ``env`` (None: unset)."""
    environ = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=240,
        check=False,
    )


def run_here(
    capsys: pytest.CaptureFixture[str], module: str, *argv: str
) -> subprocess.CompletedProcess[str]:
    """The same command in this process (the environment is the test's)."""
    entry = main if module == "xiva_source" else segmentation_main
    code = entry(list(argv), prog=f"python -m {module}")
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([module, *argv], code, out, err)


def assert_short(
    proc: subprocess.CompletedProcess[str], code: int, *needles: str, max_lines: int = 4
) -> None:
    """Exit ``code``, a few stderr lines without a traceback, each needle in them."""
    err = proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}\n{err}\n{proc.stdout}"
    assert "Traceback" not in err, err
    assert 0 < len(err.strip().splitlines()) <= max_lines, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def unapplied_repo(tmp_path: Path) -> Path:
    """feature_repo/ copied with a registry of its own that was never written (no apply)."""
    target = tmp_path / "unapplied"
    shutil.copytree(
        ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    yaml = target / "feature_store.yaml"
    text = yaml.read_text().replace("registry: data/registry.db", f"registry: {target}/reg.db")
    yaml.write_text(text)
    return target


@pytest.mark.usefixtures("subprocesses")
@pytest.mark.parametrize(
    ("variable", "value"), [("FEATURE_STORE_DATA_SOURCE", "foo"), ("XIVA_TIMEOUT", "abc")]
)
@pytest.mark.parametrize(
    ("module", "argv"),
    [("xiva_source", c) for c in XIVA_COMMANDS]
    + [("segmentation", c) for c in SEGMENTATION_COMMANDS],
)
def test_bad_setting(
    module: str, argv: list[str], variable: str, value: str, tmp_path: Path
) -> None:
    proc = run(module, *argv, cwd=tmp_path, env={variable: value})
    assert_short(proc, 2, variable, repr(value), "fix:", max_lines=2)


@pytest.mark.usefixtures("subprocesses")
def test_bad_setting_in_the_env_file_found_from_a_subdirectory(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "feature_repo").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / ".env").write_text("XIVA_TIMEOUT=abc\n")
    proc = run(
        "xiva_source", "usage", cwd=root / "feature_repo", env={"FEATURE_STORE_ENV_FILE": None}
    )
    assert_short(proc, 2, "XIVA_TIMEOUT='abc'", str(root / ".env"), max_lines=2)


@pytest.mark.usefixtures("subprocesses")
def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = run("xiva_source", "--debug", "usage", cwd=tmp_path, env={"XIVA_TIMEOUT": "abc"})
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "XIVA_TIMEOUT" in proc.stderr


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("xiva_source", ["usage"]),
        ("xiva_source", ["materialize", "--no-progress"]),
        ("xiva_source", ["refresh", "C00001"]),
    ]
    + [("segmentation", c) for c in SEGMENTATION_COMMANDS if c[0] not in ("validate", "list")],
)
def test_dead_redis(
    module: str,
    argv: list[str],
    applied_feast_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", DEAD_REDIS)
    proc = run_here(capsys, module, *argv, "--repo", str(applied_feast_repo))
    # refresh reads Xiva first: with no Xiva configured that is what it reports.
    needles = ("XIVA_API",) if argv[0] == "refresh" and module == "xiva_source" else ("Redis",)
    assert_short(proc, 1, *needles)


@pytest.mark.usefixtures("subprocesses")
def test_dead_redis_subprocess(applied_feast_repo: Path, tmp_path: Path) -> None:
    repo = ["--repo", str(applied_feast_repo)]
    proc = run("segmentation", "sizes", *repo, cwd=tmp_path, env={"REDIS_URL": DEAD_REDIS})
    assert_short(proc, 1, "Redis", "REDIS_URL", max_lines=2)


def test_bad_dwh_url(
    applied_feast_repo: Path,
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"FEATURE_STORE_DATA_SOURCE": "dwh", "REDIS_URL": redis_url}
    argv = ["materialize", "--no-progress", "--repo", str(applied_feast_repo)]
    refused = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    proc = run("xiva_source", *argv, cwd=tmp_path, env={**env, "DWH_URL": refused})
    assert_short(proc, 1, "DWH", "Connection refused", "materialize failed")
    for name, value in {**env, "DWH_URL": "not-a-url"}.items():
        monkeypatch.setenv(name, value)
    assert_short(run_here(capsys, "xiva_source", *argv), 1, "Set DWH_URL", "materialize failed")


@pytest.mark.parametrize(
    ("module", "argv"),
    [("xiva_source", ["materialize"]), ("xiva_source", ["refresh", "C00001"])]
    + [("segmentation", c) for c in SEGMENTATION_COMMANDS if c[0] != "list"],
)
def test_unapplied_repository(
    module: str,
    argv: list[str],
    unapplied_repo: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    proc = run_here(capsys, module, *argv, "--repo", str(unapplied_repo))
    assert_short(proc, 2, "apply", max_lines=2)


@pytest.mark.usefixtures("subprocesses")
def test_unapplied_repository_subprocess(unapplied_repo: Path, tmp_path: Path) -> None:
    proc = run("xiva_source", "refresh", "C00001", "--repo", str(unapplied_repo), cwd=tmp_path)
    assert_short(proc, 2, "not applied", "make apply", max_lines=2)


def test_no_repository(capsys: pytest.CaptureFixture[str]) -> None:
    for module, argv in (("xiva_source", ["materialize"]), ("segmentation", ["sizes"])):
        proc = run_here(capsys, module, *argv)
        assert_short(proc, 2, "feature_store.yaml", "--repo", max_lines=2)


def test_unknown_customer(
    feast_env: FeastEnv,
    applied_feast_repo: Path,
    redis_ns: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = ["--repo", str(applied_feast_repo)]
    proc = run_here(capsys, "xiva_source", "refresh", "no-such-customer", *repo)
    assert_short(proc, 1, "no-such-customer", "fix:", max_lines=2)
    proc = run_here(capsys, "segmentation", "evaluate", "no-such-customer", *repo)
    assert_short(proc, 1, "No online features for customer 'no-such-customer'", max_lines=2)


@pytest.mark.usefixtures("subprocesses")
def test_options_after_the_command_and_console_prog(tmp_path: Path) -> None:
    proc = run("segmentation", "sizes", "--repo", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert_short(proc, 2, "python -m segmentation sizes: error:", "nowhere", max_lines=2)
    proc = run("xiva_source", cwd=tmp_path)
    assert proc.returncode == 2 and "usage: python -m xiva_source" in proc.stderr
    proc = run("xiva_source", "--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("python -m xiva_source ")
    script = Path(sys.executable).with_name("xiva-source")
    if script.exists():
        console = subprocess.run(
            [str(script)], capture_output=True, text=True, cwd=tmp_path, check=False
        )
        assert console.returncode == 2 and "usage: xiva-source" in console.stderr


@pytest.mark.usefixtures("subprocesses")
def test_a_closed_pipe_ends_the_command_quietly() -> None:
    """``segmentation list | head``: the reader is gone before the first line; no error."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the first write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "segmentation", "list", "--repo", str(ROOT / "feature_repo")],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""
