"""The online store config: bound to the repository's settings, never to a default Redis (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from feast.repo_config import RepoConfig

from xiva_source.errors import ConfigurationError
from xiva_source.feast_plugin.online_store import (
    LoyaltyRedisOnlineStoreConfig,
    _feast_to_url,
    bind_online_config,
    online_redis_client,
    redis_url_to_feast,
)
from xiva_source.settings import load_settings

_TYPE = "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore"


def _repo_config(tmp_path: Path, **online: object) -> RepoConfig:
    config = RepoConfig(
        project="p",
        registry=str(tmp_path / "registry.db"),
        provider="local",
        offline_store={"type": "xiva_source.feast_plugin.offline_store.LoyaltyOfflineStore"},
        online_store={"type": _TYPE, **online},
    )
    config.repo_path = tmp_path
    return config


def test_redis_url_translation() -> None:
    assert redis_url_to_feast("redis://127.0.0.1:6379") == "127.0.0.1:6379"
    assert redis_url_to_feast("redis://:p%40ss@cache:6380/2") == "cache:6380,db=2,password=p@ss"
    # TLS: verification stated, not left to redis-py's defaults.
    assert redis_url_to_feast("rediss://bob:pw@h/0") == (
        "h:6379,db=0,username=bob,password=pw,ssl=true,ssl_cert_reqs=required,"
        "ssl_check_hostname=true"
    )
    with pytest.raises(ValueError, match="redis://"):
        redis_url_to_feast("http://h:6379")
    with pytest.raises(ValueError, match="contains ','") as info:
        redis_url_to_feast("redis://:a,b@h:1")
    assert "a,b" not in str(info.value)


def test_feast_connection_strings_translate_back_to_urls() -> None:
    for url in ("redis://h:1/0", "redis://:p%40ss@cache:6380/2", "rediss://bob:pw@h:6379/0"):
        assert _feast_to_url(redis_url_to_feast(url)) == url
    assert _feast_to_url("h:1,socket_timeout=3") is None  # Feast's builder handles the rest
    assert _feast_to_url("h1:1,h2:2") is None


def test_the_config_reads_no_settings_until_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@10.0.0.5:6390/3")
    monkeypatch.setenv("ONLINE_TTL_SECONDS", "600")
    config = _repo_config(tmp_path)
    online = config.online_store
    assert isinstance(online, LoyaltyRedisOnlineStoreConfig)
    # Feast validated the config before it knew repo_path: nothing may be resolved yet, and
    # nothing defaults to a Redis of its own (the silent writes to db 0).
    assert not online.bound and online.connection_string is None
    assert bind_online_config(config) is online
    assert online.bound
    assert online.connection_string == "10.0.0.5:6390,db=3,password=hunter2"
    assert online.key_ttl_seconds == 600
    assert online.redis_url() == "redis://:hunter2@10.0.0.5:6390/3"
    assert "hunter2" not in repr(online) and "hunter2" not in repr(config)
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:1/0")
    bind_online_config(config)  # once per config
    assert online.connection_string == "10.0.0.5:6390,db=3,password=hunter2"


def test_the_repository_env_file_is_found_beside_the_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FEATURE_STORE_ENV_FILE")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".env").write_text("REDIS_URL=redis://from-dotenv:6380/4\nONLINE_TTL_SECONDS=0\n")
    repo = tmp_path / "feature_repo"
    repo.mkdir()
    online = bind_online_config(_repo_config(repo))  # the cwd is elsewhere (conftest)
    assert online.connection_string == "from-dotenv:6380,db=4"
    assert online.key_ttl_seconds is None  # 0: no expiry


def test_values_set_in_the_yaml_win_and_settings_can_be_passed(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, redis_url="redis://s:1/1", online_ttl_seconds=5)
    explicit = bind_online_config(
        _repo_config(tmp_path, connection_string="h:1", key_ttl_seconds=None), settings
    )
    assert (explicit.connection_string, explicit.key_ttl_seconds) == ("h:1", None)
    assert explicit.redis_url() == "redis://h:1/0"
    partial = bind_online_config(_repo_config(tmp_path, key_ttl_seconds=7), settings)
    assert (partial.connection_string, partial.key_ttl_seconds) == ("s:1,db=1", 7)


def test_a_bad_redis_url_is_a_configuration_error(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, redis_url="http://:pw@h:1")
    with pytest.raises(ConfigurationError) as info:
        online_redis_client(_repo_config(tmp_path), settings)
    assert info.value.setting == "REDIS_URL" and info.value.exit_code == 2
    assert "redis://" in info.value.problem and "pw" not in str(info.value)


def test_clients_come_from_the_bound_url(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, redis_url="redis://:pw@10.1.2.3:6390/5")
    client = online_redis_client(_repo_config(tmp_path), settings)
    assert isinstance(client, redis.Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "10.1.2.3",
        6390,
        5,
        "pw",
    )
    sqlite = RepoConfig(
        project="p", registry=str(tmp_path / "r.db"), provider="local", online_store="sqlite"
    )
    assert online_redis_client(sqlite, settings) is None
