"""Settings from the environment or a ``.env`` file, found the way users run Feast.

Settings are loaded once at an entry point (a CLI command, a Feast plugin entry method, a public
Python API function called without settings) with :func:`load_settings` and passed down as a
:class:`Settings` argument. Precedence: keyword overrides > process environment > ``.env`` file >
defaults.

Which ``.env`` (:func:`find_env_file`): the ``env_file`` argument when given, else the file the
``FEATURE_STORE_ENV_FILE`` environment variable names, else the first ``.env`` found beside and
above ``repo_path`` when one is given (a notebook anywhere opening ``FeatureStore(repo_path=...)``),
else the first found from the working directory upward (``cd feature_repo && feast ...`` finds the
project root's ``.env``). The upward search stops at the project boundary: the first directory
holding ``pyproject.toml`` or ``.git``.

Secrets from files (the Docker and Kubernetes convention): every setting in
:attr:`Settings.file_fields` (``XIVA_API_PASSWORD``, ``REDIS_URL``, ``DWH_URL``,
``XIVA_API_BASE_URL``) can instead be read from the file ``<SETTING>_FILE`` names, in the
environment or the ``.env`` file (:func:`read_secret_file`). The file's content is the value (one
trailing newline dropped) and is masked like the setting itself.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from xiva_source.errors import ConfigurationError
from xiva_source.redaction import redact_url, register_secret, register_url_secret

__all__ = [
    "DEFAULT_DWH_STATEMENT_TIMEOUT",
    "ENV_FILE_VARIABLE",
    "FILE_SUFFIX",
    "DataSourceMode",
    "MergeStrategy",
    "RedisType",
    "Settings",
    "dwh_statement_timeout",
    "find_env_file",
    "load_settings",
    "read_secret_file",
]

ENV_FILE_VARIABLE: Final = "FEATURE_STORE_ENV_FILE"
"""Environment variable naming the ``.env`` file to read (``none``: read no file; empty: search)."""

FILE_SUFFIX: Final = "_FILE"
"""``<SETTING>_FILE`` names a file holding the setting's value (``REDIS_URL_FILE``)."""

DEFAULT_DWH_STATEMENT_TIMEOUT: Final = 60.0
"""``DWH_STATEMENT_TIMEOUT_SECONDS`` unless set."""

_dwh_statement_timeout = DEFAULT_DWH_STATEMENT_TIMEOUT


def dwh_statement_timeout() -> float:
    """``DWH_STATEMENT_TIMEOUT_SECONDS`` of the settings this process loaded last (the default
    before any): what every new DWH connection applies (0: no limit)."""
    return _dwh_statement_timeout


_PROJECT_MARKERS: Final = ("pyproject.toml", ".git")
_MASK: Final = "**********"


class _Discover:
    """Sentinel type: find the ``.env`` file (see :func:`find_env_file`)."""

    def __repr__(self) -> str:
        return "DISCOVER"


DISCOVER: Final = _Discover()


class DataSourceMode(StrEnum):
    """Where ``customer_features`` reads from (``FEATURE_STORE_DATA_SOURCE``)."""

    XIVA = "xiva"
    DWH = "dwh"
    AUTO = "auto"


class MergeStrategy(StrEnum):
    """Which source wins per customer and feature in ``auto`` mode."""

    XIVA_FIRST = "xiva_first"
    DWH_FIRST = "dwh_first"


class RedisType(StrEnum):
    """``REDIS_TYPE``: how ``REDIS_URL`` is deployed (the values of Feast's ``redis_type``)."""

    REDIS = "redis"
    REDIS_CLUSTER = "redis_cluster"
    REDIS_SENTINEL = "redis_sentinel"


DEFAULT_DWH_URL = "sqlite:///data/dwh.sqlite"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


