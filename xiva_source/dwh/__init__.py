"""The data warehouse: engines, Arrow conversion, streamed reads, the Xiva snapshot table.

Names load on first use, so importing :mod:`xiva_source.dwh.errors` stays light (no SQLAlchemy).
"""

from __future__ import annotations

import importlib
from typing import Any

_IMPL = "xiva_source.dwh._dwh"


def __getattr__(name: str) -> Any:
    value = getattr(importlib.import_module(_IMPL), name)
    globals()[name] = value
    return value
