"""Where the tests find the real services, and the values every test layer shares.

``TEST_REDIS_URL`` and ``TEST_PG_URL`` move every test (and the fixtures) to other servers; the
unit tier is checked by pointing them at dead ports (``make test-unit`` does).
"""

from __future__ import annotations

import os

__all__ = [
    "PG_BASE_URL",
    "PROJECT_ENV_PREFIXES",
    "REDIS_URL",
    "SIM_PASSWORD",
    "SIM_USER",
    "settings_variables",
]

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
"""The real Redis (tests isolate themselves by a key namespace of their own)."""
PG_BASE_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
"""The real PostgreSQL (tests isolate themselves by a schema of their own)."""

SIM_USER = "loyalty"
"""The user the test simulators know."""
SIM_PASSWORD = "s3cret-Pa55word!"
"""``SIM_USER``'s password."""

PROJECT_ENV_PREFIXES = ("XIVA_", "FEATURE_STORE_", "DWH_", "ONLINE_TTL", "SEGMENTS_DIR")
"""Prefixes of the project's environment variables (cleared before every test)."""


def settings_variables() -> set[str]:
    """Every environment variable the settings read (and the one naming the .env file)."""
    from xiva_source.settings import ENV_FILE_VARIABLE, Settings

    files = {f"{name.upper()}_FILE" for name in Settings.file_fields}  # REDIS_URL_FILE, ...
    return {name.upper() for name in Settings.model_fields} | files | {ENV_FILE_VARIABLE}
