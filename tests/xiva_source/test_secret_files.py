"""Secrets from files: every secret setting read from the file ``<SETTING>_FILE`` names (the
Docker and Kubernetes convention), in the environment or the ``.env``; masked like the setting;
a missing or empty file is a configuration error naming the variable and the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from xiva_source.cli import main as xiva_main
from xiva_source.errors import ConfigurationError
from xiva_source.redaction import redact
from xiva_source.settings import Settings, load_settings

VALUES = {
    "xiva_api_password": "Xiva-File-Secret-71",
    "redis_url": "redis://loyalty-job:Redis-File-Secret-72@redis.internal:6380/0",
    "dwh_url": "postgresql+psycopg://loyalty:Dwh-File-Secret-73@dwh.internal:5432/dwh",
    "xiva_api_base_url": "https://bss:Base-File-Secret-74@xiva.internal/api",
}
SECRETS = {
    "xiva_api_password": "Xiva-File-Secret-71",
    "redis_url": "Redis-File-Secret-72",
    "dwh_url": "Dwh-File-Secret-73",
    "xiva_api_base_url": "Base-File-Secret-74",
}


def test_every_secret_setting_has_a_file_form() -> None:
    assert set(VALUES) == set(Settings.file_fields)


@pytest.mark.parametrize("field", sorted(VALUES))
def test_each_setting_is_read_from_its_file_and_masked(
    field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / field
    secret_file.write_text(VALUES[field] + "\n")  # as `echo value > file` writes it
    monkeypatch.setenv(f"{field.upper()}_FILE", str(secret_file))
    settings = load_settings(env_file=None)
    value = getattr(settings, field)
    shown = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    assert shown == VALUES[field]  # one trailing newline dropped
    # Registered for masking like the setting itself, wherever it would be printed.
    assert SECRETS[field] not in redact(f"server said: {SECRETS[field]}")
    assert SECRETS[field] not in repr(settings)
    assert SECRETS[field] not in str(settings.redacted())


def test_the_dotenv_file_may_name_the_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "dwh-url"
    secret_file.write_text(VALUES["dwh_url"])
    env = tmp_path / ".env"
    env.write_text(f"DWH_URL_FILE={secret_file}\n")
    assert load_settings(env_file=env).dwh_url == VALUES["dwh_url"]


def test_the_environment_wins_over_the_dotenv_whichever_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "redis-url"
    secret_file.write_text("redis://from-file:6379/0")
    env = tmp_path / ".env"
    env.write_text("REDIS_URL=redis://from-dotenv:6379/0\n")
    monkeypatch.setenv("REDIS_URL_FILE", str(secret_file))
    assert load_settings(env_file=env).redis_url == "redis://from-file:6379/0"
    # keyword overrides win over both
    assert load_settings(env_file=env, redis_url="redis://kw:1/0").redis_url == "redis://kw:1/0"


def test_both_forms_in_one_place_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("Xiva-File-Secret-71")
    monkeypatch.setenv("XIVA_API_PASSWORD", "Env-Secret-99")
    monkeypatch.setenv("XIVA_API_PASSWORD_FILE", str(secret_file))
    with pytest.raises(ConfigurationError) as info:
        load_settings(env_file=None)
    assert "XIVA_API_PASSWORD and XIVA_API_PASSWORD_FILE" in info.value.problem
    assert "Env-Secret-99" not in str(info.value)
    assert "Xiva-File-Secret-71" not in str(info.value)


def test_a_missing_file_names_the_variable_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "run" / "secrets" / "redis-url"
    monkeypatch.setenv("REDIS_URL_FILE", str(missing))
    with pytest.raises(ConfigurationError) as info:
        load_settings(env_file=None)
    assert info.value.setting == "REDIS_URL_FILE"
    assert str(missing) in info.value.problem and "does not exist" in info.value.problem
    assert info.value.exit_code == 2


def test_an_empty_or_unreadable_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    monkeypatch.setenv("DWH_URL_FILE", str(empty))
    with pytest.raises(ConfigurationError, match="is empty"):
        load_settings(env_file=None)
    monkeypatch.setenv("DWH_URL_FILE", str(tmp_path))  # a directory
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_settings(env_file=None)


def test_a_bad_value_in_a_file_is_shown_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "redis-url"
    secret_file.write_text("redis://:Redis-File-Secret-72@h:6379/0")
    monkeypatch.setenv("REDIS_URL_FILE", str(secret_file))
    monkeypatch.setenv("REDIS_TYPE", "mongo")
    with pytest.raises(ConfigurationError) as info:
        load_settings(env_file=None)
    assert "REDIS_TYPE" in str(info.value)
    assert "Redis-File-Secret-72" not in str(info.value)


def test_the_cli_prints_error_and_fix_for_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XIVA_API_PASSWORD_FILE", str(tmp_path / "nope"))
    assert xiva_main(["usage"]) == 2
    err = capsys.readouterr().err
    assert "error: XIVA_API_PASSWORD_FILE names" in err
    assert "fix:" in err and "Traceback" not in err
