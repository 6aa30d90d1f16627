"""Importing a package, an errors module or the settings loads none of the heavy libraries.

A package's names load on first use (xiva_source.lazy), so ``import segmentation.errors`` or
``import xiva_source.jobs.errors`` costs milliseconds, not pandas' and Feast's half second. Each
import runs in a fresh interpreter: this process has long since imported everything. The commands
that only read the registry (``xiva-source status``, ``segmentation validate``) run whole without
importing Feast's SDK (its import alone takes seconds: ``bench/startup.py``).
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

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


COMMANDS = {
    "xiva-source status": ("main", ["status"], {"feast", "pandas"}),
    "segmentation validate": ("segmentation_main", ["validate"], {"feast"}),
    "segmentation sizes": ("segmentation_main", ["sizes"], {"feast"}),
}
"""The commands that only read the registry (and Redis): what their whole run must not import
(``validate`` and ``sizes`` compile the rules, which needs pandas). ``sizes`` over real data:
tests/segmentation/test_cli.py."""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_registry_reading_command_imports_no_feast(
    command: str, applied_feast_repo: Path, redis_url: str, tmp_path: Path
) -> None:
    entry, argv, forbidden = COMMANDS[command]
    args = ["--repo", str(applied_feast_repo), *argv]
    code = (
        f"import sys\nfrom xiva_source.cli import {entry}\n"
        f"code = {entry}({args!r})\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        f"print(code, *sorted(loaded & set({sorted(forbidden)!r})))\n"
    )
    env = {**os.environ, "REDIS_URL": redis_url, "DWH_URL": f"sqlite:///{tmp_path / 'dwh.db'}"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split()[-1:] == ["0"], f"{command}: {out.stdout.split()[-1]} {out.stderr}"
