"""Package exports, written once and loaded on first use (PEP 562).

The one rule for every package ``__init__`` under ``xiva_source/`` and ``segmentation/``: its public
names are the imports of its ``if TYPE_CHECKING:`` block, and one call makes them the package's
``__all__`` and loads each on first use::

    from __future__ import annotations

    from typing import TYPE_CHECKING

    from xiva_source import lazy

    if TYPE_CHECKING:
        from xiva_source.dwh.errors import DwhError
        from xiva_source.dwh.reads import TableSpec, stream_rows

    __all__ = lazy.attach(__name__, __file__)

Each name is written once. mypy and IDEs read the block as ordinary imports (types, completion,
go-to-definition); :func:`attach` reads the same block from the source file to learn which module
defines each name, returns the names sorted as ``__all__``, and installs the package's
``__getattr__`` and ``__dir__`` itself: a ``__getattr__`` that type checkers could see would make
every misspelt name ``Any`` instead of an error. Nothing is imported until a name is first used,
so ``import xiva_source.<package>.errors`` stays cheap and ``xiva-source usage`` starts without
Feast, pandas or SQLAlchemy. Light packages follow the same rule: one form everywhere, and no
package's start-up cost depends on what its modules import.
Reading the block costs about 2 ms at the first package (the ``ast`` module), well under one
after; it needs the ``__init__.py`` source installed, as every wheel of ours has it.

Why not scientific-python's ``lazy_loader`` (``attach_stub`` reading an ``__init__.pyi``)? It does
the same at run time, but a stub never re-exports implicitly: type checkers need the names again
in the stub's ``__all__`` (scikit-image writes both) or as ``X as X``, so the list would be written
twice, in a second file per package, and mypy would check the stub instead of the package's
source. Its stub reader also takes relative imports only. What is kept from it: an export that
shares its name with the sub-module defining it (``feast_plugin.repo_settings``) stays the
export, as an eager ``from .repo_settings import repo_settings`` would leave it.

Strict re-export checking (``mypy --no-implicit-reexport``, pyright on an installed package)
takes the block's imports for private ones: the house's mypy settings keep implicit re-export on.
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from typing import Any

__all__ = ["attach"]

_SHADOWED = "__lazy_shadowed__"


class _ShadowGuard(types.ModuleType):
    """A package whose exports are not replaced by the same-named sub-modules that define them.

    The import system binds a sub-module to its package's attribute when it first loads
    (``feast_plugin.repo_settings = <module>``), which would hide the function of that name.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get(_SHADOWED, ()):
            return  # the sub-module stays reachable in sys.modules; the attribute is the export
        super().__setattr__(name, value)


def attach(package: str, init_file: str) -> list[str]:
    """Make a package's ``TYPE_CHECKING`` imports its exports, loaded on first use.

    Installs the package's ``__getattr__`` (PEP 562) and ``__dir__``.

    Args:
        package: The package's ``__name__``.
        init_file: The package's ``__file__`` (its ``__init__.py``, read for the block).

    Returns:
        The package's ``__all__``: the names the block imports, sorted.

    Raises:
        ImportError: The block holds something other than ``from <module of the package> import
            <names>`` (the message names the line and the fix), or the file cannot be read.
    """
    where = _exports(package, init_file)
    public = sorted(where)
    module = sys.modules[package]

    def __getattr__(name: str) -> Any:
        found = where.get(name)
        if found is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        source, attribute = found
        value = getattr(importlib.import_module(source), attribute)
        setattr(module, name, value)  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(module), *public})

    vars(module).update(__getattr__=__getattr__, __dir__=__dir__)  # PEP 562 reads the dict
    shadowed = frozenset(
        name for name, (source, _) in where.items() if source == f"{package}.{name}"
    )
    if shadowed:
        setattr(module, _SHADOWED, shadowed)
        module.__class__ = _ShadowGuard
    return public


def _exports(package: str, init_file: str) -> dict[str, tuple[str, str]]:
    """Public name -> (absolute module, attribute) from the file's ``if TYPE_CHECKING:`` block."""
    try:
        with open(init_file, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), init_file)
    except (OSError, SyntaxError) as e:
        raise ImportError(
            f"{package}: cannot read the public names from {init_file} ({e}); lazy.attach needs "
            "the package's source (__init__.py) beside its bytecode"
        ) from e
    where: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for statement in node.body:
            source = _source_module(package, statement)
            if source is None or not isinstance(statement, ast.ImportFrom):
                raise ImportError(
                    f"{package}: line {statement.lineno} of {init_file} is not an import of a "
                    f"module of {package!r}; the TYPE_CHECKING block lists the package's public "
                    "names only, as `from <module of the package> import <names>`"
                )
            for alias in statement.names:
                name = alias.asname or alias.name
                if name in where:
                    raise ImportError(
                        f"{package}: {name!r} is imported twice in the TYPE_CHECKING block of "
                        f"{init_file} (line {statement.lineno}); keep one import of it"
                    )
                where[name] = (source, alias.name)
    return where


def _source_module(package: str, statement: ast.stmt) -> str | None:
    """The absolute module of ``from <module> import ...`` if it is inside ``package``."""
    if not isinstance(statement, ast.ImportFrom) or any(a.name == "*" for a in statement.names):
        return None
    if statement.level:
        parts = package.split(".")
        if statement.level > len(parts):
            return None
        base = ".".join(parts[: len(parts) - statement.level + 1])
        source = f"{base}.{statement.module}" if statement.module else base
    else:
        source = statement.module or ""
    return source if source.startswith(f"{package}.") else None


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
