"""Importing a package, an errors module or the settings loads none of the heavy libraries.

A package's names load on first use (xiva_source.lazy), so ``import segmentation.errors`` or
``import xiva_source.jobs.errors`` costs milliseconds, not pandas' and Feast's half second. Each
import runs in a fresh interpreter: this process has long since imported everything.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import segmentation
import xiva_source

pytestmark = pytest.mark.usefixtures("subprocesses")

HEAVY = ("pandas", "numpy", "feast", "sqlalchemy", "redis")


def _light_modules() -> list[str]:
    """Every package, every ``errors`` module, and the core settings."""
    found = ["xiva_source", "xiva_source.settings", "segmentation"]
    for root in (xiva_source, segmentation):
        for info in pkgutil.walk_packages(root.__path__, f"{root.__name__}."):
            if info.ispkg or info.name.rsplit(".", 1)[-1] == "errors":
                found.append(info.name)
    return sorted(found)


MODULES = _light_modules()


def test_the_errors_modules_are_among_those_checked() -> None:
    for expected in (
        "xiva_source.errors",
        "xiva_source.xiva_api.errors",
        "xiva_source.dwh.errors",
        "xiva_source.pipeline.errors",
        "xiva_source.feast_plugin.errors",
        "xiva_source.jobs.errors",
        "segmentation.errors",
    ):
        assert expected in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_importing_it_loads_no_heavy_library(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"print(*sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [], f"import {module} loaded {out.stdout.strip()}"
