"""What each package exports: ``__all__`` is exactly its public names, each defined inside it.

Every package under ``xiva_source/`` and ``segmentation/`` follows one rule (docs/architecture.md):
its public names are the ``if TYPE_CHECKING:`` imports of its ``__init__``, turned into
``__getattr__``, ``__dir__`` and ``__all__`` by :func:`xiva_source.lazy.attach`. Needs no service.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from types import ModuleType

import pytest

import segmentation
import xiva_source


def _packages() -> list[str]:
    found = [xiva_source.__name__, segmentation.__name__]
    for root in (xiva_source, segmentation):
        found += [
            info.name
            for info in pkgutil.walk_packages(root.__path__, f"{root.__name__}.")
            if info.ispkg
        ]
    return sorted(found)


PACKAGES = _packages()

# Names bound in every __init__ by the rule itself, not exports.
_HOUSEKEEPING = {"annotations", "TYPE_CHECKING"}

# Re-exports of another package's object, on purpose: segmentation's error tree includes the
# online store's error (segmentation/errors.py).
_FOREIGN = {("segmentation", "OnlineStoreError"): "xiva_source.feast_plugin.errors"}


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def _home(package: str, name: str, value: object) -> str | None:
    """The module defining an export: a class's or function's own ``__module__``; for a constant,
    an instance or a type alias (which carry none of their own), the sub-module holding it."""
    if inspect.isclass(value) or inspect.isfunction(value):
        return value.__module__
    holders = sorted(
        module_name
        for module_name, module in list(sys.modules.items())
        if module_name != package
        and _inside(module_name, package)
        and vars(module).get(name) is value
    )
    return holders[0] if holders else None


def test_every_package_is_found() -> None:
    for expected in (
        "xiva_source",
        "xiva_source.xiva_api",
        "xiva_source.features",
        "xiva_source.dwh",
        "xiva_source.pipeline",
        "xiva_source.feast_plugin",
        "xiva_source.jobs",
        "xiva_source.demo",
        "xiva_source.cli",
        "xiva_source.cli.segmentation",
        "xiva_source.simulator",
        "segmentation",
        "segmentation.sql",
    ):
        assert expected in PACKAGES


@pytest.mark.parametrize("name", PACKAGES)
def test_the_package_exports_with_the_one_helper(name: str) -> None:
    package = importlib.import_module(name)
    hook = vars(package).get("__getattr__")
    assert hook is not None, f"{name}/__init__.py does not use xiva_source.lazy.attach"
    assert hook.__module__ == "xiva_source.lazy", name


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_without_duplicates(name: str) -> None:
    exported = importlib.import_module(name).__all__
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_resolves_to_an_object_defined_inside_the_package(name: str) -> None:
    package = importlib.import_module(name)
    for export in package.__all__:
        value = getattr(package, export)
        assert not isinstance(value, ModuleType), f"{name}.{export} is a module"
        home = _home(name, export, value)
        assert home is not None, f"{name}.{export}: no module of {name} defines it"
        expected = _FOREIGN.get((name, export))
        if expected is not None:
            assert home == expected
        else:
            assert _inside(home, name), f"{name}.{export} is defined in {home}"


@pytest.mark.parametrize("name", PACKAGES)
def test_all_equals_the_public_names_the_package_holds(name: str) -> None:
    package = importlib.import_module(name)
    for export in package.__all__:
        getattr(package, export)  # a lazy name is bound on the package when first used
    public = {
        attribute
        for attribute, value in vars(package).items()
        if not attribute.startswith("_")
        and not isinstance(value, ModuleType)
        and attribute not in _HOUSEKEEPING
    }
    assert public == set(package.__all__)
    assert set(package.__all__) <= set(dir(package))


@pytest.mark.parametrize("name", PACKAGES)
def test_an_unknown_name_is_an_attribute_error(name: str) -> None:
    package = importlib.import_module(name)
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018