class Settings(BaseSettings):
    """The project's settings; field names are the environment variables, lower-cased.

    Build it with :func:`load_settings` (which finds the ``.env`` file and turns invalid values
    into :class:`~xiva_source.errors.ConfigurationError`); constructing it directly reads only the
    environment and the keyword arguments.
    """

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, env_file=None, validate_default=True
    )

    secret_fields: ClassVar[frozenset[str]] = frozenset({"xiva_api_password"})
    url_fields: ClassVar[frozenset[str]] = frozenset({"xiva_api_base_url", "dwh_url", "redis_url"})
    file_fields: ClassVar[frozenset[str]] = secret_fields | url_fields
    """Settings that may come from the file ``<SETTING>_FILE`` names (Docker/Kubernetes secrets)."""

    xiva_api_base_url: str = "http://127.0.0.1:8765/api"
    """Base URL of the Xiva API, without trailing slash (``XIVA_API_BASE_URL``)."""
    xiva_api_username: str | None = None
    """Xiva user name or e-mail (``XIVA_API_USERNAME``)."""
    xiva_api_password: SecretStr | None = None
    """Xiva password (``XIVA_API_PASSWORD``); a SecretStr so it never prints."""
    xiva_requests_per_second: float = Field(default=10.0, ge=0)
    """Request rate shared by all workers of a deployment (``XIVA_REQUESTS_PER_SECOND``)."""
    xiva_max_retry_after: float = Field(default=120.0, ge=0)
    """Longest ``Retry-After`` waited; longer fails fast (``XIVA_MAX_RETRY_AFTER``)."""
    xiva_retry_budget: float = Field(default=300.0, ge=0)
    """Total seconds one call may spend retrying before it fails (``XIVA_RETRY_BUDGET``)."""
    xiva_timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for one HTTP response (``XIVA_TIMEOUT``)."""
    xiva_request_deadline_seconds: float = Field(default=120.0, gt=0)
    """Deadline of a whole request, body included (``XIVA_REQUEST_DEADLINE_SECONDS``)."""
    xiva_connect_attempts: int = Field(default=3, ge=1)
    """Attempts of a call getting no response at all (``XIVA_CONNECT_ATTEMPTS``)."""
    xiva_breaker_failures: int = Field(default=5, ge=1)
    """Calls in a row without a response that open the breaker (``XIVA_BREAKER_FAILURES``)."""
    xiva_breaker_cooldown_seconds: float = Field(default=30.0, ge=0)
    """Seconds an open breaker waits to probe (``XIVA_BREAKER_COOLDOWN_SECONDS``)."""
    xiva_run_deadline_seconds: float = Field(default=0.0, ge=0)
    """A Xiva pull stops cleanly after this; 0: never (``XIVA_RUN_DEADLINE_SECONDS``)."""
    xiva_max_workers: int = Field(default=8, ge=1)
    """Concurrent 360-view fetches during a pull (``XIVA_MAX_WORKERS``)."""
    xiva_pull_overlap_seconds: float = Field(default=900.0, ge=0)
    """How far back an incremental Xiva pull re-reads (``XIVA_PULL_OVERLAP_SECONDS``)."""
    dwh_lookback_seconds: float = Field(default=21600.0, ge=0)
    """An incremental DWH read starts this far before its watermark (``DWH_LOOKBACK_SECONDS``)."""
    xiva_redis_prefix: str = "xiva"
    """Prefix of the client's Redis keys: shared rate and usage counters (``XIVA_REDIS_PREFIX``)."""
    dwh_url: str = DEFAULT_DWH_URL
    """SQLAlchemy URL of the data warehouse (``DWH_URL``)."""
    dwh_statement_timeout_seconds: float = Field(default=DEFAULT_DWH_STATEMENT_TIMEOUT, ge=0)
    """Longest a DWH statement (or a wait for a table's lock) may take; 0: no limit
    (``DWH_STATEMENT_TIMEOUT_SECONDS``). Applied to every PostgreSQL connection of the process
    (:func:`dwh_statement_timeout`)."""
    redis_url: str | None = None
    """Redis URL: online store, shared request rate and usage counters (``REDIS_URL``)."""
    redis_type: RedisType = RedisType.REDIS
    """``redis`` | ``redis_cluster`` | ``redis_sentinel`` (``REDIS_TYPE``), as Feast's."""
    redis_sentinel_master: str = "mymaster"
    """Name of the primary the sentinels watch, with ``REDIS_TYPE=redis_sentinel``."""
    redis_tls_ca_file: Path | None = None
    """PEM file of the CA(s) that signed Redis's certificate, with ``rediss://``
    (``REDIS_TLS_CA_FILE``); ``None``: the system's trust store."""
    redis_tls_cert_file: Path | None = None
    """Client certificate (PEM) for mutual TLS with Redis (``REDIS_TLS_CERT_FILE``)."""
    redis_tls_key_file: Path | None = None
    """The client certificate's private key (PEM) (``REDIS_TLS_KEY_FILE``)."""
    segments_global_control: float = Field(default=0.0, ge=0, lt=1)
    """Share of all customers kept out of every segment's target (``SEGMENTS_GLOBAL_CONTROL``)."""
    feature_store_data_source: DataSourceMode = DataSourceMode.AUTO
    """``xiva`` | ``dwh`` | ``auto`` (``FEATURE_STORE_DATA_SOURCE``)."""
    feature_store_merge_strategy: MergeStrategy = MergeStrategy.XIVA_FIRST
    """In ``auto`` mode: ``xiva_first`` | ``dwh_first`` (``FEATURE_STORE_MERGE_STRATEGY``)."""
    online_ttl_seconds: int = Field(default=86400, ge=0)
    """Seconds an entity's online values live without a successful run (``ONLINE_TTL_SECONDS``)."""
    segments_dir: Path | None = None
    """Directory of segment files (``SEGMENTS_DIR``); ``None``: the shipped examples."""
    materialize_fail_on_fallback: bool = False
    """A run that fell back to one source exits 1, not 3 (``MATERIALIZE_FAIL_ON_FALLBACK``)."""
    metrics_textfile: Path | None = None
    """Prometheus textfile every materialization run rewrites (``METRICS_TEXTFILE``)."""

    _env_file: Path | None = PrivateAttr(default=None)

    @field_validator("xiva_api_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator(
        "feature_store_data_source", "feature_store_merge_strategy", "redis_type", mode="before"
    )
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "xiva_api_username",
        "xiva_api_password",
        "redis_url",
        "segments_dir",
        "redis_tls_ca_file",
        "redis_tls_cert_file",
        "redis_tls_key_file",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments > environment > ``.env`` > defaults; each of the two layers also
        reads the ``<SETTING>_FILE`` variables it holds (:class:`_WithSecretFiles`)."""
        return (
            init_settings,
            _WithSecretFiles(settings_cls, env_settings, "the environment"),
            _WithSecretFiles(settings_cls, dotenv_settings, "the .env file"),
        )

    @model_validator(mode="after")
    def _publish_statement_timeout(self) -> Settings:
        # Connections opened from now on (xiva_source.dwh.engine) take it: the engines are per
        # URL and process, not per Settings.
        global _dwh_statement_timeout
        _dwh_statement_timeout = self.dwh_statement_timeout_seconds
        return self

    @model_validator(mode="after")
    def _register_secrets(self) -> Settings:
        # Masked by value from now on in every text redact() cleans, whatever a server echoes.
        if self.xiva_api_password is not None:
            register_secret(self.xiva_api_password.get_secret_value())
        for name in sorted(self.url_fields):
            register_url_secret(getattr(self, name))
        return self

    @field_serializer("xiva_api_base_url", "dwh_url", "redis_url")
    def _serialize_url(self, value: str | None) -> str | None:
        # URLs may embed passwords (DWH_URL, REDIS_URL): a dump is as safe to print as a repr.
        return redact_url(value) if value is not None else None

    @field_serializer("xiva_api_password")
    def _serialize_secret(self, value: SecretStr | None) -> str | None:
        return _MASK if value is not None else None

    @property
    def has_credentials(self) -> bool:
        """True when both a Xiva user name and password are configured."""
        return bool(self.xiva_api_username) and self.xiva_api_password is not None

    @property
    def env_file(self) -> Path | None:
        """The ``.env`` file these settings were read from, if any."""
        return self._env_file

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with some fields replaced (validated; ``None`` values are ignored).

        Raises:
            ConfigurationError: An override does not parse.
        """
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            copy = type(self).model_validate(values)
        except ValidationError as e:
            raise _configuration_error(e, self._env_file) from e
        copy._env_file = self._env_file
        return copy

    def __repr_args__(self) -> Any:
        return list(self.redacted().items())

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict safe to print: secrets and URL passwords masked."""
        return self.model_dump(mode="json")


class _WithSecretFiles(PydanticBaseSettingsSource):
    """One settings layer (the environment, or the ``.env`` file) plus the files its
    ``<SETTING>_FILE`` variables name, for the fields in :attr:`Settings.file_fields`.

    Setting both ``REDIS_URL`` and ``REDIS_URL_FILE`` in the same layer is an error (which one
    was meant?); a higher layer still wins over a lower one, whichever form each uses.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource, where: str
    ) -> None:
        super().__init__(settings_cls)
        self._inner = inner
        self._where = where

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` asks the wrapped layer (the base class requires it)."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = self._inner()
        variables: dict[str, Any] = getattr(self._inner, "env_vars", {})
        file_fields: frozenset[str] = getattr(self.settings_cls, "file_fields", frozenset())
        for name in sorted(file_fields):
            path = variables.get(f"{name}{FILE_SUFFIX}".lower())
            if not path or not str(path).strip():
                continue
            variable = name.upper()
            if str(data.get(name) or "").strip():
                raise ConfigurationError(
                    f"both {variable} and {variable}{FILE_SUFFIX} are set in {self._where}",
                    f"Set only one of them: {variable}{FILE_SUFFIX} names a file holding the "
                    f"value, {variable} is the value itself.",
                    setting=f"{variable}{FILE_SUFFIX}",
                )
            data[name] = read_secret_file(variable, str(path).strip())
        return data


def read_secret_file(variable: str, path: str | os.PathLike[str]) -> str:
    """The value of ``variable`` read from the file ``<variable>_FILE`` names.

    The content is the value, one trailing newline (``\\n`` or ``\\r\\n``) dropped, as
    ``echo secret > file`` and Kubernetes secrets write it. Permissions are not checked: Docker
    secrets are mode 0444 and Kubernetes mounts them 0644 by default, readable only inside the
    container; restrict the file on a shared host yourself.

    Args:
        variable: The setting's environment variable (``REDIS_URL``), for the error.
        path: The file.

    Returns:
        The value (its registration for masking is the settings' job: like the setting itself).

    Raises:
        ConfigurationError: The file is missing, unreadable, not UTF-8 or empty; the message
            names the variable and the path, never the content.
    """
    file = Path(path).expanduser()
    name = f"{variable}{FILE_SUFFIX}"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigurationError(
            f"{name} names {str(file)!r}, which does not exist",
            f"Mount the secret at that path or set {name} to the file that holds {variable}.",
            setting=name,
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ConfigurationError(
            f"{name} names {str(file)!r}, which cannot be read ({reason})",
            f"Make the file a readable UTF-8 text file for this user, or point {name} at one.",
            setting=name,
        ) from e
    value = text.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise ConfigurationError(
            f"{name} names {str(file)!r}, which is empty",
            f"Write {variable}'s value into the file, or unset {name}.",
            setting=name,
        )
    return value


def find_env_file(repo_path: str | os.PathLike[str] | None = None) -> Path | None:
    """The ``.env`` file :func:`load_settings` reads when not told which.

    Args:
        repo_path: The Feast repository (directory, or its ``feature_store.yaml``); the search
            starts there. ``None``: from the working directory.

    Returns:
        The file named by ``FEATURE_STORE_ENV_FILE`` (``None`` if it is ``none``),
        else the first ``.env`` file found from the start directory upward, stopping after the
        first directory that holds ``pyproject.toml`` or ``.git``; ``None`` when there is none.
    """
    named = os.environ.get(ENV_FILE_VARIABLE, "").strip()
    if named:
        return None if named.lower() == "none" else Path(named).expanduser()
    start = Path(repo_path).expanduser() if repo_path is not None else Path.cwd()
    start = start.resolve()
    if start.is_file():
        start = start.parent
    for directory in (start, *start.parents):
        candidate = directory / ".env"
        if candidate.is_file():
            return candidate
        if any((directory / marker).exists() for marker in _PROJECT_MARKERS):
            return None
    return None


def load_settings(
    *,
    repo_path: str | os.PathLike[str] | None = None,
    env_file: str | os.PathLike[str] | _Discover | None = DISCOVER,
    **overrides: Any,
) -> Settings:
    """Read settings from ``overrides``, the environment, then a ``.env`` file, then the defaults.

    Args:
        repo_path: The Feast repository the caller works on; the ``.env`` is looked for beside and
            above it (see :func:`find_env_file`). ``None``: from the working directory upward.
        env_file: A dotenv file to read instead of searching (a missing file is fine); ``None``
            reads no file.
        **overrides: Field values that win over everything else (``None`` values are ignored).

    Returns:
        The frozen :class:`Settings`.

    Raises:
        ConfigurationError: A value does not parse (e.g. ``FEATURE_STORE_DATA_SOURCE=foo``); the
            message names the variable, the bad value (secrets masked) and the fix. Exit code 2.
    """
    if isinstance(env_file, _Discover):
        path = find_env_file(repo_path)
    else:
        path = Path(env_file).expanduser() if env_file is not None else None
    if path is not None and not path.is_file():
        path = None
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(_env_file=path, **given)  # type: ignore[call-arg]
    except ValidationError as e:
        raise _configuration_error(e, path) from e
    settings._env_file = path
    return settings


def _configuration_error(error: ValidationError, env_file: Path | None) -> ConfigurationError:
    """A ValidationError as the CLI's short message: variable, masked value, fix."""
    problems: list[str] = []
    fixes: list[str] = []
    first: str | None = None
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        variable = field.upper() or "a setting"
        first = first or variable
        value = _shown_value(field, item.get("input"))
        problems.append(f"{variable}={value} is invalid: {item['msg']}")
        fixes.append(f"set {variable} to {_expected(field)}")
    where = (
        f" in the environment or in {env_file}"
        if env_file is not None
        else " in the environment or .env"
    )
    return ConfigurationError("; ".join(problems), "; ".join(fixes) + where, setting=first)


def _shown_value(field: str, value: Any) -> str:
    if field in Settings.secret_fields:
        return _MASK
    text = value if isinstance(value, str) else repr(value)
    if field in Settings.url_fields:
        text = redact_url(text)
    return repr(text) if isinstance(value, str) else text


def _expected(field: str) -> str:
    info = Settings.model_fields.get(field)
    annotation = info.annotation if info is not None else None
    if annotation is DataSourceMode or annotation is MergeStrategy:
        return "one of " + ", ".join(m.value for m in annotation)
    if annotation in (float, int):
        kind = "a number" if annotation is float else "a whole number"
        metadata = info.metadata if info is not None else []
        bounds = [
            f"{symbol} {getattr(m, op)}"
            for m in metadata
            for op, symbol in (("gt", ">"), ("ge", ">="))
            if getattr(m, op, None) is not None
        ]
        return kind + (f" ({', '.join(bounds)})" if bounds else "")
    return "a valid value"
