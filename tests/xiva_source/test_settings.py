"""Settings: kwargs > environment > .env > defaults, the .env found the way Feast runs, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from xiva_source.errors import ConfigurationError
from xiva_source.redaction import redact_url
from xiva_source.settings import (
    ENV_FILE_VARIABLE,
    DataSourceMode,
    MergeStrategy,
    Settings,
    find_env_file,
    load_settings,
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root (pyproject.toml, .env) with a feature_repo/ and the .env search enabled."""
    monkeypatch.delenv(ENV_FILE_VARIABLE, raising=False)
    root = tmp_path / "project"
    (root / "feature_repo").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "feature_repo" / "feature_store.yaml").write_text("project: x\n")
    (root / ".env").write_text("REDIS_URL=redis://127.0.0.1:6379/7\nXIVA_TIMEOUT=12\n")
    return root


def test_defaults_without_env_or_file() -> None:
    s = load_settings(env_file=None)
    assert s.xiva_api_base_url == "http://127.0.0.1:8765/api"
    assert s.feature_store_data_source is DataSourceMode.AUTO
    assert s.feature_store_merge_strategy is MergeStrategy.XIVA_FIRST
    assert s.redis_url is None
    assert s.online_ttl_seconds == 86400
    assert s.segments_dir is None
    assert s.env_file is None
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
        "SEGMENTS_DIR=/srv/segments\n"
    )
    s = load_settings(env_file=env)
    assert s.xiva_api_base_url == "https://xiva.example/api"
    assert s.xiva_api_username == "from-file"
    assert s.feature_store_data_source is DataSourceMode.DWH
    assert s.segments_dir == Path("/srv/segments")
    assert s.has_credentials
    assert s.env_file == env

    monkeypatch.setenv("XIVA_API_USERNAME", "from-env")
    assert load_settings(env_file=env).xiva_api_username == "from-env"
    assert load_settings(env_file=env, xiva_api_username="kw").xiva_api_username == "kw"
    assert load_settings(env_file=env, xiva_api_username=None).xiva_api_username == "from-env"


def test_environment_wins_over_the_discovered_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XIVA_TIMEOUT", "3")
    s = load_settings(repo_path=project / "feature_repo")
    assert s.xiva_timeout == 3.0 and s.redis_url == "redis://127.0.0.1:6379/7"


def test_env_found_from_the_working_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert load_settings().redis_url == "redis://127.0.0.1:6379/7"


def test_env_found_from_a_subdirectory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `cd feature_repo && feast materialize-incremental ...` reads the project root's .env.
    monkeypatch.chdir(project / "feature_repo")
    s = load_settings()
    assert s.redis_url == "redis://127.0.0.1:6379/7"
    assert s.env_file == project / ".env"


def test_env_found_above_repo_path_from_anywhere(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A notebook elsewhere opening FeatureStore(repo_path=...) reads the same values.
    elsewhere = tmp_path / "notebooks"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_settings(repo_path=project / "feature_repo").xiva_timeout == 12.0
    # The repository's feature_store.yaml works as well as its directory.
    yaml_path = project / "feature_repo" / "feature_store.yaml"
    assert find_env_file(yaml_path) == project / ".env"


def test_env_beside_repo_path_wins_over_the_one_above(project: Path) -> None:
    (project / "feature_repo" / ".env").write_text("XIVA_TIMEOUT=7\n")
    assert load_settings(repo_path=project / "feature_repo").xiva_timeout == 7.0


def test_search_stops_at_the_project_boundary(tmp_path: Path, project: Path) -> None:
    (tmp_path / ".env").write_text("XIVA_TIMEOUT=99\n")  # outside the project: never read
    (project / ".env").unlink()
    assert find_env_file(project / "feature_repo") is None
    assert load_settings(repo_path=project / "feature_repo").xiva_timeout == 30.0


def test_env_file_variable_and_argument_override_the_search(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "prod.env"
    other.write_text("XIVA_TIMEOUT=5\n")
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(other))
    assert load_settings(repo_path=project / "feature_repo").xiva_timeout == 5.0
    monkeypatch.setenv(ENV_FILE_VARIABLE, "none")
    assert load_settings(repo_path=project / "feature_repo").xiva_timeout == 30.0
    assert load_settings(repo_path=project / "feature_repo", env_file=other).xiva_timeout == 5.0
    assert load_settings(env_file=tmp_path / "missing.env").xiva_timeout == 30.0


@pytest.mark.parametrize(
    ("variable", "value", "fix"),
    [
        ("FEATURE_STORE_DATA_SOURCE", "foo", "one of xiva, dwh, auto"),
        ("FEATURE_STORE_MERGE_STRATEGY", "both", "one of xiva_first, dwh_first"),
        ("XIVA_TIMEOUT", "abc", "a number"),
        ("XIVA_MAX_WORKERS", "0", "a whole number (>= 1)"),
        ("ONLINE_TTL_SECONDS", "-5", "a whole number (>= 0)"),
    ],
)
def test_invalid_values_raise_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fix: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings(env_file=None)
    err = info.value
    assert err.exit_code == 2 and err.setting == variable
    assert variable in err.problem and repr(value) in err.problem
    assert variable in err.fix and fix in err.fix


def test_invalid_values_in_the_file_name_it(project: Path) -> None:
    (project / ".env").write_text("XIVA_TIMEOUT=soon\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(repo_path=project / "feature_repo")
    assert "XIVA_TIMEOUT='soon'" in info.value.problem
    assert str(project / ".env") in info.value.fix


def test_invalid_secret_values_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(env_file=None, xiva_api_password=12345678, dwh_url=42)
    assert "12345678" not in str(info.value) and "XIVA_API_PASSWORD" in str(info.value)
    monkeypatch.setenv("ONLINE_TTL_SECONDS", "x")
    monkeypatch.setenv("DWH_URL", "postgresql://etl:dwh-secret@db/dwh")
    with pytest.raises(ConfigurationError) as info:
        load_settings(env_file=None)
    assert "dwh-secret" not in str(info.value)


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XIVA_API_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("DWH_URL", "postgresql+psycopg://etl:dwh-secret@db:5432/dwh")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-secret@cache:6379/0")
    s = load_settings(env_file=None)
    for text in (repr(s), str(s), str(s.redacted()), str(s.model_dump()), s.model_dump_json()):
        assert "hunter2-very-secret" not in text
        assert "dwh-secret" not in text and "redis-secret" not in text
    assert s.redacted()["dwh_url"] == "postgresql+psycopg://etl:***@db:5432/dwh"
    # The values themselves are intact for the code that connects.
    assert s.xiva_api_password is not None
    assert s.xiva_api_password.get_secret_value() == "hunter2-very-secret"
    assert "dwh-secret" in s.dwh_url


def test_with_overrides_keeps_everything_else() -> None:
    s = load_settings(
        env_file=None, dwh_url="postgresql://u:pw@h/db", xiva_api_password="pw", xiva_timeout=4
    )
    copy = s.with_overrides(xiva_timeout=9, redis_url=None)
    assert copy.xiva_timeout == 9.0 and copy.dwh_url == "postgresql://u:pw@h/db"
    assert copy.xiva_api_password is not None
    assert copy.xiva_api_password.get_secret_value() == "pw"
    with pytest.raises(ConfigurationError, match="XIVA_TIMEOUT"):
        s.with_overrides(xiva_timeout="never")


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValueError):
        s.xiva_timeout = 1.0  # type: ignore[misc]


def test_redact_url_leaves_passwordless_urls() -> None:
    assert redact_url("sqlite:///data/dwh.sqlite") == "sqlite:///data/dwh.sqlite"
    assert redact_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
