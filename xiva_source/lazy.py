"""Lazy package exports (PEP 562): a package names its public objects without importing them.

Heavy modules (Feast, SQLAlchemy, pandas) load only when one of their names is first used, so
``import xiva_source`` and the light commands start fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str], public: Collection[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    Args:
        package: The package's ``__name__``.
        where: Public name -> the module defining it: a sub-module name relative to the
            package (``"reads"``) or an absolute module path (``"xiva_source.jobs.refresh"``).
        public: The package's ``__all__``.

    Returns:
        ``(__getattr__, __dir__)``, to assign at the package's module level.

    Example:
        >>> __getattr__, __dir__ = lazy_exports(__name__, {"stream_rows": "reads"}, __all__)
        ... # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        path = module if module.startswith("xiva_source.") else f"{package}.{module}"
        value = getattr(importlib.import_module(path), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__
