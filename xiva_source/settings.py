"""Settings from the environment or a ``.env`` file.

Every component (client, sources, offline store, materialization job, segmentation engine) reads its
configuration through :func:`load_settings`, so one ``.env`` file configures the whole project.
Precedence: explicit keyword arguments > process environment > ``.env`` file > defaults.
"""

from __future__ import annotations

import os
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from xiva_source.redaction import redact_url

__all__ = ["DataSourceMode", "MergeStrategy", "Settings", "load_settings"]


class DataSourceMode(StrEnum):
    """Where ``customer_features`` reads from (``FEATURE_STORE_DATA_SOURCE``)."""

    XIVA = "xiva"
    DWH = "dwh"
    AUTO = "auto"


class MergeStrategy(StrEnum):
    """Which source wins per customer and feature in ``auto`` mode."""

    XIVA_FIRST = "xiva_first"
    DWH_FIRST = "dwh_first"


DEFAULT_DWH_URL = "sqlite:///data/dwh.sqlite"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"


class Settings(BaseModel):
    """The project's settings; field names are the environment variables, lower-cased."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    xiva_api_base_url: str = "http://127.0.0.1:8765/api"
    """Base URL of the Xiva API, without trailing slash (``XIVA_API_BASE_URL``)."""
    xiva_api_username: str | None = None
    """Xiva user name or e-mail (``XIVA_API_USERNAME``)."""
    xiva_api_password: SecretStr | None = None
    """Xiva password (``XIVA_API_PASSWORD``); a SecretStr so it never prints."""
    xiva_requests_per_second: float = 10.0
    """Request rate shared by all workers of a deployment (``XIVA_REQUESTS_PER_SECOND``)."""
    xiva_max_retry_after: float = 120.0
    """Longest ``Retry-After`` waited; longer fails fast (``XIVA_MAX_RETRY_AFTER``)."""
    xiva_retry_budget: float = 300.0
    """Total seconds one call may spend retrying before it fails (``XIVA_RETRY_BUDGET``)."""
    xiva_timeout: float = 30.0
    """Seconds to wait for one HTTP response (``XIVA_TIMEOUT``)."""
    xiva_max_workers: int = 8
    """Concurrent 360-view fetches during a pull (``XIVA_MAX_WORKERS``)."""
    xiva_redis_prefix: str = "xiva"
    """Prefix of the client's Redis keys: shared rate and usage counters (``XIVA_REDIS_PREFIX``)."""
    dwh_url: str = DEFAULT_DWH_URL
    """SQLAlchemy URL of the data warehouse (``DWH_URL``)."""
    redis_url: str | None = None
    """Redis URL: online store, shared request rate and usage counters (``REDIS_URL``)."""
    feature_store_data_source: DataSourceMode = DataSourceMode.AUTO
    """``xiva`` | ``dwh`` | ``auto`` (``FEATURE_STORE_DATA_SOURCE``)."""
    feature_store_merge_strategy: MergeStrategy = MergeStrategy.XIVA_FIRST
    """In ``auto`` mode: ``xiva_first`` | ``dwh_first`` (``FEATURE_STORE_MERGE_STRATEGY``)."""
    online_ttl_seconds: int = Field(default=86400, ge=0)
    """Seconds an entity's online values live without a successful run (``ONLINE_TTL_SECONDS``)."""

    @field_validator("xiva_api_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("feature_store_data_source", "feature_store_merge_strategy", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("xiva_api_username", "xiva_api_password", "redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def has_credentials(self) -> bool:
        """True when both a Xiva user name and password are configured."""
        return bool(self.xiva_api_username) and self.xiva_api_password is not None

    def __repr_args__(self) -> Any:
        # URLs may embed passwords (DWH_URL, REDIS_URL): reprs show the redacted form.
        return list(self.redacted().items())

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict safe to print: secrets and URL passwords masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "**********"
            elif isinstance(value, str) and "://" in value:
                value = redact_url(value)
            elif isinstance(value, Enum):
                value = value.value
            out[name] = value
        return out


def load_settings(env_file: str | os.PathLike[str] | None = ".env", **overrides: Any) -> Settings:
    """Read settings from ``overrides``, the environment, then ``env_file``, then the defaults.

    Args:
        env_file: A dotenv file; a missing file is fine. ``None`` skips it.
        **overrides: Field values that win over everything else (``None`` values are ignored).

    Returns:
        The frozen :class:`Settings`.

    Raises:
        pydantic.ValidationError: A value does not parse (e.g. an unknown data-source mode);
            the message names the variable.
    """
    values: dict[str, Any] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k.lower(): v for k, v in dotenv_values(env_file).items() if v is not None})
    fields = Settings.model_fields
    values.update({k.lower(): v for k, v in os.environ.items() if k.lower() in fields})
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**{k: v for k, v in values.items() if k in fields})
