"""xiva_source.lazy.attach: a package's TYPE_CHECKING imports become its lazy exports."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

_HEADER = """\
from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
"""
_FOOTER = "\n__all__ = lazy.attach(__name__, __file__)\n"


@pytest.fixture
def make_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, dict[str, str]], ModuleType]]:
    """Writes a package (its TYPE_CHECKING block, its modules) on sys.path and imports it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(block: str, modules: dict[str, str]) -> ModuleType:
        name = f"lazy_pkg_{uuid.uuid4().hex}"
        names.append(name)
        root = tmp_path / name
        root.mkdir()
        block = textwrap.indent(textwrap.dedent(block).replace("PKG", name), "    ")
        (root / "__init__.py").write_text(_HEADER + block + _FOOTER)
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        return importlib.import_module(name)

    yield make
    for name in names:
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[module]


def test_the_block_is_the_sorted_all_and_each_name_loads_on_first_use(
    make_package: Callable[[str, dict[str, str]], ModuleType],
) -> None:
    package = make_package(
        """
        from PKG.shapes import Square, area
        from .colours import RED
        """,
        {"shapes": "class Square: ...\ndef area(): return 4\n", "colours": "RED = 'red'\n"},
    )
    assert package.__all__ == ["RED", "Square", "area"]
    assert f"{package.__name__}.shapes" not in sys.modules
    assert package.area() == 4
    assert f"{package.__name__}.shapes" in sys.modules
    assert f"{package.__name__}.colours" not in sys.modules
    assert package.RED == "red"
    assert {"RED", "Square", "area"} <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'blue'"):
        package.blue  # noqa: B018


def test_an_alias_exports_the_object_under_the_new_name(
    make_package: Callable[[str, dict[str, str]], ModuleType],
) -> None:
    package = make_package(
        "from PKG.cli import main as tool_main\n", {"cli": "def main(): return 7\n"}
    )
    assert package.__all__ == ["tool_main"]
    assert package.tool_main() == 7


def test_an_export_named_like_its_module_stays_the_export(
    make_package: Callable[[str, dict[str, str]], ModuleType],
) -> None:
    package = make_package(
        "from PKG.settings import settings\n",
        {"settings": "def settings(): return 'the function'\n"},
    )
    importlib.import_module(f"{package.__name__}.settings")  # the import system binds the module
    assert package.settings() == "the function"


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("from os.path import join\n", "is not an import of a module of"),
        ("import PKG.shapes\n", "is not an import of a module of"),
        ("from PKG.shapes import *\n", "is not an import of a module of"),
        ("X: int\n", "is not an import of a module of"),
        ("from PKG.shapes import Square\nfrom PKG.other import Square\n", "imported twice"),
    ],
)
def test_anything_but_imports_of_the_package_is_refused_with_the_fix(
    make_package: Callable[[str, dict[str, str]], ModuleType], block: str, problem: str
) -> None:
    with pytest.raises(ImportError, match=problem) as caught:
        make_package(block, {"shapes": "class Square: ...\n"})
    assert "line" in str(caught.value)
