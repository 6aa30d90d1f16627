"""The command-line conventions, without any service: parsing, exit statuses, the boundary."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from xiva_source.cli import main, segmentation_main, simulator_main
from xiva_source.cli.boundary import guard, translate
from xiva_source.cli.segmentation import TREE as SEGMENTATION
from xiva_source.cli.xiva import TREE as XIVA
from xiva_source.errors import ConfigurationError, LoyaltyError


@pytest.mark.parametrize(
    "argv",
    [
        ["--repo", "elsewhere", "--debug", "materialize", "--full"],
        ["materialize", "--repo", "elsewhere", "--full", "--debug"],
        ["--debug", "materialize", "--repo", "elsewhere", "--full"],
    ],
)
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    args = XIVA.parser().parse_args(argv)
    assert args.command == "materialize" and args.repo == "elsewhere"
    assert args.debug is True and args.full is True


def test_defaults_when_no_global_option_is_given() -> None:
    args = XIVA.parser().parse_args(["usage"])
    assert args.repo == "feature_repo" and args.debug is False and args.log_level == "WARNING"
    args = SEGMENTATION.parser().parse_args(["sizes", "--segments-dir", "d", "--max-age", "5"])
    assert args.segments_dir == "d" and args.max_age.total_seconds() == 5
    args = SEGMENTATION.parser().parse_args(["--max-age", "none", "sizes"])
    assert args.max_age == "none" and args.segments_dir is None


@pytest.mark.parametrize(
    ("entry", "prog"),
    [(main, "xiva-source"), (segmentation_main, "segmentation")],
)
def test_no_command_is_a_usage_error(
    entry: object, prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert entry([]) == 2  # type: ignore[operator]
    err = capsys.readouterr().err
    assert f"usage: {prog}" in err and "a command is required" in err


def test_help_version_and_prog_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: xiva-source")
    for name in ("usage", "materialize", "refresh", "demo", "simulator"):
        assert name in out
    assert "(default: feature_repo)" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("xiva-source ")
    assert main(["materialize", "--version"]) == 0
    assert capsys.readouterr().out.startswith("xiva-source materialize ")
    assert main(["--help"], prog="python -m xiva_source") == 0
    assert capsys.readouterr().out.startswith("usage: python -m xiva_source")
    assert segmentation_main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("segmentation ")
    assert simulator_main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("python -m xiva_source.simulator ")


def test_every_subcommand_has_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    for tree in (XIVA, SEGMENTATION):
        for command in tree.commands:
            assert command.help and len(command.description) > 40
            assert tree.main([command.name, "--help"]) == 0
            out = capsys.readouterr().out
            assert command.description.split()[0] in out and "--repo" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["materialize", "--end-date", "yesterday"],
        ["usage", "--hours", "0"],
        ["demo", "--customers", "many"],
        ["simulator", "--user", "no-colon"],
        ["simulator", "--fault-kinds", "429,teapot"],
        ["--log-level", "LOUD", "usage"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err


def test_segmentation_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert segmentation_main(["--max-age", "soon", "sizes"]) == 2
    assert "--max-age" in capsys.readouterr().err
    assert segmentation_main(["evaluate"]) == 2


def test_bad_setting_is_a_short_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", "foo")
    assert main(["usage"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "xiva-source usage: error: FEATURE_STORE_DATA_SOURCE='foo' is invalid: "
        "Input should be 'xiva', 'dwh' or 'auto'",
        "  fix: set FEATURE_STORE_DATA_SOURCE to one of xiva, dwh, auto in the environment or .env",
    ]


def test_missing_repository_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert segmentation_main(["sizes"]) == 2  # the working directory has no feature_repo
    assert "No Feast repository at 'feature_repo'" in capsys.readouterr().err
    assert main(["refresh", "C1", "--repo", str(tmp_path)]) == 2
    assert "no feature_store.yaml" in capsys.readouterr().err


def test_simulator_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulator_main(["--customers", "-1", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--customers" in err and "Traceback" not in err


def _boom(error: BaseException) -> int:
    raise error


def test_boundary_prints_problem_and_fix_and_exits_with_the_code() -> None:
    out = io.StringIO()
    code = guard(
        lambda: _boom(ConfigurationError("X is wrong", "set X")), label="p c", debug=False,
        stream=out,
    )  # fmt: skip
    assert code == 2
    assert out.getvalue() == "p c: error: X is wrong\n  fix: set X\n"


def test_boundary_unexpected_error_one_line_and_debug_traceback() -> None:
    out = io.StringIO()
    code = guard(lambda: _boom(RuntimeError("odd\nsecond line")), label="p c", debug=False,
                 stream=out)  # fmt: skip
    assert code == 1
    assert out.getvalue().splitlines() == [
        "p c: unexpected error: RuntimeError: odd",
        "  run with --debug for the traceback",
    ]
    out = io.StringIO()
    assert guard(lambda: _boom(RuntimeError("odd")), label="p c", debug=True, stream=out) == 1
    assert "Traceback" in out.getvalue() and "--debug" not in out.getvalue()


def test_boundary_translates_redis_and_finds_causes() -> None:
    import redis

    from xiva_source.feast_plugin.errors import OnlineStoreError

    error = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1.")
    translated = translate(error)
    assert isinstance(translated, OnlineStoreError) and "REDIS_URL" in translated.fix
    try:
        try:
            raise LoyaltyError("inner", "do this")
        except LoyaltyError as inner:
            raise RuntimeError("wrapper") from inner
    except RuntimeError as outer:
        found = translate(outer)
    assert found is not None and found.problem == "inner"
    assert translate(ValueError("plain")) is None


@pytest.mark.parametrize(
    ("run", "argv", "suggestion"),
    [
        (main, ["stauts"], "did you mean 'status'?"),
        (main, ["dwh", "int"], "did you mean 'init'?"),
        (segmentation_main, ["valdate"], "did you mean 'validate'?"),
    ],
)
def test_a_mistyped_command_gets_did_you_mean(
    run: Callable[[list[str]], int],
    argv: list[str],
    suggestion: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(argv) == 2
    assert capsys.readouterr().err.rstrip().endswith(suggestion)


def test_nothing_close_gets_no_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zzz"]) == 2
    assert "did you mean" not in capsys.readouterr().err


def test_a_closed_pipe_is_not_an_error() -> None:
    def write() -> int:
        raise BrokenPipeError(32, "Broken pipe")  # what print() raises when `head` has exited

    err = io.StringIO()
    assert guard(write, label="xiva-source status", debug=False, stream=err) == 141
    assert err.getvalue() == ""
