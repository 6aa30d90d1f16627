"""Settings: kwargs > environment > .env > defaults, and secrets never print."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from xiva_source.redaction import redact_url
from xiva_source.settings import DataSourceMode, MergeStrategy, load_settings


def test_defaults_without_env_or_file() -> None:
    s = load_settings(env_file=None)
    assert s.xiva_api_base_url == "http://127.0.0.1:8765/api"
    assert s.feature_store_data_source is DataSourceMode.AUTO
    assert s.feature_store_merge_strategy is MergeStrategy.XIVA_FIRST
    assert s.redis_url is None
    assert s.online_ttl_seconds == 86400
    assert not s.has_credentials


def test_env_file_then_environment_then_kwargs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "XIVA_API_BASE_URL=https://xiva.example/api/\n"
        "XIVA_API_USERNAME=from-file\n"
        "XIVA_API_PASSWORD=file-pass\n"
        "FEATURE_STORE_DATA_SOURCE=DWH\n"
    )
    s = load_settings(env_file=env)
    assert s.xiva_api_base_url == "https://xiva.example/api"
    assert s.xiva_api_username == "from-file"
    assert s.feature_store_data_source is DataSourceMode.DWH
    assert s.has_credentials

    monkeypatch.setenv("XIVA_API_USERNAME", "from-env")
    assert load_settings(env_file=env).xiva_api_username == "from-env"
    assert load_settings(env_file=env, xiva_api_username="kw").xiva_api_username == "kw"


def test_bad_mode_names_the_variable() -> None:
    with pytest.raises(ValidationError) as info:
        load_settings(env_file=None, feature_store_data_source="warehouse")
    assert "feature_store_data_source" in str(info.value)


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XIVA_API_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("DWH_URL", "postgresql+psycopg://etl:dwh-secret@db:5432/dwh")
    s = load_settings(env_file=None)
    for text in (repr(s), str(s), str(s.redacted())):
        assert "hunter2-very-secret" not in text
    assert "dwh-secret" not in str(s.redacted())
    assert "dwh-secret" not in repr(s)
    assert s.redacted()["dwh_url"] == "postgresql+psycopg://etl:***@db:5432/dwh"


def test_redact_url_leaves_passwordless_urls() -> None:
    assert redact_url("sqlite:///data/dwh.sqlite") == "sqlite:///data/dwh.sqlite"
    assert redact_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
